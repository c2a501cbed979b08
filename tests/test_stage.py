"""Staging follows consent, and the package is complete and verifiable."""

from __future__ import annotations

import hashlib
import json
import subprocess

import pytest

from storypipe.jsonio import read_model, write_model
from storypipe.layout import Layout
from storypipe.models import Consent, Story
from tasks.audio import decode_pcm16, ffmpeg_binary, probe
from tasks.stage import hold_reason, stage_story
from tests.factories import make_story, make_transcript

ALL_YES = Consent(transcript=True, clips=True, full_story=True, anonymise=False)


@pytest.fixture
def root(tmp_path):
    return Layout(tmp_path).ensure()


def put_story(layout: Layout, consent: Consent, text: str = "I was finally heard by the people who run the service.",
              **metadata) -> Story:
    story = make_story("tone-12345678", "tone.wav", consent, **metadata).advance("extracted")
    original = layout.original_dir(story.story_id) / "tone.wav"
    original.parent.mkdir(parents=True)
    subprocess.run(
        [ffmpeg_binary(), "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-ac", "2",
         "-ar", "44100", str(original)],
        check=True,
    )
    write_model(layout.story_dir(story.story_id) / "story.json", story)
    write_model(layout.story_dir(story.story_id) / "transcript.json",
                make_transcript([(None, text)], story.story_id))
    return story


@pytest.mark.parametrize("consent", [Consent(full_story=False, anonymise=False), Consent(full_story=False)])
def test_held_back_without_consent(root, settings, consent):
    why = "did not consent"
    story = put_story(root, consent)
    assert stage_story(story.story_id, root, settings) is None
    assert not (root.staging / story.story_id).exists()
    saved = read_model(root.story_dir(story.story_id) / "story.json", Story)
    assert saved.state == "extracted"
    assert any(why in p for p in saved.problems)
    assert why in hold_reason(saved)


def test_staged_package_is_complete_and_checksummed(root, settings):
    story = put_story(root, ALL_YES, title="Heard", storyteller="R.", demographics={"age_range": "35-44"})
    target = stage_story(story.story_id, root, settings)
    assert target == root.staging / story.story_id
    names = sorted(p.name for p in target.iterdir())
    assert names == ["SHA256SUMS", "metadata.json", "story.mp3", "transcript.txt", "transcript.vtt"]
    for line in (target / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ")
        assert hashlib.sha256((target / name).read_bytes()).hexdigest() == digest
    meta = json.loads((target / "metadata.json").read_text())
    assert meta["title"] == "Heard" and meta["storyteller"] == "R."
    assert "demographics" not in meta
    info = probe(target / "story.mp3")
    assert info.channels == 2 and abs(info.duration_s - 2.0) < 0.2
    assert (target / "transcript.vtt").read_text().startswith("WEBVTT")
    saved = read_model(root.story_dir(story.story_id) / "story.json", Story)
    assert saved.state == "staged" and saved.history[-1].seconds is not None
    # No temporary build folders are left behind.
    assert [p.name for p in root.staging.iterdir()] == [story.story_id]


def test_restaging_replaces_the_package(root, settings):
    story = put_story(root, ALL_YES)
    first = stage_story(story.story_id, root, settings)
    (first / "stale.txt").write_text("old")
    again = stage_story(story.story_id, root, settings)
    assert again == first and not (again / "stale.txt").exists()
    assert [p.name for p in root.staging.iterdir()] == [story.story_id]


def test_anonymised_story_is_staged_without_names_in_text_or_audio(root, settings):
    consent = Consent(transcript=True, clips=True, full_story=True, anonymise=True)
    story = put_story(root, consent, text="I met Margaret in Rochdale and she helped me.",
                      title="Rochdale days", interviewer="Sam", storyteller="R.")
    target = stage_story(story.story_id, root, settings)
    assert target is not None
    text = (target / "transcript.txt").read_text() + (target / "transcript.vtt").read_text()
    meta = json.loads((target / "metadata.json").read_text())
    assert "[NAME]" in text and "[PLACE]" in text
    for name in ("Margaret", "Rochdale", "Sam"):
        assert name not in text and name not in json.dumps(meta)
    assert meta["anonymised"] is True and meta["interviewer"] is None and meta["storyteller"] == "R."
    # The words "Margaret" (0.8-1.16 s) and "Rochdale" (1.6-1.96 s) are silent; the rest is the tone.
    rate = 44100
    pcm = decode_pcm16(target / "story.mp3", rate, 1).astype(float)

    def rms(a, b):
        return (pcm[int(a * rate): int(b * rate)] ** 2).mean() ** 0.5

    assert rms(0.1, 0.6) > 1000
    assert rms(0.85, 1.1) < 50 and rms(1.65, 1.9) < 50
    assert rms(1.3, 1.45) > 1000
