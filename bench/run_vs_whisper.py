"""Benchmark: `storypipe run` against the bare `whisper` command on the same audio with the same model.

Run by hand (`make bench`); the machine is shared and noisy, so both are timed in the same run, in
turn, and the ratio is what to quote. Prints a markdown table (and writes bench/results.md).

Measured per recording:
- whisper CLI: `whisper FILE --model <the converted tiny.en checkpoint> --beam_size 5 --fp16 False
  --condition_on_previous_text False` (its defaults otherwise), with and without word timestamps
- storypipe run: a fresh root with the file in its inbox (includes Prefect's temporary server start,
  decoding, transcription with word timestamps, quotes, key phrases and staging)
- WER of each against the reference text
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jiwer

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(PROJECT))

from storypipe.core.settings import load_settings  # noqa: E402
from storypipe.core.store import Store  # noqa: E402
from storypipe.tasks.transcribe.whisper_model import resolve_checkpoint  # noqa: E402


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s']", " ", text.lower())).strip()


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB) of the child, and its stdout."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise RuntimeError(f"{cmd[0]} failed")
    return wall, usage.ru_maxrss / 1024, out


def bare_whisper(audio: Path, checkpoint: str, words: bool) -> tuple[float, float, str]:
    with tempfile.TemporaryDirectory() as out:
        cmd = [str(BIN / "whisper"), str(audio), "--model", checkpoint, "--language", "en", "--beam_size", "5",
               "--fp16", "False", "--condition_on_previous_text", "False", "--output_format", "txt",
               "--output_dir", out, "--verbose", "False", "--word_timestamps", str(words)]
        wall, rss, _ = timed(cmd)
        text = next(Path(out).glob("*.txt")).read_text()
    return wall, rss, text


def storypipe_run(audio: Path, sidecar: Path | None) -> tuple[float, float, str, dict]:
    with tempfile.TemporaryDirectory() as root:
        inbox = Path(root) / "audio" / "inbox"
        inbox.mkdir(parents=True)
        shutil.copy2(audio, inbox / audio.name)
        if sidecar:
            shutil.copy2(sidecar, inbox / (audio.stem + ".yaml"))
        env = dict(os.environ, PREFECT_SERVER_ANALYTICS_ENABLED="false")
        wall, rss, _ = timed([str(BIN / "storypipe"), "run", "--root", root], env=env)
        store = Store(Path(root))
        story_id = next(iter(store.story_ids()))
        transcript = store.read_transcript(story_id)
        story = store.read_story(story_id)
        stages = {h.state: h.seconds for h in story.history}
        text = " ".join(s.text for s in transcript.segments)
    return wall, rss, text, stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    settings = load_settings()
    checkpoint = resolve_checkpoint(settings.transcribe.model, settings.transcribe.model_cache_dir())
    sample = PROJECT / "storypipe" / "sample"
    script = (sample / "interview.txt").read_text()
    cases = [
        ("jfk.flac (11 s, real speech)", PROJECT / "tests" / "data" / "jfk.flac", None,
         (PROJECT / "tests" / "data" / "jfk.txt").read_text()),
        ("demo interview (≈2 min, espeak-ng)", sample / "interview.mp3", sample / "interview.yaml",
         " ".join(line.split(":", 1)[1] for line in script.splitlines() if ":" in line)),
    ]
    rows = []
    for name, audio, sidecar, reference in cases:
        for _ in range(args.repeat):
            w_wall, w_rss, w_text = bare_whisper(audio, checkpoint, words=False)
            ww_wall, ww_rss, ww_text = bare_whisper(audio, checkpoint, words=True)
            s_wall, s_rss, s_text, stages = storypipe_run(audio, sidecar)
            ref = normalise(reference)
            rows.append(
                f"| {name} | {w_wall:.1f} s | {ww_wall:.1f} s | {s_wall:.1f} s | {stages.get('transcribed', 0):.1f} s "
                f"| {s_wall / w_wall:.2f}× / {s_wall / ww_wall:.2f}× | {jiwer.wer(ref, normalise(w_text)):.3f} | {jiwer.wer(ref, normalise(s_text)):.3f} "
                f"| {w_rss:.0f} / {s_rss:.0f} MiB |"
            )
            print(rows[-1], flush=True)
    header = (
        "| audio | bare whisper | bare whisper + word times | storypipe run | of which transcription "
        "| run / bare (plain / word times) | WER whisper | WER storypipe | peak RSS whisper / storypipe |\n"
        "|---|---|---|---|---|---|---|---|---|"
    )
    table = header + "\n" + "\n".join(rows)
    print("\n" + table)
    (HERE / "results.md").write_text(
        f"# storypipe run vs bare whisper ({time.strftime('%Y-%m-%d %H:%M')}, model {settings.transcribe.model}, "
        f"{os.cpu_count()} cores)\n\n{table}\n"
    )


if __name__ == "__main__":
    main()
