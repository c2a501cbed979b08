"""Clips of approved quotes on real speech: boundaries, loudness, captions, video, consent, names."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pyloudnorm
import pytest
from typer.testing import CliRunner

from storypipe.app.cli import app
from storypipe.core.jsonio import read_model
from storypipe.core.store import Store
from storypipe.core.models import ClipBatch, QuotesFile, Story, Transcript
from storypipe.tasks.common import audio
from storypipe.tasks import clips
from storypipe.app import review
from storypipe.tasks.extract import extract_story
from storypipe.tasks.ingest import ingest_recording
from storypipe.tasks.transcribe import transcribe_story
from tests.support import audio_fixtures as af
from tests.support import DATA

CONSENT = "consent: {transcript: true, clips: true, full_story: false, anonymise: %s}\n"


def processed(store: Store, settings, name: str, sidecar: str) -> Story:
    """A real story: ingested, transcribed by the real model, quotes extracted, all quotes approved."""
    (store.inbox / name).with_suffix(".yaml").write_text(sidecar)
    story, _ = ingest_recording(store.inbox / name, store, settings)
    transcribe_story(story.story_id, store, settings)
    extract_story(story.story_id, store, settings)
    quotes = read_model(store.story_dir(story.story_id) / "quotes.json", QuotesFile).quotes
    review.decide(store, story.story_id, [q.id for q in quotes], "approved")
    return read_model(store.story_dir(story.story_id) / "story.json", Story)


@pytest.fixture(scope="module")
def batch_root(tmp_path_factory):
    from storypipe.core.settings import load_settings

    root = tmp_path_factory.mktemp("clips")
    store = Store(root).ensure()
    settings = load_settings(root)
    shutil.copy2(DATA / "jfk.flac", store.inbox / "jfk.flac")
    # Each recording is one person speaking: `speakers: 1`, or two voices are looked for (issue 16).
    jfk = processed(store, settings, "jfk.flac", 'storyteller: "J."\nspeakers: 1\n' + CONSENT % "false")
    af.speech(store.inbox, "named.wav", "We met every week in the library with Margaret, and she listened to "
              "every one of us. I learned that my voice matters and that I can change things here.",
              voice="en-us+f2", words_per_minute=150)
    named = processed(store, settings, "named.wav", 'storyteller: "R."\nspeakers: 1\nnames: [Margaret]\n' + CONSENT % "true")
    af.speech(store.inbox, "private.wav", "I do not want any part of this recording to be put on the internet "
              "for anybody to hear, thank you very much for understanding.", voice="en-us+f2", words_per_minute=150)
    private = processed(store, settings, "private.wav", 'storyteller: "Q."\nspeakers: 1\nconsent: {clips: false}\n')
    batch, notes = clips.make_clips(store, settings, "first")
    return store, settings, batch, notes, {"jfk": jfk, "named": named, "private": private}


def clip_of(batch: ClipBatch, story: Story):
    return [c for c in batch.clips if c.story_id == story.story_id]


def test_only_consenting_stories_get_clips(batch_root):
    store, _, batch, notes, s = batch_root
    assert clip_of(batch, s["jfk"]) and clip_of(batch, s["named"])
    assert not clip_of(batch, s["private"])
    assert any(s["private"].story_id in n and "did not consent to clips" in n for n in notes)
    files = {p.name for p in (store.clips / "first").iterdir()}
    for c in batch.clips:
        assert {c.file, c.video_file, *c.captions} <= files
    assert {"manifest.json", "manifest.csv"} <= files
    on_disk = read_model(store.clips / "first" / "manifest.json", ClipBatch)
    assert on_disk.clips[0].youtube.privacyStatus == "private" and on_disk.clips[0].published is None


def test_edges_never_cut_a_word_and_sit_in_quiet(batch_root):
    store, settings, batch, _, s = batch_root
    story = s["jfk"]
    words = read_model(store.story_dir(story.story_id) / "transcript.json", Transcript).words()
    original = audio.decode_pcm16(store.original_dir(story.story_id) / "jfk.flac", 16000, 1).astype(float) / 32768
    speech_db = 20 * np.log10(np.sqrt(np.mean(original ** 2)) + 1e-12)
    for c in clip_of(batch, story):
        quote = next(q for q in read_model(store.story_dir(story.story_id) / "quotes.json", QuotesFile).quotes
                     if q.id == c.quote_id)
        inside = [i for i, w in enumerate(words) if w.start >= quote.start - 0.01 and w.end <= quote.end + 0.01]
        first, last = inside[0], inside[-1]
        assert c.start <= words[first].start and c.end >= words[last].end
        if first > 0:
            assert c.start >= words[first - 1].end - 0.001
        if last + 1 < len(words):
            assert c.end <= words[last + 1].start + 0.001
        for t in (c.start, c.end):
            i = int(t * 16000)
            edge = original[max(0, i - 160): i + 160]
            if len(edge):
                assert 20 * np.log10(np.sqrt(np.mean(edge ** 2)) + 1e-12) < speech_db - 6


def test_loudness_peak_captions_and_video(batch_root):
    store, settings, batch, _, _ = batch_root
    for c in batch.clips:
        folder = store.clips / "first"
        info = audio.probe(folder / c.file)
        x = audio.decode_pcm16(folder / c.file, info.sample_rate, info.channels).astype(float) / 32768
        loud = pyloudnorm.Meter(info.sample_rate).integrated_loudness(x)
        assert abs(loud - settings.clips.target_lufs) <= 1.0, (c.file, loud)
        assert 20 * np.log10(np.abs(x).max()) <= settings.clips.true_peak_db + 0.5
        assert abs(info.duration_s - c.duration_s) < 0.15
        srt = (folder / c.captions[0]).read_text()
        first_start = srt.splitlines()[1].split(" --> ")[0]
        h, m, rest = first_start.split(":")
        assert float(rest.replace(",", ".")) + 60 * int(m) < 0.5 + 0.001
        probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,width,height", "-of",
                                "json", str(folder / c.video_file)], capture_output=True, text=True, check=True)
        streams = json.loads(probe.stdout)["streams"]
        assert {s["codec_type"] for s in streams} == {"video", "audio"}
        assert any(s.get("width") == 1280 and s.get("height") == 720 for s in streams)


def test_anonymised_clip_hides_the_name_in_audio_captions_and_metadata(batch_root):
    store, settings, batch, _, s = batch_root
    story = s["named"]
    words = read_model(store.story_dir(story.story_id) / "transcript.json", Transcript).words()
    name = next(w for w in words if "argaret" in w.word or "argret" in w.word)
    (c,) = [c for c in clip_of(batch, story) if c.start <= name.start and name.end <= c.end]
    folder = store.clips / "first"
    text = "".join((folder / f).read_text() for f in c.captions) + json.dumps(c.youtube.model_dump())
    assert "Margaret" not in text and "[NAME]" in text
    info = audio.probe(folder / c.file)
    x = audio.decode_pcm16(folder / c.file, info.sample_rate, 1).astype(float) / 32768
    mid = ((name.start + name.end) / 2 - c.start)
    span = x[int((mid - 0.05) * info.sample_rate): int((mid + 0.05) * info.sample_rate)]
    assert np.sqrt(np.mean(span ** 2)) < 0.003
    assert np.sqrt(np.mean(x ** 2)) > 0.03  # the rest of the clip is speech


def test_a_rerun_cuts_nothing_twice_and_the_command_says_so(batch_root):
    store, _, batch, _, _ = batch_root
    result = CliRunner().invoke(app, ["clips", "--root", str(store.root)])
    assert result.exit_code == 1 and "Nothing to cut" in result.output
    assert [p.name for p in store.clips.iterdir() if not p.name.startswith(".")] == ["first"]
    bad = CliRunner().invoke(app, ["clips", "--root", str(store.root), "--batch", "../up"])
    assert bad.exit_code == 2
