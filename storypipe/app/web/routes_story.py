"""A story's page and the review changes made on it (JSON posts from static/app.js), each made
by storypipe.app.review and answered with the story as it is now."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from storypipe.app import review
from storypipe.app.web.common import StoreDep, json_body, json_model, render
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


class SpeakerBody(BaseModel):
    """Who said a segment: `to` a label or a name (none: the other speaker), from word `from_word`
    (0 is the first) to the segment's end, or all of it when none is given."""

    model_config = ConfigDict(extra="forbid")
    to: str | None = Field(default=None, max_length=60)
    from_word: int | None = Field(default=None, strict=True)
    version: str | None = None


class SplitBody(BaseModel):
    """Split a segment in two before word `at_word`."""

    model_config = ConfigDict(extra="forbid")
    at_word: int = Field(strict=True)
    version: str | None = None


@router.post("/api/stories/{story_id}/segments/{segment_id}/speaker")
async def api_segment_speaker(story_id: str, segment_id: int, request: Request, store: StoreDep):
    body = await json_model(request, SpeakerBody)
    settings = load_settings(store.root)
    # The quotes are derived again in the same request (a second or two): off the event loop.
    if body.from_word is None:
        change = await run_in_threadpool(review.give_segment, store, story_id, segment_id, body.to, settings,
                                         body.version)
    else:
        change = await run_in_threadpool(review.give_words_from, store, story_id, segment_id, body.from_word,
                                         body.to, settings, body.version)
    return {**story_data(store, story_id)["api"], "change": change_json(change)}


@router.post("/api/stories/{story_id}/segments/{segment_id}/split")
async def api_segment_split(story_id: str, segment_id: int, request: Request, store: StoreDep):
    body = await json_model(request, SplitBody)
    change = await run_in_threadpool(review.split_segment, store, story_id, segment_id, body.at_word, body.version)
    return {**story_data(store, story_id)["api"], "change": change_json(change)}


def change_json(change: review.SpeakerChange) -> dict:
    return {"said": change.said, "changed": change.changed, "segments": change.segments,
            "quotes_derived": change.quotes is not None, "notes": change.notes, "problem": change.problem}


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
        "speaker_choices": [{"label": label, "name": transcript.speaker_names.get(label)}
                            for label in review.speaker_choices(transcript)] if transcript else [],
        "versions": {"transcript": review.version(t_path), "quotes": review.version(q_path),
                     "story": review.version(store.story_path(story_id))},
    }
    return {"story": story, "transcript": transcript, "quotes": quotes.quotes, "api": api}
