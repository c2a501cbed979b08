"""`storypipe watch`: arrivals are processed once they have finished copying, bursts in one run; the
Prefect deployment (prefect.yaml) and `flows/serve.py` load."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Self

import pytest
import yaml

from storypipe.core.settings import PROJECT_DIR, WatchSettings
from storypipe.app.watch import recordings_in, watch_inbox
from tests.support import audio_fixtures as af

STORYPIPE = Path(sys.executable).parent / "storypipe"


class Watcher:
    """watch_inbox in a thread with a fake pipeline that records what it saw and takes the files away."""

    def __init__(self, root: Path, take: bool = True, fail_first: bool = False, **settings):
        self.inbox = root / "audio" / "inbox"
        self.inbox.mkdir(parents=True, exist_ok=True)
        self.done = root / "done"
        self.done.mkdir(exist_ok=True)
        self.take, self.fail_first = take, fail_first
        self.calls: list[dict[str, int]] = []  # per process(): recording name -> size seen
        self.events: list[tuple[str, list[str]]] = []
        self.stop = threading.Event()
        self.settings = WatchSettings(**{"settle_s": 0.5, "burst_s": 0.5, "rescan_s": 60.0, **settings})
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.batches: int | None = None

    def _run(self) -> None:
        self.batches = watch_inbox(self.inbox, self.process, self.settings, self.stop,
                                   on_event=lambda kind, paths: self.events.append((kind, [p.name for p in paths])))

    def process(self) -> None:
        self.calls.append({p.name: p.stat().st_size for p in recordings_in(self.inbox)})
        if self.fail_first and len(self.calls) == 1:
            raise RuntimeError("the disk is full")
        if self.take:
            for p in recordings_in(self.inbox):
                shutil.move(p, self.done / p.name)

    def __enter__(self) -> Self:
        self.thread.start()
        time.sleep(0.4)  # let the watcher take its first look
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive(), "watch_inbox did not stop when asked"

    def wait_calls(self, n: int, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.calls) < n:
            assert time.monotonic() < deadline, f"expected {n} process() calls, got {self.calls}"
            time.sleep(0.05)


@pytest.fixture
def messages():
    """What watch_inbox tells the volunteer (the CLI may have turned propagation off)."""
    records: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: records.append(record.getMessage())
    logger = logging.getLogger("storypipe")
    old_level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def write_slowly(path: Path, chunks: int = 10, chunk_bytes: int = 20_000, pause_s: float = 0.2) -> int:
    with path.open("wb") as f:
        for _ in range(chunks):
            f.write(os.urandom(chunk_bytes))
            f.flush()
            time.sleep(pause_s)
    return chunks * chunk_bytes


def test_a_slow_copy_is_processed_once_after_it_finished(tmp_path, messages):
    with Watcher(tmp_path, settle_s=0.8) as w:
        started = time.monotonic()
        size = write_slowly(w.inbox / "Interview 3.m4a")  # 2 s, a chunk every 0.2 s
        copied = time.monotonic()
        w.wait_calls(1)
        waited = time.monotonic() - copied
        time.sleep(1.5)
    assert w.calls == [{"Interview 3.m4a": size}]
    assert waited >= 0.5 and time.monotonic() - started < 10
    assert "Interview 3.m4a arrived; waiting until it has finished copying" in messages
    assert any("Interview 3.m4a has finished copying" in m for m in messages)
    assert w.batches == 1


def test_a_burst_of_files_is_one_run(tmp_path, messages):
    with Watcher(tmp_path, settle_s=0.3, burst_s=1.5) as w:
        for name in ("a.wav", "b.mp3", "c.m4a"):
            (w.inbox / name).write_bytes(b"x" * 1000)
            time.sleep(0.3)
        w.wait_calls(1)
        time.sleep(1.0)
        assert len(w.calls) == 1 and set(w.calls[0]) == {"a.wav", "b.mp3", "c.m4a"}
        (w.inbox / "d.wav").write_bytes(b"x" * 10)  # later, on its own: a second run
        w.wait_calls(2)
    assert w.calls[1] == {"d.wav": 10}
    assert any("3 recordings have finished copying (a.wav, b.mp3, c.m4a)" in m for m in messages)


def test_files_present_at_start_are_processed_at_start(tmp_path):
    inbox = tmp_path / "audio" / "inbox"
    inbox.mkdir(parents=True)
    (inbox / "one.wav").write_bytes(b"1" * 100)
    (inbox / "two.flac").write_bytes(b"2" * 200)
    (inbox / "two.yaml").write_text("title: Two\n")
    w = Watcher(tmp_path, burst_s=30.0)  # the recordings already there do not wait for a burst
    started = time.monotonic()
    with w:
        w.wait_calls(1, timeout=5)
        assert time.monotonic() - started < 3
    assert w.calls == [{"one.wav": 100, "two.flac": 200}]
    assert w.events[0] == ("arrived", ["one.wav"]) and ("batch", ["one.wav", "two.flac"]) in w.events


def test_hidden_files_copies_in_progress_and_lone_sidecars_are_ignored(tmp_path, messages):
    inbox = tmp_path / "audio" / "inbox"
    (inbox / ".claimed" / "host-1-abc").mkdir(parents=True)
    (inbox / ".claimed" / "host-1-abc" / "taken.wav").write_bytes(b"x")
    (inbox / ".DS_Store").write_bytes(b"x")
    with Watcher(tmp_path, rescan_s=0.5) as w:
        (inbox / "big.wav.part").write_bytes(b"x" * 100)
        (inbox / ".big.wav.Xy12").write_bytes(b"x" * 100)  # rsync's temporary copy
        (inbox / ".claimed" / "other").mkdir()
        (inbox / "later.yaml").write_text("title: Later\n")
        (inbox / "notes.txt~").write_text("editor backup")
        time.sleep(2.0)
        assert w.calls == [] and [e for e in w.events if e[0] == "arrived"] == []
        (inbox / "big.wav.part").rename(inbox / "big.wav")  # the copy finished: renamed into place
        w.wait_calls(1)
    assert w.calls == [{"big.wav": 100}]
    assert any("later.yaml arrived; it waits for its recording" in m for m in messages)


def test_a_recording_left_in_the_inbox_is_not_retried_until_its_sidecar_arrives(tmp_path):
    with Watcher(tmp_path, take=False, rescan_s=0.3) as w:
        (w.inbox / "story.wav").write_bytes(b"x" * 50)
        w.wait_calls(1)
        time.sleep(2.0)  # several rescans: the unchanged file is not processed again and again
        assert len(w.calls) == 1
        (w.inbox / "story.yaml").write_text("title: Story\n")  # a recording waits for it: process again
        w.wait_calls(2)
        time.sleep(1.0)
    assert len(w.calls) == 2 and w.calls[1] == {"story.wav": 50}
    assert ("arrived", ["story.yaml"]) in w.events


def test_a_failing_run_does_not_end_the_watch(tmp_path, messages):
    with Watcher(tmp_path, fail_first=True) as w:
        (w.inbox / "a.wav").write_bytes(b"x")
        w.wait_calls(1)
        (w.inbox / "b.wav").write_bytes(b"y")
        w.wait_calls(2)
    assert "b.wav" in w.calls[1]
    assert any("Processing stopped with a problem: the disk is full" in m for m in messages)


def test_a_stop_asked_for_during_a_run_ends_the_watch_when_the_run_returns(tmp_path):
    """Prefect swallows a Ctrl-C that lands as a flow finishes; the CLI's stop event must still end it."""
    w = Watcher(tmp_path)
    real_process = w.process

    def process() -> None:
        real_process()
        w.stop.set()  # what the CLI's SIGINT handler does before raising KeyboardInterrupt

    w.process = process
    (w.inbox / "a.wav").write_bytes(b"x")
    w.thread.start()
    w.thread.join(10)
    assert not w.thread.is_alive() and w.batches == 1 and w.events[-1][0] == "processed"


def test_a_file_missed_by_the_events_is_found_by_the_rescan(tmp_path, monkeypatch):
    import watchfiles

    import storypipe.app.watch

    real_watch = watchfiles.watch

    def deaf_watch(*args, **kwargs):  # a network folder: no change events at all
        for _ in real_watch(*args, **kwargs):
            yield set()

    monkeypatch.setattr(storypipe.app.watch.watchfiles, "watch", deaf_watch)
    with Watcher(tmp_path, rescan_s=0.5, burst_s=0.0) as w:
        (w.inbox / "quiet.wav").write_bytes(b"x" * 10)
        w.wait_calls(1, timeout=5)
    assert w.calls == [{"quiet.wav": 10}]


def test_watch_settings_come_from_the_config_and_environment(settings, monkeypatch):
    from storypipe.core.settings import load_settings

    assert settings.watch == WatchSettings(settle_s=5.0, burst_s=10.0, force_polling=False, rescan_s=60.0)
    monkeypatch.setenv("STORYPIPE_WATCH__FORCE_POLLING", "true")
    assert load_settings().watch.force_polling is True


# The Prefect way ----------------------------------------------------------------------------------


def test_prefect_yaml_declares_a_deployment_of_the_inbox_flow():
    from prefect.flows import load_flow_from_entrypoint

    spec = yaml.safe_load((PROJECT_DIR / "prefect.yaml").read_text())
    (deployment,) = spec["deployments"]
    assert deployment["work_pool"]["name"] == "storypipe"
    assert deployment["schedules"][0]["interval"] == 600
    cwd = os.getcwd()
    os.chdir(PROJECT_DIR)  # prefect deploy runs from the project folder
    try:
        flow = load_flow_from_entrypoint(deployment["entrypoint"])
    finally:
        os.chdir(cwd)
    assert flow.name == "process-inbox"
    assert flow.validate_parameters(deployment["parameters"]) == {"root": "."}


def test_serve_passes_the_root_and_the_interval(monkeypatch, tmp_path):
    from datetime import timedelta

    import storypipe.flows.serve

    seen = {}
    monkeypatch.setattr(storypipe.flows.serve.process_inbox, "serve", lambda **kw: seen.update(kw))
    storypipe.flows.serve.main(["--root", str(tmp_path), "--every", "5"])
    assert seen["parameters"] == {"root": str(tmp_path.resolve())}
    assert seen["interval"] == timedelta(minutes=5) and seen["name"] == "storypipe-inbox"


# The real command -----------------------------------------------------------------------------------


def copy_slowly(src: Path, dest: Path, pieces: int = 8, pause_s: float = 0.25) -> None:
    data = src.read_bytes()
    step = len(data) // pieces + 1
    with dest.open("wb") as f:
        for i in range(0, len(data), step):
            f.write(data[i:i + step])
            f.flush()
            time.sleep(pause_s)


def start_watch(root: Path, env: dict, out: Path) -> subprocess.Popen:
    """`storypipe watch` in its own process group, its output in `out`, once it says it is watching."""
    with out.open("w") as log_file:
        proc = subprocess.Popen([str(STORYPIPE), "watch", "--root", str(root)], stdout=log_file,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + 60
    try:
        while "Press Ctrl-C to stop" not in out.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, out.read_text()
            time.sleep(0.1)
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)  # never left behind (its own group: start_new_session)
        proc.wait()
        raise
    return proc


def stopped(proc: subprocess.Popen, out: Path, timeout: float = 60) -> int:
    """The exit status; a process (group) that does not stop in time is killed, never left behind."""
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # started with start_new_session: its own group
        proc.wait()
        raise AssertionError(f"storypipe watch did not stop when asked:\n{out.read_text()[-3000:]}") from None


def wait_for_state(root: Path, filename: str, state: str, proc: subprocess.Popen, out: Path,
                   timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"storypipe watch stopped by itself:\n{out.read_text()}"
        for p in (root / "transcripts").glob("*/story.json"):
            try:
                story = json.loads(p.read_text())
            except (OSError, ValueError):
                continue  # being written
            if story["source"]["filename"] == filename and story["state"] == state:
                return story
        time.sleep(0.5)
    raise AssertionError(f"{filename} did not reach {state!r} within {timeout} s:\n{out.read_text()[-3000:]}")


@pytest.mark.e2e
def test_storypipe_watch_processes_arrivals_until_ctrl_c(tmp_path, prefect_api):
    root = tmp_path / "root"
    inbox = root / "audio" / "inbox"
    inbox.mkdir(parents=True)
    made = tmp_path / "made"
    first = af.speech(made, "Interview 3.wav", "I learned that my voice matters to the people who run the service.")
    second = af.speech(made, "second.wav", "We met every week in the library and it changed how I see myself.")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORYPIPE_")}
    env.update(STORYPIPE_WATCH__SETTLE_S="1", STORYPIPE_WATCH__BURST_S="1",
               # not kept waiting by transcriptions of other test runs on this machine
               STORYPIPE_RUN__TRANSCRIBE_PER_MACHINE="8",
               PREFECT_SERVER_ANALYTICS_ENABLED="false", COLUMNS="200")
    out = tmp_path / "watch.log"
    proc = start_watch(root, env, out)
    try:
        started = time.monotonic()
        copy_slowly(first, inbox / first.name)
        story = wait_for_state(root, first.name, "extracted", proc, out)
        first_s = time.monotonic() - started
        assert story["source"]["bytes"] == first.stat().st_size  # never picked up half copied
        started = time.monotonic()
        copy_slowly(second, inbox / second.name)  # a second run in the same process
        wait_for_state(root, second.name, "extracted", proc, out)
        second_s = time.monotonic() - started
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole group
        code = stopped(proc, out)
    text = out.read_text()
    print(f"first arrival processed in {first_s:.1f} s, second in {second_s:.1f} s\n{text}")
    assert code == 0, text
    assert "Interview 3.wav arrived; waiting until it has finished copying" in text
    assert "second.wav has finished copying" in text
    assert "Goodbye" in text
    assert not list(inbox.glob("*.wav")) and not (root / "staging" / "index.csv").exists()


# The command, without a pipeline -------------------------------------------------------------------


def test_watch_command_exits_0_on_ctrl_c(tmp_path, monkeypatch, settings):
    from typer.testing import CliRunner

    import storypipe.app.watch
    from storypipe.app.cli import app

    def interrupted(inbox, process, watch_settings, **kw):
        assert inbox == tmp_path.resolve() / "audio" / "inbox" and watch_settings.settle_s == 5.0
        raise KeyboardInterrupt

    monkeypatch.setattr(storypipe.app.watch, "watch_inbox", interrupted)
    result = CliRunner().invoke(app, ["watch", "--root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert f"Watching {tmp_path.resolve() / 'audio' / 'inbox'} for new recordings" in result.output
    assert "Press Ctrl-C to stop" in said and "Goodbye" in said


def test_watch_with_a_bad_configuration_exits_2(tmp_path, settings):
    from typer.testing import CliRunner

    from storypipe.app.cli import app

    result = CliRunner().invoke(app, ["watch", "--root", str(tmp_path)], env={"STORYPIPE_WATCH__SETTLE_S": "soon"})
    assert result.exit_code == 2 and "Configuration error" in result.output


def test_storypipe_watch_stops_cleanly_on_sigterm(tmp_path, prefect_api):
    """A service manager (systemd, supervisord) stops it with SIGTERM: the same goodbye and exit 0."""
    env = dict(os.environ, PREFECT_SERVER_ANALYTICS_ENABLED="false")
    env = {k: v for k, v in env.items() if not k.startswith("STORYPIPE_")}
    out = tmp_path / "watch.log"
    proc = start_watch(tmp_path / "root", env, out)
    try:
        time.sleep(0.5)
    finally:
        proc.terminate()
        code = stopped(proc, out)
    assert code == 0, out.read_text()
    assert "Goodbye" in out.read_text()
