"""Transcript exports: plain text for reading, SRT and WebVTT captions (via pysubs2)."""

from __future__ import annotations

from pathlib import Path

import pysubs2

from storypipe.jsonio import atomic_write_text
from storypipe.models import Transcript


def clock(seconds: float) -> str:
    """00:01:02 style time, the way a reader scans a transcript."""
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def transcript_text(transcript: Transcript, title: str | None = None) -> str:
    """A readable transcript: one line per segment with its time (and speaker once known)."""
    lines = [f"# {title or transcript.story_id}", ""]
    for seg in transcript.segments:
        who = f"{seg.speaker}: " if seg.speaker else ""
        lines.append(f"[{clock(seg.start)}] {who}{seg.text.strip()}")
    return "\n".join(lines) + "\n"


def captions(transcript: Transcript, fmt: str, offset_s: float = 0.0) -> str:
    """Segments as captions in 'srt' or 'vtt', shifted by offset_s (for clips cut from the story)."""
    subs = pysubs2.SSAFile()
    for seg in transcript.segments:
        text = seg.text.strip()
        if not text:
            continue
        start, end = max(0.0, seg.start - offset_s), max(0.0, seg.end - offset_s)
        subs.append(pysubs2.SSAEvent(start=pysubs2.make_time(s=start), end=pysubs2.make_time(s=end), text=text))
    return subs.to_string(fmt)


def write_transcript_files(transcript: Transcript, folder: Path, title: str | None = None) -> list[Path]:
    written = [
        atomic_write_text(folder / "transcript.txt", transcript_text(transcript, title)),
        atomic_write_text(folder / "transcript.srt", captions(transcript, "srt")),
        atomic_write_text(folder / "transcript.vtt", captions(transcript, "vtt")),
    ]
    return written
