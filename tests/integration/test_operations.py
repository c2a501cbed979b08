"""Claims, locks, settling, the result cache, retry and the way back from quarantine."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from storypipe.app.cli import app
from storypipe.core.jsonio import read_model, write_model
from storypipe.core.models import Story
from storypipe.tasks.common import claims
from storypipe.tasks import ingest
from storypipe.app import status
from storypipe.flows import progress
from tests.support import audio_fixtures as af
from tests.support.factories import make_story


# ---------------------------------------------------------------- claims


def test_a_claimed_file_is_gone_for_everyone_else(store, settings):
    (store.inbox / "a.wav").write_bytes(b"sound")
    (store.inbox / "a.yaml").write_text("title: A\n")
    with claims.Claim(store, settings) as mine, claims.Claim(store, settings) as theirs:
        taken = mine.take(store.inbox / "a.wav")
        assert taken is not None and taken.read_bytes() == b"sound"
        assert (taken.parent / "a.yaml").exists()  # the sidecar goes with it
        assert theirs.take(store.inbox / "a.wav") is None
        assert ingest.list_inbox(store, settings) == []
    # Unused at the end of the run: back in the inbox, the claim folder gone.
    assert sorted(p.name for p in store.inbox.iterdir()) == ["a.wav", "a.yaml"]


def test_claims_of_a_run_that_died_go_back_to_the_inbox(store, settings):
    # A claim folder whose lock nobody holds: its run was killed.
    dead = store.inbox / claims.CLAIMS / "laptop-4242-abcdef"
    dead.mkdir(parents=True)
    (dead / "b.wav").write_bytes(b"b")
    (store.inbox / "b.wav").write_bytes(b"dropped again meanwhile")
    back = claims.recover_claims(store, settings)
    assert [p.name for p in back] == ["b (1).wav"]
    assert sorted(p.name for p in store.inbox.iterdir()) == ["b (1).wav", "b.wav"]


def test_claims_of_a_live_run_stay(store, settings):
    (store.inbox / "c.wav").write_bytes(b"c")
    with claims.Claim(store, settings) as live:
        live.take(store.inbox / "c.wav")
        assert claims.recover_claims(store, settings) == []
        assert (live.folder / "c.wav").exists()


def test_a_read_only_inbox_is_a_clear_error_and_nothing_moves(store, settings, monkeypatch):
    (store.inbox / "d.wav").write_bytes(b"d")

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(claims.os, "rename", refuse)
    with claims.Claim(store, settings) as claim, pytest.raises(claims.InboxNotWritable) as e:
        claim.take(store.inbox / "d.wav")
    assert str(store.inbox) in str(e.value) and "Nothing was moved" in str(e.value)
    assert (store.inbox / "d.wav").read_bytes() == b"d"


def _hold_lock_in_another_process(path: str, ready: Path) -> subprocess.Popen:
    code = textwrap.dedent(f"""
        import time, pathlib
        from filelock import FileLock
        with FileLock({path!r}):
            pathlib.Path({str(ready)!r}).touch()
            time.sleep(30)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 20
    while not ready.exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return proc


def test_a_story_locked_by_another_process_is_left_to_it(store, settings, tmp_path):
    lock = claims.state_dir(store, settings) / "locks" / "story-s-1.lock"
    proc = _hold_lock_in_another_process(str(lock), tmp_path / "ready")
    try:
        with claims.story_lock(store, settings, "s-1") as mine:
            assert mine is False
    finally:
        proc.kill()
        proc.wait()
    # The kernel drops the lock of a killed process: the story is free again.
    with claims.story_lock(store, settings, "s-1") as mine:
        assert mine is True


def test_the_machine_slot_makes_a_second_transcription_wait(settings, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(claims, "SLOT_WAIT_S", 0.05)
    order: list[str] = []
    first_in = threading.Event()

    def first():
        with claims.machine_slot(settings, "transcribe", "first"):
            order.append("first in")
            first_in.set()
            time.sleep(0.5)
            order.append("first out")

    t = threading.Thread(target=first)
    t.start()
    first_in.wait(5)
    with claims.machine_slot(settings, "transcribe", "second"):
        order.append("second in")
    t.join()
    assert order == ["first in", "first out", "second in"]


def test_two_slots_let_two_run_at_once(settings, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    settings.run.transcribe_per_machine = 2
    with claims.machine_slot(settings, "transcribe") as a, claims.machine_slot(settings, "transcribe") as b:
        assert {a, b} == {0, 1}


def test_leftovers_of_a_killed_run_are_swept(store):
    story_dir = store.story_dir("s-1")
    story_dir.mkdir(parents=True)
    (story_dir / "quotes.json").write_text("{}")
    (story_dir / ".quotes.json.abc.tmp").write_text("{half")
    (store.staging / ".s-1.xyz").mkdir(parents=True)
    (store.staging / ".s-10.xyz").mkdir()  # another story's build
    gone = claims.sweep_leftovers(store, "s-1")
    assert sorted(p.name for p in gone) == [".quotes.json.abc.tmp", ".s-1.xyz"]
    assert (story_dir / "quotes.json").exists() and (store.staging / ".s-10.xyz").exists()


# ---------------------------------------------------------------- settling


def test_a_file_still_being_written_is_waited_for(tmp_path):
    path = tmp_path / "growing.wav"
    path.write_bytes(b"x")

    def keep_writing():
        for _ in range(6):
            time.sleep(0.1)
            with path.open("ab") as f:
                f.write(b"x")

    t = threading.Thread(target=keep_writing)
    t.start()
    ready, waiting = ingest.settled([path], settle_s=0.4, timeout_s=10)
    t.join()
    assert ready == [path] and waiting == []
    assert path.stat().st_size == 7  # only after the last write


def test_a_file_that_keeps_changing_is_left_for_the_next_run(tmp_path):
    path = tmp_path / "live.wav"
    path.write_bytes(b"x")
    ready, waiting = ingest.settled([path], settle_s=5, timeout_s=0.2)
    assert ready == [] and waiting == [path]


def test_an_old_file_is_taken_at_once(tmp_path):
    path = tmp_path / "old.wav"
    path.write_bytes(b"x")
    os.utime(path, (time.time() - 60, time.time() - 60))
    started = time.monotonic()
    assert ingest.settled([path], settle_s=5, timeout_s=30) == ([path], [])
    assert time.monotonic() - started < 1


# ---------------------------------------------------------------- cache key


def test_the_cache_key_follows_audio_model_and_settings_that_matter(settings):
    from storypipe.tasks.transcribe import cache_key

    story = make_story("s-1")
    key = cache_key(story, settings)
    assert key == cache_key(story, settings)
    other_audio = story.model_copy(update={"source": story.source.model_copy(update={"sha256": "f" * 64})})
    assert cache_key(other_audio, settings) != key
    changed = settings.model_copy(deep=True)
    changed.transcribe.beam_size += 1
    assert cache_key(story, changed) != key
    changed = settings.model_copy(deep=True)
    changed.transcribe.model = "base.en"
    assert cache_key(story, changed) != key
    # Things that do not change a transcript keep the cache.
    changed = settings.model_copy(deep=True)
    changed.transcribe.batch_s = 60
    changed.extract.max_quotes = 3
    assert cache_key(story, changed) == key


# ---------------------------------------------------------------- status, retry, quarantine


def _failed_story(store, story_id="s-1", retry=True):
    story = make_story(story_id)
    story.advance("transcribed")
    write_model(store.story_dir(story_id) / "story.json", story)
    progress.mark_failed(store, story_id, RuntimeError("disk full"))
    if not retry:
        story = read_model(store.story_dir(story_id) / "story.json", Story)
        story.history[-1].retry = False
        write_model(store.story_dir(story_id) / "story.json", story)


def test_status_shows_where_and_why_a_story_failed(store):
    _failed_story(store)
    result = CliRunner().invoke(app, ["status", "--root", str(store.root)], env={"COLUMNS": "200"})
    assert "failed at extract" in result.output
    assert "extract failed: disk full" in result.output
    assert "storypipe retry s-1" in result.output
    row = status.story_rows(store)[0]
    assert row["failure"]["stage"] == "extract" and row["failure"]["tried_again_by_run"] is True


def test_retry_refuses_unknown_and_unfailed_stories(store):
    write_model(store.story_dir("ok-1") / "story.json", make_story("ok-1").advance("transcribed"))
    runner = CliRunner()
    unknown = runner.invoke(app, ["retry", "nope-1", "--root", str(store.root)])
    assert unknown.exit_code == 2 and "no story nope-1" in unknown.output
    fine = runner.invoke(app, ["retry", "ok-1", "--root", str(store.root)])
    assert fine.exit_code == 2 and "has not failed" in fine.output


def test_retry_runs_a_failed_story_from_the_stage_where_it_failed(store, prefect_harness, monkeypatch):
    """A permanent failure at extraction (a plain run leaves it alone): after the fix, retry resumes
    at extraction; transcription is not done again."""
    from storypipe.tasks import extract as extract_mod

    af.speech(store.inbox, "told.wav", "I learned that my voice matters to the people who run the service.")
    broken = {"on": True}
    real = extract_mod.extract_story

    class Damaged(ValueError):
        permanent = True  # like "no speech": running again alone would not help

    def flaky(story_id, layout_, settings_):
        if broken["on"]:
            raise Damaged("the spaCy model is damaged")
        return real(story_id, layout_, settings_)

    monkeypatch.setattr(extract_mod, "extract_story", flaky)
    monkeypatch.setenv("STORYPIPE_RUN__SETTLE_S", "0")
    runner = CliRunner()
    first = runner.invoke(app, ["run", "--root", str(store.root)])
    assert first.exit_code == 1, first.output
    (row,) = status.story_rows(store)
    assert row["state"] == "failed" and row["failure"]["stage"] == "extract"
    assert progress.unfinished_stories(store) == []  # bad input: a plain run would fail the same way

    broken["on"] = False
    again = runner.invoke(app, ["retry", row["story_id"], "--root", str(store.root)])
    assert again.exit_code == 0, again.output
    story = read_model(store.story_dir(row["story_id"]) / "story.json", Story)
    assert story.state == "extracted"
    assert [h.state for h in story.history] == ["ingested", "transcribed", "failed", "extracted"]


def test_a_quarantined_file_put_back_after_a_fix_is_processed(store, prefect_harness, monkeypatch):
    monkeypatch.setenv("STORYPIPE_RUN__SETTLE_S", "0")
    af.speech(store.inbox, "fixed.wav", "We changed the rules together and it worked.")
    (store.inbox / "fixed.yaml").write_text("title: [unclosed\n")
    runner = CliRunner()
    assert runner.invoke(app, ["run", "--root", str(store.root)]).exit_code == 1
    assert (store.quarantine / "fixed.wav.error.txt").exists()

    # The volunteer fixes the sidecar and moves both back, as the .error.txt says.
    (store.quarantine / "fixed.yaml").write_text('title: "Fixed"\n')
    for name in ("fixed.wav", "fixed.yaml"):
        shutil.move(store.quarantine / name, store.inbox / name)
    (store.quarantine / "fixed.wav.error.txt").unlink()
    result = runner.invoke(app, ["run", "--root", str(store.root)])
    assert result.exit_code == 0, result.output
    (row,) = status.story_rows(store)
    assert row["source"] == "fixed.wav" and row["state"] == "extracted"
    assert read_model(store.story_dir(row["story_id"]) / "story.json", Story).metadata.title == "Fixed"


def test_an_unchanged_story_run_again_comes_from_the_cache(store, prefect_harness, monkeypatch):
    monkeypatch.setenv("STORYPIPE_RUN__SETTLE_S", "0")
    af.speech(store.inbox, "again.wav", "The council listened to us for the first time.")
    runner = CliRunner()
    assert runner.invoke(app, ["run", "--root", str(store.root)]).exit_code == 0
    (row,) = status.story_rows(store)
    original = store.original_dir(row["story_id"]) / "again.wav"
    transcript_before = (store.story_dir(row["story_id"]) / "transcript.json").read_text()

    # The team starts the story over: its folder removed, the recording dropped in again.
    shutil.move(original, store.inbox / "again.wav")
    shutil.rmtree(store.story_dir(row["story_id"]))
    shutil.rmtree(store.work)
    assert runner.invoke(app, ["run", "--root", str(store.root)]).exit_code == 0
    story = read_model(store.story_dir(row["story_id"]) / "story.json", Story)
    transcribed = [h for h in story.history if h.state == "transcribed"]
    assert transcribed[0].note and "from the cache" in transcribed[0].note
    assert (store.story_dir(row["story_id"]) / "transcript.json").read_text() == transcript_before
