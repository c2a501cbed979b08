"""Nothing lost under faults: a service manager's SIGTERM and a real `kill -9` of a running
`storypipe run` at each stage, then a run that finishes the story. Real Whisper, real Prefect (the
session's server), real processes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from storypipe.core.store import Store
from tests.support import DATA

pytestmark = pytest.mark.e2e

STORYPIPE = Path(sys.executable).parent / "storypipe"
POLL_S = 0.02


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def env_for(root: Path) -> dict:
    env = dict(os.environ, PREFECT_SERVER_ANALYTICS_ENABLED="false",
               STORYPIPE_RUN__SETTLE_S="0", COLUMNS="200")
    return env


def start_run(root: Path) -> subprocess.Popen:
    # Its own process group, so kill -9 takes the run and the temporary Prefect server it started,
    # as a power cut or a laptop that never wakes would.
    return subprocess.Popen([str(STORYPIPE), "run", "--root", str(root)], env=env_for(root), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def story_state(story_json: Path) -> str | None:
    try:
        return json.loads(story_json.read_text("utf-8"))["state"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return None  # not there yet (a write is atomic: a half file is never seen)


def kill_when(proc: subprocess.Popen, story_json: Path, state: str, delay_s: float = 0.0, timeout_s: float = 600,
              sig: int = signal.SIGKILL) -> str:
    """Signal the whole run (SIGKILL: a power cut; SIGTERM: a service manager's stop) as soon as the
    story reaches `state` (plus a delay); returns the state then."""
    deadline = time.monotonic() + timeout_s
    while story_state(story_json) != state:
        assert proc.poll() is None, f"the run ended before {state}:\n{proc.stdout.read()}"
        assert time.monotonic() < deadline, f"{state} never came"
        time.sleep(POLL_S)
    time.sleep(delay_s)
    os.killpg(proc.pid, sig)
    sent = time.monotonic()
    # A service manager waits a few seconds after SIGTERM, then kills: the run must be gone by then.
    proc.wait(timeout=5 if sig == signal.SIGTERM else 30)
    print(f"signal {sig} at {state}: the run exited {time.monotonic() - sent:.2f} s later")
    return story_state(story_json)


def all_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def history_states(story_json: Path) -> list[str]:
    return [h["state"] for h in json.loads(story_json.read_text("utf-8"))["history"]]


def test_a_run_killed_at_every_stage_is_finished_by_the_next(tmp_path, prefect_api):
    root = tmp_path
    store = Store(root).ensure()
    shutil.copy2(DATA / "jfk.flac", store.inbox / "jfk.flac")
    (store.inbox / "jfk.yaml").write_text(
        'title: "Ask not"\nstoryteller: "J."\nconsent: {transcript: true, clips: true, full_story: true, anonymise: false}\n'
    )
    before = {p.name: sha(p) for p in store.inbox.iterdir()}
    story_id = f"jfk-{before['jfk.flac'][:8]}"
    story_json = store.story_dir(story_id) / "story.json"

    # 1. Stopped by SIGTERM during transcription: ingested, the speech copy made, Whisper running.
    proc = start_run(root)
    at = kill_when(proc, story_json, "ingested", delay_s=3.0, sig=signal.SIGTERM)
    assert at == "ingested" and proc.returncode == 143
    assert "Nothing is lost" in proc.stdout.read()
    # 2. Killed as extraction starts (transcription done), 3. as staging starts.
    assert kill_when(start_run(root), story_json, "transcribed") in ("transcribed", "extracted")
    assert kill_when(start_run(root), story_json, "extracted") in ("extracted", "staged")
    # 4. A plain run finishes the story.
    final = subprocess.run([str(STORYPIPE), "run", "--root", str(root)], env=env_for(root), capture_output=True,
                           text=True, timeout=900)
    assert final.returncode == 0, final.stdout + final.stderr

    assert story_state(story_json) == "staged"
    states = history_states(story_json)
    # Each finished stage is done once: ingest once, transcription once (the first run never finished it).
    assert states.count("ingested") == 1 and states.count("transcribed") == 1, states
    assert states.count("extracted") <= 2 and states[-1] == "staged", states  # at most the killed one again
    # No duplicate story, nothing half-written, nothing left claimed, the original intact and in its place.
    assert [p.name for p in store.transcripts.iterdir()] == [story_id]
    leftovers = [p for p in all_files(root) if p.name.endswith(".tmp") or p.name.startswith(".jfk")]
    assert leftovers == []
    assert not (store.inbox / ".claimed").exists() and not any(store.inbox.iterdir())
    assert not [p for p in store.staging.iterdir() if p.name.startswith(".") and p.suffix != ".lock"]
    kept = {p.name: sha(p) for p in store.original_dir(story_id).iterdir()}
    assert kept == before
    for name in ("transcript.json", "quotes.json", "keyphrases.json"):
        json.loads((store.story_dir(story_id) / name).read_text("utf-8"))  # whole, valid JSON
    staged = store.staging / story_id
    sums = dict(line.split("  ")[::-1] for line in (staged / "SHA256SUMS").read_text().splitlines())
    assert all(sha(staged / name) == digest for name, digest in sums.items())


# Two runs at once on one inbox: tests/e2e/test_prefect_server.py starts ten pairs of them, on busy cores.
