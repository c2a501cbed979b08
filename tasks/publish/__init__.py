"""Publishing a clip batch to YouTube (`storypipe publish BATCH [--youtube]`).

Without `--youtube` nothing leaves the machine: a dry run writes `publish-requests.json` beside the
manifest with the exact requests a real run would send, so a person can check titles, descriptions
and privacy first. With `--youtube` each clip is uploaded (resumable), added to the playlist and
given its captions. Consent is asked again for every clip just before it goes, because a storyteller
may have changed their mind since the clips were cut.

A run can stop at any point (quota, network, Ctrl-C) and be run again: a clip's video id is written
to manifest.json the moment YouTube accepts it, and clips with a video id are never sent again.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import logging
import re
import socket
import ssl
import time
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storypipe.core import models
from storypipe.core.jsonio import BadFileError, atomic_write_bytes, write_json
from storypipe.core.store import Store
from storypipe.core.models import Clip, ClipBatch, Published
from storypipe.core.settings import PublishSettings, Settings
from storypipe.tasks.common import consent

log = logging.getLogger("storypipe")

SCOPES = [
    "https://www.googleapis.com/auth/youtube.upload",
    "https://www.googleapis.com/auth/youtube.force-ssl",
]
BATCH_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,80}$")
REQUESTS_FILE = "publish-requests.json"
LOCK_FILE = ".publish.lock"
DEFAULT_TOKEN_NAME = "youtube-token.json"

# Placeholders in the dry run for ids only YouTube can give.
FROM_UPLOAD = "<from upload>"

# YouTube Data API quota units per call (videos.insert comes from settings.upload_cost).
COST = {"playlists.list": 1, "playlists.insert": 50, "playlistItems.insert": 50, "captions.insert": 400}
QUOTA_REASONS = {"quotaExceeded", "uploadLimitExceeded", "dailyLimitExceeded"}
TRANSIENT_STATUS = {500, 502, 503, 504}
RETRIES = 3
UPLOAD_CHUNK = 8 * 1024 * 1024  # a multiple of 256 KiB, as resumable uploads require
CAPTION_PREFERENCE = (".vtt", ".srt")
CAPTION_LANGUAGE, CAPTION_NAME = "en", "English"
QUOTA_TIMEZONE = "America/Los_Angeles"  # YouTube's daily quota resets at midnight Pacific time

# YouTube's own limits on metadata: better to say so before uploading than to get a 400 back.
MAX_TITLE = 100
MAX_DESCRIPTION_BYTES = 5000
MAX_TAGS_CHARS = 500


class PublishError(ValueError):
    """The batch cannot be published as asked (bad name, no manifest, no credentials...)."""


@dataclass
class PublishResult:
    """What one publish run did; `messages` are plain words for the volunteer running it."""

    sent: int = 0  # clips uploaded in this run
    skipped: int = 0  # already on YouTube, or consent does not allow it
    failed: int = 0  # could not be uploaded (kept unpublished; a re-run tries again)
    stopped_for_quota: bool = False
    resume_hint: str | None = None
    requests_file: Path | None = None  # dry run only
    messages: list[str] = field(default_factory=list)
    planned: int = 0  # dry run: clips the requests file would upload
    incomplete: int = 0  # uploaded, but the playlist or captions step failed (fix by hand)

    @property
    def ok(self) -> bool:
        """False when the CLI should exit 1: something was not done and needs a person or a re-run."""
        return not (self.failed or self.incomplete or self.stopped_for_quota)

    def say(self, message: str) -> None:
        log.info(message)
        self.messages.append(message)


class NoVideoId(Exception):
    """YouTube finished an upload without saying the new video's id."""


class QuotaUsedUp(Exception):
    """Internal: YouTube's daily quota is (or would be) used up; stop and keep what was done."""


class Quota:
    """Units spent in this run, so the run stops before YouTube refuses halfway through a clip."""

    def __init__(self, daily: int):
        self.daily = daily
        self.used = 0

    @property
    def remaining(self) -> int:
        return self.daily - self.used

    def spend(self, units: int) -> None:
        self.used += units


# --- entry point --------------------------------------------------------------------------------


def publish_batch(
    store: Store,
    batch_name: str,
    settings: PublishSettings | Settings,
    youtube: bool = False,
    service: Any = None,
    now: dt.datetime | Callable[[], dt.datetime] | None = None,
    sleep: Callable[[float], None] | None = None,
) -> PublishResult:
    """Publish (or, by default, only plan) a clip batch; see the module docstring.

    `service` is a googleapiclient YouTube Resource (tests pass one over HttpMockSequence); without
    it a real run signs in with `build_service`. `now` and `sleep` are injectable so tests are exact
    and fast.
    """
    publish = settings.publish if isinstance(settings, Settings) else settings
    clock = _clock(now)
    folder, batch = load_batch(store, batch_name)
    if not youtube:
        return plan_batch(store, folder, batch, publish, clock)
    return _locked_upload(store, folder, batch, publish, service, clock, sleep or time.sleep)


def load_batch(store: Store, batch_name: str) -> tuple[Path, ClipBatch]:
    """The batch folder and its manifest; a PublishError names the batch and what is wrong."""
    if not isinstance(batch_name, str) or not BATCH_NAME.match(batch_name):
        raise PublishError(
            f"{batch_name!r} is not a batch name: use letters, digits, '.', '_' or '-' "
            "(starting with a letter or digit, at most 81 characters)"
        )
    folder = store.batch_dir(batch_name)
    manifest = store.manifest_path(batch_name)
    if not manifest.is_file():
        known = store.batch_names()
        hint = f"; batches here: {', '.join(known)}" if known else "; run `storypipe clips` first"
        raise PublishError(f"no clip batch {batch_name!r}: {manifest} does not exist{hint}")
    try:
        return folder, store.read_batch(batch_name)
    except BadFileError as e:
        raise PublishError(f"clip batch {batch_name!r} cannot be read: {e.reason}") from None


# --- dry run ------------------------------------------------------------------------------------


def plan_batch(
    store: Store, folder: Path, batch: ClipBatch, settings: PublishSettings, clock: Callable[[], dt.datetime]
) -> PublishResult:
    """Dry run: write the requests a real run would send, and change nothing else."""
    result = PublishResult()
    planned: list[dict[str, Any]] = []
    not_sent: list[dict[str, str]] = []
    playlists: list[str] = []
    units = 0
    for clip in batch.clips:
        reason = _why_not_upload(store, folder, clip, result)
        if reason:
            not_sent.append({"file": clip.file, "story_id": clip.story_id, "quote_id": clip.quote_id,
                             "reason": reason})
            continue
        title = playlist_title(clip, settings)
        if title not in playlists:
            playlists.append(title)
        requests = clip_requests(clip, settings, folder)
        units += sum(_cost(r["method"], settings) for r in requests)
        planned.append({"file": clip.file, "story_id": clip.story_id, "quote_id": clip.quote_id,
                        "requests": requests})

    playlist_requests = [playlist_find_request(t) for t in playlists] + [
        playlist_insert_request(t, settings) for t in playlists
    ]
    units += sum(_cost(r["method"], settings) for r in playlist_requests)
    document = {
        "schema_version": models.SCHEMA_VERSION,
        "batch": batch.batch,
        "dry_run": True,
        "created_at": clock().isoformat(),
        "note": (f"Nothing was sent. `storypipe publish {batch.batch} --youtube` would send these requests. "
                 f"Each playlist is looked up by title first and created (playlists.insert) only if missing; "
                 f"'{FROM_UPLOAD}' stands for the video id YouTube gives the upload."),
        "quota": {"units_needed": units, "daily_quota": settings.daily_quota},
        "playlists": playlist_requests,
        "clips": planned,
        "not_sent": not_sent,
    }
    result.requests_file = write_json(folder / REQUESTS_FILE, document)
    result.planned = len(planned)
    result.say(f"Dry run of batch {batch.batch}: {len(planned)} clip(s) would be uploaded, "
               f"using about {units} of YouTube's {settings.daily_quota} daily quota units. "
               f"The requests are in {result.requests_file}; nothing was sent.")
    if units > settings.daily_quota:
        result.say("That is more than one day's quota: a real run will stop when the quota is used up "
                   "and can be run again the next day to carry on.")
    return result


# --- the requests (shared by the dry run and the real run, so the plan is exact) ----------------


def playlist_title(clip: Clip, settings: PublishSettings) -> str:
    return clip.youtube.playlist or settings.playlist


def video_insert_request(clip: Clip) -> dict[str, Any]:
    meta = clip.youtube
    return {
        "method": "videos.insert",
        "part": "snippet,status",
        "body": {
            "snippet": {"title": meta.title, "description": meta.description, "tags": list(meta.tags),
                        "categoryId": meta.categoryId},
            "status": {"privacyStatus": meta.privacyStatus, "selfDeclaredMadeForKids": False},
        },
        "media": clip.video_file,
    }


def playlist_item_request(playlist_id: str, video_id: str = FROM_UPLOAD) -> dict[str, Any]:
    return {
        "method": "playlistItems.insert",
        "part": "snippet",
        "body": {"snippet": {"playlistId": playlist_id,
                             "resourceId": {"kind": "youtube#video", "videoId": video_id}}},
    }


def caption_request(caption_file: str, video_id: str = FROM_UPLOAD) -> dict[str, Any]:
    return {
        "method": "captions.insert",
        "part": "snippet",
        "body": {"snippet": {"videoId": video_id, "language": CAPTION_LANGUAGE, "name": CAPTION_NAME}},
        "media": caption_file,
    }


def playlist_find_request(title: str) -> dict[str, Any]:
    return {"method": "playlists.list", "part": "snippet", "mine": True, "maxResults": 50, "find_title": title}


def playlist_insert_request(title: str, settings: PublishSettings) -> dict[str, Any]:
    return {
        "method": "playlists.insert",
        "part": "snippet,status",
        "body": {"snippet": {"title": title}, "status": {"privacyStatus": settings.privacy_status}},
    }


def clip_requests(clip: Clip, settings: PublishSettings, folder: Path) -> list[dict[str, Any]]:
    """Every request one clip needs, in order, with placeholders for ids YouTube hands out."""
    requests = [video_insert_request(clip), playlist_item_request(f"<playlist '{playlist_title(clip, settings)}'>")]
    caption = caption_file(clip, folder)
    if caption:
        requests.append(caption_request(caption))
    return requests


def caption_file(clip: Clip, folder: Path) -> str | None:
    """The one caption file to upload: a second track in the same language would clash with the
    first on YouTube, so .vtt is preferred and .srt used only when there is no .vtt."""
    present = [c for c in clip.captions if _safe_name(c) and (folder / c).is_file()]
    for suffix in CAPTION_PREFERENCE:
        for name in present:
            if name.lower().endswith(suffix):
                return name
    return None


# --- checks before anything is sent -------------------------------------------------------------


def consent_reason(store: Store, story_id: str) -> str | None:
    """Why this story's clips may not be published now (None: consent allows it). Read fresh each
    time, because consent can be withdrawn while a batch is uploading."""
    try:
        story = store.read_story(story_id)
    except BadFileError as e:
        return f"not published: the story's consent could not be checked ({e.reason})"
    return consent.publish(story)


def metadata_problem(clip: Clip) -> str | None:
    """YouTube refuses titles and descriptions it cannot take; say so in words before uploading."""
    meta = clip.youtube
    if not meta.title.strip():
        return "the title is empty"
    if len(meta.title) > MAX_TITLE:
        return f"the title is {len(meta.title)} characters long; YouTube allows {MAX_TITLE}"
    if "<" in meta.title or ">" in meta.title:
        return "the title contains < or >, which YouTube does not allow"
    if len(meta.description.encode("utf-8")) > MAX_DESCRIPTION_BYTES:
        return f"the description is longer than YouTube's {MAX_DESCRIPTION_BYTES} bytes"
    if "<" in meta.description or ">" in meta.description:
        return "the description contains < or >, which YouTube does not allow"
    tag_chars = sum(len(t) + (2 if " " in t else 0) for t in meta.tags) + max(len(meta.tags) - 1, 0)
    if tag_chars > MAX_TAGS_CHARS:
        return f"the tags add up to {tag_chars} characters; YouTube allows {MAX_TAGS_CHARS}"
    return None


def _why_not_upload(store: Store, folder: Path, clip: Clip, result: PublishResult) -> str | None:
    """None when the clip should go now; otherwise the reason (counted and said in `result`)."""
    label = clip_label(clip)
    if clip.published:
        result.skipped += 1
        return f"already on YouTube as {clip.published.video_id}"
    reason = consent_reason(store, clip.story_id)
    if reason:
        result.skipped += 1
        result.say(f"Skipped {label}: {reason}.")
        return reason
    if not clip.video_file:
        problem = "it has no video file (YouTube needs a video; cut clips with a video setting other than 'none')"
    elif not _safe_name(clip.video_file) or not (folder / clip.video_file).is_file():
        problem = f"its video file {clip.video_file} is missing from {folder}"
    else:
        problem = metadata_problem(clip)
        if problem:
            problem += "; fix it in manifest.json and run again"
    if problem:
        result.failed += 1
        result.say(f"Cannot upload {label}: {problem}.")
        return problem
    return None


def clip_label(clip: Clip) -> str:
    return f"clip {clip.file} (story {clip.story_id}, quote {clip.quote_id})"


def _safe_name(name: str) -> bool:
    """Manifest file names are plain names inside the batch folder, never paths out of it."""
    return bool(name) and "/" not in name and "\\" not in name and name not in (".", "..")


# --- the real run -------------------------------------------------------------------------------


def _locked_upload(
    store: Store, folder: Path, batch: ClipBatch, settings: PublishSettings, service: Any,
    clock: Callable[[], dt.datetime], sleep: Callable[[float], None],
) -> PublishResult:
    """One publisher per batch at a time: two at once would upload the same clips twice."""
    from filelock import FileLock, Timeout
    from google.auth.exceptions import RefreshError

    try:
        with FileLock(str(folder / LOCK_FILE), timeout=0):
            return _upload_batch(store, folder, batch, settings, service, clock, sleep)
    except Timeout:
        raise PublishError(f"batch {batch.batch} is already being published by another run; "
                           "wait for it to finish") from None
    except RefreshError as e:
        raise PublishError(f"YouTube no longer accepts the saved sign-in ({e}); delete "
                           f"{token_path(settings, store.root) if settings.client_secrets else 'the token file'} "
                           f"and run `storypipe publish {batch.batch} --youtube` again (clips uploaded so far "
                           "are recorded in manifest.json)") from None


class _Uploader:
    """The state of one real run: the service (signed in on first need), quota and playlists."""

    def __init__(self, store: Store, settings: PublishSettings, service: Any, sleep: Callable[[float], None]):
        self.store = store
        self.settings = settings
        self._service = service
        self.sleep = sleep
        self.quota = Quota(settings.daily_quota)
        self.playlist_ids: dict[str, str] = {}

    @property
    def service(self) -> Any:
        if self._service is None:
            self._service = build_service(self.settings, base_dir=self.store.root)
        return self._service

    def clip_cost(self, clip: Clip, folder: Path) -> int:
        units = sum(_cost(r["method"], self.settings) for r in clip_requests(clip, self.settings, folder))
        if playlist_title(clip, self.settings) not in self.playlist_ids:
            units += COST["playlists.list"] + COST["playlists.insert"]
        return units

    def call(self, method: str, make_request: Callable[[], Any]) -> Any:
        """Execute one API call: spend its quota, retry transient failures, turn quota errors into
        QuotaUsedUp."""
        self.quota.spend(_cost(method, self.settings))
        return _with_retries(lambda: make_request().execute(), self.sleep, method)

    def playlist_id(self, title: str) -> str:
        """The id of the channel's playlist with this title, created the first time it is needed."""
        if title in self.playlist_ids:
            return self.playlist_ids[title]
        found = self._find_playlist(title)
        if found is None:
            created = self.call("playlists.insert", lambda: self.service.playlists().insert(
                part="snippet,status", body=playlist_insert_request(title, self.settings)["body"]))
            found = created["id"]
            log.info("Created YouTube playlist %r (%s)", title, found)
        self.playlist_ids[title] = found
        return found

    def _find_playlist(self, title: str) -> str | None:
        page_token = None
        while True:
            page = self.call("playlists.list", lambda token=page_token: self.service.playlists().list(
                part="snippet", mine=True, maxResults=50, pageToken=token))
            for item in page.get("items", []):
                if item.get("snippet", {}).get("title") == title:
                    return item["id"]
            page_token = page.get("nextPageToken")
            if not page_token:
                return None

    def upload_video(self, clip: Clip, folder: Path) -> str:
        """Resumable upload of the clip's video; returns YouTube's video id."""
        from googleapiclient.http import MediaFileUpload

        spec = video_insert_request(clip)
        media = MediaFileUpload(str(folder / spec["media"]), chunksize=UPLOAD_CHUNK, resumable=True)
        request = self.service.videos().insert(part=spec["part"], body=spec["body"], media_body=media)
        self.quota.spend(_cost("videos.insert", self.settings))
        response = None
        while response is None:  # each chunk has its own retries
            status, response = _with_retries(request.next_chunk, self.sleep, "videos.insert")
            if status is not None:
                log.info("Uploading %s: %d%%", clip.video_file, int(status.progress() * 100))
        if not isinstance(response, dict) or not response.get("id"):
            raise NoVideoId(f"YouTube finished the upload but sent no video id back: {response!r}")
        return response["id"]

    def add_to_playlist(self, playlist_id: str, video_id: str) -> None:
        spec = playlist_item_request(playlist_id, video_id)
        self.call(spec["method"], lambda: self.service.playlistItems().insert(part=spec["part"], body=spec["body"]))

    def add_captions(self, folder: Path, name: str, video_id: str) -> None:
        from googleapiclient.http import MediaFileUpload

        spec = caption_request(name, video_id)
        self.call(spec["method"], lambda: self.service.captions().insert(
            part=spec["part"], body=spec["body"],
            media_body=MediaFileUpload(str(folder / name), mimetype="application/octet-stream")))


def _upload_batch(
    store: Store, folder: Path, batch: ClipBatch, settings: PublishSettings, service: Any,
    clock: Callable[[], dt.datetime], sleep: Callable[[float], None],
) -> PublishResult:
    result = PublishResult()
    up = _Uploader(store, settings, service, sleep)
    for clip in batch.clips:
        if _why_not_upload(store, folder, clip, result):
            continue
        cost = up.clip_cost(clip, folder)
        if up.quota.remaining < cost:
            _stop_for_quota(result, batch, clock,
                            f"this run has used {up.quota.used} of the {settings.daily_quota} daily quota units "
                            f"and {clip_label(clip)} needs about {cost} more")
            break
        try:
            video_id = _publish_one(up, folder, clip, clock, result)
        except QuotaUsedUp as e:
            _stop_for_quota(result, batch, clock, f"{clip_label(clip)} was not uploaded because {e}")
            break
        if video_id is None:
            continue
        try:
            _finish_one(up, folder, clip, video_id, result)
        except QuotaUsedUp as e:
            result.incomplete += 1
            result.say(f"{clip_label(clip)} is on YouTube as {video_id}, but its playlist or captions could not be "
                       "added before the quota ran out: add them by hand in YouTube Studio.")
            _stop_for_quota(result, batch, clock, str(e))
            break

    result.say(f"Batch {batch.batch}: {result.sent} uploaded, {result.skipped} skipped, {result.failed} failed"
               + (" (stopped: YouTube's daily quota is used up)" if result.stopped_for_quota else "") + ".")
    return result


def _publish_one(up: _Uploader, folder: Path, clip: Clip, clock: Callable[[], dt.datetime],
                 result: PublishResult) -> str | None:
    """Upload one clip and record it at once; None (counted as failed) when it could not go."""
    label = clip_label(clip)
    title = playlist_title(clip, up.settings)
    try:
        up.playlist_id(title)  # before the upload: a video is only sent when its playlist is ready
        video_id = up.upload_video(clip, folder)
    except QuotaUsedUp:
        raise
    except Exception as e:  # one clip's failure: say it, go on to the next
        if not _is_api_error(e):
            raise
        result.failed += 1
        result.say(f"Could not upload {label}: {_describe(e)}. It stays unpublished; run again to retry.")
        return None
    record_published(up.store, folder, clip, Published(video_id=video_id, at=clock()))
    result.sent += 1
    result.say(f"Uploaded {label} as https://youtu.be/{video_id}")
    return video_id


def _finish_one(up: _Uploader, folder: Path, clip: Clip, video_id: str, result: PublishResult) -> None:
    """Playlist and captions for an uploaded clip. The video is already recorded as published, so a
    failure here is reported for a person to finish in YouTube Studio rather than retried."""
    label = clip_label(clip)
    title = playlist_title(clip, up.settings)
    problems = []
    why = _api_failure(lambda: up.add_to_playlist(up.playlist_ids[title], video_id))
    if why:
        problems.append(f"it could not be added to the playlist '{title}' ({why})")
    caption = caption_file(clip, folder)
    if caption:
        why = _api_failure(lambda: up.add_captions(folder, caption, video_id))
        if why:
            problems.append(f"its captions {caption} could not be added ({why})")
    else:
        problems.append("it has no caption file to upload")
    if problems:
        result.incomplete += 1
        result.say(f"{label} is on YouTube as {video_id}, but " + "; ".join(problems)
                   + ". Add this by hand in YouTube Studio.")


def record_published(store: Store, folder: Path, clip: Clip, published: Published) -> None:
    """Write the video id into manifest.json and manifest.csv at once (atomically), so a crash or
    re-run never uploads this clip again. The manifest is read afresh, keeping any change another
    command made meanwhile (e.g. a withdrawn story's clips removed)."""
    batch = store.read_batch(folder.name)
    for current in batch.clips:
        if current.file == clip.file and current.quote_id == clip.quote_id:
            current.published = published
            break
    else:
        # Removed while uploading (consent withdrawn mid-run): it is on YouTube now, so it stays
        # listed, as published clips always do, for someone to take down.
        batch.clips.append(clip.model_copy(update={"published": published}))
        log.warning("%s was removed from the manifest while uploading; it is listed again as published",
                    clip_label(clip))
    clip.published = published
    store.write_batch(batch, folder)


# --- errors, retries and quota ------------------------------------------------------------------


def _connection_errors() -> tuple[type[BaseException], ...]:
    import httplib2
    from google.auth.exceptions import TransportError

    return (ConnectionError, TimeoutError, socket.timeout, ssl.SSLError, http.client.HTTPException,
            httplib2.HttpLib2Error, TransportError)


def _is_api_error(error: BaseException) -> bool:
    """An error from YouTube or the network (one clip fails), not a bug in storypipe."""
    from googleapiclient.errors import Error as GoogleApiError

    return isinstance(error, (GoogleApiError, NoVideoId, *_connection_errors()))


def _is_transient(error: BaseException) -> bool:
    from googleapiclient.errors import HttpError

    if isinstance(error, HttpError):
        return error.resp.status in TRANSIENT_STATUS
    return isinstance(error, _connection_errors())


def error_reasons(error: BaseException) -> set[str]:
    """The `reason` codes in a Google API error body ({"error": {"errors": [{"reason": ...}]}})."""
    content = getattr(error, "content", b"") or b""
    try:
        data = json.loads(content.decode("utf-8") if isinstance(content, bytes) else content)
    except (ValueError, UnicodeDecodeError):
        return set()
    err = data.get("error") if isinstance(data, dict) else None
    if not isinstance(err, dict):
        return set()
    entries = [*(err.get("errors") or []), *(err.get("details") or [])]
    return {e["reason"] for e in entries if isinstance(e, dict) and isinstance(e.get("reason"), str)}


def _raise_if_quota(error: BaseException) -> None:
    from googleapiclient.errors import HttpError

    if isinstance(error, HttpError) and error_reasons(error) & QUOTA_REASONS:
        reason = ", ".join(sorted(error_reasons(error) & QUOTA_REASONS))
        raise QuotaUsedUp(f"YouTube answered {reason}") from error


def _api_failure(run: Callable[[], Any]) -> str | None:
    """None when run() works; what YouTube or the network said when it failed. A used-up quota
    and anything that is not an API or network error (a bug) are raised."""
    try:
        run()
    except QuotaUsedUp:
        raise
    except Exception as e:
        if not _is_api_error(e):
            raise
        return _describe(e)
    return None


def _with_retries(run: Callable[[], Any], sleep: Callable[[float], None], method: str) -> Any:
    """run(), tried again after 2, 4 and 8 s when it fails in a way that may pass (a dropped
    connection, a 5xx); a used-up quota is raised as QuotaUsedUp, anything else at once."""
    failures = 0
    while True:
        try:
            return run()
        except Exception as e:  # sorted into quota / transient / other below
            _raise_if_quota(e)
            if not _is_transient(e) or failures >= RETRIES:
                raise
            failures += 1
            delay = 2.0 ** failures  # 2, 4, 8 seconds
            log.warning("YouTube %s failed (%s); trying again in %.0f s (%d of %d)", method, _describe(e), delay,
                        failures, RETRIES)
            sleep(delay)


def _describe(error: BaseException) -> str:
    from googleapiclient.errors import HttpError

    if isinstance(error, HttpError):
        reason = error.reason if error.reason and error.reason != "Ok" else http.client.responses.get(
            error.resp.status, "an error")
        return f"YouTube said '{reason}' (HTTP {error.resp.status})"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _cost(method: str, settings: PublishSettings) -> int:
    return settings.upload_cost if method == "videos.insert" else COST.get(method, 50)


def next_quota_reset(when: dt.datetime) -> dt.datetime:
    """The next midnight Pacific time after `when` (when YouTube's daily quota resets), in UTC."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    try:
        pacific: dt.tzinfo = zoneinfo.ZoneInfo(QUOTA_TIMEZONE)
    except zoneinfo.ZoneInfoNotFoundError:
        pacific = dt.timezone(dt.timedelta(hours=-8))
    local = when.astimezone(pacific)
    midnight = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(0), tzinfo=pacific)
    return midnight.astimezone(dt.UTC)


def resume_hint(batch_name: str, when: dt.datetime) -> str:
    reset = next_quota_reset(when).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (f"YouTube's daily quota is used up; run `storypipe publish {batch_name} --youtube` again "
            f"after midnight Pacific time ({reset})")


def _stop_for_quota(result: PublishResult, batch: ClipBatch, clock: Callable[[], dt.datetime], why: str) -> None:
    result.stopped_for_quota = True
    result.resume_hint = resume_hint(batch.batch, clock())
    result.say(f"Stopped: {why}. Everything uploaded so far is recorded in manifest.json. {result.resume_hint}.")


def _clock(now: dt.datetime | Callable[[], dt.datetime] | None) -> Callable[[], dt.datetime]:
    if now is None:
        return models.now
    if isinstance(now, dt.datetime):
        return lambda: now
    return now


# --- signing in ---------------------------------------------------------------------------------


def token_path(settings: PublishSettings, base_dir: Path | None = None) -> Path:
    """Where the OAuth token is kept: settings.token_file, else beside the client secrets."""
    if settings.token_file:
        return _resolve(settings.token_file, base_dir)
    return _resolve(settings.client_secrets, base_dir).parent / DEFAULT_TOKEN_NAME


def build_service(settings: PublishSettings | Settings, base_dir: Path | None = None) -> Any:
    """A signed-in YouTube Data API client. The first time, a browser opens to ask the channel owner;
    the token is then kept (readable only by this user) and refreshed, so later runs need no browser.
    Relative paths in settings are taken from `base_dir` (the root)."""
    publish = settings.publish if isinstance(settings, Settings) else settings
    if not publish.client_secrets:
        raise PublishError(
            "YouTube is not set up: set [publish] client_secrets in storypipe.toml to the client_secret.json "
            "of a Desktop-app OAuth client (Google Cloud console, YouTube Data API v3 enabled)")
    secrets = _resolve(publish.client_secrets, base_dir)
    if not secrets.is_file():
        raise PublishError(f"YouTube is not set up: [publish] client_secrets points to {secrets}, which does not "
                           "exist; set [publish] client_secrets to your downloaded client_secret.json")
    credentials = _credentials(secrets, token_path(publish, base_dir))

    from googleapiclient.discovery import build

    return build("youtube", "v3", credentials=credentials, static_discovery=True, cache_discovery=False)


def _credentials(secrets: Path, token: Path) -> Any:
    from google.auth.exceptions import RefreshError
    from google.auth.transport.requests import Request
    from google.oauth2.credentials import Credentials
    from google_auth_oauthlib.flow import InstalledAppFlow

    creds = None
    if token.is_file():
        try:
            creds = Credentials.from_authorized_user_file(str(token), SCOPES)
        except (ValueError, json.JSONDecodeError):
            log.warning("Ignoring unreadable YouTube token %s; signing in again", token)
    if creds and creds.valid:
        return creds
    if creds and creds.expired and creds.refresh_token:
        try:
            creds.refresh(Request())
            _save_token(token, creds)
            return creds
        except RefreshError:
            log.warning("The saved YouTube sign-in was refused (revoked or expired); signing in again")
    flow = InstalledAppFlow.from_client_secrets_file(str(secrets), scopes=SCOPES)
    creds = flow.run_local_server(port=0, open_browser=True)
    _save_token(token, creds)
    return creds


def _save_token(path: Path, creds: Any) -> None:
    atomic_write_bytes(path, creds.to_json().encode("utf-8"))
    path.chmod(0o600)


def _resolve(name: str, base_dir: Path | None) -> Path:
    path = Path(name).expanduser()
    return path if path.is_absolute() or base_dir is None else base_dir / path
