"""Bad input is quarantined with its reason, the good files still go through, and `run` exits 1."""

from __future__ import annotations

from typer.testing import CliRunner

from storypipe.app.cli import app
from storypipe.core.jsonio import read_model
from storypipe.core.store import Store
from storypipe.core.models import Story
from tests.support import audio_fixtures as af


def test_bad_files_are_quarantined_and_good_ones_processed(tmp_path, prefect_harness):
    store = Store(tmp_path).ensure()
    inbox = store.inbox
    (inbox / "empty.m4a").write_bytes(b"")
    (inbox / "letter.mp3").write_text("Dear team, this is not a recording.\n")
    af.speech(inbox, "bad sidecar.wav", "This one has a broken sidecar file.")
    (inbox / "bad sidecar.yaml").write_text("title: [unclosed\nconsent: {clips: true\n")
    af.speech(inbox, "good.wav", "I found people who listened to me.")

    result = CliRunner().invoke(app, ["run", "--root", str(tmp_path)])

    assert result.exit_code == 1, result.output
    q = store.quarantine
    reasons = {p.name.removesuffix(".error.txt"): p.read_text() for p in q.glob("*.error.txt")}
    assert set(reasons) == {"empty.m4a", "letter.mp3", "bad sidecar.wav"}
    assert "empty (0 bytes)" in reasons["empty.m4a"]
    assert "not an audio or video file" in reasons["letter.mp3"]
    assert "bad sidecar.yaml is not valid YAML" in reasons["bad sidecar.wav"]
    # The files themselves are in quarantine, the broken sidecar with its recording.
    assert {p.name for p in q.iterdir() if not p.name.endswith(".error.txt")} == {
        "empty.m4a", "letter.mp3", "bad sidecar.wav", "bad sidecar.yaml"
    }
    stories = [read_model(p, Story) for p in store.transcripts.glob("*/story.json")]
    assert [s.source.filename for s in stories] == ["good.wav"]
    assert stories[0].state == "extracted"
    assert not any(inbox.iterdir())
    for name in ("empty.m4a", "letter.mp3", "bad sidecar.wav"):
        assert name in result.output

    # The runs were recorded by the Prefect server in use (here the test harness's), so a team with a
    # server (PREFECT_API_URL) sees each recording as its own run in the UI.
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        names = {run.name for run in client.read_flow_runs()}
    assert {"recording: good.wav", "recording: letter.mp3", "recording: empty.m4a"} <= names


def test_an_unexpected_error_on_one_file_does_not_stop_the_others(tmp_path, prefect_harness, monkeypatch):
    from storypipe.flows.inbox import process_inbox
    from storypipe.tasks import ingest

    store = Store(tmp_path).ensure()
    for name in ("first.wav", "second.wav"):
        (store.inbox / name).write_bytes(b"RIFF....")

    def broken_disk(recording, store, settings):
        raise OSError(f"I/O error reading {recording.name}")

    calls = []
    monkeypatch.setattr(ingest, "ingest_recording", lambda *a: calls.append(a[0].name) or broken_disk(*a))
    monkeypatch.setenv("STORYPIPE_PREFECT__RETRY_DELAY_S", "0")
    outcomes = process_inbox(str(tmp_path))
    assert calls.count("first.wav") == 3  # an I/O error is worth two retries
    assert [(o.file, o.result) for o in outcomes] == [("first.wav", "failed"), ("second.wav", "failed")]
    assert "I/O error reading second.wav" in outcomes[1].reason
    assert sorted(p.name for p in store.inbox.iterdir()) == ["first.wav", "second.wav"]  # nothing lost
