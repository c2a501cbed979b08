"""A story's page and the review changes made on it (JSON posts from static/app.js), each made
by storypipe.app.review and answered with the story as it is now."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from storypipe.app import review
from storypipe.app.web.common import StoreDep, json_body, render
from storypipe.core.models import QuotesFile
from storypipe.core.settings import load_settings
from storypipe.core.store import Store
from storypipe.tasks.common.themes import codebook_path, load_codebook, theme_ids

router = APIRouter()


@router.get("/stories/{story_id}", response_class=HTMLResponse)
def story_page(request: Request, story_id: str, store: StoreDep):
    data = story_data(store, story_id)
    return render(request, "story.html", {**data, "data_json": json.dumps(data["api"]).replace("</", "<\\/")})


@router.get("/api/stories/{story_id}")
def api_story(story_id: str, store: StoreDep):
    return story_data(store, story_id)["api"]


@router.post("/api/stories/{story_id}/segments/{segment_id}")
async def api_segment(story_id: str, segment_id: int, request: Request, store: StoreDep):
    body = await json_body(request)
    review.edit_segment(store, story_id, segment_id, str(body.get("text", "")), body.get("version"))
    return story_data(store, story_id)["api"]


@router.post("/api/stories/{story_id}/speakers")
async def api_speaker(story_id: str, request: Request, store: StoreDep):
    body = await json_body(request)
    review.rename_speaker(store, story_id, str(body.get("label", "")), str(body.get("name", "")), body.get("version"))
    return story_data(store, story_id)["api"]


@router.post("/api/stories/{story_id}/reviewed")
async def api_reviewed(story_id: str, store: StoreDep):
    review.mark_reviewed(store, story_id)
    return story_data(store, story_id)["api"]


@router.post("/api/stories/{story_id}/quotes/{quote_id}")
async def api_quote(story_id: str, quote_id: str, request: Request, store: StoreDep):
    body = await json_body(request)
    version = body.get("version")
    if "status" in body:
        review.decide(store, story_id, [quote_id], str(body["status"]), version)
        version = None  # the file has changed under this request's own hand
    if "themes" in body:
        themes = body["themes"] if isinstance(body["themes"], list) else []
        review.set_themes(store, story_id, quote_id, [str(t) for t in themes],
                          theme_ids(store.root, load_settings(store.root).extract.themes_file), version)
        version = None
    if any(k in body for k in ("widen_start", "widen_end", "title", "description")):
        review.update_quote(store, story_id, quote_id, version, widen_start=int(body.get("widen_start", 0)),
                            widen_end=int(body.get("widen_end", 0)), title=body.get("title"),
                            description=body.get("description"))
    return story_data(store, story_id)["api"]


@router.post("/api/stories/{story_id}/quotes")
async def api_new_quote(story_id: str, request: Request, store: StoreDep):
    body = await json_body(request)
    review.new_quote(store, story_id, float(body.get("start", 0)), float(body.get("end", 0)), body.get("version"))
    return story_data(store, story_id)["api"]


@router.post("/api/stories/{story_id}/consent")
async def api_consent(story_id: str, request: Request, store: StoreDep):
    body = await json_body(request)
    changes = {k: v for k, v in body.items() if k != "version"}
    if not all(isinstance(v, bool) for v in changes.values()):
        raise review.ReviewError("Consent choices are yes or no.")
    review.change_consent(store, story_id, changes, load_settings(store.root), body.get("version"))
    return story_data(store, story_id)["api"]


def story_data(store: Store, story_id: str) -> dict:
    """The story, its transcript and quotes for the page, and the same as JSON for its script, with
    the version of each file (what a change is based on)."""
    review.story_dir(store, story_id)  # checks the id first
    story = store.read_story(story_id)
    t_path, q_path = store.transcript_path(story_id), store.quotes_path(story_id)
    transcript = store.read_transcript(story_id, missing_ok=True)
    quotes = store.read_quotes(story_id, missing_ok=True) or QuotesFile(story_id=story_id)
    book = load_codebook(codebook_path(store.root, load_settings(store.root).extract.themes_file))
    api = {
        "story": json.loads(story.model_dump_json()),
        "transcript": json.loads(transcript.model_dump_json()) if transcript else None,
        "quotes": json.loads(quotes.model_dump_json())["quotes"],
        "themes": {t.id: t.name for t in book.themes},
        "versions": {"transcript": review.version(t_path), "quotes": review.version(q_path),
                     "story": review.version(store.story_path(story_id))},
    }
    return {"story": story, "transcript": transcript, "quotes": quotes.quotes, "api": api}
