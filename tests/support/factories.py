"""Small builders of model objects for unit tests (fakes are fine here, never in end-to-end tests)."""

from __future__ import annotations

from storypipe.core.models import Consent, Segment, Source, Story, Transcript, Word


def words_from_text(text: str, start: float, seconds_per_word: float = 0.4, probability: float = 0.9) -> list[Word]:
    out, t = [], start
    for token in text.split():
        out.append(Word(word=" " + token, start=round(t, 3), end=round(t + seconds_per_word * 0.9, 3), probability=probability))
        t += seconds_per_word
    return out


def make_transcript(turns: list[tuple[str | None, str]], story_id: str = "s-00000000", gap: float = 0.5) -> Transcript:
    """A transcript with one segment per (speaker, text) turn, words evenly timed."""
    segments, t = [], 0.0
    for i, (speaker, text) in enumerate(turns):
        words = words_from_text(text, t)
        segments.append(
            Segment(id=i, start=words[0].start, end=words[-1].end, text=text, speaker=speaker,
                    avg_logprob=-0.2, no_speech_prob=0.01, words=words)
        )
        t = words[-1].end + gap
    return Transcript(story_id=story_id, language="en", duration_s=t, engine="fake", model="fake", segments=segments)


def make_story(story_id: str = "s-00000000", filename: str = "s.wav", consent: Consent | None = None, **metadata) -> Story:
    return Story(
        story_id=story_id,
        source=Source(filename=filename, sha256="0" * 64, bytes=1, format="wav", duration_s=3.0, channels=1,
                      sample_rate=16000),
        metadata=metadata,
        consent=consent or Consent(),
    ).advance("ingested")


ROS_ID = "ros-12345678"
ROS_TEXT = ("I felt invisible for years and nobody asked what I thought. When we started the peer support group, "
            "for the first time my lived experience counted as expertise and the managers treated us as equals.")
