"""The story list: every story with its state, length, approved quotes and unsure words."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from storypipe.app.web.common import StoreDep, render
from storypipe.core.jsonio import BadFileError
from storypipe.core.store import Store

router = APIRouter()


@router.get("/", response_class=HTMLResponse)
def story_list(request: Request, store: StoreDep, state: str = ""):
    rows = list_rows(store)
    states = sorted({r["state"] for r in rows})
    shown = [r for r in rows if not state or r["state"] == state]
    return render(request, "list.html", {"rows": shown, "states": states, "state": state, "root": str(store.root)})


def list_rows(store: Store) -> list[dict]:
    """The story list: state, duration, approved quotes, and whether unsure words await a reviewer."""
    from storypipe.app import status

    rows = []
    for story in store.stories():
        candidate, approved = status.quote_counts(store, story.story_id)
        unsure = False
        if story.reviewed_at is None and store.transcript_path(story.story_id).exists():
            try:
                t = store.read_transcript(story.story_id)
                unsure = any(s.low_confidence or any(w.low_confidence for w in s.words) for s in t.segments)
            except BadFileError:
                pass
        rows.append({"story_id": story.story_id, "title": story.metadata.title or story.source.filename,
                     "state": story.state, "duration_s": story.source.duration_s, "candidate": candidate,
                     "approved": approved, "unsure": unsure, "reviewed": story.reviewed_at is not None})
    return rows
