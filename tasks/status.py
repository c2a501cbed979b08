"""Where every story stands: what it still needs, what went wrong, and the rows `storypipe status` shows."""

from __future__ import annotations

import logging
from pathlib import Path

from storypipe.jsonio import BadFileError, read_model, write_model
from storypipe.layout import Layout
from storypipe.models import QuotesFile, Story
from tasks import consent
from tasks.ingest import waiting_sidecars

log = logging.getLogger("storypipe")

# The stage a story needs next, by the last state it reached.
NEXT_STAGE = {"ingested": "transcribe", "transcribed": "extract", "extracted": "stage"}


def load_stories(layout: Layout) -> list[Story]:
    stories = []
    for path in sorted(layout.transcripts.glob("*/story.json")):
        try:
            stories.append(read_model(path, Story))
        except BadFileError as e:
            log.warning("Skipping %s", e)
    return stories


def last_good_state(story: Story) -> str:
    """The state before any failure: where a re-run picks the story up."""
    for entry in reversed(story.history):
        if entry.state != "failed":
            return entry.state
    return "ingested"


def reached(story: Story) -> str:
    """The furthest state a story reached: its state, or, when it failed, the state before."""
    return last_good_state(story) if story.state == "failed" else story.state


def next_stage(layout: Layout, story_id: str) -> str | None:
    story = read_model(layout.story_dir(story_id) / "story.json", Story)
    if consent.transcribe(story):
        return None  # without consent to a transcript, nothing more is done with the recording
    return NEXT_STAGE.get(reached(story))


def needs_work(story: Story) -> bool:
    """Stopped part-way, or failed at a stage that trying again can fix.

    A failure that trying again cannot fix (no speech in the recording) is left for a person to look at.
    """
    if consent.transcribe(story):
        return False
    if story.state == "extracted":  # stopped before staging: only work when consent allows staging
        return consent.stage(story) is None
    return story.state in ("ingested", "transcribed") or (story.state == "failed" and story.history[-1].retry is not False)


def is_unfinished(layout: Layout, story_id: str) -> bool:
    return needs_work(read_model(layout.story_dir(story_id) / "story.json", Story))


def unfinished_stories(layout: Layout) -> list[str]:
    """Stories an earlier run did not finish: the next run resumes them."""
    return [s.story_id for s in load_stories(layout) if needs_work(s)]


def mark_failed(layout: Layout, story_id: str, error: BaseException) -> str:
    """Record a stage failure on the story, in words; the run goes on with the other stories."""
    path = layout.story_dir(story_id) / "story.json"
    story = read_model(path, Story)
    stage = NEXT_STAGE.get(last_good_state(story), "processing")
    permanent = getattr(error, "permanent", False)
    reason = str(error) if permanent else f"{stage} failed: {error}"
    story.problems.append(reason)
    story.advance("failed", note=reason)
    story.history[-1].retry = not permanent
    write_model(path, story)
    log.error("%s: %s%s", story_id, reason, "" if permanent else " (it will be tried again on the next run)",
              extra={"story": story_id, "done": True})
    return reason


def quote_counts(layout: Layout, story_id: str) -> tuple[int, int]:
    """(candidate, approved) quotes of a story."""
    path = layout.story_dir(story_id) / "quotes.json"
    if not path.exists():
        return 0, 0
    try:
        quotes = read_model(path, QuotesFile).quotes
    except BadFileError:
        return 0, 0
    return sum(q.status == "candidate" for q in quotes), sum(q.status == "approved" for q in quotes)


def story_rows(layout: Layout) -> list[dict]:
    """One row per story for `storypipe status`."""
    rows = []
    for story in load_stories(layout):
        candidate, approved = quote_counts(layout, story.story_id)
        rows.append(
            {
                "story_id": story.story_id,
                "source": story.source.filename,
                "duration_s": story.source.duration_s,
                "state": story.state,
                "quotes_candidate": candidate,
                "quotes_approved": approved,
                "problems": story.problems,
                "failure": failure(story),
            }
        )
    return rows


def failure(story: Story) -> dict | None:
    """Why a failed story failed, at which stage, and whether a plain re-run will try it again."""
    if story.state != "failed":
        return None
    last = story.history[-1]
    return {
        "stage": NEXT_STAGE.get(last_good_state(story), "processing"),
        "reason": last.note or "",
        "at": last.at.isoformat(),
        "tried_again_by_run": last.retry is not False,
    }


def retry_problem(layout: Layout, story_id: str) -> str | None:
    """Why `storypipe retry` cannot take this story (None when it can)."""
    path = layout.story_dir(story_id) / "story.json"
    if not path.exists():
        return f"there is no story {story_id} in {layout.transcripts}"
    story = read_model(path, Story)
    if story.state != "failed":
        return f"{story_id} has not failed (it is {story.state})"
    return consent.transcribe(story)


def quarantined(layout: Layout) -> list[dict]:
    """Files in quarantine with the first line of their reason."""
    items = []
    if layout.quarantine.is_dir():
        for note in sorted(layout.quarantine.glob("*.error.txt")):
            why = next((ln[5:] for ln in note.read_text("utf-8").splitlines() if ln.startswith("Why: ")), "")
            items.append({"file": note.name.removesuffix(".error.txt"), "reason": why})
    return items


def waiting(layout: Layout) -> list[str]:
    return [p.name for p in waiting_sidecars(layout)]


def root_summary(layout: Layout) -> dict:
    return {
        "root": str(Path(layout.root).resolve()),
        "stories": story_rows(layout),
        "quarantined": quarantined(layout),
        "waiting_sidecars": waiting(layout),
    }
