"""Benchmark: who-spoke-which-word (tasks/speakers.py) on real Whisper words. Run by hand:

    .venv/bin/python bench/speakers.py [--quick]

Prints markdown tables. Reads ../shared/audio (benchmarks run in this workspace; tests never do).

1. `stereo/stereo_diarization.wav` (one utterance per channel, partly overlapping): Whisper words of
   the mono mix, labelled from the channels; a word's truth is the channel whose reference text holds
   it (words in both texts, like "the", are not scored).
2. Synthetic two-voice interviews (bench/speaker_fixtures.py, three voice pairs/scripts, 60-120 s),
   split stereo (-25 dB bleed; and a harder -10 dB bleed with noise) and mono: accuracy of each
   Whisper word's label against the turn its middle falls in. "names" counts a word right only with
   the right name (storyteller = the voice with more words); "voices" under the best one-to-one
   mapping of labels (clustering quality alone).
3. Real voices spliced into a mono "interview" (LibriVox reader as storyteller, J.F. Kennedy as
   interviewer); and monologues (each of those voices alone, and each synthetic storyteller voice
   reading a whole script) with n_speakers=2, which should stay one speaker.
4. AMI ES2004 meeting minute, n_speakers=4 (and 2): frame-based DER (10 ms frames, 0.25 s collar
   around every reference boundary, overlapping reference speech scored, optimal one-to-one label
   mapping) against the RTTM. The hypothesis is the output segments' spans. Also word accuracy for
   words said where exactly one reference speaker talks.
5. Run time of label_speakers per minute of audio (Whisper excluded), including an 11-minute
   synthetic interview with evenly timed words.
"""

from __future__ import annotations

import argparse
import itertools
import re
import sys
import time
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
sys.path.insert(0, str(PROJECT))

from bench.speaker_fixtures import BENCH_CASES, SAMPLE_RATE, SCRIPTS, build_interview, fake_segments
from storypipe.core.models import Segment
from storypipe.core.settings import load_settings
from storypipe.tasks.transcribe import speakers
from storypipe.tasks.common.audio import decode_pcm16
from storypipe.tasks.transcribe.engines import get_engine

SHARED = PROJECT.parent / "shared" / "audio"
COLLAR_S = 0.25
FRAME_S = 0.01


def norm(word: str) -> str:
    return re.sub(r"[^\w']", "", word.lower())


def load(path: Path, channels: int = 1) -> np.ndarray:
    return decode_pcm16(path, SAMPLE_RATE, channels).astype(np.float32) / 32768.0


def transcribe(engine, mono: np.ndarray) -> list[Segment]:
    return engine.transcribe(mono, [(0.0, round(len(mono) / SAMPLE_RATE, 3))], "en").segments


def timed_label(segments, mono, channels, n_speakers=2, roles=None, repeat=3):
    """label_speakers' output and its best wall and CPU seconds of `repeat` runs (the machine is shared)."""
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        out = speakers.label_speakers(segments, mono, channels, n_speakers, roles)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return out, min(walls), min(cpus)


def scores(labels: list[str], truth: list[str]) -> tuple[float, float]:
    """(accuracy with the names as given, accuracy under the best one-to-one renaming)."""
    if not labels:
        return float("nan"), float("nan")
    named = float(np.mean([a == b for a, b in zip(labels, truth)]))
    hyp, ref = sorted(set(labels)), sorted(set(truth))
    m = np.array([[sum(1 for a, b in zip(labels, truth) if a == h and b == r) for r in ref] for h in hyp])
    rows, cols = linear_sum_assignment(-m)
    return named, float(m[rows, cols].sum() / len(labels))


def word_labels(out: list[Segment]) -> list[tuple[str, float, str]]:
    return [(w.word, (w.start + w.end) / 2, s.speaker) for s in out for w in s.words]


def md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(f"{c:.3f}" if isinstance(c, float) else str(c) for c in row) + " |")
    return "\n".join(lines)


# --- 1. the shared stereo file -------------------------------------------------------------------


def bench_stereo_file(engine, timings: list) -> str:
    wav = SHARED / "stereo" / "stereo_diarization.wav"
    ref = dict(line.split(":", 1) for line in (wav.with_suffix(".txt")).read_text().splitlines() if ":" in line)
    left, right = ({norm(t) for t in ref[k].split()} for k in ("LEFT", "RIGHT"))
    channels = load(wav, 2)
    mono = channels.mean(axis=1)
    segments = transcribe(engine, mono)
    out, wall, cpu = timed_label(segments, mono, channels, roles={"left": "left voice", "right": "right voice"})
    timings.append(("stereo_diarization (split stereo)", len(mono) / SAMPLE_RATE, wall, cpu))
    rows, good, scored = [], 0, 0
    for word, _, label in word_labels(out):
        w = norm(word)
        truth = "left voice" if w in left and w not in right else "right voice" if w in right and w not in left else None
        rows.append(f"{word.strip()}[{label.split()[0][0].upper()}{'' if truth is None else ('' if truth == label else '✗')}]")
        if truth:
            scored += 1
            good += truth == label
    split = speakers.is_split_stereo(channels)
    text = " ".join(rows)
    return (f"### stereo_diarization.wav (split stereo detected: {split})\n\n"
            f"Whisper heard: {text}\n\n"
            + md_table(["words scored", "correct", "accuracy"], [[scored, good, good / max(scored, 1)]]))


# --- 2. synthetic interviews ---------------------------------------------------------------------


def bench_synthetic(engine, timings: list, quick: bool) -> str:
    rows = []
    cases = BENCH_CASES[:1] if quick else BENCH_CASES
    for name, script, voices, wpm, pitch in cases:
        clean = build_interview(SCRIPTS[script], voices, wpm, pitch, bleed_db=-25.0, noise_db=-60.0)
        # One Whisper run per interview: the turns (and so the words) are the same in every variant.
        segments = transcribe(engine, clean.mono)
        words = sum(len(s.words) for s in segments)
        variants = [("stereo (bleed -25 dB)", clean, clean.stereo), ("mono", clean, None)]
        noisy = build_interview(SCRIPTS[script], voices, wpm, pitch, bleed_db=-10.0, noise_db=-45.0)
        variants.insert(1, ("stereo (bleed -10 dB, noise -45 dBFS)", noisy, noisy.stereo))
        for mode, iv, channels in variants:
            out, wall, cpu = timed_label(segments, iv.mono, channels)
            timings.append((f"{name}, {mode}", iv.duration, wall, cpu))
            got = word_labels(out)
            named, voices_acc = scores([g[2] for g in got], [iv.speaker_at(g[1]) for g in got])
            split = speakers.is_split_stereo(channels) if channels is not None else False
            changes = sum(1 for a, b in itertools.pairwise(out) if a.speaker != b.speaker)
            rows.append([name, mode, f"{iv.duration:.0f} s", words, str(split), named, voices_acc,
                         f"{changes} ({len(iv.turns) - 1})"])
    return ("### Synthetic interviews (real Whisper words)\n\n"
            + md_table(["voices", "input", "length", "words", "split detected", "accuracy (names)",
                        "accuracy (voices)", "speaker changes (true)"], rows))


# --- 3. real voices ------------------------------------------------------------------------------


def _pieces_at_pauses(x: np.ndarray, min_pause_s: float = 0.35) -> list[np.ndarray]:
    """Cut a recording at its pauses (frames 30 dB below its loudest), keeping each piece whole."""
    frame = 480
    db = 10 * np.log10(np.mean(x[: len(x) // frame * frame].reshape(-1, frame) ** 2, axis=1) + 1e-12)
    quiet = db < np.percentile(db, 95) - 30
    cuts, run = [], 0
    for i, q in enumerate(quiet):
        run = run + 1 if q else 0
        if run == int(min_pause_s / 0.03):
            cuts.append((i - run // 2) * frame)
    edges = [0, *cuts, len(x)]
    return [x[a:b] for a, b in itertools.pairwise(edges) if b - a > SAMPLE_RATE * 0.5]


def bench_real_voices(engine, timings: list) -> str:
    reader = [load(p) for p in sorted((SHARED / "read").glob("librivox-sense-*.wav"))]
    kennedy = _pieces_at_pauses(load(SHARED / "read" / "jfk.flac"))
    gap = np.zeros(int(0.6 * SAMPLE_RATE), dtype=np.float32)
    parts, spans, t = [], [], 0
    order = list(itertools.chain.from_iterable(itertools.zip_longest(kennedy, reader)))
    for k, piece in enumerate(order):
        if piece is None:
            continue
        who = "interviewer" if any(piece is p for p in kennedy) else "storyteller"
        piece = piece / (np.sqrt(np.mean(piece**2)) + 1e-9) * 0.05
        parts += [piece, gap]
        spans.append((t / SAMPLE_RATE, (t + len(piece)) / SAMPLE_RATE, who))
        t += len(piece) + len(gap)
    mono = np.concatenate(parts).astype(np.float32)

    def truth(m: float) -> str:
        return min(spans, key=lambda s: 0 if s[0] <= m <= s[1] else min(abs(m - s[0]), abs(m - s[1])))[2]

    segments = transcribe(engine, mono)
    out, wall, cpu = timed_label(segments, mono, None)
    timings.append(("real voices spliced (mono)", len(mono) / SAMPLE_RATE, wall, cpu))
    got = word_labels(out)
    named, voices_acc = scores([g[2] for g in got], [truth(g[1]) for g in got])
    rows = [["LibriVox reader + J.F. Kennedy, alternating", f"{len(mono) / SAMPLE_RATE:.0f} s", len(got), named, voices_acc]]
    return ("### Real voices (mono)\n\n"
            + md_table(["recording", "length", "words", "accuracy (names)", "accuracy (voices)"], rows))


def bench_monologues(engine, timings: list) -> str:
    """One voice only, but two speakers expected (no sidecar): how much stays with the storyteller."""
    reader = [load(p) for p in sorted((SHARED / "read").glob("librivox-sense-*.wav"))]
    gap = np.zeros(int(0.6 * SAMPLE_RATE), dtype=np.float32)
    recordings = [("J.F. Kennedy (real)", load(SHARED / "read" / "jfk.flac")),
                  ("LibriVox reader (real)", np.concatenate([np.concatenate([r, gap]) for r in reader]))]
    for _, script, voices, wpm, pitch in BENCH_CASES:
        voice = voices["storyteller"]
        iv = build_interview(SCRIPTS[script], {"interviewer": voice, "storyteller": voice},
                             {"interviewer": wpm["storyteller"], "storyteller": wpm["storyteller"]},
                             {"interviewer": pitch.get("storyteller", 50), "storyteller": pitch.get("storyteller", 50)})
        recordings.append((f"espeak {voice} reading the {script} script", iv.mono))
    rows = []
    for name, audio in recordings:
        segments = transcribe(engine, audio)
        out, wall, cpu = timed_label(segments, audio, None)
        timings.append((f"one voice: {name}", len(audio) / SAMPLE_RATE, wall, cpu))
        labels = [s.speaker for s in out for _ in s.words]
        rows.append([name, f"{len(audio) / SAMPLE_RATE:.0f} s", len(labels),
                     float(np.mean([x == "storyteller" for x in labels])), len(out) - len(segments)])
    return ("### One voice, n_speakers=2 (should stay one speaker)\n\n"
            + md_table(["recording", "length", "words", "share labelled storyteller", "segments added by splits"], rows))


# --- 4. AMI DER ----------------------------------------------------------------------------------


def read_rttm(path: Path) -> list[tuple[float, float, str]]:
    out = []
    for line in path.read_text().splitlines():
        f = line.split()
        if f and f[0] == "SPEAKER":
            out.append((float(f[3]), float(f[3]) + float(f[4]), f[7]))
    return out


def der(reference: list[tuple[float, float, str]], hypothesis: list[tuple[float, float, str]],
        duration: float, collar: float = COLLAR_S, frame: float = FRAME_S) -> dict[str, float]:
    """Frame-based diarization error rate with the optimal one-to-one speaker mapping.

    Frames within `collar` seconds of a reference boundary are not scored. Per frame with r reference
    and h hypothesis speakers: missed max(0, r-h), false alarm max(0, h-r), confusion min(r, h) minus
    the mapped matches. DER = (missed + false alarm + confusion) / reference speech.
    """
    n = int(np.ceil(duration / frame))
    refs, hyps = sorted({s for *_, s in reference}), sorted({s for *_, s in hypothesis})
    R = np.zeros((len(refs), n), dtype=bool)
    H = np.zeros((len(hyps), n), dtype=bool)
    for a, b, s in reference:
        R[refs.index(s), round(a / frame): round(b / frame)] = True
    for a, b, s in hypothesis:
        H[hyps.index(s), round(a / frame): round(b / frame)] = True
    scored = np.ones(n, dtype=bool)
    c = round(collar / frame)
    for a, b, _ in reference:
        for t in (a, b):
            k = round(t / frame)
            scored[max(0, k - c): k + c] = False
    R, H = R[:, scored], H[:, scored]
    overlap = R.astype(int) @ H.T.astype(int)
    rows, cols = linear_sum_assignment(-overlap)
    r, h = R.sum(axis=0), H.sum(axis=0)
    total = r.sum()
    missed = np.maximum(0, r - h).sum()
    false_alarm = np.maximum(0, h - r).sum()
    correct = overlap[rows, cols].sum()
    confusion = np.minimum(r, h).sum() - correct
    return {"der": (missed + false_alarm + confusion) / total, "missed": missed / total,
            "false_alarm": false_alarm / total, "confusion": confusion / total,
            "scored_s": scored.sum() * frame, "mapping": {hyps[j]: refs[i] for i, j in zip(rows, cols)}}


def bench_ami(engine, timings: list) -> str:
    wav = SHARED / "meeting" / "ami-es2004-1min.wav"
    mono = load(wav)
    reference = read_rttm(wav.with_suffix(".rttm"))
    segments = transcribe(engine, mono)
    rows = []
    for n in (4, 2):
        out, wall, cpu = timed_label(segments, mono, None, n_speakers=n)
        timings.append((f"AMI ES2004 1 min (mono, n={n})", len(mono) / SAMPLE_RATE, wall, cpu))
        hyp = [(s.start, s.end, s.speaker) for s in out if s.end > s.start]
        d = der(reference, hyp, len(mono) / SAMPLE_RATE)
        one = der(reference, [(a, b, "one") for a, b, _ in hyp], len(mono) / SAMPLE_RATE)
        # words whose middle falls where exactly one reference speaker talks, under the DER's mapping
        single = [(spk, [s for a, b, s in reference if a <= t <= b]) for _, t, spk in word_labels(out)]
        single = [(d["mapping"].get(spk), active[0]) for spk, active in single if len(active) == 1]
        word_acc = float(np.mean([h == r for h, r in single])) if single else float("nan")
        rows.append([f"n_speakers={n}", d["der"], d["missed"], d["false_alarm"], d["confusion"],
                     one["der"], f"{word_acc:.3f} ({len(single)} words)", f"{d['scored_s']:.1f} s",
                     ", ".join(f"{k}→{v}" for k, v in sorted(d["mapping"].items()))])
    return (f"### AMI ES2004, 60 s, 4 speakers (DER, {COLLAR_S} s collar, overlap scored)\n\n"
            + md_table(["setting", "DER", "missed", "false alarm", "confusion", "DER if all one speaker",
                        "word accuracy", "scored", "label mapping"], rows))


def bench_long(timings: list) -> str:
    """Run time on an 11-minute interview (the three scripts three times over), words from the turns."""
    script = (SCRIPTS["housing"] + SCRIPTS["health"] + SCRIPTS["youth"]) * 3
    iv = build_interview(script, {"interviewer": "en-us+m3", "storyteller": "en-us+f2"})
    segments = fake_segments(iv)
    rows = []
    for mode, channels in (("stereo", iv.stereo), ("mono", None)):
        out, wall, cpu = timed_label(segments, iv.mono, channels, repeat=2)
        timings.append((f"{iv.duration / 60:.0f}-minute interview, evenly timed words ({mode})", iv.duration, wall, cpu))
        got = word_labels(out)
        rows.append([mode, f"{iv.duration / 60:.1f} min", len(got),
                     scores([g[2] for g in got], [iv.speaker_at(g[1]) for g in got])[0]])
    return "### Long interview (m3/f2, words spread over the known turns)\n\n" + md_table(
        ["input", "length", "words", "accuracy (names)"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one synthetic voice pair only")
    args = parser.parse_args()
    settings = load_settings().transcribe
    engine = get_engine(settings)
    started = time.perf_counter()
    speakers.voice_encoder()
    first = time.perf_counter() - started
    timings: list = []
    print(f"# Speaker labelling benchmark (Whisper {settings.model}, {settings.engine})\n")
    for part in (lambda: bench_stereo_file(engine, timings), lambda: bench_synthetic(engine, timings, args.quick),
                 lambda: bench_real_voices(engine, timings), lambda: bench_monologues(engine, timings),
                 lambda: bench_ami(engine, timings),
                 lambda: bench_long(timings)):
        print(part() + "\n", flush=True)
    rows = [[name, f"{dur:.0f} s", wall, cpu, wall / dur * 60, cpu / dur * 60] for name, dur, wall, cpu in timings]
    print(f"### label_speakers run time (Whisper excluded; best of 2-3 runs; loading the voice encoder "
          f"took {first:.1f} s once per process)\n")
    print(md_table(["recording", "length", "wall s", "CPU s", "wall s per min of audio", "CPU s per min"], rows))


if __name__ == "__main__":
    main()
