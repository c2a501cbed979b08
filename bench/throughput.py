"""Throughput: hours of audio per wall-clock hour, one serial `storypipe run` against a Dask cluster.

    .venv/bin/python bench/throughput.py                  # 8 interviews, once each contender
    .venv/bin/python bench/throughput.py --repeat 2       # two rounds, order rotated
    .venv/bin/python bench/throughput.py --stories 4 --source sample   # quick: the demo interview ×4

The same recordings (with sidecars consenting to everything, so every stage runs) go through:
- bare openai-whisper: the `whisper` command with the converted tiny.en checkpoint, all files in one
  process (the model loads once), beam 5, fp16 off, English, condition_on_previous_text off, word
  timestamps on (storypipe computes them too); torch's default threads (2 here)
- `storypipe run`, serial: a fresh root, the default settings (workers = 1, one transcription at a
  time), torch's default threads
- bare openai-whisper, N processes at once: the files dealt out to N such processes, each with one
  thread (ONE_THREAD below): what the hardware gives for running N transcriptions side by side
- `storypipe run` on Dask: a fresh root, STORYPIPE_RUN__DASK_ADDRESS pointing at a
  `distributed.LocalCluster` (N worker processes, 1 thread each, and OMP_NUM_THREADS,
  MKL_NUM_THREADS, OPENBLAS_NUM_THREADS and NUMBA_NUM_THREADS = 1 so torch uses one thread per
  worker) started before the clock starts, as a team's standing cluster would be, and
  STORYPIPE_RUN__TRANSCRIBE_PER_MACHINE = N so the workers on this one machine may transcribe at once.
  Each worker still loads Whisper and spaCy on its first story, inside the timed run.
- the same without NUMBA_NUM_THREADS=1 (what `dask worker` gives by default: Dask sets the other
  three itself), where torch ends up with one thread per core in every worker

Both storypipe runs have the result cache off (STORYPIPE_RUN__CACHE=false: every transcription is
done) and settle_s = 0 (no 2 s wait for copies still arriving). The machine is shared and noisy:
the contenders run one after the other in the same session, and the ratios are what to quote.

Recordings (`--source`):
- `quotes` (default): the synthetic two-voice interviews (espeak-ng, 3.5-4.6 min each) that
  bench/quotes_eval.py cached under bench/.cache/quotes/; the shortest N. When fewer than N are
  cached, the missing ones are synthesised from the bench/quotes/*.txt scripts the same way (into
  bench/.cache/throughput/).
- `sample`: storypipe/sample/interview.mp3 (2 min 14 s) re-encoded N times at slightly different gains,
  so that each is a distinct story.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    BIN,
    HERE,
    PROJECT,
    SAMPLE,
    Timed,
    duration_s,
    ffmpeg,
    log,
    machine,
    table,
    timed,
    tree_pss,
)

from storypipe.core.store import Store  # noqa: E402

QUOTES_CACHE = HERE / ".cache" / "quotes" / "root" / "audio" / "originals"
OWN_CACHE = HERE / ".cache" / "throughput"

CONTENDERS = {
    "engine": "bare openai-whisper (one process, word timestamps)",
    "engine-par": "bare openai-whisper, {n} processes × 1 thread at once",
    "serial": "`storypipe run`, serial (workers = 1)",
    "dask": "`storypipe run` on Dask ({n} workers × 1 thread)",
    "dask-numba": "the same, without NUMBA_NUM_THREADS=1",
}

# One thread per process for every maths library. NUMBA_NUM_THREADS matters: Whisper's word-timing
# DTW is a numba `parallel=True` function, and numba starts its OpenMP pool with one thread per core,
# which sets the OpenMP thread count of the calling thread back to the cores, so that torch then uses
# every core in that thread whatever OMP_NUM_THREADS said (see the notes in throughput.md).
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}

# A LocalCluster in its own process, so the benchmark can sample its memory and stop it cleanly.
CLUSTER_CHILD = """\
import json, os, sys
from distributed import Client, LocalCluster
if __name__ == "__main__":
    n = int(sys.argv[1])
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                           host="127.0.0.1")
    client = Client(cluster)
    pids = client.run(os.getpid)
    print(json.dumps({"address": cluster.scheduler_address, "pids": sorted(pids.values())}), flush=True)
    sys.stdin.readline()  # until the benchmark says stop
    # torch's threads as the stories saw them: in each worker's task thread, not its event loop
    probe = lambda: __import__("torch").get_num_threads()  # noqa: E731
    threads = client.gather([client.submit(probe, workers=[w], pure=False) for w in sorted(pids)])
    print(json.dumps({"torch_threads": threads}), flush=True)
    client.close()
    cluster.close()
"""


def child_env(**extra: str) -> dict:
    env = dict(os.environ, PREFECT_SERVER_ANALYTICS_ENABLED="false", **extra)
    env.pop("OMP_NUM_THREADS", None)  # torch's default (the cores) unless a contender sets it
    for key in [k for k in env if k.startswith("STORYPIPE_")]:
        if key not in extra:
            env.pop(key)
    return env


# ---------------------------------------------------------------- recordings


@dataclass
class Recording:
    audio: Path
    sidecar: dict
    seconds: float


def _consent_all(sidecar: dict) -> dict:
    return {**sidecar, "consent": {"transcript": True, "clips": True, "full_story": True, "anonymise": True}}


def quotes_recordings(n: int) -> list[Recording]:
    import yaml

    found = []
    for wav in sorted(QUOTES_CACHE.glob("*/*.wav")) + sorted(OWN_CACHE.glob("*.wav")):
        side = wav.with_suffix(".yaml")
        sidecar = yaml.safe_load(side.read_text("utf-8")) if side.is_file() else {"title": wav.stem}
        found.append(Recording(wav, _consent_all(sidecar), duration_s(wav)))
    names = {r.audio.stem for r in found}
    if len(found) < n:
        found += synthesise(n - len(found), names)
    return sorted(found, key=lambda r: (r.seconds, r.audio.name))[:n]


def synthesise(n: int, skip: set[str]) -> list[Recording]:
    """Two-voice interviews from bench/quotes/*.txt, as bench/quotes_eval.py makes them."""
    import numpy as np
    import yaml

    from bench.quotes_eval import VOICES, WPM, load_gold
    from bench.speaker_fixtures import SAMPLE_RATE, build_interview

    OWN_CACHE.mkdir(parents=True, exist_ok=True)
    out = []
    for g in [g for g in load_gold("all") if g.name not in skip][:n]:
        log(f"synthesising {g.name}")
        interview = build_interview(g.turns, VOICES, words_per_minute={"interviewer": WPM, "storyteller": WPM})
        wav = OWN_CACHE / f"{g.name}.wav"
        pcm = (np.clip(interview.mono, -1, 1) * 32767).astype("<i2")
        with wave.open(str(wav), "wb") as w:
            w.setnchannels(1), w.setsampwidth(2), w.setframerate(SAMPLE_RATE)
            w.writeframes(pcm.tobytes())
        sidecar = {"title": g.name, "storyteller": g.pseudonym}
        wav.with_suffix(".yaml").write_text(yaml.safe_dump(sidecar), "utf-8")
        out.append(Recording(wav, _consent_all(sidecar), duration_s(wav)))
    if len(out) < n:
        raise SystemExit(f"only {len(out)} more interview scripts in bench/quotes/; ask for fewer --stories")
    return out


def sample_recordings(n: int, tmp: Path) -> list[Recording]:
    """The demo interview n times, each at a slightly different gain (distinct bytes, distinct story)."""
    import yaml

    sidecar = yaml.safe_load((SAMPLE / "interview.yaml").read_text("utf-8"))
    out = []
    for i in range(n):
        dest = tmp / f"interview-{i + 1:02d}.mp3"
        subprocess.run([ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i",
                        str(SAMPLE / "interview.mp3"), "-af", f"volume={1 - 0.01 * i:.2f}", "-c:a", "libmp3lame",
                        "-b:a", "128k", str(dest)], check=True)
        out.append(Recording(dest, _consent_all(sidecar), duration_s(dest)))
    return out


def fresh_root(tmp: Path, name: str, recordings: list[Recording]) -> Path:
    import yaml

    root = tmp / name
    inbox = root / "audio" / "inbox"
    inbox.mkdir(parents=True)
    for r in recordings:
        shutil.copy2(r.audio, inbox / r.audio.name)
        (inbox / f"{r.audio.stem}.yaml").write_text(yaml.safe_dump(r.sidecar), "utf-8")
    return root


# ---------------------------------------------------------------- contenders


@dataclass
class Run:
    key: str
    wall: float
    pss: float  # MiB, peak summed over every process involved (the run's tree, plus the cluster's)
    load: float  # 1-min load average just before
    stages: dict[str, float] = field(default_factory=dict)  # seconds summed over stories, per stage
    words: dict[str, list] = field(default_factory=dict)  # story file -> [(word, start, end)]
    notes: list[str] = field(default_factory=list)


class Sampler:
    """Peak PSS summed over the process trees of some pids (e.g. the Dask cluster), sampled."""

    def __init__(self, pids: list[int], every: float = 0.5):
        self.pids, self.every, self.peak = pids, every, 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._done.is_set():
            total = sum(sum(tree_pss(p).values()) for p in self.pids)
            self.peak = max(self.peak, total / 1024)
            self._done.wait(self.every)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()


def whisper_cmd(files: list[Path], checkpoint: str, out: str) -> list[str]:
    return [str(BIN / "whisper"), *[str(f) for f in files], "--model", checkpoint, "--language", "en",
            "--beam_size", "5", "--fp16", "False", "--condition_on_previous_text", "False", "--word_timestamps",
            "True", "--output_format", "json", "--output_dir", out, "--verbose", "False"]


def engine_run(recordings: list[Recording], checkpoint: str) -> Run:
    """All files in one `whisper` process, torch's default threads."""
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-whisper-") as out:
        t = timed(whisper_cmd([r.audio for r in recordings], checkpoint, out), env=child_env())
        words = _whisper_words(recordings, Path(out))
    return Run("engine", t.wall, t.tree_pss, load, words=words)


def engine_par_run(recordings: list[Recording], checkpoint: str, n: int) -> Run:
    """The files dealt out to n `whisper` processes running at once, one torch thread each (the
    environment of the Dask workers, ONE_THREAD): what the hardware allows."""
    load = os.getloadavg()[0]
    env = child_env(**ONE_THREAD)
    results: list[Timed] = []
    with tempfile.TemporaryDirectory(prefix="bench-whisper-") as out:
        groups = [[r.audio for r in recordings[i::n]] for i in range(n)]
        threads = [threading.Thread(target=lambda g=g: results.append(timed(whisper_cmd(g, checkpoint, out), env=env)))
                   for g in groups if g]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - started
        if len(results) != len(threads):
            raise RuntimeError("a parallel whisper process failed")
        words = _whisper_words(recordings, Path(out))
    return Run("engine-par", wall, sum(t.tree_pss for t in results), load, words=words)


def _whisper_words(recordings: list[Recording], out: Path) -> dict[str, list]:
    words = {}
    for r in recordings:
        data = json.loads((out / f"{r.audio.stem}.json").read_text())
        words[r.audio.name] = [w["word"].strip() for s in data["segments"] for w in s.get("words", [])]
    return words


def storypipe_run(key: str, recordings: list[Recording], tmp: Path, env: dict, extra_pids: list[int] = ()) -> Run:
    root = fresh_root(tmp, f"root-{key}-{time.time_ns()}", recordings)
    load = os.getloadavg()[0]
    with Sampler(list(extra_pids)) as cluster:
        t: Timed = timed([str(BIN / "storypipe"), "run", "--root", str(root)], env=env, ok=(0, 1))
    run = Run(key, t.wall, t.tree_pss + cluster.peak, load)
    store = Store(root)
    states = {}
    for story_id in store.story_ids():
        story = store.read_story(story_id)
        states[story.source.filename] = story.state
        for h in story.history:
            run.stages[h.state] = run.stages.get(h.state, 0.0) + (h.seconds or 0.0)
            if "cache" in (h.note or ""):
                run.notes.append(f"{story.story_id}: {h.note}")
        segments = store.read_transcript(story_id).segments if store.transcript_path(story_id).is_file() else []
        run.words[story.source.filename] = [(w.word, w.start, w.end) for s in segments for w in s.words]
    bad = {f: s for f, s in states.items() if s != "staged"}
    if len(states) != len(recordings) or bad or t.returncode:
        raise RuntimeError(f"{key}: {len(states)} stories of {len(recordings)}, not staged: {bad}, exit {t.returncode}"
                           f"\n{t.stdout[-3000:]}\n{t.stderr[-3000:]}")
    if run.notes:
        raise RuntimeError(f"{key}: transcripts came from the cache: {run.notes}")
    shutil.rmtree(root, ignore_errors=True)
    return run


class Cluster:
    """distributed.LocalCluster in a child process (see CLUSTER_CHILD)."""

    def __init__(self, workers: int, env: dict):
        self.proc = subprocess.Popen([sys.executable, "-c", CLUSTER_CHILD, str(workers)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                     env=child_env(**env), cwd=str(PROJECT))
        info = json.loads(self.proc.stdout.readline())
        self.address, self.worker_pids = info["address"], info["pids"]
        self.torch_threads: list[int] = []

    def close(self) -> None:
        try:
            self.proc.stdin.write("\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
            if line:
                self.torch_threads = json.loads(line)["torch_threads"]
            self.proc.wait(timeout=60)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


def dask_run(key: str, recordings: list[Recording], tmp: Path, workers: int) -> tuple[Run, list[int]]:
    threads = ONE_THREAD if key == "dask" else {k: v for k, v in ONE_THREAD.items() if k != "NUMBA_NUM_THREADS"}
    cluster = Cluster(workers, threads)
    try:
        env = child_env(STORYPIPE_RUN__CACHE="false", STORYPIPE_RUN__SETTLE_S="0",
                        STORYPIPE_RUN__DASK_ADDRESS=cluster.address,
                        STORYPIPE_RUN__TRANSCRIBE_PER_MACHINE=str(workers))
        run = storypipe_run(key, recordings, tmp, env, [cluster.proc.pid])
    finally:
        cluster.close()
    return run, cluster.torch_threads


def serial_run(recordings: list[Recording], tmp: Path) -> Run:
    env = child_env(STORYPIPE_RUN__CACHE="false", STORYPIPE_RUN__SETTLE_S="0")
    return storypipe_run("serial", recordings, tmp, env)


# ---------------------------------------------------------------- reporting


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h"


def clock(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 60}:{s % 60:02d}"


def report(runs: dict[str, list[Run]], audio_s: float, workers: int) -> tuple[str, dict]:
    keys = [k for k in CONTENDERS if runs.get(k)]
    rounds = len(runs[keys[0]])
    walls = {k: [r.wall for r in runs[k]] for k in keys}
    # ratios within a round, then the median over rounds
    ratio = {}
    for k in keys:
        for base in ("engine", "serial"):
            if base in runs:
                ratio[(k, base)] = med([a / b for a, b in zip(walls[k], walls[base])])
    rows = []
    for k in keys:
        w = med(walls[k])
        transcribe = med([r.stages.get("transcribed", 0.0) for r in runs[k]]) if k.startswith(("serial", "dask")) else None
        rows.append([
            CONTENDERS[k].format(n=workers),
            f"{clock(w)}" + (f" ({' / '.join(clock(x) for x in walls[k])})" if rounds > 1 else ""),
            f"{audio_s / w:.2f}",
            f"{1 / ratio[(k, 'engine')]:.2f}×" if ("engine" in runs) else "",
            f"{1 / ratio[(k, 'serial')]:.2f}×" if ("serial" in runs) else "",
            f"{max(r.pss for r in runs[k]):.0f}",
            f"{transcribe:.0f} s" if transcribe is not None else "",
            " / ".join(f"{r.load:.1f}" for r in runs[k]),
        ])
    tbl = table(["contender", "wall" + (f" (median of {rounds})" if rounds > 1 else ""),
                 "hours of audio per hour", "throughput vs bare engine", "throughput vs serial run",
                 "peak memory, MiB (PSS, all processes)", "transcription, summed over stories",
                 "load average before (1 min)"], rows)
    return tbl, ratio


def same_words(runs: dict[str, list[Run]]) -> str:
    if not runs.get("serial") or not runs.get("dask"):
        return ""
    a, b = runs["serial"][0].words, runs["dask"][0].words
    same = sum(a[f] == b.get(f) for f in a)
    return (f"- Transcripts: {same} of {len(a)} stories have the identical word list (words and timings) "
            f"in the serial and the Dask run (torch with 2 threads against 1 thread per worker).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n", 1)[1])
    parser.add_argument("--stories", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="Dask worker processes (1 thread each)")
    parser.add_argument("--source", choices=("quotes", "sample"), default="quotes")
    parser.add_argument("--repeat", type=int, default=1, help="rounds (order rotated each round)")
    parser.add_argument("--only", action="append", choices=list(CONTENDERS), help="only these contenders")
    parser.add_argument("--out", type=Path, default=HERE / "throughput.md")
    args = parser.parse_args()

    from storypipe.core.settings import load_settings
    from storypipe.tasks.transcribe.whisper_model import resolve_checkpoint

    settings = load_settings()
    checkpoint = resolve_checkpoint("tiny.en", settings.transcribe.model_cache_dir())
    if os.environ.get("PREFECT_API_URL"):
        log(f"note: PREFECT_API_URL={os.environ['PREFECT_API_URL']} is set: the runs use that server")
    info = machine()
    keys = args.only or list(CONTENDERS)
    runs: dict[str, list[Run]] = {k: [] for k in keys}
    torch_threads: dict[str, list[int]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp_name:
        tmp = Path(tmp_name)
        recordings = (quotes_recordings(args.stories) if args.source == "quotes"
                      else sample_recordings(args.stories, tmp))
        audio_s = sum(r.seconds for r in recordings)
        log(f"{len(recordings)} recordings, {clock(audio_s)} of audio in all: "
            + ", ".join(f"{r.audio.stem} {clock(r.seconds)}" for r in recordings))
        subprocess.run([sys.executable, "-c", "import torch, whisper, prefect, spacy, distributed"],
                       env=child_env(), capture_output=True, check=False)  # warm the page cache, untimed
        for rnd in range(args.repeat):
            order = keys[rnd % len(keys):] + keys[:rnd % len(keys)]
            for key in order:
                log(f"round {rnd + 1}/{args.repeat}: {CONTENDERS[key].format(n=args.workers)} …")
                if key == "engine":
                    run = engine_run(recordings, checkpoint)
                elif key == "engine-par":
                    run = engine_par_run(recordings, checkpoint, args.workers)
                elif key == "serial":
                    run = serial_run(recordings, tmp)
                else:
                    run, torch_threads[key] = dask_run(key, recordings, tmp, args.workers)
                runs[key].append(run)
                log(f"    {run.wall:.1f} s = {audio_s / run.wall:.2f} h of audio per hour, peak {run.pss:.0f} MiB, "
                    f"load before {run.load:.1f}")

    tbl, ratio = report(runs, audio_s, args.workers)
    lines = []
    if ("dask", "serial") in ratio:
        lines.append(f"- {args.workers} Dask workers carry stories through {1 / ratio[('dask', 'serial')]:.2f}× as "
                     f"fast as one serial run (wall of the serial run / wall of the Dask run, same round).")
    if ("dask-numba", "serial") in ratio:
        lines.append(f"- Without NUMBA_NUM_THREADS=1 (torch then runs one thread per core in every worker): "
                     f"{1 / ratio[('dask-numba', 'serial')]:.2f}× the serial run's throughput.")
    if ("serial", "engine") in ratio:
        lines.append(f"- The serial run takes {ratio[('serial', 'engine')]:.2f}× the bare engine's time (VAD, word "
                     f"timings, speaker labels, quotes, anonymising, staging, Prefect).")
    if ("dask", "engine") in ratio:
        lines.append(f"- The Dask run takes {ratio[('dask', 'engine')]:.2f}× the bare engine's time.")
    if ("engine-par", "engine") in ratio:
        lines.append(f"- What the hardware allows: {args.workers} bare whisper processes at once (1 thread each) get "
                     f"{1 / ratio[('engine-par', 'engine')]:.2f}× the throughput of one (2 threads); the Dask run "
                     f"gets {1 / ratio[('dask', 'serial')] if ('dask', 'serial') in ratio else float('nan'):.2f}× "
                     f"the serial run's.")
    for key, threads in torch_threads.items():
        lines.append(f"- torch threads in the Dask workers' task threads after the run ({CONTENDERS[key].format(n=args.workers)}): "
                     f"{threads}.")
    if same_words(runs):
        lines.append(same_words(runs))
    what = ("the synthetic two-voice interviews of bench/quotes_eval.py (espeak-ng), the shortest "
            f"{len(recordings)}" if args.source == "quotes" else
            f"storypipe/sample/interview.mp3 re-encoded {len(recordings)} times at gains 1.00 to "
            f"{1 - 0.01 * (len(recordings) - 1):.2f}")
    cmd = "bench/throughput.py" + "".join(
        f" {flag} {val}" for flag, val, default in (("--stories", args.stories, 8), ("--workers", args.workers, 2),
                                                    ("--source", args.source, "quotes"),
                                                    ("--repeat", args.repeat, 1)) if val != default)
    cmd += "".join(f" --only {k}" for k in args.only or [])
    text = f"""# Throughput: serial `storypipe run` against a Dask cluster

Generated by `.venv/bin/python {cmd}` ({info}).

Recordings: {what}: {len(recordings)} stories, {clock(audio_s)} of audio ({hours(audio_s)}):
{", ".join(f"{r.audio.stem} ({clock(r.seconds)})" for r in recordings)}. Each sidecar consents to
everything (`full_story` and `anonymise` true), so every stage runs, staging included.

{tbl}

{chr(10).join(lines)}

## How it was measured

- Throughput = hours of audio / hours of wall-clock time, from the start of the command to its end
  (Prefect's temporary server, model loading and staging included). Ratios are taken within a round.
- Bare engine: `whisper <all {len(recordings)} files> --model <converted tiny.en> --beam_size 5 --fp16 False
  --language en --condition_on_previous_text False --word_timestamps True` in one process; torch's
  default threads ({os.cpu_count()} cores here). "{args.workers} processes × 1 thread": the files dealt out
  round-robin to {args.workers} such processes started together, with `OMP_NUM_THREADS=MKL_NUM_THREADS=
  OPENBLAS_NUM_THREADS=NUMBA_NUM_THREADS=1` (as the Dask workers); wall = until the last one ends.
- Serial: `storypipe run --root <fresh root>` with `STORYPIPE_RUN__CACHE=false STORYPIPE_RUN__SETTLE_S=0`,
  everything else default (`workers = 1`, `transcribe_per_machine = 1`); torch's default threads.
- Dask: the same with `STORYPIPE_RUN__DASK_ADDRESS=<scheduler>` and
  `STORYPIPE_RUN__TRANSCRIBE_PER_MACHINE={args.workers}`, against a `distributed.LocalCluster(n_workers={args.workers},
  threads_per_worker=1, processes=True)` started (untimed) before the run, with
  `OMP_NUM_THREADS=MKL_NUM_THREADS=OPENBLAS_NUM_THREADS=NUMBA_NUM_THREADS=1` so torch uses one
  thread per worker. The workers load Whisper and spaCy on their first story, and each starts its
  own temporary Prefect server for its task runs, inside the timed run. "Without NUMBA_NUM_THREADS=1"
  is the same cluster with only the three variables Dask's nanny sets by default.
- Why NUMBA_NUM_THREADS: Whisper's word-timing DTW (`whisper.timing.dtw_cpu`) is a numba
  `parallel=True` function. The first call starts numba's OpenMP pool with NUMBA_NUM_THREADS threads
  (default: the cores), which also sets the OpenMP thread count of the calling thread, so torch
  then uses one thread per core in that thread for every later story, whatever OMP_NUM_THREADS
  says. (In the other direction, importing silero_vad calls `torch.set_num_threads(1)`: the serial
  run's first Whisper window runs on one thread, the rest on two.)
- Peak memory: proportional set size summed over the command's process tree (and, for Dask, the
  cluster's scheduler, nanny and worker processes), sampled from /proc.
- "transcription, summed over stories" is the seconds each story's transcription took (story.json),
  added up: with two at once on {os.cpu_count()} cores, each one takes longer.
- The machine is shared: the load average before each contender is in the table.
"""
    print("\n" + text)
    args.out.write_text(text, "utf-8")
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
