"""Shared helpers of bench/wer.py and bench/speed.py: paths, references, text normalisation, WER,
decoding audio the way the pipeline does, and timing a child process (wall time + memory).

Benchmarks may read ../shared (tests may not); nothing here downloads anything.
"""

from __future__ import annotations

import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import jiwer
import numpy as np

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
BIN = Path(sys.executable).parent
SHARED_AUDIO = PROJECT.parent / "shared" / "audio"
SAMPLE = PROJECT / "storypipe" / "sample"
if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))

ENGINES = ("openai-whisper", "faster-whisper")


# ---------------------------------------------------------------- references


def read_clips() -> list[tuple[Path, Path]]:
    """(audio, reference) of the read-speech clips: ../shared/audio/read/*.wav and jfk.flac."""
    folder = SHARED_AUDIO / "read"
    audio = sorted(folder.glob("*.wav")) + [folder / "jfk.flac"]
    return [(a, a.with_suffix(".txt")) for a in audio]


def jfk() -> tuple[Path, str]:
    """jfk.flac and its reference (the shared copy, else the one in tests/data)."""
    for folder in (SHARED_AUDIO / "read", PROJECT / "tests" / "data"):
        if (folder / "jfk.flac").is_file() and (folder / "jfk.txt").is_file():
            return folder / "jfk.flac", (folder / "jfk.txt").read_text()
    raise SystemExit("jfk.flac not found in ../shared/audio/read or tests/data")


MEETING = SHARED_AUDIO / "meeting" / "ami-es2004-1min.wav"


def meeting_reference() -> str:
    """The four AMI headset transcripts, concatenated A, B, C, D (their interleaving is unknown)."""
    return " ".join(
        (MEETING.parent / f"{MEETING.stem}.speaker-{ch}.txt").read_text().strip() for ch in "ABCD"
    )


def interview_reference() -> str:
    """storypipe/sample/interview.txt without the `speaker:` labels, turns joined."""
    lines = (SAMPLE / "interview.txt").read_text().splitlines()
    return " ".join(line.split(":", 1)[1].strip() for line in lines if ":" in line)


# ---------------------------------------------------------------- normalisation

# Hesitations dropped from reference and hypothesis alike (openai-whisper's EnglishTextNormalizer
# drops hmm/mm/mhm/mmm/uh/um too); Whisper writes them only sometimes, the AMI annotators always.
FILLERS = {"um", "umm", "uh", "uhm", "hmm", "hm", "mm", "mmm", "mhm", "mm-hmm", "uh-huh", "er", "erm"}

# Abbreviated titles spelled out, as openai-whisper's EnglishTextNormalizer does (LibriVox: "mister").
TITLES = {"mr": "mister", "mrs": "missus", "ms": "miss", "dr": "doctor"}

NORMALISATION = (
    "lower case; curly quotes straightened; punctuation removed; hesitations "
    f"({', '.join(sorted(FILLERS))}) removed from reference and hypothesis alike; hyphens → spaces; "
    "apostrophes removed inside words (don't → dont, 'cause → cause); titles spelled out "
    f"({', '.join(f'{k} → {v}' for k, v in TITLES.items())}); no other number or spelling normalisation"
)
AMI_NORMALISATION = (
    "AMI references only, in addition: spelled-out letters joined (`L_C_D_` → lcd, as Whisper writes LCD); "
    "word fragments of a self-repair dropped — a single letter other than a/i, or a token that is a strict "
    "prefix of the next one (`b buttons`, `may h maybe`, `s somewhat`, `di display`)"
)


def words(text: str, ami: bool = False) -> list[str]:
    """Normalised words (see NORMALISATION; `ami` adds AMI_NORMALISATION)."""
    t = text.lower().replace("\u2019", "'").replace("\u2018", "'")
    if ami:
        t = re.sub(r"\b(?:[a-z]_)+", lambda m: m.group(0).replace("_", ""), t)
    t = re.sub(r"[^\w\s'-]|_", " ", t)
    out: list[str] = []
    for token in t.split():
        token = token.strip("'-")
        if not token or token in FILLERS:
            continue
        for part in token.split("-"):
            part = part.replace("'", "")
            if part and part not in FILLERS:
                out.append(TITLES.get(part, part))
    if ami:
        out = drop_fragments(out)
    return out


def drop_fragments(tokens: list[str]) -> list[str]:
    """Drop self-repair fragments: single letters (but a, i) and a token that starts the next one."""
    out = [t for t in tokens if len(t) > 1 or t in ("a", "i")]
    changed = True
    while changed:
        changed = False
        for i in range(len(out) - 1):
            if out[i + 1].startswith(out[i]) and len(out[i + 1]) > len(out[i]):
                del out[i]
                changed = True
                break
    return out


def normalise(text: str, ami: bool = False) -> str:
    return " ".join(words(text, ami))


# ---------------------------------------------------------------- error rates


@dataclass
class Score:
    errors: int  # substitutions + deletions + insertions
    ref_words: int
    hyp_words: int
    sub: int = 0
    dele: int = 0
    ins: int = 0

    @property
    def wer(self) -> float:
        return self.errors / self.ref_words if self.ref_words else float("nan")


def score(reference: str, hypothesis: str) -> Score:
    """WER parts of two already normalised strings."""
    if not hypothesis.strip():
        n = len(reference.split())
        return Score(n, n, 0, 0, n, 0)
    o = jiwer.process_words(reference, hypothesis)
    return Score(o.substitutions + o.deletions + o.insertions, len(reference.split()), len(hypothesis.split()),
                 o.substitutions, o.deletions, o.insertions)


def errors(reference: str, hypothesis: str) -> list[str]:
    """The alignment's errors as short 'ref → hyp' strings (deletions 'word → ∅', insertions '∅ → word')."""
    if not reference.strip() or not hypothesis.strip():
        return []
    o = jiwer.process_words(reference, hypothesis)
    ref, hyp = o.references[0], o.hypotheses[0]
    out = []
    for a in o.alignments[0]:
        if a.type != "equal":
            r = " ".join(ref[a.ref_start_idx:a.ref_end_idx]) or "∅"
            h = " ".join(hyp[a.hyp_start_idx:a.hyp_end_idx]) or "∅"
            out.append(f"{r} → {h}")
    return out


def total(scores: list[Score]) -> Score:
    """Corpus-level score: errors summed over files, divided by reference words summed."""
    return Score(*(sum(getattr(s, f) for s in scores) for f in ("errors", "ref_words", "hyp_words", "sub", "dele", "ins")))


def bag_error(reference: str, hypothesis: str) -> float:
    """1 - (multiset overlap of words) / (reference words): order-free, insertions not counted."""
    ref, hyp = Counter(reference.split()), Counter(hypothesis.split())
    n = sum(ref.values())
    return 1 - sum((ref & hyp).values()) / n if n else float("nan")


def pct(x: float) -> str:
    return "–" if math.isnan(x) else f"{100 * x:.1f} %"


# ---------------------------------------------------------------- audio


def load_speech(path: Path) -> np.ndarray:
    """16 kHz mono float32, as the pipeline makes it (ingest decodes with ffmpeg, transcribe averages channels)."""
    from storypipe.tasks.common import audio

    channels = 2 if audio.probe(path).channels == 2 else 1
    pcm = audio.decode_pcm16(path, 16000, channels).astype(np.float32) / 32768.0
    return pcm.mean(axis=1) if pcm.ndim == 2 else pcm


def duration_s(path: Path) -> float:
    from storypipe.tasks.common import audio

    return audio.probe(path).duration_s


def ffmpeg() -> str:
    from storypipe.tasks.common.audio import ffmpeg_binary

    return ffmpeg_binary()


# ---------------------------------------------------------------- timing a child process


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def _pss_kib(pid: int) -> int:
    """Proportional set size of one process (shared pages split between their users), KiB."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
            for line in fh:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _label(pid: int) -> str:
    """A short name for a process: the program, or for Python the script or module it runs."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = [a.decode("utf-8", "replace") for a in fh.read().split(b"\0") if a]
    except OSError:
        return "?"
    if not argv:
        return "?"
    name = os.path.basename(argv[0])
    if name.startswith("python") and len(argv) > 1:
        rest = argv[1:]
        if rest[0] == "-m" and len(rest) > 1:
            return rest[1]
        if rest[0] == "-c":
            return "python -c"
        return os.path.basename(rest[0])
    return name


def tree_pss(root: int) -> dict[int, int]:
    """PSS (KiB) of a process and each of its descendants, by pid."""
    kids = _children_map()
    todo, seen = [root], []
    while todo:
        pid = todo.pop()
        seen.append(pid)
        todo += kids.get(pid, [])
    return {p: _pss_kib(p) for p in seen}


@dataclass
class Timed:
    wall: float  # seconds
    max_rss: float  # MiB: largest single process of the tree (os.wait4's ru_maxrss)
    tree_pss: float  # MiB: peak of PSS summed over the whole process tree, sampled
    processes: int  # most processes seen in the tree at once
    stdout: str
    by_process: dict[str, float] = field(default_factory=dict)  # MiB: peak PSS per process name
    stderr: str = ""
    returncode: int = 0
    extra: dict = field(default_factory=dict)


def timed(cmd: list[str], env: dict | None = None, sample_every: float = 0.25, ok=(0,)) -> Timed:
    """Run a command to the end: wall time, peak RSS of its largest process, peak PSS of its whole tree.

    ru_maxrss from os.wait4 covers the child and the descendants it waited for, but is the *largest
    single* process, not their sum; Prefect's temporary API server is a separate process, so the tree's
    summed PSS is sampled from /proc as well (every `sample_every` s, so a very short spike can be missed).
    """
    with tempfile.TemporaryFile() as err:
        return _timed(cmd, env, sample_every, ok, err)


def _timed(cmd: list[str], env: dict | None, sample_every: float, ok, err) -> Timed:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=env, text=True)
    peak = [0.0, 0]
    by_process: dict[str, float] = {}
    labels: dict[int, str] = {}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            pss = tree_pss(proc.pid)
            peak[0], peak[1] = max(peak[0], sum(pss.values()) / 1024), max(peak[1], len(pss))
            for pid, kib in pss.items():
                if pid not in labels:
                    labels[pid] = _label(pid)
                by_process[labels[pid]] = max(by_process.get(labels[pid], 0.0), kib / 1024)
            done.wait(sample_every)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out = proc.stdout.read()
    # Stop sampling before reaping: after wait4 the pid may be reused by an unrelated process.
    done.set()
    sampler.join()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    err.seek(0)
    stderr = err.read().decode("utf-8", "replace")
    if code not in ok:
        tail = "\n".join(stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"{' '.join(cmd[:2])} … exited with {code}:\n{tail}")
    return Timed(wall, usage.ru_maxrss / 1024, peak[0], peak[1], out, by_process, stderr, code)


# ---------------------------------------------------------------- reporting


def machine() -> str:
    """One line about the machine and versions, for the header of a report."""
    from importlib.metadata import version

    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    vers = ", ".join(f"{p} {version(p)}" for p in ("openai-whisper", "faster-whisper", "ctranslate2", "torch", "prefect"))
    return (f"{time.strftime('%Y-%m-%d %H:%M')}, {platform.machine()}, {os.cpu_count()} cores, load average {load} "
            f"(1/5/15 min) at the start; Python {platform.python_version()}, {vers}")


def table(header: list[str], rows: list[list[str]], align: list[str] | None = None) -> str:
    align = align or ["---"] + ["--:"] * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)
