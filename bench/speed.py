"""Speed and memory: bare openai-whisper and faster-whisper against `storypipe run` with each engine.

    .venv/bin/python bench/speed.py                    # ≈7-min interview + jfk.flac, once each
    .venv/bin/python bench/speed.py --repeat 3         # three rounds, order rotated each round
    .venv/bin/python bench/speed.py --only jfk         # quick smoke test (11 s clip)
    .venv/bin/python bench/speed.py --long 60          # 60-min recording: bare faster-whisper vs storypipe run

Same audio, same model (tiny.en, beam 5, best_of 5, English, no prompt conditioning) for every contender:
- bare openai-whisper: the `whisper` command with the converted checkpoint
  (storypipe.tasks.transcribe.whisper_model.resolve_checkpoint), `--beam_size 5 --best_of 5 --fp16 False
  --condition_on_previous_text False --language en`, torch's default threads (the cores, as in the
  pipeline), word timestamps off (its default); and the same with `--word_timestamps True`
- bare faster-whisper: a small child script, WhisperModel(bundled tiny.en folder, device cpu,
  compute_type int8, cpu_threads = cores), transcribe(beam 5, best_of 5,
  language en, condition_on_previous_text False), segments consumed; without and with word timestamps;
  and "two halves at once": the same, with num_workers=2 and cpu_threads=1, the recording cut in two at its
  quietest moment near the middle and the halves decoded side by side, as storypipe's engine uses two cores
- `storypipe run --root <fresh temp root>` with STORYPIPE_TRANSCRIBE__ENGINE=openai-whisper, then
  =faster-whisper: the recording in audio/inbox/ (the interview with the bundled sidecar
  storypipe/sample/interview.yaml as <stem>.yaml). Includes Prefect's temporary server start, ingest,
  VAD, transcription with word timestamps, speaker labels, quotes and key phrases, staging

The machine is shared and noisy: every contender runs in the same session, one after the other, the
order rotated each round, and ratios *within a round* are what to quote. The headline ratio is
`storypipe run` with an engine against that same engine run bare with the same settings (beam 5, best_of
5, word timestamps on, same threads): "run-ow / bare openai-whisper + word timestamps" and
"run-fw / bare faster-whisper + word timestamps" (target ≤ 1.15×). Each run's wall time is also split
into its stages (story.json) and what is around them: start-up before the first stage (imports,
Prefect's server), and the time after the last stage (shutting Prefect down, the summary).
Each child is timed with os.wait4 (wall time; ru_maxrss = largest single process) while /proc is
sampled for the PSS summed over the child's whole process tree (Prefect's server is a separate process).

Audio: the demo interview (storypipe/sample/interview.mp3, 2 min 14 s, synthetic espeak-ng speech)
concatenated three times with ffmpeg's concat demuxer into one 16 kHz mono wav (6 min 41 s), made once
in a temporary folder; and jfk.flac (11 s, real speech). `--long MINUTES` loops the interview to about
that length (a whole number of loops, so the reference stays exact) and runs only bare faster-whisper
(with word timestamps) and `storypipe run` with faster-whisper, once each (`--contenders` picks
others); it reports the wall time until the story is extracted (transcript, speakers, quotes: ready for
review) and the peak memory of the whole process tree; its section is written below the main table of
bench/speed.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    BIN,
    HERE,
    NORMALISATION,
    SAMPLE,
    Timed,
    duration_s,
    ffmpeg,
    interview_reference,
    jfk,
    log,
    machine,
    normalise,
    pct,
    score,
    table,
    timed,
    _pss_kib,
)
from storypipe.app import prefect_server# noqa: E402
from storypipe.core.settings import load_settings  # noqa: E402
from storypipe.core.store import Store  # noqa: E402

TARGET_SAME_ENGINE_RATIO = 1.15  # storypipe run / the same engine bare, same settings (word timestamps on)
TARGET_WER_POINTS = 1.0  # ... at a WER no more than this many points above that bare engine's
TARGET_MEMORY_MIB = 1.5e9 / 2**20  # 1.5 GB
TARGET_LONG_READY_S = 300.0  # moonshot: a 60-min interview ready for review in ≤ 5 min (faster-whisper)

# storypipe run with an engine, and the bare contender it is judged against (same engine, same settings).
SAME_ENGINE = {"run-ow": "whisper-words", "run-fw": "fw-words"}

LONG_MARK = "<!-- bench/speed.py --long section -->"

CONTENDERS = {
    "whisper": "bare openai-whisper (`whisper` CLI)",
    "whisper-words": "bare openai-whisper + word timestamps",
    "fw": "bare faster-whisper (int8)",
    "fw-words": "bare faster-whisper + word timestamps",
    "fw-halves": "bare faster-whisper + word timestamps, two halves at once (1 thread each)",
    "run-ow": "`storypipe run`, openai-whisper",
    "run-fw": "`storypipe run`, faster-whisper",
}
LONG_CONTENDERS = ("fw-words", "run-fw")

FASTER_CHILD = """\
import os, sys
from faster_whisper import WhisperModel
audio, model_dir, words = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
model = WhisperModel(model_dir, device="cpu", compute_type="int8", cpu_threads=os.cpu_count() or 0)
segments, _ = model.transcribe(audio, language="en", beam_size=5, best_of=5, condition_on_previous_text=False,
                               word_timestamps=words)
print(" ".join(s.text.strip() for s in segments))  # consuming the generator is the decoding
"""

# What storypipe's faster-whisper engine does with two cores (tasks/engine_faster.py, [transcribe] parallel):
# two pieces decoded at once by CTranslate2's num_workers, one thread each. Here the pieces are simply the
# halves, cut at the quietest half second within 20 s of the middle; no VAD.
FASTER_HALVES_CHILD = """\
import sys
from concurrent.futures import ThreadPoolExecutor
import numpy as np
from faster_whisper import WhisperModel, decode_audio
audio, model_dir, words = decode_audio(sys.argv[1], 16000), sys.argv[2], sys.argv[3] == "1"
model = WhisperModel(model_dir, device="cpu", compute_type="int8", cpu_threads=1, num_workers=2)
energy = np.convolve(audio ** 2, np.ones(8000) / 8000, mode="same")
lo, hi = max(0, len(audio) // 2 - 320000), min(len(audio), len(audio) // 2 + 320000)
cut = lo + int(np.argmin(energy[lo:hi]))
def one(piece):
    segments, _ = model.transcribe(piece, language="en", beam_size=5, best_of=5, condition_on_previous_text=False,
                                   word_timestamps=words)
    return " ".join(s.text.strip() for s in segments)
with ThreadPoolExecutor(2) as pool:
    print(" ".join(pool.map(one, (audio[:cut], audio[cut:]))))
"""


# ---------------------------------------------------------------- contenders


EXTRA_ENV: dict[str, str] = {}  # --env KEY=VALUE, given to every child


# storypipe's own Prefect server (storypipe/prefect_server.py) outlives the command for server_idle_s; each
# contender has a fresh temporary root, hence its own server, and one left idling would use the cores the
# next contender is timed on. So the bench's servers stop a second after their command (--env overrides).
BENCH_ENV = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "STORYPIPE_PREFECT__SERVER_IDLE_S": "1"}


def child_env(**extra: str) -> dict:
    return {**os.environ, **BENCH_ENV, **EXTRA_ENV, **extra}


def warm_caches() -> None:
    """Import the heavy libraries once, untimed, so the first contender does not pay for a cold page cache."""
    code = "import torch, whisper, faster_whisper, ctranslate2, prefect, spacy, silero_vad"
    subprocess.run([sys.executable, "-c", code], env=child_env(), capture_output=True, check=False)


def bare_whisper(audio: Path, checkpoint: str, words: bool) -> tuple[Timed, str]:
    with tempfile.TemporaryDirectory(prefix="bench-whisper-") as out:
        cmd = [str(BIN / "whisper"), str(audio), "--model", checkpoint, "--language", "en", "--beam_size", "5",
               "--best_of", "5", "--fp16", "False", "--condition_on_previous_text", "False", "--output_format", "txt",
               "--output_dir", out, "--verbose", "False"]
        if words:
            cmd += ["--word_timestamps", "True"]
        result = timed(cmd, env=child_env())
        text = next(Path(out).glob("*.txt")).read_text()
    return result, text


def bare_faster(audio: Path, model_dir: Path, words: bool, halves: bool = False) -> tuple[Timed, str]:
    result = timed([sys.executable, "-c", FASTER_HALVES_CHILD if halves else FASTER_CHILD, str(audio),
                    str(model_dir), "1" if words else "0"], env=child_env())
    return result, result.stdout


def storypipe_run(audio: Path, sidecar: Path | None, engine: str) -> tuple[Timed, str]:
    with tempfile.TemporaryDirectory(prefix="bench-root-") as root:
        inbox = Path(root) / "audio" / "inbox"
        inbox.mkdir(parents=True)
        shutil.copy2(audio, inbox / audio.name)
        if sidecar:
            shutil.copy2(sidecar, inbox / (audio.stem + ".yaml"))
        # The root's Prefect server is a long-lived service (storypipe/prefect_server.py): the first
        # command on a new root starts it, every later one finds it up. It is started here, untimed,
        # and its start-up is reported on its own; its memory is added to the run's.
        settings = load_settings(Path(root))
        t0 = time.monotonic()
        server = prefect_server.ensure(Path(root), settings)
        server_start_s = time.monotonic() - t0
        try:
            began = time.time()
            result = timed([str(BIN / "storypipe"), "run", "--root", root],
                           env=child_env(STORYPIPE_TRANSCRIBE__ENGINE=engine), ok=(0, 1))
            server_pss = _pss_kib(server.pid) / 1024
        finally:
            prefect_server.stop(Path(root), settings)
        result.tree_pss += server_pss
        result.by_process["prefect server (shared)"] = server_pss
        ended = began + result.wall
        store = Store(Path(root))
        stories = store.story_ids()
        if len(stories) != 1:
            raise RuntimeError(f"storypipe run ({engine}) left {len(stories)} stories:\n{result.stdout[-2000:]}")
        story = store.read_story(stories[0])
        if story.state == "failed" or not store.transcript_path(stories[0]).is_file():
            raise RuntimeError(f"storypipe run ({engine}) failed: {story.problems}\n{result.stdout[-2000:]}")
        transcript = store.read_transcript(stories[0])
        stages: dict[str, float] = {}
        reached: dict[str, float] = {}  # seconds from the command's start until each state was recorded
        for h in story.history:
            stages[h.state] = stages.get(h.state, 0.0) + (h.seconds or 0.0)
            reached[h.state] = h.at.timestamp() - began
        first = min(reached.values(), default=0.0) - stages.get("ingested", 0.0)
        result.extra = {"server_start_s": server_start_s, "stages": stages, "state": story.state, "engine": transcript.engine,
                        "reached": reached, "before_first_stage": max(0.0, first),
                        "after_last_stage": max(0.0, ended - began - max(reached.values(), default=0.0))}
        text = " ".join(s.text for s in transcript.segments)
    return result, text


def run_contender(key: str, case: dict, checkpoint: str, model_dir: Path) -> tuple[Timed, str]:
    audio = case["audio"]
    if key in ("whisper", "whisper-words"):
        return bare_whisper(audio, checkpoint, words=key.endswith("words"))
    if key in ("fw", "fw-words", "fw-halves"):
        return bare_faster(audio, model_dir, words=key != "fw", halves=key == "fw-halves")
    return storypipe_run(audio, case["sidecar"], "openai-whisper" if key == "run-ow" else "faster-whisper")


# ---------------------------------------------------------------- audio


def loop_interview(times: int, out: Path) -> Path:
    """The demo interview `times` times in a row, as one 16 kHz mono wav (ffmpeg concat demuxer)."""
    listing = out.with_suffix(".txt")
    listing.write_text(f"file '{(SAMPLE / 'interview.mp3').resolve()}'\n" * times)
    subprocess.run([ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "concat", "-safe", "0",
                    "-i", str(listing), "-ar", "16000", "-ac", "1", "-c:a", "pcm_s16le", str(out)], check=True)
    return out


def clock(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def build_cases(args, tmp: Path) -> list[dict]:
    cases = []
    one = duration_s(SAMPLE / "interview.mp3")
    if args.long:
        n = max(1, round(args.long * 60 / one))
        audio = loop_interview(n, tmp / f"interview-x{n}.wav")
        cases.append({"name": f"interview ×{n} ({clock(duration_s(audio))}, asked {args.long:g} min)", "audio": audio,
                      "sidecar": SAMPLE / "interview.yaml", "ref": " ".join([interview_reference()] * n),
                      "contenders": tuple(args.contenders or LONG_CONTENDERS), "targets": False, "loops": n,
                      "long": True})
        return cases
    if args.only in (None, "interview"):
        audio = loop_interview(3, tmp / "interview-x3.wav")
        cases.append({"name": f"interview ×3 ({clock(duration_s(audio))}, espeak-ng)", "audio": audio,
                      "sidecar": SAMPLE / "interview.yaml", "ref": " ".join([interview_reference()] * 3),
                      "contenders": tuple(args.contenders or CONTENDERS), "targets": True, "loops": 3})
    if args.only in (None, "jfk"):
        audio, ref = jfk()
        cases.append({"name": f"jfk.flac ({duration_s(audio):.0f} s, real speech)", "audio": audio, "sidecar": None,
                      "ref": ref, "contenders": tuple(args.contenders or CONTENDERS), "targets": False})
    return cases


# ---------------------------------------------------------------- reporting


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def fmt_walls(xs: list[float]) -> str:
    return f"{med(xs):.1f} s" + (f" ({' / '.join(f'{x:.1f}' for x in xs)})" if len(xs) > 1 else "")


def same_engine_ratios(runs: dict, key: str) -> list[float]:
    """storypipe run's wall / its engine's bare wall (same settings), round by round."""
    bare = SAME_ENGINE[key]
    return [a.wall / b.wall for (a, _), (b, _) in zip(runs.get(key, []), runs.get(bare, []))]


def case_report(case: dict, runs: dict[str, list[tuple[Timed, str]]], n_rounds: int) -> tuple[str, list[str], str]:
    """Markdown table, target lines and profile table for one recording."""
    dur = duration_s(case["audio"])
    ref = normalise(case["ref"])
    base = [t.wall for t, _ in runs.get("whisper", [])]
    rows, summary = [], {}
    for key in case["contenders"]:
        walls = [t.wall for t, _ in runs[key]]
        rss = max(t.max_rss for t, _ in runs[key])
        pss = max(t.tree_pss for t, _ in runs[key])
        procs = max(t.processes for t, _ in runs[key])
        wers = [score(ref, normalise(text)).wer for _, text in runs[key]]
        summary[key] = {"rss": rss, "pss": pss, "wer": max(wers)}
        same = same_engine_ratios(runs, key) if key in SAME_ENGINE else []
        if key in SAME_ENGINE:
            summary[key]["same"] = med(same)
        rows.append([CONTENDERS[key], fmt_walls(walls), f"{med(walls) / dur:.2f}",
                     ("1 (base)" if key == "whisper" else f"{med([w / b for w, b in zip(walls, base)]):.2f}×")
                     if base else "–",
                     f"**{med(same):.2f}×** (vs {CONTENDERS[SAME_ENGINE[key]]})" if same else "",
                     f"{rss:.0f}", f"{pss:.0f} ({procs})", " / ".join(sorted({pct(w) for w in wers}))])
    tbl = table(["contender", "wall" + (f" (median of {n_rounds})" if n_rounds > 1 else ""), "RTF",
                 "wall / bare openai-whisper", "`storypipe run` / same engine bare, same settings",
                 "peak RSS, MiB (largest process)", "peak PSS, MiB (whole tree, processes)", "WER"], rows)

    targets = []
    for key in ("run-ow", "run-fw"):
        bare = SAME_ENGINE[key]
        if key in summary and bare in summary:
            r, w, bw = summary[key]["same"], summary[key]["wer"], summary[bare]["wer"]
            points = 100 * (w - bw)
            prefect = med([t.extra["before_first_stage"] + t.extra["after_last_stage"] for t, _ in runs[key]])
            inside = med([(t.wall - t.extra["before_first_stage"] - t.extra["after_last_stage"]) / b.wall
                          for (t, _), (b, _) in zip(runs[key], runs[bare])])
            ok = r <= TARGET_SAME_ENGINE_RATIO and points <= TARGET_WER_POINTS
            targets.append(
                f"- {CONTENDERS[key]} ≤ {TARGET_SAME_ENGINE_RATIO}× {CONTENDERS[bare]} (same settings), at a WER at "
                f"most {TARGET_WER_POINTS:g} point above its: {r:.2f}×, WER {pct(w)} vs {pct(bw)} ({points:+.1f} points) "
                f"→ {mark(ok)}" + ("" if r <= TARGET_SAME_ENGINE_RATIO else " (speed)")
                + ("" if points <= TARGET_WER_POINTS else " (WER)")
                + f"; without the {prefect:.1f} s before the first stage and after the last (imports, connecting to "
                  f"Prefect, the summary): {inside:.2f}×")
            if key == "run-fw" and "fw-halves" in runs:
                halves = med([a.wall / b.wall for (a, _), (b, _) in zip(runs[key], runs["fw-halves"])])
                targets.append(f"  - against {CONTENDERS['fw-halves']}, the way storypipe uses the cores: {halves:.2f}×")
    for key in ("run-ow", "run-fw"):
        if key in summary:
            s = summary[key]
            targets.append(f"- peak memory ≤ 1.5 GB ({TARGET_MEMORY_MIB:.0f} MiB), {CONTENDERS[key]}: whole process "
                           f"tree {s['pss']:.0f} MiB PSS (largest process {s['rss']:.0f} MiB RSS) → "
                           f"{mark(s['pss'] <= TARGET_MEMORY_MIB)}")
    if case.get("long") and "run-fw" in summary:
        ready = med([t.extra["reached"].get("extracted", float("nan")) for t, _ in runs["run-fw"]])
        targets.append(f"- moonshot: {clock(dur)} ready for review (transcript, speakers, quotes: the story "
                       f"extracted) with faster-whisper in ≤ {TARGET_LONG_READY_S / 60:.0f} min: {clock(ready)} "
                       f"({ready:.0f} s, RTF {ready / dur:.3f}) → {mark(ready <= TARGET_LONG_READY_S)}; peak memory "
                       f"{summary['run-fw']['pss']:.0f} MiB PSS → {mark(summary['run-fw']['pss'] <= TARGET_MEMORY_MIB)}")

    prof_rows = []
    for key in ("run-ow", "run-fw"):
        for i, (t, _) in enumerate(runs.get(key, [])):
            st = t.extra["stages"]
            parts = [st.get(s, 0.0) for s in ("ingested", "transcribed", "extracted", "staged")]
            edges = [t.extra["before_first_stage"], t.extra["after_last_stage"]]
            rest = t.wall - sum(parts) - sum(edges)
            cells = [f"{x:.1f} s ({100 * x / t.wall:.0f} %)" for x in [edges[0]] + parts + [edges[1], rest]]
            procs = ", ".join(f"{name} {mib:.0f}" for name, mib in sorted(t.by_process.items(), key=lambda x: -x[1])
                              if mib >= 1)
            ready = t.extra["reached"].get("extracted")
            prof_rows.append([f"{CONTENDERS[key]}" + (f", round {i + 1}" if n_rounds > 1 else ""),
                              f"{t.wall:.1f} s", f"{ready:.1f} s" if ready is not None else "–",
                              f"{t.extra['server_start_s']:.1f} s"] + cells
                             + [t.extra["state"], procs])
    profile = table(["run", "wall", "until extracted", "the root's Prefect server starting (untimed, once per root)",
                     "start-up before the first stage (imports, connecting to Prefect)",
                     "ingest", "transcribe", "extract", "stage", "after the last stage (Prefect shutdown, summary)",
                     "between stages (Prefect bookkeeping)", "final state", "peak PSS per process, MiB"],
                    prof_rows) if prof_rows else ""
    return tbl, targets, profile


def mark(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n", 1)[1])
    parser.add_argument("--repeat", type=int, default=1, help="rounds per recording (order rotated each round)")
    parser.add_argument("--only", choices=("jfk", "interview"), help="only this recording")
    parser.add_argument("--long", type=float, metavar="MINUTES",
                        help="loop the interview to about this length; bare faster-whisper and storypipe run with it only")
    parser.add_argument("--contenders", nargs="+", choices=tuple(CONTENDERS), metavar="KEY",
                        help=f"only these ({', '.join(CONTENDERS)}); default: all, and with --long "
                             f"{' '.join(LONG_CONTENDERS)} (once each: it is long)")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra environment for every child, e.g. OMP_WAIT_POLICY=PASSIVE (repeatable)")
    parser.add_argument("--out", type=Path, default=HERE / "speed.md")
    args = parser.parse_args()
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--env wants KEY=VALUE, not {item!r}")
        EXTRA_ENV[key] = value

    from storypipe.core.settings import load_settings
    from storypipe.tasks.transcribe.whisper_model import bundled_model_dir, resolve_checkpoint

    settings = load_settings()
    if settings.transcribe.model != "tiny.en" or settings.transcribe.beam_size != 5:
        log(f"note: config says model {settings.transcribe.model}, beam {settings.transcribe.beam_size}; "
            "the bare contenders use tiny.en, beam 5")
    checkpoint = resolve_checkpoint("tiny.en", settings.transcribe.model_cache_dir())
    model_dir = bundled_model_dir()
    if os.environ.get("PREFECT_API_URL"):
        log(f"note: PREFECT_API_URL={os.environ['PREFECT_API_URL']} is set: storypipe run will use that server "
            "instead of starting its temporary one")
    info = machine() + (f"; extra environment {' '.join(args.env)}" if args.env else "")
    warm_caches()

    sections = []
    with tempfile.TemporaryDirectory(prefix="bench-speed-") as tmp:
        cases = build_cases(args, Path(tmp))
        for case in cases:
            keys = list(case["contenders"])
            runs: dict[str, list[tuple[Timed, str]]] = {k: [] for k in keys}
            for rnd in range(args.repeat):
                order = keys[rnd % len(keys):] + keys[:rnd % len(keys)]
                for key in order:
                    log(f"[{case['name']}] round {rnd + 1}/{args.repeat}: {CONTENDERS[key]} …")
                    t, text = run_contender(key, case, checkpoint, model_dir)
                    runs[key].append((t, text))
                    log(f"    {t.wall:.1f} s, max RSS {t.max_rss:.0f} MiB, tree PSS {t.tree_pss:.0f} MiB, "
                        f"WER {pct(score(normalise(case['ref']), normalise(text)).wer)}")
            # zip() in the ratios pairs round i with round i, whatever the order inside the round
            tbl, targets, profile = case_report(case, runs, args.repeat)
            text = f"### {case['name']}\n\n{tbl}\n"
            if case["targets"]:
                text += "\nTargets (brief, on the ≈7-min interview):\n\n" + "\n".join(targets) + "\n"
            elif args.long:
                text += "\n" + "\n".join(targets) + "\n"
            if profile:
                text += f"\nWhere the time of `storypipe run` goes (story.json history, seconds per stage):\n\n{profile}\n"
            print("\n" + text, flush=True)
            sections.append(text)

    notes = f"""\
- Model tiny.en, beam 5, best_of 5, English, condition_on_previous_text off, for every contender.
  openai-whisper runs fp32 on the CPU; bare faster-whisper int8 in one call with cpu_threads =
  {os.cpu_count()} (the cores; faster-whisper's own default would be 4). storypipe's faster-whisper engine
  uses the same {os.cpu_count()} cores differently: `[transcribe] parallel` batches decoded at once by
  CTranslate2's workers, one thread each ("two halves at once" does the same by hand, without VAD).
  `storypipe run` uses the settings in config/pipeline.toml (word timestamps on, VAD on) and only the
  engine is switched, by STORYPIPE_TRANSCRIBE__ENGINE; Prefect is the root's own server
  (storypipe/prefect_server.py), started before the timed command.
  Before the first contender the heavy libraries are imported once, untimed, to warm the page cache.
- RTF = wall time / audio duration (lower is faster). Ratios are the median over rounds of the ratio
  of walls in the same round. "`storypipe run` / same engine bare" divides by the bare engine *with*
  word timestamps (storypipe computes them), same beam, best_of and threads: the ≤ 1.15× target.
- Peak RSS = os.wait4's ru_maxrss: the largest *single* process among the child and its descendants.
  Peak PSS = proportional set size summed over the child's whole process tree (storypipe: the CLI,
  Prefect's temporary API server, ffmpeg), sampled from /proc every 0.25 s; the memory target is judged on it.
- WER against the reference text (the interview: interview.txt ×3 without speaker labels; jfk: jfk.txt),
  normalised as in bench/wer.py: {NORMALISATION}.
- Profile: the seconds each stage recorded in story.json's history. "Start-up" is from the command's
  start to the beginning of ingest (Python and library imports, Prefect's temporary server, flow
  set-up; the models load on a warm-up thread meanwhile); "after the last stage" is from the last
  history entry to the command's exit (flow teardown, Prefect's server stopping, the summary); "between
  stages" is the rest (Prefect task bookkeeping, result persistence). "Until extracted" is when the
  story reached `extracted` (transcript, speakers, quotes: ready for review), from the command's start
  (story.json records whole seconds, so these splits are good to about a second).
"""
    body = "\n".join(sections)
    if args.long:
        new = f"{LONG_MARK}\n## Long recording (bounded memory), `bench/speed.py --long {args.long:g}`\n\n" \
              f"({info})\n\n{body}"
        old = args.out.read_text() if args.out.exists() else "# Speed and memory\n\n"
        args.out.write_text(old.split(LONG_MARK)[0].rstrip() + "\n\n" + new)
    else:
        what = "the ≈7-min interview (interview.mp3 ×3) and jfk.flac" if not args.only else args.only
        old = args.out.read_text() if args.out.exists() else ""
        keep = (LONG_MARK + old.split(LONG_MARK, 1)[1]) if LONG_MARK in old else ""
        args.out.write_text(
            f"# Speed and memory: bare engines vs `storypipe run`\n\n"
            f"Generated by `bench/speed.py{' --only ' + args.only if args.only else ''}"
            f"{' --repeat ' + str(args.repeat) if args.repeat > 1 else ''}` ({info}) on {what}.\n\n"
            f"Audio: the ≈7-min interview is storypipe/sample/interview.mp3 (2 min 14 s, synthetic espeak-ng "
            f"speech) concatenated three times with ffmpeg's concat demuxer into one 16 kHz mono wav; "
            f"jfk.flac is 11 s of real speech (44.1 kHz stereo), run without a sidecar (default consent: transcribed and mined for quotes, not staged).\n\n"
            f"{body}\n## Notes\n\n{notes}" + (f"\n{keep}" if keep else "")
        )
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
