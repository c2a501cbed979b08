"""The review app over HTTP: every route, and the bad cases (unknown ids, traversal, stale versions,
cross-site requests, foreign Host headers, the remote-access token).

Clients talk to the app as a browser on this machine does, at http://127.0.0.1 (TestClient's
default "testserver" is a foreign host to the app, answered 400)."""

from __future__ import annotations

import io
import re

import pytest
import yaml
from fastapi.testclient import TestClient

from storypipe.core.jsonio import read_model
from storypipe.core.models import QuotesFile, Story, Transcript
from storypipe.app.web.app import create_app
from tests.support.factories import ROS_ID, ROS_TEXT

SID, TEXT = ROS_ID, ROS_TEXT
LOCAL = "http://127.0.0.1"
pytestmark = pytest.mark.usefixtures("ros_story")  # every test here sees Ros's story in `store`


@pytest.fixture
def client(ros_story):
    return TestClient(create_app(ros_story.root), base_url=LOCAL)


def csrf_of(client) -> str:
    return re.search(r'name="csrf" content="([^"]+)"', client.get("/").text).group(1)


def api(client, path, body):
    return client.post(f"/api/stories/{SID}{path}", json=body, headers={"X-CSRF-Token": csrf_of(client)})


def test_list_shows_state_length_approvals_and_unsure_words(client):
    page = client.get("/")
    assert page.status_code == 200
    assert "Heard" in page.text and "unsure words to check" in page.text and "0 of" in page.text
    assert SID in client.get("/?state=extracted").text
    assert SID not in client.get("/?state=staged").text


def test_story_page_has_player_words_quotes_and_consent(client):
    page = client.get(f"/stories/{SID}")
    assert page.status_code == 200
    assert f'src="/stories/{SID}/audio"' in page.text
    assert 'class="w low"' in page.text and 'data-s="' in page.text
    assert 'class="quote quote-candidate"' in page.text
    assert 'id="consent-form"' in page.text and "Keyboard shortcuts" in page.text


def test_audio_supports_range_requests(client):
    whole = client.get(f"/stories/{SID}/audio")
    part = client.get(f"/stories/{SID}/audio", headers={"Range": "bytes=100-199"})
    assert whole.status_code == 200 and part.status_code == 206
    assert part.content == whole.content[100:200]
    assert part.headers["content-range"].startswith("bytes 100-199/")


@pytest.mark.parametrize("path", ["/stories/nope-00000000", "/stories/..%2F..%2Fetc", "/stories/ROS",
                                  "/api/stories/nope-00000000", "/stories/nope-00000000/audio"])
def test_unknown_and_traversal_ids_are_404(client, path):
    assert client.get(path).status_code == 404


def test_edit_segment_and_stale_version(client, store):
    data = client.get(f"/api/stories/{SID}").json()
    v = data["versions"]["transcript"]
    r = api(client, "/segments/1", {"text": TEXT.replace("invisible", "unseen"), "version": v})
    assert r.status_code == 200 and "unseen" in r.json()["transcript"]["segments"][1]["text"]
    stale = api(client, "/segments/1", {"text": "Something else.", "version": v})
    assert stale.status_code == 409 and "Reload the page" in stale.json()["error"]
    t = read_model(store.story_dir(SID) / "transcript.json", Transcript)
    assert t.segments[1].machine_text == TEXT and "unseen" in t.segments[1].text
    assert api(client, "/segments/99", {"text": "x", "version": None}).status_code == 404
    assert api(client, "/segments/1", {"text": "   ", "version": None}).status_code == 400


def test_speakers_reviewed_and_quotes(client, store):
    assert api(client, "/speakers", {"label": "interviewer", "name": "Sam"}).status_code == 200
    assert "Sam" in client.get(f"/stories/{SID}").text
    assert api(client, "/reviewed", {}).json()["story"]["reviewed_at"]
    q = read_model(store.story_dir(SID) / "quotes.json", QuotesFile).quotes[0]
    r = api(client, f"/quotes/{q.id}", {"status": "approved", "widen_end": -1, "title": "Counted"})
    new = next(x for x in r.json()["quotes"] if x["id"] == q.id)
    assert new["status"] == "approved" and new["title"] == "Counted" and new["end"] < q.end
    assert api(client, "/quotes/qmissing", {"status": "approved"}).status_code == 404
    assert api(client, f"/quotes/{q.id}", {"status": "maybe"}).status_code == 400
    words = read_model(store.story_dir(SID) / "transcript.json", Transcript).segments[1].words
    made = api(client, "/quotes", {"start": words[0].start, "end": words[5].end})
    assert any(x["why"].get("chosen_by_reviewer") for x in made.json()["quotes"])


def test_a_quotes_themes_are_chosen_on_the_story_page(client, store):
    q = read_model(store.story_dir(SID) / "quotes.json", QuotesFile).quotes[0]
    page = client.get(f"/stories/{SID}").text
    assert 'aria-label="Add a theme to this quote"' in page and '<option value="trust">Trust</option>' in page
    assert q.themes  # the tagger's themes, each removable
    for t in q.themes:
        assert f'data-theme-remove="{t}"' in page
    r = api(client, f"/quotes/{q.id}", {"themes": ["trust", "co-learning"]})
    assert r.status_code == 200
    saved = read_model(store.story_dir(SID) / "quotes.json", QuotesFile).quotes[0]
    assert saved.themes == ["trust", "co-learning"] and saved.themes_checked
    page = client.get(f"/stories/{SID}").text
    card = page.split(f'id="q-{q.id}"', 1)[1].split("</article>", 1)[0]
    assert 'data-theme-remove="trust"' in card and "data-theme-add" not in card  # suggestions were answered
    bad = api(client, f"/quotes/{q.id}", {"themes": ["made-up"]})
    assert bad.status_code == 400 and "made-up" in bad.json()["error"]


def test_consent_change_is_recorded(client, store):
    r = api(client, "/consent", {"clips": True})
    assert r.status_code == 200 and r.json()["story"]["consent"]["clips"] is True
    story = read_model(store.story_dir(SID) / "story.json", Story)
    assert story.history[-1].note == "consent changed: clips yes"
    assert api(client, "/consent", {"clips": "maybe"}).status_code == 400


def test_state_changes_need_the_csrf_token_and_same_origin(client, store):
    before = (store.story_dir(SID) / "story.json").read_bytes()
    assert client.post(f"/api/stories/{SID}/reviewed").status_code == 403
    assert client.post(f"/api/stories/{SID}/reviewed", headers={"X-CSRF-Token": "guess"}).status_code == 403
    other = client.post(f"/api/stories/{SID}/reviewed",
                        headers={"X-CSRF-Token": csrf_of(client), "Origin": "http://evil.example"})
    assert other.status_code == 403
    assert (store.story_dir(SID) / "story.json").read_bytes() == before


def test_intake_writes_sidecar_then_audio_into_the_inbox(client, store):
    form = {"csrf": csrf_of(client), "title": "New one", "storyteller": "J.", "names": "Margaret, Rochdale",
            "clips": "yes", "transcript": "yes", "report": "yes"}
    files = {"recording": ("My Story 01.mp3", io.BytesIO(b"ID3fake"), "audio/mpeg")}
    r = client.post("/add", data=form, files=files)
    assert r.status_code == 200 and "in the inbox" in r.text
    assert (store.inbox / "My Story 01.mp3").read_bytes() == b"ID3fake"
    sidecar = yaml.safe_load((store.inbox / "My Story 01.yaml").read_text())
    assert sidecar["consent"] == {"transcript": True, "report": True, "clips": True, "full_story": False,
                                  "anonymise": False}
    assert sidecar["names"] == ["Margaret", "Rochdale"] and sidecar["title"] == "New one"
    assert not [p for p in store.inbox.iterdir() if p.name.startswith(".")]
    again = client.post("/add", data=form, files={"recording": ("My Story 01.mp3", io.BytesIO(b"x"), "audio/mpeg")})
    assert again.status_code == 400 and "already waiting" in again.text
    bad = client.post("/add", data={**form, "recorded_on": "not a date"},
                      files={"recording": ("other.mp3", io.BytesIO(b"x"), "audio/mpeg")})
    assert bad.status_code == 400 and "recorded_on" in bad.text and not (store.inbox / "other.mp3").exists()
    assert client.post("/add", data={"title": "x"}, files=files).status_code == 403  # no csrf


def test_another_host_needs_the_access_token(store):
    client = TestClient(create_app(store.root, access_token="s3cret"), base_url=LOCAL)
    assert client.get("/").status_code == 403
    r = client.get("/?token=s3cret", follow_redirects=False)
    assert r.status_code == 303 and "token" not in r.headers["location"]
    assert client.get("/").status_code == 200  # the cookie carries it from now on


def test_intake_form_and_static_files_are_served(client):
    page = client.get("/add")
    assert page.status_code == 200 and 'type="file"' in page.text and "What the storyteller agreed to" in page.text
    assert 'name="csrf"' in page.text and "Names of people and places must be hidden" in page.text
    assert client.get("/static/app.js").status_code == 200 and client.get("/static/style.css").status_code == 200
    assert "cdn" not in page.text.lower() and "https://" not in page.text


def test_review_command_binds_to_localhost_unless_told_and_then_needs_a_token(tmp_path, monkeypatch):
    import uvicorn
    from typer.testing import CliRunner

    from storypipe.app.cli import app

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda application, **kw: calls.append((application, kw)))
    runner = CliRunner()
    local = runner.invoke(app, ["review", "--root", str(tmp_path)])
    assert local.exit_code == 0 and "http://127.0.0.1:8765/" in local.output
    assert calls[-1][1]["host"] == "127.0.0.1" and calls[-1][1]["port"] == 8765
    assert TestClient(calls[-1][0], base_url="http://127.0.0.1:8765").get("/").status_code == 200
    remote = runner.invoke(app, ["review", "--root", str(tmp_path), "--host", "0.0.0.0", "--port", "9000"])
    link = re.search(r"(http://\S+):9000/\?token=([\w-]+)", remote.output.replace("\n", ""))
    token = link.group(2)
    assert calls[-1][1]["host"] == "0.0.0.0"
    client = TestClient(calls[-1][0], base_url=f"{link.group(1)}:9000")  # the machine's name, as printed
    assert client.get("/").status_code == 403
    assert client.get(f"/?token={token}").status_code == 200
    # A wildcard bind answers any Host name (the machine's names and addresses can't all be known),
    # and leaves it to the token: a foreign Host without it is refused all the same.
    assert TestClient(calls[-1][0], base_url="http://evil.example:9000").get("/").status_code == 403


def test_the_findings_report_is_made_and_shown_from_the_app(client, store):
    page = client.get("/report")
    assert page.status_code == 200 and "Make the report now" in page.text and "Reports made" not in page.text
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    assert client.post("/report", data={"csrf": "guess"}).status_code == 403
    assert not store.reports.exists() or not any(store.reports.iterdir())
    made = client.post("/report", data={"csrf": token}, follow_redirects=False)
    assert made.status_code == 303 and re.fullmatch(r"/reports/\d{4}-\d{2}-\d{2}/report.html", made.headers["location"])
    shown = client.get(made.headers["location"])
    assert shown.status_code == 200 and "<h1>Findings: Community Reporting project</h1>" in shown.text
    assert "Heard" in shown.text  # the story's title, in the appendix
    assert made.headers["location"].split("/")[2] in client.get("/report").text
    assert client.get("/reports/..%2F..%2Fetc/report.html").status_code == 404
    assert client.get("/reports/2020-01-01/report.html").status_code == 404


# ---- the Host header: local means local (DNS rebinding) ----


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8765", "127.0.0.1.evil.example", "testserver"])
def test_a_foreign_host_header_is_answered_400_and_changes_nothing(client, store, host):
    csrf = csrf_of(client)
    before = (store.story_dir(SID) / "story.json").read_bytes()
    assert client.get("/", headers={"Host": host}).status_code == 400
    page = client.get(f"/stories/{SID}", headers={"Host": host})
    assert page.status_code == 400 and "Heard" not in page.text and "invisible" not in page.text
    assert client.get(f"/api/stories/{SID}", headers={"Host": host}).status_code == 400
    assert client.get(f"/stories/{SID}/audio", headers={"Host": host}).status_code == 400
    posted = client.post(f"/api/stories/{SID}/reviewed", headers={"Host": host, "X-CSRF-Token": csrf})
    assert posted.status_code == 400
    assert (store.story_dir(SID) / "story.json").read_bytes() == before


@pytest.mark.parametrize("host", ["127.0.0.1:8765", "localhost:8765", "127.0.0.1", "localhost", "LOCALHOST:8765",
                                  "[::1]:8765"])
def test_the_local_names_are_answered_with_or_without_a_port(client, host):
    page = client.get("/", headers={"Host": host})
    assert page.status_code == 200 and "Heard" in page.text
    assert client.get(f"/stories/{SID}", headers={"Host": host}).status_code == 200


def test_allowed_hosts_can_be_given_and_ipv6_is_matched_in_brackets(store):
    client = TestClient(create_app(store.root, allowed_hosts=["review.example.org", "fe80::1"]), base_url=LOCAL)
    assert client.get("/", headers={"Host": "review.example.org:8765"}).status_code == 200
    assert client.get("/", headers={"Host": "[fe80::1]:8765"}).status_code == 200
    assert client.get("/", headers={"Host": "127.0.0.1:8765"}).status_code == 400  # only the names given
    assert client.get("/", headers={"Host": "evil.example"}).status_code == 400


def test_the_review_command_allows_the_host_it_was_given_and_the_local_names(tmp_path, monkeypatch):
    import uvicorn
    from typer.testing import CliRunner

    from storypipe.app.cli import app

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda application, **kw: calls.append((application, kw)))
    # 192.0.2.10 is a documentation address: nothing listens or is sent anywhere (uvicorn.run is a stub).
    out = CliRunner().invoke(app, ["review", "--root", str(tmp_path), "--host", "192.0.2.10", "--port", "9000"])
    assert out.exit_code == 0 and calls[-1][1]["host"] == "192.0.2.10"
    token = re.search(r"token=([\w-]+)", out.output.replace("\n", "")).group(1)
    client = TestClient(calls[-1][0], base_url="http://192.0.2.10:9000")
    assert client.get(f"/?token={token}").status_code == 200  # the link it printed works
    assert client.get("/").status_code == 200
    for local in ("127.0.0.1:9000", "localhost:9000", "[::1]:9000"):
        assert client.get("/", headers={"Host": local}).status_code == 200
    assert client.get("/", headers={"Host": "evil.example:9000"}).status_code == 400  # even with the cookie

    out = CliRunner().invoke(app, ["review", "--root", str(tmp_path), "--host", "::1"])
    assert out.exit_code == 0 and "token=" not in out.output
    client = TestClient(calls[-1][0], base_url="http://[::1]:8765")
    assert client.get("/").status_code == 200
    assert client.get("/", headers={"Host": "evil.example:8765"}).status_code == 400
