"""Transcript exports: readable text, SRT and WebVTT with the right times."""

from __future__ import annotations

import pysubs2

from storypipe.tasks.common.formats import captions, clock, transcript_text
from tests.support.factories import make_transcript


def test_text_has_times_and_speakers():
    t = make_transcript([("interviewer", "How did it start for you?"), ("storyteller", "With a phone call.")])
    text = transcript_text(t, "A title")
    assert text.splitlines()[0] == "# A title"
    assert "[00:00:00] interviewer: How did it start for you?" in text
    assert "storyteller: With a phone call." in text


def test_captions_round_trip_with_times():
    t = make_transcript([(None, "First line here."), (None, "Second line here.")])
    for fmt in ("srt", "vtt"):
        subs = pysubs2.SSAFile.from_string(captions(t, fmt))
        assert [e.plaintext for e in subs] == ["First line here.", "Second line here."]
        assert abs(subs[1].start / 1000 - t.segments[1].start) < 0.01
    assert captions(t, "vtt").startswith("WEBVTT")


def test_captions_shift_for_clips():
    t = make_transcript([(None, "First line here."), (None, "Second line here.")])
    subs = pysubs2.SSAFile.from_string(captions(t, "srt", offset_s=t.segments[1].start))
    assert subs[1].start == 0


def test_clock():
    assert clock(3723.9) == "01:02:03"
