"""Charts for the findings report: bar charts that read in print, on screen and without colour.

Every bar carries its number and share as text, so nothing depends on colour; "not stated" has a
pattern of its own, and a suppressed group ("fewer than 5") gets no bar at all, only the words.
Matplotlib's object API (no pyplot) keeps this thread-safe and free of a display.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

# Dark blue on white passes WCAG contrast for large shapes; text is near-black.
BAR_COLOUR = "#1f4e79"
NOT_STATED_COLOUR = "#ffffff"
TEXT_COLOUR = "#1a1a1a"
MUTED_COLOUR = "#555555"
FONT_SIZE = 11
BAR_HEIGHT_IN = 0.42  # per row, so long lists stay legible
MIN_HEIGHT_IN = 1.6
LABEL_WIDTH_CHARS = 34  # longer group names are wrapped


@dataclass(frozen=True)
class Group:
    """One bar: a group of storytellers, its count and share (None when suppressed as too small)."""

    label: str
    count: int | None
    share: float | None
    not_stated: bool = False
    threshold: int = 5  # the smallest group shown

    @property
    def value_text(self) -> str:
        return f"fewer than {self.threshold}" if self.count is None else f"{self.count} ({self.share:.0%})"


def _wrap(label: str, width: int = LABEL_WIDTH_CHARS) -> str:
    words, lines, line = label.split(), [], ""
    for w in words:
        if line and len(line) + 1 + len(w) > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    return "\n".join([*lines, line]) if line else label


def bar_chart(title: str, groups: list[Group], width_in: float, dpi: int) -> bytes:
    """A horizontal bar chart as PNG bytes (bars top to bottom in the order given)."""
    rows = max(1, len(groups))
    fig = Figure(figsize=(width_in, max(MIN_HEIGHT_IN, 0.9 + BAR_HEIGHT_IN * rows)), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    top = max([g.share for g in groups if g.share is not None] or [1.0])
    ys = list(range(rows))[::-1]
    for y, g in zip(ys, groups):
        if g.count is None:
            ax.text(0.005, y, g.value_text, va="center", ha="left", fontsize=FONT_SIZE, style="italic",
                    color=MUTED_COLOUR)
            continue
        ax.barh(y, g.share, height=0.66, color=NOT_STATED_COLOUR if g.not_stated else BAR_COLOUR,
                edgecolor=TEXT_COLOUR if g.not_stated else BAR_COLOUR, hatch="///" if g.not_stated else None,
                linewidth=1)
        ax.text(g.share + top * 0.015, y, g.value_text, va="center", ha="left", fontsize=FONT_SIZE,
                color=TEXT_COLOUR)
    if not groups:
        ax.text(0.5, 0.5, "nothing to show", ha="center", va="center", transform=ax.transAxes,
                fontsize=FONT_SIZE, color=MUTED_COLOUR, style="italic")
    ax.set_yticks(ys, [_wrap(g.label) for g in groups] if groups else [""], fontsize=FONT_SIZE, color=TEXT_COLOUR)
    ax.set_xlim(0, top * 1.32)  # room for the labels right of the longest bar
    ax.set_ylim(-0.6, rows - 0.4)
    ax.xaxis.set_visible(False)
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    ax.tick_params(axis="y", length=0)
    ax.set_title(title, loc="left", fontsize=FONT_SIZE + 2, fontweight="bold", color=TEXT_COLOUR)
    fig.tight_layout()
    buf = io.BytesIO()
    # No software or date in the file: the same data gives the same bytes.
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white", metadata={"Software": None})
    return buf.getvalue()


def alt_text(title: str, groups: list[Group]) -> str:
    """What the chart shows, in words, for screen readers and anyone who cannot see it."""
    parts = [f"{g.label}: {g.value_text}" for g in groups]
    return f"Bar chart, {title.lower()}. " + ("; ".join(parts) if parts else "nothing to show") + "."
