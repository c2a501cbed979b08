"""Scale-out, option B: the same recordings carried through on a Dask cluster give the same stories as
one serial run (issue 7).

Two roots get identical inbox files (real speech, espeak-ng). One is processed by `run_inbox` with
the default settings, in this process; the other by `run_inbox` with `run.dask_address` pointing at
a `distributed.LocalCluster` of two worker processes. Everything a story produces must match: ids
and states, transcript text and word timings, quotes, key phrases, and the staged packages (all but
the fields that carry the time of staging).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from storypipe.core.store import Store
from tests.support import audio_fixtures as af

pytestmark = pytest.mark.e2e

# name, words, voice, sidecar. Two stories, one for each worker: one staged (anonymised), one not.
# The staged one runs about 7 s, so that it gives quote candidates (a candidate needs 8 words and 6 s).
NOT_STAGED = "transcript: true, clips: false, full_story: false, anonymise: true"
STAGED = "transcript: true, clips: true, full_story: true, anonymise: {}"
STORIES = [
    ("council.wav", "Nobody asked us before, now they ask us first.", "en-us", NOT_STAGED),
    ("library.wav", ("We met every week in the library with Margaret. I learned that my voice matters, and "
                     "honestly it changed the way I see my whole life now."), "en-us+f2", STAGED.format("true")),
]
STAGED_CONTENT = ("story.mp3", "transcript.txt", "transcript.vtt")  # byte-identical across runs
TIMED_METADATA = {"staged_at", "inputs"}  # metadata.json fields that carry a time (inputs: file mtimes)


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> Path:
    """The recordings and their sidecars, made once."""
    folder = tmp_path_factory.mktemp("recordings")
    for name, text, voice, consent in STORIES:
        af.speech(folder, name, text, voice=voice)
        if consent:
            (folder / name).with_suffix(".yaml").write_text(
                f'title: "{Path(name).stem}"\nstoryteller: "R."\nspeakers: 1\nconsent: {{{consent}}}\n')
    return folder


def new_root(parent: Path, recordings: Path) -> Path:
    root = parent
    inbox = Store(root).ensure().inbox
    for path in recordings.iterdir():
        shutil.copy2(path, inbox / path.name)
    return root


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(root: Path) -> dict:
    """What the run produced, without what carries a time or a duration."""
    store = Store(root)
    out: dict = {}
    for story_json in sorted(store.transcripts.glob("*/story.json")):
        folder = story_json.parent
        story = json.loads(story_json.read_text())
        transcript = json.loads((folder / "transcript.json").read_text())
        quotes = json.loads((folder / "quotes.json").read_text())
        keyphrases = json.loads((folder / "keyphrases.json").read_text())
        entry = {
            "state": story["state"],
            "file": story["source"]["filename"],
            "text": [s["text"] for s in transcript["segments"]],
            "words": [(w["word"], w["start"], w["end"]) for s in transcript["segments"] for w in s["words"]],
            "quotes": [(q["text"], q["start"], q["end"], q["score"]) for q in quotes["quotes"]],
            "keyphrases": keyphrases,
            "txt": (folder / "transcript.txt").read_text(),
            "staged": None,
        }
        staged = store.staging / folder.name
        if staged.is_dir():
            sums = dict(reversed(line.split("  ", 1)) for line in (staged / "SHA256SUMS").read_text().splitlines())
            meta = json.loads((staged / "metadata.json").read_text())
            entry["staged"] = {
                "files": sorted(p.name for p in staged.iterdir()),
                "content": {name: sha(staged / name) for name in STAGED_CONTENT},
                "sums": {name: sums.get(name) for name in STAGED_CONTENT},
                "metadata": {k: v for k, v in meta.items() if k not in TIMED_METADATA},
            }
        out[folder.name] = entry
    return out


def test_dask_cluster_gives_the_same_stories_as_a_serial_run(tmp_path, recordings, clean_env, prefect_harness):
    from distributed import Client, LocalCluster, get_task_stream

    from storypipe.flows.inbox import run_inbox

    # Only waiting for copies to finish; no effect on what a story becomes.
    clean_env.setenv("STORYPIPE_RUN__SETTLE_S", "0")
    # Serial: the default settings (one worker thread, one transcription at a time on this machine).
    serial_root = new_root(tmp_path / "serial", recordings)
    started = time.monotonic()
    serial = run_inbox(str(serial_root))
    serial_s = time.monotonic() - started
    assert sorted(o.result for o in serial) == ["processed"] * len(STORIES), [(o.file, o.result, o.reason) for o in serial]

    # Dask: two worker processes, one thread each, two transcriptions at once on this machine.
    dask_root = new_root(tmp_path / "dask", recordings)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      host="127.0.0.1") as cluster, Client(cluster) as client:
        workers = client.run(os.getpid)
        assert len(workers) == 2 and len(set(workers.values())) == 2
        assert os.getpid() not in workers.values()
        clean_env.setenv("STORYPIPE_RUN__DASK_ADDRESS", cluster.scheduler_address)
        clean_env.setenv("STORYPIPE_RUN__TRANSCRIBE_PER_MACHINE", "2")
        started = time.monotonic()
        with get_task_stream(client) as stream:  # the scheduler's record of which worker ran each task
            parallel = run_inbox(str(dask_root))
        dask_s = time.monotonic() - started
        ran_on = {t["worker"] for t in stream.data}
    print(f"serial {serial_s:.1f} s, dask {dask_s:.1f} s; dask tasks {len(stream.data)} on {len(ran_on)} workers")
    assert sorted(o.result for o in parallel) == ["processed"] * len(STORIES), [(o.file, o.result, o.reason) for o in parallel]
    assert len(stream.data) >= len(STORIES), "the stories were not carried through as tasks on the cluster"
    assert ran_on == set(workers), f"the stories ran on {sorted(ran_on)}, not on both workers {sorted(workers)}"

    a, b = snapshot(serial_root), snapshot(dask_root)
    assert sorted(a) == sorted(b), "different story ids"
    assert len(a) == len(STORIES)
    assert sorted(e["state"] for e in a.values()) == ["extracted", "staged"]
    assert sum(len(e["quotes"]) for e in a.values()) >= 1, "the staged story should give quote candidates"
    for story_id in a:
        for key in a[story_id]:
            assert a[story_id][key] == b[story_id][key], f"{story_id}: {key} differs between the serial and Dask runs"
    assert (Store(serial_root).staging / "index.csv").is_file() and (Store(dask_root).staging / "index.csv").is_file()
