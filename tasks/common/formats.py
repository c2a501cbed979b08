"""Transcript exports: plain text for reading, SRT and WebVTT captions (via pysubs2)."""

from __future__ import annotations

from pathlib import Path

import pysubs2

from storypipe.core.jsonio import atomic_write_text
from storypipe.core.timefmt import clock
from storypipe.core.models import Segment, Transcript
from storypipe.core.store import Store


LOW = "(?)"
LEGEND = f"Words marked {LOW} were hard to make out, and lines starting with {LOW} are unsure: check them against the audio."


def marked_text(seg: Segment) -> str:
    """The segment's words, each unsure one followed by (?) so a reviewer sees it at a glance."""
    if not seg.words:
        return seg.text.strip()
    return "".join(w.word + (LOW if w.low_confidence else "") for w in seg.words).strip()


def transcript_text(transcript: Transcript, title: str | None = None, mark: bool = True) -> str:
    """A readable transcript: one line per segment with its time and speaker; unsure words marked."""
    lines = [f"# {title or transcript.story_id}", ""]
    if mark and any(s.low_confidence or any(w.low_confidence for w in s.words) for s in transcript.segments):
        lines += [LEGEND, ""]
    for warning in transcript.warnings:
        lines += [f"Warning: {warning}", ""]
    for seg in transcript.segments:
        who = f"{transcript.speaker_names.get(seg.speaker, seg.speaker)}: " if seg.speaker else ""
        flag = f"{LOW} " if mark and seg.low_confidence else ""
        text = marked_text(seg) if mark else seg.text.strip()
        lines.append(f"[{clock(seg.start)}] {flag}{who}{text}")
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


def write_transcript_files(transcript: Transcript, store: Store, title: str | None = None) -> list[Path]:
    """The readable copies of a story's transcript.json: transcript.txt, .srt and .vtt."""
    sid = transcript.story_id
    written = [
        atomic_write_text(store.text_path(sid, "txt"), transcript_text(transcript, title)),
        atomic_write_text(store.text_path(sid, "srt"), captions(transcript, "srt")),
        atomic_write_text(store.text_path(sid, "vtt"), captions(transcript, "vtt")),
    ]
    return written
