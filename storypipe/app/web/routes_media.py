"""A story's audio for the page's player (range requests, so it can seek)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from storypipe.app import review
from storypipe.app.web.common import StoreDep
from storypipe.core.store import Store

# Formats every current browser plays; anything else is served as the 16 kHz speech copy.
PLAYABLE = {".mp3": "audio/mpeg", ".m4a": "audio/mp4", ".wav": "audio/wav", ".ogg": "audio/ogg",
            ".oga": "audio/ogg", ".opus": "audio/ogg", ".webm": "audio/webm", ".flac": "audio/flac",
            ".mp4": "video/mp4"}

router = APIRouter()


@router.get("/stories/{story_id}/audio")
def story_audio(story_id: str, store: StoreDep):
    path, media = audio_file(store, story_id)
    return FileResponse(path, media_type=media)


def audio_file(store: Store, story_id: str) -> tuple[Path, str]:
    """The original when a browser can play it, else the 16 kHz speech copy made at transcription."""
    review.story_dir(store, story_id)  # checks the id first
    story = store.read_story(story_id)
    original = store.original_dir(story_id) / story.source.filename
    media = PLAYABLE.get(original.suffix.lower())
    if media and original.is_file():
        return original, media
    speech = store.speech_wav(story_id)
    if speech.is_file():
        return speech, "audio/wav"
    raise review.NotFound(f"No playable audio for {story_id}.")
