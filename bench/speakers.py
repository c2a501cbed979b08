"""Benchmark: who spoke each word (tasks/transcribe/speakers.py), on real Whisper words. Run by hand:

    .venv/bin/python bench/speakers.py --split tune          # while tuning: the tune split only
    .venv/bin/python bench/speakers.py --split test --old    # once, configuration frozen; old code beside
    .venv/bin/python bench/speakers.py --make-test-fixture   # tests/data/two-voices.* (the unit test's)

Prints markdown (the figures in bench/speakers.md). Everything it reads is in the project:
bench/interviews (scripts), bench/audio (real speech, see its ATTRIBUTION.md), tests/data/jfk.flac.

What is measured
- Synthetic interviews (bench/speaker_fixtures.PAIR_CASES): 24 espeak-ng voice pairs, one per written
  interview, split tune/test by the interview's number before anything was tuned. Each pair as mono
  (the voices mixed), split stereo (one voice per channel, -20 dB bleed) and, for 8 pairs, with room
  sound (pink or brown noise at a stated SNR, some with reverb; -12 dB bleed in stereo). One pair is
  also the whole 7-minute interview.
- Real speech (speaker_fixtures.real_recordings): two-person splices of the LibriVox reader, J.F.
  Kennedy and AMI meeting speakers (one also through a phone line), and the AMI meeting's last 30 s
  as it was spoken.
- Word accuracy: each Whisper word's label against the speaker at the word's middle. "names" counts
  a word right only under the right name (storyteller = the voice with more words, the same rule as
  the pipeline; for real splices, the person with more words); "voices" under the best one-to-one
  renaming (the clustering alone). The natural AMI excerpt is scored by voices, on words where exactly
  one person speaks.
- The old code: `git show HEAD:tasks/transcribe/speakers.py` (and HEAD's [speakers.diarize]) loaded
  as a separate module, run on the same words (`--old`).
- Time: label_speakers against the transcription (VAD + Whisper, the pipeline's transcribe_speech)
  of the same audio.

Transcriptions are cached in bench/.cache/speakers/ by the audio's SHA-1 (Whisper is most of the time).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from scipy.optimize import linear_sum_assignment

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
sys.path.insert(0, str(PROJECT))

from bench.speaker_fixtures import (  # noqa: E402
    PAIR_CASES, SAMPLE_RATE, TIMBRE_CASES, Interview, PairCase, Recording, real_recordings,
)
from storypipe.core.models import Segment  # noqa: E402
from storypipe.core.settings import load_settings  # noqa: E402
from storypipe.tasks.transcribe import speakers  # noqa: E402

CACHE = HERE / ".cache" / "speakers"
TEST_FIXTURE = PROJECT / "tests" / "data" / "two-voices"


# --- transcription, cached -----------------------------------------------------------------------


def transcribe(mono: np.ndarray, settings) -> tuple[list[Segment], float]:
    """The pipeline's own transcription (VAD, Whisper in batches, non-speech dropped) and its seconds."""
    key = hashlib.sha1(np.ascontiguousarray(mono, dtype=np.float32).tobytes()).hexdigest()[:16]
    path = CACHE / f"{key}.json"
    if path.exists():
        data = json.loads(path.read_text())
        return [Segment.model_validate(s) for s in data["segments"]], data["seconds"]
    from storypipe.tasks.transcribe import transcribe_speech
    from storypipe.tasks.transcribe.engines import get_engine

    engine = get_engine(settings.transcribe)
    started = time.perf_counter()
    segments = transcribe_speech(engine, mono, settings, "en")[0]
    seconds = time.perf_counter() - started
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"seconds": seconds, "segments": [s.model_dump(mode="json") for s in segments]}))
    return segments, seconds


# --- the old code, for comparison ----------------------------------------------------------------


def old_module():
    """HEAD's speakers.py as its own module, and HEAD's [speakers] settings for it."""
    source = subprocess.run(["git", "show", "HEAD:tasks/transcribe/speakers.py"], cwd=PROJECT,
                            capture_output=True, text=True, check=True).stdout
    toml = subprocess.run(["git", "show", "HEAD:config/pipeline.toml"], cwd=PROJECT,
                          capture_output=True, text=True, check=True).stdout
    with tempfile.TemporaryDirectory(prefix="old-speakers-") as tmp:
        path = Path(tmp) / "old_speakers.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location("old_speakers", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["old_speakers"] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    old = tomllib.loads(toml)["speakers"]
    from storypipe.core.settings import StereoSettings

    cfg = SimpleNamespace(default_count=old["default_count"], stereo=StereoSettings(**old["stereo"]),
                          diarize=SimpleNamespace(**old["diarize"]))
    return module, cfg


# --- scoring -------------------------------------------------------------------------------------


def scores(labels: list[str], truth: list[str | None]) -> tuple[float, float]:
    """(accuracy with the names as given, accuracy under the best one-to-one renaming); words whose
    truth is None are not scored."""
    pairs = [(a, b) for a, b in zip(labels, truth) if b is not None]
    if not pairs:
        return float("nan"), float("nan")
    named = float(np.mean([a == b for a, b in pairs]))
    hyp, ref = sorted({a for a, _ in pairs}), sorted({b for _, b in pairs})
    m = np.array([[sum(1 for a, b in pairs if a == h and b == r) for r in ref] for h in hyp])
    rows, cols = linear_sum_assignment(-m)
    return named, float(m[rows, cols].sum() / len(pairs))


def word_labels(out: list[Segment]) -> list[tuple[float, str]]:
    return [((w.start + w.end) / 2, s.speaker) for s in out for w in s.words]


def role_truth(spans: list[tuple[float, float, str]], words: list[tuple[float, str | None]]) -> dict[str, str]:
    """Real splices: the person with more scored words is the storyteller, the other the interviewer."""
    counts: dict[str, int] = {}
    for _, who in words:
        if who is not None:
            counts[who] = counts.get(who, 0) + 1
    ranked = sorted(counts, key=lambda w: -counts[w])
    return {who: name for who, name in zip(ranked, ("storyteller", "interviewer"))}


def md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(f"{c:.3f}" if isinstance(c, float) else str(c) for c in row) + " |")
    return "\n".join(lines)


class Runner:
    """label_speakers of the new code (and the old, when asked), timed, on one recording's words."""

    def __init__(self, settings, with_old: bool):
        self.settings = settings
        self.old = old_module() if with_old else None

    def label(self, segments, mono, channels, n=2, old=False, repeat=1):
        """The labelled segments and the best wall time of `repeat` runs (the machine is shared)."""
        best = float("inf")
        for _ in range(repeat):
            started = time.perf_counter()
            if old:
                module, cfg = self.old
                out = module.label_speakers(segments, mono, channels, n, None, cfg, SAMPLE_RATE)
            else:
                out = speakers.label_speakers(segments, mono, channels, n, None, self.settings.speakers, SAMPLE_RATE)
            best = min(best, time.perf_counter() - started)
        return out, best


# --- synthetic pairs -----------------------------------------------------------------------------


def variants(case: PairCase) -> list[tuple[str, Interview, bool]]:
    """(label, interview, stereo?) for a pair: mono, split stereo, and with its room sound if it has one."""
    clean = case.build()
    out = [("mono", clean, False), ("stereo", clean, True)]
    if case.room is not None:
        roomy = case.build(case.room, bleed_db=-12.0)
        out += [(f"mono, {case.room.describe()}", roomy, False), (f"stereo, {case.room.describe()}", roomy, True)]
    return out


def bench_pairs(runner: Runner, split: str, timings: list, full: bool, cases: list[PairCase] | None = None,
                mono_only: bool = False) -> tuple[str, list]:
    rows, worst = [], []
    for case in cases or PAIR_CASES:
        if split != "all" and case.split != split or case.full != full:
            continue
        for label, iv, stereo in variants(case):
            if mono_only and stereo:
                continue
            segments, whisper_s = transcribe(iv.mono, runner.settings)
            channels = iv.stereo if stereo else None
            truth = None
            row = [case.name, case.kind, case.split, label, f"{iv.duration:.0f} s"]
            for old in ([True] if runner.old else []) + [False]:
                out, seconds = runner.label(segments, iv.mono, channels, old=old, repeat=3 if full else 1)
                got = word_labels(out)
                truth = [iv.speaker_at(t) for t, _ in got]
                named, voices = scores([g[1] for g in got], truth)
                changes = sum(1 for a, b in zip(out, out[1:]) if a.speaker != b.speaker)
                row += [named] if old else [named, voices, f"{changes} ({len(iv.turns) - 1})"]
                if not stereo:
                    timings.append((f"{case.name}, {label}{' (old)' if old else ''}", iv.duration, whisper_s, seconds))
                if not old:
                    worst.append((named, f"{case.name} {label}"))
            row.insert(5, len(truth))
            rows.append(row)
    header = ["voices", "kind", "split", "input", "length", "words"]
    header += (["old: accuracy (names)"] if runner.old else []) + ["accuracy (names)", "accuracy (voices)",
                                                                    "speaker changes (true)"]
    return md_table(header, rows), worst


# --- real recordings -----------------------------------------------------------------------------


def bench_real(runner: Runner, split: str, timings: list) -> tuple[str, list]:
    rows, worst = [], []
    for rec in real_recordings():
        if split != "all" and rec.split != split:
            continue
        segments, whisper_s = transcribe(rec.mono, runner.settings)
        row = [rec.name, rec.split, f"{rec.duration:.0f} s"]
        for old in ([True] if runner.old else []) + [False]:
            out, seconds = runner.label(segments, rec.mono, None, old=old)
            got = word_labels(out)
            truth = [rec.speaker_at(t) for t, _ in got]
            roles = role_truth(rec.spans, list(zip([t for t, _ in got], truth)))
            named, voices = scores([g[1] for g in got], [roles.get(t) if t else None for t in truth])
            primary = voices if rec.natural else named
            row += [primary] if old else [named if not rec.natural else "n/a", voices]
            timings.append((f"{rec.name}{' (old)' if old else ''}", rec.duration, whisper_s, seconds))
            if not old:
                worst.append((primary, rec.name))
        row.insert(3, sum(1 for t in truth if t is not None))
        rows.append(row)
    header = ["recording", "split", "length", "words scored"]
    header += (["old: accuracy"] if runner.old else []) + ["accuracy (names)", "accuracy (voices)"]
    return md_table(header, rows), worst


def bench_ami(runner: Runner) -> str:
    """The AMI minute with its four people (n_speakers=4): word accuracy where one person speaks."""
    from bench.speaker_fixtures import REAL_AUDIO, _load, read_rttm

    mono = _load(REAL_AUDIO / "ami-es2004-1min.flac")
    ref = read_rttm(REAL_AUDIO / "ami-es2004-1min.rttm")
    rec = Recording("AMI", "test", mono, ref, natural=True)
    segments, _ = transcribe(mono, runner.settings)
    rows = []
    for n in (4, 2):
        row = [f"n_speakers={n}"]
        for old in ([True] if runner.old else []) + [False]:
            out, _ = runner.label(segments, mono, None, n=n, old=old)
            got = word_labels(out)
            row.append(scores([g[1] for g in got], [rec.speaker_at(t) for t, _ in got])[1])
        rows.append(row)
    return md_table(["setting"] + (["old: accuracy (voices)"] if runner.old else []) + ["accuracy (voices)"], rows)


# --- the committed unit-test fixture -------------------------------------------------------------


def make_test_fixture(settings) -> None:
    """tests/data/two-voices.flac (LibriVox reader + J.F. Kennedy, spliced) and its Whisper words
    with the true speaker of each, for tests/unit/transcribe/test_speakers.py."""
    from storypipe.tasks.common.audio import write_wav

    rec = next(r for r in real_recordings() if r.name.startswith("LibriVox reader + J.F. Kennedy (spliced)"))
    segments, _ = transcribe(rec.mono, settings)
    wav = TEST_FIXTURE.with_suffix(".wav")
    write_wav(wav, (np.clip(rec.mono, -1, 1) * 32767).astype("<i2"), SAMPLE_RATE)
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(wav), "-c:a", "flac",
                    str(TEST_FIXTURE.with_suffix(".flac"))], check=True)
    wav.unlink()
    lines = ["# Words of two-voices.flac: Whisper tiny.en (openai-whisper, the pipeline's transcribe_speech),",
             "# made by `bench/speakers.py --make-test-fixture`; truth = the spliced piece each word's middle",
             "# falls in (reader: LibriVox, JFK: J.F. Kennedy).",
             "# segment\tword\tstart\tend\tprobability\ttruth"]
    for s in segments:
        for w in s.words:
            lines.append(f"{s.id}\t{w.word}\t{w.start:.3f}\t{w.end:.3f}\t{w.probability:.4f}\t"
                         f"{rec.speaker_at((w.start + w.end) / 2)}")
    TEST_FIXTURE.with_suffix(".words.tsv").write_text("\n".join(lines) + "\n")
    print(f"wrote {TEST_FIXTURE.with_suffix('.flac')} ({rec.duration:.1f} s) and its words")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("tune", "test", "all"), default="tune")
    parser.add_argument("--old", action="store_true", help="also run HEAD's speakers.py on the same words")
    parser.add_argument("--no-long", action="store_true", help="skip the whole 7-minute interview")
    parser.add_argument("--make-test-fixture", action="store_true")
    args = parser.parse_args()
    settings = load_settings()
    if args.make_test_fixture:
        make_test_fixture(settings)
        return
    speakers.voice_encoder()
    runner = Runner(settings, args.old)
    timings: list = []
    print(f"# Speaker labelling benchmark, split `{args.split}` (Whisper {settings.transcribe.model}, "
          f"{settings.transcribe.engine})\n", flush=True)
    table, worst = bench_pairs(runner, args.split, timings, full=False)
    print("### Synthetic voice pairs (excerpts of the written interviews)\n\n" + table + "\n", flush=True)
    if not args.no_long and args.split in ("test", "all"):
        table, long_worst = bench_pairs(runner, args.split, timings, full=True)
        worst += long_worst
        print("### A whole interview (7 minutes)\n\n" + table + "\n", flush=True)
    table, _ = bench_pairs(runner, args.split, [], full=False, cases=TIMBRE_CASES, mono_only=True)
    print("### One timbre twice (not a target: the encoder hears one voice; see speaker_fixtures.TIMBRE_CASES)\n\n"
          + table + "\n", flush=True)
    table, real_worst = bench_real(runner, args.split, timings)
    print("### Real speech, two people (mono)\n\n" + table + "\n", flush=True)
    if args.split in ("test", "all"):
        print("### AMI meeting minute, all four people\n\n" + bench_ami(runner) + "\n", flush=True)
    rows = [[name, f"{dur:.0f} s", whisper, spk, spk / whisper] for name, dur, whisper, spk in timings]
    print("### Time: label_speakers against the transcription of the same audio (mono inputs)\n")
    print(md_table(["recording", "length", "transcription s", "label_speakers s", "ratio"], rows) + "\n")
    whole = [t for t in timings if "whole interview" in t[0]]
    if runner.old and len(whole) == 2:
        (_, dur, whisper, old_s), (_, _, _, new_s) = whole
        print(f"Whole {dur / 60:.1f}-minute interview: transcription {whisper:.0f} s, label_speakers {old_s:.1f} s "
              f"before and {new_s:.1f} s now: transcription + speakers {(whisper + new_s) / (whisper + old_s) - 1:+.1%}.\n")
    if worst:
        print(f"Lowest synthetic (names): {min(worst)[0]:.3f} ({min(worst)[1]})")
    if real_worst:
        print(f"Lowest real: {min(real_worst)[0]:.3f} ({min(real_worst)[1]})")


if __name__ == "__main__":
    main()
