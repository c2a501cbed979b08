"""Times as people read them, one way everywhere: the CLI, the web app, the report, the Prefect UI.

- `duration`: a length or a moment in a recording, "2:14", or "1:02:03" from an hour on;
- `clock`: the same moment at a fixed width, "00:02:14", starting each line of transcript.txt;
- `hours_minutes`: a total length of recordings, "3 h 18 min" or "45 min".

Seconds are whole, rounded down (a moment shown as 2:14 is at or after 2:14, as in a player).
Caption timestamps (00:02:14,500) are pysubs2's, not these. The web page's script (app.js)
writes `duration` again for times it changes in place.
"""

from __future__ import annotations


def duration(seconds: float | None) -> str:
    """'2:14', or '1:02:03' from an hour on; '' when unknown."""
    if seconds is None:
        return ""
    s = max(0, int(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def clock(seconds: float) -> str:
    """'00:02:14': hours, minutes and seconds at a fixed width, so transcript lines align."""
    s = max(0, int(seconds))
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


def hours_minutes(seconds: float) -> str:
    """'3 h 18 min', or '45 min' under an hour (rounded to the nearest minute)."""
    minutes = int(round(seconds / 60))
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"
