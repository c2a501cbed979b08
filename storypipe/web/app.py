"""The review app's routes. Pages are Jinja2 templates; changes go through tasks/review.py as JSON
posts from a little plain JavaScript (static/app.js). Nothing here is loaded from the network.

Safety, in one place:
- ids are checked by tasks/review.py before any path is built, so "../" never reaches the disk;
- every state-changing request must carry this server's random CSRF token (pages embed it), and
  a request from another origin is refused outright;
- bound to another host than 127.0.0.1, every request needs the access token, given once in the
  URL (?token=...) and then kept in a cookie;
- a request whose Host header is not one of this server's own names is answered 400 before
  anything else runs, so a page on another site that points its own name at 127.0.0.1 (DNS
  rebinding) cannot read the stories.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import tempfile
from pathlib import Path
from typing import Any

import yaml
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from starlette.middleware.trustedhost import TrustedHostMiddleware

from storypipe.jsonio import BadFileError, atomic_write_bytes, read_model
from storypipe.layout import Layout
from storypipe.models import Consent, QuotesFile, Sidecar, Story, Transcript
from storypipe.settings import load_settings
from tasks import review
from tasks.themes import codebook_path, load_codebook, theme_ids

HERE = Path(__file__).parent
# Formats every current browser plays; anything else is served as the 16 kHz speech copy.
PLAYABLE = {".mp3": "audio/mpeg", ".m4a": "audio/mp4", ".wav": "audio/wav", ".ogg": "audio/ogg",
            ".oga": "audio/ogg", ".opus": "audio/ogg", ".webm": "audio/webm", ".flac": "audio/flac",
            ".mp4": "video/mp4"}
CONSENT_HELP = {
    "transcript": "The recording may be transcribed, so the team can read it.",
    "report": "Quotes may be used in the project's written report (under the pseudonym, or unnamed when anonymised).",
    "clips": "Short extracts may be published in the project's YouTube playlist.",
    "full_story": "The whole story may be published on the project website.",
    "anonymise": "Names of people and places must be hidden (bleeped or removed) in anything published.",
}
SAFE_NAME = re.compile(r"[^\w .,()'-]+")
FORM_ROUTES = {"/add", "/report"}
REPORT_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
NOT_FROM_APP = "This change did not come from a review app page. Reload the page and try again."
# The names a browser on this machine uses for a server on the loopback address. Starlette compares
# the Host header without its port, and keeps the brackets of an IPv6 address: "[::1]", not "::1".
LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def create_app(root: Path, access_token: str | None = None, *, allowed_hosts: list[str] | None = None) -> FastAPI:
    """The review app for `root`. `allowed_hosts` are the Host header values (without port) it
    answers; any other gets 400. The default is the loopback names; "*" allows any."""
    layout = Layout(Path(root)).ensure()
    csrf = secrets.token_urlsafe(24)
    app = FastAPI(title="storypipe review", docs_url=None, redoc_url=None, openapi_url=None)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals.update(csrf=csrf, consent_help=CONSENT_HELP)
    templates.env.filters["clock"] = _clock
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if access_token is not None:
            given = request.query_params.get("token")
            if given is not None and secrets.compare_digest(given, access_token):
                response = RedirectResponse(request.url.remove_query_params("token"), status_code=303)
                response.set_cookie("storypipe_token", access_token, httponly=True, samesite="strict")
                return response
            if not secrets.compare_digest(request.cookies.get("storypipe_token", ""), access_token):
                return _problem(request, 403, "This review app needs the access link with its token.")
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            origin = request.headers.get("origin")
            if origin and origin.split("://", 1)[-1] != request.headers.get("host"):
                return _problem(request, 403, "Changes from another web site are refused.")
            is_form = request.headers.get("content-type", "").startswith(
                ("multipart/form-data", "application/x-www-form-urlencoded"))
            # A form carries its token in a field, checked by its handler (reading the body here would
            # consume the upload); everything else carries it in a header.
            if is_form and request.url.path not in FORM_ROUTES:
                return _problem(request, 403, NOT_FROM_APP)
            if not is_form and not _same(request.headers.get("x-csrf-token"), csrf):
                return _problem(request, 403, NOT_FROM_APP)
        return await call_next(request)

    # Added last, so it runs first: a foreign Host gets 400 before the token or CSRF checks.
    hosts = LOCAL_HOSTS if allowed_hosts is None else allowed_hosts
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=[host_pattern(h) for h in hosts], www_redirect=False)

    # ---- pages ----

    @app.get("/", response_class=HTMLResponse)
    def story_list(request: Request, state: str = ""):
        rows = list_rows(layout)
        states = sorted({r["state"] for r in rows})
        shown = [r for r in rows if not state or r["state"] == state]
        return templates.TemplateResponse(request, "list.html", {"rows": shown, "states": states, "state": state,
                                                                 "root": str(layout.root)})

    @app.get("/stories/{story_id}", response_class=HTMLResponse)
    def story_page(request: Request, story_id: str):
        data = story_data(layout, story_id)
        return templates.TemplateResponse(request, "story.html", {**data, "data_json": json.dumps(data["api"]).replace("</", "<\\/")})

    @app.get("/stories/{story_id}/audio")
    def story_audio(story_id: str):
        path, media = audio_file(layout, story_id)
        return FileResponse(path, media_type=media)

    @app.get("/add", response_class=HTMLResponse)
    def add_form(request: Request):
        return templates.TemplateResponse(request, "add.html", {"defaults": load_settings(layout.root).ingest.default_consent})

    @app.post("/add", response_class=HTMLResponse)
    async def add_story(request: Request):
        form = await request.form()
        if not _same(form.get("csrf"), csrf):
            return _problem(request, 403, NOT_FROM_APP)
        try:
            name = await save_intake(layout, form)
        except review.ReviewError as e:
            return templates.TemplateResponse(request, "add.html", {"error": str(e), "defaults": Consent()},
                                              status_code=400)
        return templates.TemplateResponse(request, "added.html", {"name": name})

    # ---- changes (JSON) ----

    @app.get("/api/stories/{story_id}")
    def api_story(story_id: str):
        return story_data(layout, story_id)["api"]

    @app.post("/api/stories/{story_id}/segments/{segment_id}")
    async def api_segment(story_id: str, segment_id: int, request: Request):
        body = await _json(request)
        review.edit_segment(layout, story_id, segment_id, str(body.get("text", "")), body.get("version"))
        return story_data(layout, story_id)["api"]

    @app.post("/api/stories/{story_id}/speakers")
    async def api_speaker(story_id: str, request: Request):
        body = await _json(request)
        review.rename_speaker(layout, story_id, str(body.get("label", "")), str(body.get("name", "")), body.get("version"))
        return story_data(layout, story_id)["api"]

    @app.post("/api/stories/{story_id}/reviewed")
    async def api_reviewed(story_id: str):
        review.mark_reviewed(layout, story_id)
        return story_data(layout, story_id)["api"]

    @app.post("/api/stories/{story_id}/quotes/{quote_id}")
    async def api_quote(story_id: str, quote_id: str, request: Request):
        body = await _json(request)
        version = body.get("version")
        if "status" in body:
            review.decide(layout, story_id, [quote_id], str(body["status"]), version)
            version = None  # the file has changed under this request's own hand
        if "themes" in body:
            themes = body["themes"] if isinstance(body["themes"], list) else []
            review.set_themes(layout, story_id, quote_id, [str(t) for t in themes],
                              theme_ids(layout.root, load_settings(layout.root).extract.themes_file), version)
            version = None
        if any(k in body for k in ("widen_start", "widen_end", "title", "description")):
            review.update_quote(layout, story_id, quote_id, version, widen_start=int(body.get("widen_start", 0)),
                                widen_end=int(body.get("widen_end", 0)), title=body.get("title"),
                                description=body.get("description"))
        return story_data(layout, story_id)["api"]

    @app.post("/api/stories/{story_id}/quotes")
    async def api_new_quote(story_id: str, request: Request):
        body = await _json(request)
        review.new_quote(layout, story_id, float(body.get("start", 0)), float(body.get("end", 0)), body.get("version"))
        return story_data(layout, story_id)["api"]

    @app.post("/api/stories/{story_id}/consent")
    async def api_consent(story_id: str, request: Request):
        body = await _json(request)
        changes = {k: v for k, v in body.items() if k != "version"}
        if not all(isinstance(v, bool) for v in changes.values()):
            raise review.ReviewError("Consent choices are yes or no.")
        review.change_consent(layout, story_id, changes, load_settings(layout.root), body.get("version"))
        return story_data(layout, story_id)["api"]

    # ---- the findings report ----

    @app.get("/report", response_class=HTMLResponse)
    def report_page(request: Request):
        made = sorted((p.parent.name for p in layout.reports.glob("*/report.html") if REPORT_DAY.match(p.parent.name)),
                      reverse=True)
        return templates.TemplateResponse(request, "reports.html", {"made": made})

    @app.post("/report")
    async def make_report(request: Request):
        form = await request.form()
        if not _same(form.get("csrf"), csrf):
            return _problem(request, 403, NOT_FROM_APP)
        from starlette.concurrency import run_in_threadpool

        from tasks import report

        try:
            written = await run_in_threadpool(report.write_report, layout, load_settings(layout.root))
        except report.ReportError as e:
            return _problem(request, 400, str(e))
        return RedirectResponse(f"/reports/{written.folder.name}/report.html", status_code=303)

    @app.get("/reports/{day}/report.html")
    def report_file(request: Request, day: str):
        path = layout.reports / day / "report.html"
        if not REPORT_DAY.match(day) or not path.is_file():
            return _problem(request, 404, f"There is no report of {day}.")
        return FileResponse(path, media_type="text/html")

    @app.exception_handler(review.ReviewError)
    async def review_error(request: Request, exc: review.ReviewError):
        return _problem(request, exc.status, str(exc))

    @app.exception_handler(BadFileError)
    async def bad_file(request: Request, exc: BadFileError):
        return _problem(request, 500, f"{exc.path.name} could not be read: {exc.reason}")

    return app


def host_pattern(host: str) -> str:
    """A name or address as TrustedHostMiddleware matches it: lower case, and an IPv6 address in
    brackets and in its short form, as browsers send it ("::1" and "0:0:0:0:0:0:0:1" -> "[::1]")."""
    host = host.strip().lower()
    try:
        address = ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
    except ValueError:
        return host
    return f"[{address.compressed}]" if address.version == 6 else address.compressed


def _problem(request: Request, status: int, message: str) -> Response:
    if request.url.path.startswith("/api/") or "application/json" in request.headers.get("accept", ""):
        return JSONResponse({"error": message}, status_code=status)
    return HTMLResponse(f"<!doctype html><meta charset=utf-8><title>storypipe</title><p role=alert>{_escape(message)}</p>"
                        "<p><a href=/>Back to the stories</a></p>", status_code=status)


def _same(given, expected: str) -> bool:
    return isinstance(given, str) and secrets.compare_digest(given, expected)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise review.ReviewError("The change could not be read (not JSON).") from None
    if not isinstance(body, dict):
        raise review.ReviewError("The change could not be read.")
    return body


def _clock(seconds: float | None) -> str:
    seconds = seconds or 0
    return f"{int(seconds // 3600):d}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"


def list_rows(layout: Layout) -> list[dict]:
    """The story list: state, duration, approved quotes, and whether unsure words await a reviewer."""
    from tasks import status

    rows = []
    for story in status.load_stories(layout):
        candidate, approved = status.quote_counts(layout, story.story_id)
        unsure = False
        path = layout.story_dir(story.story_id) / "transcript.json"
        if story.reviewed_at is None and path.exists():
            try:
                t = read_model(path, Transcript)
                unsure = any(s.low_confidence or any(w.low_confidence for w in s.words) for s in t.segments)
            except BadFileError:
                pass
        rows.append({"story_id": story.story_id, "title": story.metadata.title or story.source.filename,
                     "state": story.state, "duration_s": story.source.duration_s, "candidate": candidate,
                     "approved": approved, "unsure": unsure, "reviewed": story.reviewed_at is not None})
    return rows


def story_data(layout: Layout, story_id: str) -> dict:
    folder = review.story_dir(layout, story_id)
    story = read_model(folder / "story.json", Story)
    t_path, q_path = folder / "transcript.json", folder / "quotes.json"
    transcript = read_model(t_path, Transcript) if t_path.exists() else None
    quotes = read_model(q_path, QuotesFile) if q_path.exists() else QuotesFile(story_id=story_id)
    book = load_codebook(codebook_path(layout.root, load_settings(layout.root).extract.themes_file))
    api = {
        "story": json.loads(story.model_dump_json()),
        "transcript": json.loads(transcript.model_dump_json()) if transcript else None,
        "quotes": json.loads(quotes.model_dump_json())["quotes"],
        "themes": {t.id: t.name for t in book.themes},
        "versions": {"transcript": review.version(t_path), "quotes": review.version(q_path),
                     "story": review.version(folder / "story.json")},
    }
    return {"story": story, "transcript": transcript, "quotes": quotes.quotes, "api": api}


def audio_file(layout: Layout, story_id: str) -> tuple[Path, str]:
    """The original when a browser can play it, else the 16 kHz speech copy made at transcription."""
    folder = review.story_dir(layout, story_id)
    story = read_model(folder / "story.json", Story)
    original = layout.original_dir(story_id) / story.source.filename
    media = PLAYABLE.get(original.suffix.lower())
    if media and original.is_file():
        return original, media
    speech = layout.speech_wav(story_id)
    if speech.is_file():
        return speech, "audio/wav"
    raise review.NotFound(f"No playable audio for {story_id}.")


async def save_intake(layout: Layout, form) -> str:
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
    demographics = {k: (form.get(k) or "").strip() for k in ("age_range", "gender")}
    if any(demographics.values()):
        fields["demographics"] = {k: v for k, v in demographics.items() if v}
    fields["consent"] = {k: form.get(k) == "yes" for k in CONSENT_HELP}
    try:
        Sidecar.model_validate(fields)
    except ValidationError as e:
        first = e.errors()[0]
        raise review.ReviewError(f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None
    inbox = layout.inbox
    if (inbox / name).exists() or (inbox / f"{stem}.yaml").exists():
        raise review.ReviewError(f"{name} is already waiting in the inbox.")
    atomic_write_bytes(inbox / f"{stem}.yaml", yaml.safe_dump(fields, sort_keys=False, allow_unicode=True).encode())
    fd, tmp = tempfile.mkstemp(dir=inbox, prefix=f".{name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := await upload.read(1 << 20):
                out.write(chunk)
        os.replace(tmp, inbox / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return name
