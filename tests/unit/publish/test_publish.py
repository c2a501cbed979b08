"""Publishing clip batches: the dry run, and real runs against googleapiclient's own HttpMockSequence
with the real YouTube v3 discovery document (shipped with google-api-python-client, no network)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from googleapiclient.discovery import build
from googleapiclient.http import HttpMockSequence

from storypipe.core.jsonio import read_model, write_model
from storypipe.core.store import Store, manifest_csv
from storypipe.core.models import Clip, ClipBatch, Consent, Published, YouTubeMeta
from storypipe.core.settings import PublishSettings
from storypipe.tasks import publish
from storypipe.tasks.publish import PublishError, publish_batch
from tests.support.factories import make_story

BATCH = "2026-10-demo"
NOW = dt.datetime(2026, 10, 2, 20, 0, tzinfo=dt.UTC)  # 13:00 in California (PDT)
NEXT_RESET = "2026-10-03T07:00:00Z"  # midnight Pacific, in UTC
STORY_A, STORY_B = "alpha-0000000a", "beta-0000000b"

# --- what the mock YouTube answers ---------------------------------------------------------------


def ok(body: dict) -> tuple[dict, str]:
    return {"status": "200", "content-type": "application/json"}, json.dumps(body)


def upload_session(n: int) -> tuple[dict, str]:
    """The answer to a resumable upload's first request: where to PUT the bytes."""
    return {"status": "200", "location": f"https://youtube.googleapis.com/upload/youtube/v3/videos?upload_id=s{n}"}, ""


def video(video_id: str) -> tuple[dict, str]:
    return ok({"kind": "youtube#video", "id": video_id, "status": {"uploadStatus": "uploaded"}})


def error(status: int, reason: str, message: str) -> tuple[dict, str]:
    body = {"error": {"code": status, "message": message,
                      "errors": [{"message": message, "domain": "youtube.quota", "reason": reason}]}}
    return {"status": str(status), "content-type": "application/json"}, json.dumps(body)


NO_PLAYLISTS = ok({"kind": "youtube#playlistListResponse", "items": []})
HAS_PLAYLIST = ok({"items": [{"id": "PL-other", "snippet": {"title": "Something else"}},
                             {"id": "PL-old", "snippet": {"title": "Community Reporting stories"}}]})
QUOTA_EXCEEDED = error(403, "quotaExceeded", "The request cannot be completed because you have exceeded your quota.")
UNAVAILABLE = ({"status": "503"}, "Service Unavailable")
RESUME_INCOMPLETE = ({"status": "308"}, "")  # the answer to "how much did you get?" after a failed PUT


def clip_done(n: int) -> list[tuple[dict, str]]:
    """Upload (two requests), playlist item, captions: one clip that goes through."""
    return [upload_session(n), video(f"vid-{n}"), ok({"id": f"item-{n}"}), ok({"id": f"cap-{n}"})]


class Http(HttpMockSequence):
    """HttpMockSequence, plus: an exception in place of a response is raised (a dropped connection)."""

    def request(self, uri, method="GET", body=None, headers=None, redirections=1, connection_type=None):
        if self._iterable and isinstance(self._iterable[0], BaseException):
            self.request_sequence.append((uri, method, body, headers))
            raise self._iterable.pop(0)
        return super().request(uri, method, body, headers, redirections, connection_type)


def youtube(responses: list) -> tuple[object, Http]:
    http = Http(list(responses))
    return build("youtube", "v3", http=http, static_discovery=True, cache_discovery=False), http


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def settings() -> PublishSettings:
    return PublishSettings()


def add_story(store: Store, story_id: str, clips: bool = True) -> None:
    story = make_story(story_id, consent=Consent(transcript=True, clips=clips))
    write_model(store.story_dir(story_id) / "story.json", story)


def make_clip(folder: Path, n: int, story_id: str, **youtube) -> Clip:
    stem = f"clip-{n}"
    for suffix, data in [(".mp3", b"ID3"), (".mp4", b"\x00\x00\x00\x18ftypmp42"),
                         (".srt", b"1\n00:00:00,000 --> 00:00:02,000\nHello\n"),
                         (".vtt", b"WEBVTT\n\n00:00.000 --> 00:02.000\nHello\n")]:
        (folder / (stem + suffix)).write_bytes(data)
    meta = {"title": f"Finding my voice, part {n}", "description": f"A story from R. ({n})",
            "tags": ["community reporting", "health"], **youtube}
    return Clip(file=f"{stem}.mp3", video_file=f"{stem}.mp4", captions=[f"{stem}.srt", f"{stem}.vtt"],
                story_id=story_id, quote_id=f"q{n}", start=1.0 * n, end=1.0 * n + 8, duration_s=8.0,
                youtube=YouTubeMeta(**meta))


@pytest.fixture
def batch(store: Store) -> Path:
    """A batch of two clips from two consenting stories; returns its folder."""
    folder = store.clips / BATCH
    folder.mkdir(parents=True)
    add_story(store, STORY_A)
    add_story(store, STORY_B)
    manifest = ClipBatch(batch=BATCH, created_at=NOW - dt.timedelta(days=1),
                         clips=[make_clip(folder, 1, STORY_A), make_clip(folder, 2, STORY_B)])
    write_model(folder / "manifest.json", manifest)
    (folder / "manifest.csv").write_text(manifest_csv(manifest), encoding="utf-8")
    return folder


def manifest(folder: Path) -> ClipBatch:
    return read_model(folder / "manifest.json", ClipBatch)


def run(store, settings, service, slept=None, **kw):
    slept = [] if slept is None else slept
    return publish_batch(store, BATCH, settings, youtube=True, service=service, now=NOW, sleep=slept.append, **kw)


def sent(http: Http) -> list[tuple[str, str]]:
    """(method, path) of every request the mock received."""
    return [(method, uri.split("?")[0].replace("https://youtube.googleapis.com", "")) for uri, method, _, _ in
            http.request_sequence]


# --- (a) dry run ---------------------------------------------------------------------------------


def test_dry_run_writes_the_exact_requests_and_changes_nothing_else(store, settings, batch):
    before = {p.name: p.read_bytes() for p in batch.iterdir()}

    result = publish_batch(store, BATCH, settings, now=NOW)

    assert result.requests_file == batch / "publish-requests.json"
    assert (result.sent, result.planned, result.failed, result.stopped_for_quota) == (0, 2, 0, False)
    assert {p.name: p.read_bytes() for p in batch.iterdir() if p.name != "publish-requests.json"} == before
    plan = json.loads(result.requests_file.read_text(encoding="utf-8"))
    assert plan["batch"] == BATCH and plan["dry_run"] is True
    assert plan["playlists"] == [
        {"method": "playlists.list", "part": "snippet", "mine": True, "maxResults": 50,
         "find_title": "Community Reporting stories"},
        {"method": "playlists.insert", "part": "snippet,status",
         "body": {"snippet": {"title": "Community Reporting stories"}, "status": {"privacyStatus": "private"}}},
    ]
    assert [c["file"] for c in plan["clips"]] == ["clip-1.mp3", "clip-2.mp3"]
    assert plan["clips"][0]["requests"] == [
        {"method": "videos.insert", "part": "snippet,status", "media": "clip-1.mp4",
         "body": {"snippet": {"title": "Finding my voice, part 1", "description": "A story from R. (1)",
                              "tags": ["community reporting", "health"], "categoryId": "22"},
                  "status": {"privacyStatus": "private", "selfDeclaredMadeForKids": False}}},
        {"method": "playlistItems.insert", "part": "snippet",
         "body": {"snippet": {"playlistId": "<playlist 'Community Reporting stories'>",
                              "resourceId": {"kind": "youtube#video", "videoId": "<from upload>"}}}},
        {"method": "captions.insert", "part": "snippet", "media": "clip-1.vtt",
         "body": {"snippet": {"videoId": "<from upload>", "language": "en", "name": "English"}}},
    ]
    assert plan["quota"] == {"units_needed": 2 * (1600 + 50 + 400) + 1 + 50, "daily_quota": 10000}
    assert plan["not_sent"] == []


def test_dry_run_uses_the_clips_own_playlist_and_lists_published_clips_as_not_sent(store, settings, batch):
    m = manifest(batch)
    m.clips[0].published = Published(video_id="vid-old", at=NOW)
    m.clips[1].youtube.playlist = "Housing stories"
    write_model(batch / "manifest.json", m)

    result = publish_batch(store, BATCH, settings, now=NOW)

    plan = json.loads(result.requests_file.read_text(encoding="utf-8"))
    assert [c["file"] for c in plan["clips"]] == ["clip-2.mp3"]
    assert plan["playlists"][0]["find_title"] == "Housing stories"
    assert plan["not_sent"] == [{"file": "clip-1.mp3", "story_id": STORY_A, "quote_id": "q1",
                                 "reason": "already on YouTube as vid-old"}]
    assert result.skipped == 1


# --- (b) success, and a re-run that sends nothing ----------------------------------------------


def test_uploads_both_clips_creates_the_playlist_adds_captions_and_records_ids(store, settings, batch):
    service, http = youtube([NO_PLAYLISTS, ok({"id": "PL-new"}), *clip_done(1), *clip_done(2)])

    result = run(store, settings, service)

    assert (result.sent, result.skipped, result.failed, result.incomplete) == (2, 0, 0, 0)
    assert result.ok and not result.stopped_for_quota and result.resume_hint is None
    assert http._iterable == []  # every expected request was made
    assert sent(http) == [
        ("GET", "/youtube/v3/playlists"),
        ("POST", "/youtube/v3/playlists"),
        ("POST", "/upload/youtube/v3/videos"),
        ("PUT", "/upload/youtube/v3/videos"),
        ("POST", "/youtube/v3/playlistItems"),
        ("POST", "/upload/youtube/v3/captions"),
        ("POST", "/upload/youtube/v3/videos"),
        ("PUT", "/upload/youtube/v3/videos"),
        ("POST", "/youtube/v3/playlistItems"),
        ("POST", "/upload/youtube/v3/captions"),
    ]
    uris = [uri for uri, *_ in http.request_sequence]
    assert "mine=true" in uris[0]
    assert "uploadType=resumable" in uris[2] and "part=snippet%2Cstatus" in uris[2]

    # The real requests carry exactly what the dry run shows (ids filled in).
    plan = publish.clip_requests(manifest(batch).clips[0], settings, batch)
    bodies = [json.loads(body) for _, _, body, _ in http.request_sequence[1:3]]
    assert bodies[0] == {"snippet": {"title": "Community Reporting stories"}, "status": {"privacyStatus": "private"}}
    assert bodies[1] == plan[0]["body"]
    assert json.loads(http.request_sequence[4][2]) == {
        "snippet": {"playlistId": "PL-new", "resourceId": {"kind": "youtube#video", "videoId": "vid-1"}}}
    caption_upload = http.request_sequence[5][2]
    caption_upload = caption_upload.decode() if isinstance(caption_upload, bytes) else caption_upload
    assert '"videoId": "vid-1"' in caption_upload and "WEBVTT" in caption_upload

    m = manifest(batch)
    assert [c.published.video_id for c in m.clips] == ["vid-1", "vid-2"]
    assert all(c.published.at == NOW for c in m.clips)
    csv_text = (batch / "manifest.csv").read_text(encoding="utf-8")
    assert "vid-1" in csv_text and "vid-2" in csv_text
    assert not (batch / "publish-requests.json").exists()

    # A second run has nothing to do: it sends no request at all (the mock has no answers to give).
    before = (batch / "manifest.json").read_bytes()
    service, http = youtube([])
    again = run(store, settings, service)
    assert (again.sent, again.skipped, again.failed) == (0, 2, 0) and again.ok
    assert http.request_sequence == []
    assert (batch / "manifest.json").read_bytes() == before


def test_an_existing_playlist_is_found_by_title_not_created_again(store, settings, batch):
    service, http = youtube([HAS_PLAYLIST, *clip_done(1), *clip_done(2)])

    result = run(store, settings, service)

    assert result.sent == 2 and http._iterable == []
    assert json.loads(http.request_sequence[3][2])["snippet"]["playlistId"] == "PL-old"


# --- (c) quota ---------------------------------------------------------------------------------


def test_quota_exceeded_halfway_stops_cleanly_and_keeps_the_first_clip(store, settings, batch):
    service, http = youtube([HAS_PLAYLIST, *clip_done(1), QUOTA_EXCEEDED])

    result = run(store, settings, service)

    assert result.stopped_for_quota and not result.ok
    assert (result.sent, result.failed) == (1, 0)
    assert http._iterable == []
    assert "after midnight Pacific time" in result.resume_hint and NEXT_RESET in result.resume_hint
    assert f"storypipe publish {BATCH} --youtube" in result.resume_hint
    m = manifest(batch)
    assert m.clips[0].published.video_id == "vid-1"
    assert m.clips[1].published is None
    assert "vid-1" in (batch / "manifest.csv").read_text(encoding="utf-8")

    # The next day the run carries on with the second clip only.
    service, http = youtube([HAS_PLAYLIST, *clip_done(2)])
    result = run(store, settings, service)
    assert (result.sent, result.skipped) == (1, 1) and http._iterable == []
    assert [c.published.video_id for c in manifest(batch).clips] == ["vid-1", "vid-2"]


def test_stops_before_an_upload_the_remaining_quota_cannot_pay_for(store, batch):
    settings = PublishSettings(daily_quota=3000, upload_cost=1600)  # one clip (2101 units with the playlist), not two
    service, http = youtube([NO_PLAYLISTS, ok({"id": "PL-new"}), *clip_done(1)])

    result = run(store, settings, service)

    assert result.stopped_for_quota and result.sent == 1
    assert http._iterable == []  # the second upload was never started
    assert NEXT_RESET in result.resume_hint
    assert manifest(batch).clips[1].published is None


def test_upload_limit_exceeded_counts_as_quota(store, settings, batch):
    limit = error(400, "uploadLimitExceeded", "The user has exceeded the number of videos they may upload.")
    service, http = youtube([HAS_PLAYLIST, upload_session(1), limit])

    result = run(store, settings, service)

    assert result.stopped_for_quota and result.sent == 0 and result.failed == 0 and http._iterable == []
    clips = manifest(batch).clips
    assert len(clips) == 2 and all(c.published is None for c in clips)  # both still there, none sent


# --- (d) transient errors ----------------------------------------------------------------------


def test_a_503_during_upload_is_retried_and_the_clip_published(store, settings, batch):
    slept: list[float] = []
    service, http = youtube([
        HAS_PLAYLIST,
        upload_session(1), UNAVAILABLE, RESUME_INCOMPLETE, video("vid-1"), ok({"id": "item-1"}), ok({"id": "cap-1"}),
        *clip_done(2),
    ])

    result = run(store, settings, service, slept)

    assert (result.sent, result.failed) == (2, 0) and http._iterable == []
    assert slept == [2.0]
    assert [c.published.video_id for c in manifest(batch).clips] == ["vid-1", "vid-2"]


def test_a_dropped_connection_when_starting_an_upload_is_retried(store, settings, batch):
    slept: list[float] = []
    service, http = youtube([HAS_PLAYLIST, ConnectionResetError("connection reset by peer"), *clip_done(1),
                             *clip_done(2)])

    result = run(store, settings, service, slept)

    assert result.sent == 2 and slept == [2.0] and http._iterable == []


def test_an_upload_failing_after_three_retries_counts_as_failed_and_the_next_clip_goes(store, settings, batch):
    slept: list[float] = []
    service, http = youtube([HAS_PLAYLIST, upload_session(1), UNAVAILABLE, UNAVAILABLE, UNAVAILABLE, UNAVAILABLE,
                             *clip_done(2)])

    result = run(store, settings, service, slept)

    assert (result.sent, result.failed) == (1, 1) and not result.ok
    assert slept == [2.0, 4.0, 8.0] and http._iterable == []
    m = manifest(batch)
    assert m.clips[0].published is None and m.clips[1].published.video_id == "vid-2"
    assert any("clip-1.mp3" in msg and "503" in msg and "run again" in msg for msg in result.messages)


def test_a_failed_caption_upload_keeps_the_video_and_says_what_to_finish(store, settings, batch):
    bad = error(400, "invalidMetadata", "The request contains invalid metadata values.")
    service, http = youtube([HAS_PLAYLIST, upload_session(1), video("vid-1"), ok({"id": "item-1"}), bad,
                             *clip_done(2)])

    result = run(store, settings, service)

    assert (result.sent, result.incomplete) == (2, 1) and not result.ok and http._iterable == []
    assert manifest(batch).clips[0].published.video_id == "vid-1"
    assert any("vid-1" in m and "captions" in m and "YouTube Studio" in m for m in result.messages)


# --- (e) consent is checked again at publish time ----------------------------------------------


def test_a_clip_whose_story_no_longer_consents_is_never_uploaded(store, settings, batch):
    add_story(store, STORY_B, clips=False)  # consent withdrawn after the clips were cut
    service, http = youtube([HAS_PLAYLIST, *clip_done(1)])

    result = run(store, settings, service)

    assert (result.sent, result.skipped) == (1, 1) and http._iterable == []
    assert sum(1 for method, path in sent(http) if path == "/upload/youtube/v3/videos" and method == "POST") == 1
    assert manifest(batch).clips[1].published is None
    assert any(STORY_B in m and "clip-2.mp3" in m and "did not consent to clips" in m for m in result.messages)

    plan = json.loads(publish_batch(store, BATCH, settings, now=NOW).requests_file.read_text(encoding="utf-8"))
    assert plan["clips"] == []  # clip 1 is published now, clip 2 may not go
    assert plan["not_sent"][1]["reason"].startswith("not published:")


def test_a_clip_whose_story_file_is_missing_is_not_uploaded(store, settings, batch):
    (store.story_dir(STORY_A) / "story.json").unlink()
    service, http = youtube([HAS_PLAYLIST, *clip_done(2)])

    result = run(store, settings, service)

    assert (result.sent, result.skipped) == (1, 1) and http._iterable == []
    assert manifest(batch).clips[0].published is None


# --- (f) bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../escape", "a/b", "-starts-with-dash", "", "x" * 82, "spaces here"])
def test_a_bad_batch_name_is_refused_with_the_name(store, settings, name):
    with pytest.raises(PublishError) as e:
        publish_batch(store, name, settings)
    assert repr(name) in str(e.value)


def test_an_unknown_batch_is_refused_with_its_name(store, settings, batch):
    with pytest.raises(PublishError, match="no clip batch 'nope'.*batches here: 2026-10-demo"):
        publish_batch(store, "nope", settings, youtube=True, service=youtube([])[0])


def test_youtube_without_client_secrets_says_how_to_set_it_up(store, settings, batch, tmp_path):
    with pytest.raises(PublishError, match=r"set \[publish\] client_secrets"):
        publish_batch(store, BATCH, settings, youtube=True, now=NOW)
    missing = PublishSettings(client_secrets=str(tmp_path / "nowhere" / "client_secret.json"))
    with pytest.raises(PublishError, match="does not exist"):
        publish_batch(store, BATCH, missing, youtube=True, now=NOW)
    clips = manifest(batch).clips
    assert len(clips) == 2 and all(c.published is None for c in clips)  # both still there, none sent


def test_a_title_youtube_would_refuse_fails_that_clip_before_sending(store, settings, batch):
    m = manifest(batch)
    m.clips[0].youtube.title = "x" * 101
    write_model(batch / "manifest.json", m)
    service, http = youtube([HAS_PLAYLIST, *clip_done(2)])

    result = run(store, settings, service)

    assert (result.sent, result.failed) == (1, 1) and http._iterable == []
    assert any("clip-1.mp3" in msg and "101 characters" in msg for msg in result.messages)


def test_next_quota_reset_is_midnight_pacific_in_winter_and_summer():
    winter = dt.datetime(2026, 1, 15, 9, 0, tzinfo=dt.UTC)  # 01:00 PST
    assert publish.next_quota_reset(winter) == dt.datetime(2026, 1, 16, 8, 0, tzinfo=dt.UTC)
    assert publish.next_quota_reset(NOW).strftime("%Y-%m-%dT%H:%M:%SZ") == NEXT_RESET


# --- signing in (no network: the token is valid, refreshed by a stand-in, or made by a stand-in flow) ---


def write_client_secrets(folder: Path) -> Path:
    path = folder / "client_secret.json"
    path.write_text(json.dumps({"installed": {
        "client_id": "123.apps.googleusercontent.com", "client_secret": "not-a-secret",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": "https://oauth2.googleapis.com/token",
        "redirect_uris": ["http://localhost"]}}), encoding="utf-8")
    return path


def write_token(path: Path, expiry: dt.datetime) -> None:
    path.write_text(json.dumps({
        "token": "access", "refresh_token": "refresh", "token_uri": "https://oauth2.googleapis.com/token",
        "client_id": "123.apps.googleusercontent.com", "client_secret": "not-a-secret", "scopes": publish.SCOPES,
        "expiry": expiry.replace(tzinfo=None).isoformat() + "Z"}), encoding="utf-8")


def test_build_service_uses_a_saved_token_beside_the_client_secrets(tmp_path, monkeypatch):
    secrets = write_client_secrets(tmp_path)
    write_token(tmp_path / "youtube-token.json", dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    monkeypatch.setattr("google_auth_oauthlib.flow.InstalledAppFlow.from_client_secrets_file",
                        lambda *a, **k: pytest.fail("no browser sign-in when the token is valid"))

    service = publish.build_service(PublishSettings(client_secrets="client_secret.json"), base_dir=tmp_path)

    assert hasattr(service, "videos") and secrets.is_file()


def test_build_service_refreshes_an_expired_token_and_saves_it(tmp_path, monkeypatch):
    write_client_secrets(tmp_path)
    token = tmp_path / "my-token.json"
    write_token(token, dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))

    def refresh(self, request):
        self.token = "fresh"
        self.expiry = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).replace(tzinfo=None)

    monkeypatch.setattr("google.oauth2.credentials.Credentials.refresh", refresh)
    settings = PublishSettings(client_secrets=str(tmp_path / "client_secret.json"), token_file=str(token))

    publish.build_service(settings)

    assert json.loads(token.read_text())["token"] == "fresh"
    assert token.stat().st_mode & 0o777 == 0o600


def test_build_service_signs_in_with_the_installed_app_flow_the_first_time(tmp_path, monkeypatch):
    from google.oauth2.credentials import Credentials

    secrets = write_client_secrets(tmp_path)
    calls = []

    class Flow:
        def run_local_server(self, **kw):
            calls.append(kw)
            return Credentials("access", refresh_token="refresh", token_uri="https://oauth2.googleapis.com/token",
                               client_id="id", client_secret="secret", scopes=publish.SCOPES)

    def from_client_secrets_file(path, scopes):
        calls.append((path, scopes))
        return Flow()

    monkeypatch.setattr("google_auth_oauthlib.flow.InstalledAppFlow.from_client_secrets_file", from_client_secrets_file)

    publish.build_service(PublishSettings(client_secrets=str(secrets)))

    assert calls == [(str(secrets), publish.SCOPES), {"port": 0, "open_browser": True}]
    token = tmp_path / "youtube-token.json"
    assert json.loads(token.read_text())["refresh_token"] == "refresh"
    assert token.stat().st_mode & 0o777 == 0o600


def test_a_second_run_on_the_same_batch_at_once_is_refused(store, settings, batch):
    from filelock import FileLock

    service, http = youtube([])
    with FileLock(str(batch / publish.LOCK_FILE)), pytest.raises(PublishError, match="already being published"):
        run(store, settings, service)
    assert http.request_sequence == []


def test_publish_command_dry_run_and_bad_batch(tmp_path):
    """The CLI: a dry run by default (exit 0, requests written), exit 2 for an unknown batch."""
    from typer.testing import CliRunner

    from storypipe.app.cli import app
    from storypipe.core.store import Store

    store = Store(tmp_path).ensure()
    runner = CliRunner()
    missing = runner.invoke(app, ["publish", "no-such-batch", "--root", str(tmp_path)])
    assert missing.exit_code == 2 and "no-such-batch" in missing.output
    folder = store.clips / "b1"
    folder.mkdir(parents=True)
    from storypipe.core.jsonio import write_model
    from storypipe.core.models import ClipBatch

    write_model(folder / "manifest.json", ClipBatch(batch="b1"))
    dry = runner.invoke(app, ["publish", "b1", "--root", str(tmp_path)])
    assert dry.exit_code == 0 and "Dry run" in dry.output and (folder / "publish-requests.json").exists()
