"""Add a story: the recording and its consent and details, put into the inbox for the pipeline."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from storypipe.app import review
from storypipe.app.web.common import NOT_FROM_APP, StoreDep, app_form, problem, render
from storypipe.core.jsonio import atomic_write_bytes, atomic_writer
from storypipe.core.models import Consent, Sidecar
from storypipe.core.settings import load_settings
from storypipe.core.store import Store

CONSENT_HELP = {
    "transcript": "The recording may be transcribed, so the team can read it.",
    "report": "Quotes may be used in the project's written report (under the pseudonym, or unnamed when anonymised).",
    "clips": "Short extracts may be published in the project's YouTube playlist.",
    "full_story": "The whole story may be published on the project website.",
    "anonymise": "Names of people and places must be hidden (bleeped or removed) in anything published.",
}
SAFE_NAME = re.compile(r"[^\w .,()'-]+")

router = APIRouter()


@router.get("/add", response_class=HTMLResponse)
def add_form(request: Request, store: StoreDep):
    return render(request, "add.html", {"defaults": load_settings(store.root).ingest.default_consent})


@router.post("/add", response_class=HTMLResponse)
async def add_story(request: Request, store: StoreDep):
    form = await app_form(request)
    if form is None:
        return problem(request, 403, NOT_FROM_APP)
    try:
        name = await save_intake(store, form)
    except review.ReviewError as e:
        return render(request, "add.html", {"error": str(e), "defaults": Consent()}, status_code=400)
    return render(request, "added.html", {"name": name})


async def save_intake(store: Store, form) -> str:
    """The "Add a story" form: the sidecar first, then the audio, each under a temporary name and
    renamed, so the pipeline never sees half a file or audio without its consent."""
    upload = form.get("recording")
    if upload is None or not getattr(upload, "filename", ""):
        raise review.ReviewError("Choose a recording to upload.")
    name = SAFE_NAME.sub("", Path(upload.filename).name).strip(" .")
    if not name or "." not in name:
        raise review.ReviewError("The recording needs a file name with an ending, like interview.mp3.")
    stem = Path(name).stem
    fields: dict[str, Any] = {k: (form.get(k) or "").strip() for k in ("title", "storyteller", "interviewer",
                                                                     "recorded_on", "language")}
    fields = {k: v for k, v in fields.items() if v}
    for k in ("sectors", "roles", "names"):
        items = [x.strip() for x in (form.get(k) or "").split(",") if x.strip()]
        if items:
            fields[k] = items
    speakers = (form.get("speakers") or "").strip()
    if speakers:  # empty: the default (an interview, two voices)
        fields["speakers"] = int(speakers) if speakers.isdigit() else speakers  # else refused below, named
    demographics = {k: (form.get(k) or "").strip() for k in ("age_range", "gender")}
    if any(demographics.values()):
        fields["demographics"] = {k: v for k, v in demographics.items() if v}
    fields["consent"] = {k: form.get(k) == "yes" for k in CONSENT_HELP}
    try:
        Sidecar.model_validate(fields)
    except ValidationError as e:
        first = e.errors()[0]
        raise review.ReviewError(f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None
    inbox = store.inbox
    if (inbox / name).exists() or (inbox / f"{stem}.yaml").exists():
        raise review.ReviewError(f"{name} is already waiting in the inbox.")
    atomic_write_bytes(inbox / f"{stem}.yaml", yaml.safe_dump(fields, sort_keys=False, allow_unicode=True).encode())
    with atomic_writer(inbox / name) as out:  # a hidden temporary name, which the inbox skips
        while chunk := await upload.read(1 << 20):
            out.write(chunk)
    return name
