"""Regenerate storypipe's bundled demo interview audio from its script.

Why this exists: storypipe needs a small, realistic-sounding Community
Reporting interview to demo and test the pipeline end to end (transcription,
speaker turns, clips, name redaction) without shipping a real person's
story.  Instead of committing an opaque recording, we commit the dialogue
script (``storypipe/sample/interview.txt``) and synthesise the audio from it
with espeak-ng, so the sample is consent-free, reviewable as text and
reproducible on any machine with espeak-ng and ffmpeg.

Each line of the script is one turn, ``interviewer: text`` or
``storyteller: text``.  Each turn is spoken by espeak-ng in one of two
clearly different voices, turns are joined with short fixed pauses using
pydub, and the result is exported as a small mono mp3.  The output is
deterministic: the same script gives the same audio (the mp3 bytes may differ
only through the encoder version).

Usage::

    python scripts/make_demo_sample.py [SCRIPT] [OUTPUT]

Defaults: ``storypipe/sample/interview.txt`` -> ``storypipe/sample/interview.mp3``.
Requires ``espeak-ng`` and ``ffmpeg`` on PATH and the ``pydub`` package.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from pydub import AudioSegment
from pydub.effects import normalize

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SCRIPT = REPO_ROOT / "storypipe" / "sample" / "interview.txt"
DEFAULT_OUTPUT = REPO_ROOT / "storypipe" / "sample" / "interview.mp3"

# Two clearly different voices: a male interviewer and a female storyteller.
# Both are built-in espeak-ng voices+variants (no mbrola needed), chosen by
# transcribing the result with Whisper tiny.en: the en-us voices are recognised
# far better than the British ones (word error rate ~2% vs ~8%).  Note that with
# espeak-ng 1.51 "en-gb+f3" silently drops the variant and speaks the default
# male voice; "en+f3" is the British voice with a working variant.
VOICES: dict[str, str] = {
    "interviewer": "en-us+m3",
    "storyteller": "en-us+f2",
}
SPEED_WPM = 150
SAMPLE_RATE = 22050
BITRATE = "48k"

# Pauses before a turn, cycled by turn index so they vary a little but stay
# deterministic (no randomness).  Milliseconds, roughly 0.6-0.9 s.
PAUSES_MS: tuple[int, ...] = (700, 850, 650, 800, 900, 750)
LEAD_IN_MS = 400
TAIL_MS = 600


def parse_script(path: Path) -> list[tuple[str, str]]:
    """Read ``speaker: text`` lines; blank lines and ``#`` comments are skipped."""
    turns: list[tuple[str, str]] = []
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        speaker, sep, text = line.partition(":")
        speaker = speaker.strip().lower()
        if not sep or speaker not in VOICES or not text.strip():
            raise ValueError(f"{path}:{lineno}: expected 'interviewer: ...' or 'storyteller: ...'")
        turns.append((speaker, text.strip()))
    if not turns:
        raise ValueError(f"{path}: no turns found")
    return turns


def synthesize(text: str, voice: str, speed: int, workdir: Path, index: int) -> AudioSegment:
    """Speak one turn with espeak-ng and return it as mono audio at SAMPLE_RATE."""
    wav = workdir / f"turn_{index:03d}.wav"
    subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(wav), "--", text],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    segment = AudioSegment.from_wav(wav).set_channels(1).set_frame_rate(SAMPLE_RATE)
    # Bring both voices to a similar level with a little headroom.
    return normalize(segment, headroom=1.0)


def build_interview(
    turns: list[tuple[str, str]], voices: dict[str, str], speed: int
) -> AudioSegment:
    """Synthesise every turn and join them with short pauses."""
    audio = AudioSegment.silent(duration=LEAD_IN_MS, frame_rate=SAMPLE_RATE)
    with tempfile.TemporaryDirectory(prefix="storypipe-sample-") as tmp:
        workdir = Path(tmp)
        for index, (speaker, text) in enumerate(turns):
            if index:
                pause = PAUSES_MS[index % len(PAUSES_MS)]
                audio += AudioSegment.silent(duration=pause, frame_rate=SAMPLE_RATE)
            audio += synthesize(text, voices[speaker], speed, workdir, index)
    audio += AudioSegment.silent(duration=TAIL_MS, frame_rate=SAMPLE_RATE)
    return audio.set_channels(1).set_frame_rate(SAMPLE_RATE)


def export_mp3(audio: AudioSegment, output: Path) -> None:
    """Write a small mono mp3 without volatile metadata."""
    output.parent.mkdir(parents=True, exist_ok=True)
    audio.export(
        output,
        format="mp3",
        bitrate=BITRATE,
        parameters=["-ac", "1", "-ar", str(SAMPLE_RATE), "-map_metadata", "-1",
                    "-fflags", "+bitexact", "-flags:a", "+bitexact"],
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("script", nargs="?", type=Path, default=DEFAULT_SCRIPT,
                        help=f"dialogue script (default: {DEFAULT_SCRIPT.relative_to(REPO_ROOT)})")
    parser.add_argument("output", nargs="?", type=Path, default=DEFAULT_OUTPUT,
                        help=f"mp3 to write (default: {DEFAULT_OUTPUT.relative_to(REPO_ROOT)})")
    parser.add_argument("--interviewer-voice", default=VOICES["interviewer"])
    parser.add_argument("--storyteller-voice", default=VOICES["storyteller"])
    parser.add_argument("--speed", type=int, default=SPEED_WPM, help="espeak-ng words per minute")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for tool in ("espeak-ng", "ffmpeg"):
        if shutil.which(tool) is None:
            print(f"error: {tool} not found on PATH", file=sys.stderr)
            return 1
    voices = {"interviewer": args.interviewer_voice, "storyteller": args.storyteller_voice}
    turns = parse_script(args.script)
    audio = build_interview(turns, voices, args.speed)
    export_mp3(audio, args.output)
    size_kb = args.output.stat().st_size / 1024
    print(f"wrote {args.output} ({len(turns)} turns, {len(audio) / 1000:.1f} s, {size_kb:.0f} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
