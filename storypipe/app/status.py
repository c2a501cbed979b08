"""Where every story stands: what it still needs, what went wrong, and the rows `storypipe status` shows."""

from __future__ import annotations

import logging
from pathlib import Path

from storypipe.core.jsonio import BadFileError
from storypipe.core.store import Store
from storypipe.core.models import Story
from storypipe.tasks.common import consent
from storypipe.tasks.ingest import waiting_sidecars

log = logging.getLogger("storypipe")

def quote_counts(store: Store, story_id: str) -> tuple[int, int]:
    """(candidate, approved) quotes of a story."""
    if not store.quotes_path(story_id).exists():
        return 0, 0
    try:
        quotes = store.read_quotes(story_id).quotes
    except BadFileError:
        return 0, 0
    return sum(q.status == "candidate" for q in quotes), sum(q.status == "approved" for q in quotes)


def story_rows(store: Store) -> list[dict]:
    """One row per story for `storypipe status`."""
    rows = []
    for story in store.stories():
        candidate, approved = quote_counts(store, story.story_id)
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
        "stage": story.failed_stage(),
        "reason": last.note or "",
        "at": last.at.isoformat(),
        "tried_again_by_run": last.retry is not False,
    }


def retry_problem(store: Store, story_id: str) -> str | None:
    """Why `storypipe retry` cannot take this story (None when it can)."""
    if not store.has_story(story_id):
        return f"there is no story {story_id} in {store.transcripts}"
    story = store.read_story(story_id)
    if story.state != "failed":
        return f"{story_id} has not failed (it is {story.state})"
    return consent.transcribe(story)


def quarantined(store: Store) -> list[dict]:
    """Files in quarantine with the first line of their reason."""
    items = []
    if store.quarantine.is_dir():
        for note in sorted(store.quarantine.glob("*.error.txt")):
            why = next((ln[5:] for ln in note.read_text("utf-8").splitlines() if ln.startswith("Why: ")), "")
            items.append({"file": note.name.removesuffix(".error.txt"), "reason": why})
    return items


def waiting(store: Store) -> list[str]:
    return [p.name for p in waiting_sidecars(store)]


def root_summary(store: Store) -> dict:
    return {
        "root": str(Path(store.root).resolve()),
        "stories": story_rows(store),
        "quarantined": quarantined(store),
        "waiting_sidecars": waiting(store),
    }
