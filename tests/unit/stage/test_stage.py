"""Staging follows consent, and the package is complete, verifiable, loudness-normalised, anonymised
where consent asks, listed in staging/index.csv, and rebuilt only when its inputs change."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import shutil
import subprocess
import zipfile

import numpy as np
import pyloudnorm
import pytest
from scipy.signal import resample_poly

from storypipe.core.jsonio import read_model, write_model
from storypipe.core.store import Store
from storypipe.core.models import Consent, Quote, QuotesFile, Story, Transcript
from storypipe.tasks.common.audio import decode_pcm16, ffmpeg_binary, probe, write_wav
from storypipe.tasks.stage import hold_reason, measure_loudness, package_files, stage_story, unstage
from tests.support.factories import make_story, make_transcript

ALL_YES = Consent(transcript=True, clips=True, full_story=True, anonymise=False)
ANONYMISE = Consent(transcript=True, clips=True, full_story=True, anonymise=True)
SID = "tone-12345678"
RATE = 44100
TONE = "sine=frequency=440:duration=2"  # lavfi's default level: peaks at -18 dBFS, about -19 LUFS in stereo


def put_story(store: Store, consent: Consent, text: str = "I was finally heard by the people who run the service.",
              source: str = TONE, pcm: np.ndarray | None = None, turns: list | None = None, **metadata) -> Story:
    """A story whose original is a short synthetic recording: a lavfi source (stereo, 44.1 kHz) or
    the given 16-bit samples."""
    story = make_story(SID, "tone.wav", consent, **metadata).advance("extracted")
    original = store.original_dir(story.story_id) / "tone.wav"
    original.parent.mkdir(parents=True)
    if pcm is not None:
        write_wav(original, pcm, RATE)
    else:
        subprocess.run([ffmpeg_binary(), "-v", "error", "-f", "lavfi", "-i", source, "-ac", "2", "-ar", str(RATE),
                        str(original)], check=True)
    write_model(store.story_dir(story.story_id) / "story.json", story)
    write_model(store.story_dir(story.story_id) / "transcript.json",
                make_transcript(turns or [(None, text)], story.story_id))
    return story


def put_quotes(store: Store, *quotes: Quote) -> None:
    write_model(store.story_dir(SID) / "quotes.json", QuotesFile(story_id=SID, quotes=list(quotes)))


def quote(qid: str, text: str, score: float, status: str = "approved", start: float = 0.0, end: float = 2.0) -> Quote:
    return Quote(id=qid, text=text, start=start, end=end, score=score, status=status)


def staged_pcm(target) -> np.ndarray:
    """The staged mp3 decoded as the listener hears it: float, samples x 2."""
    return decode_pcm16(target / "story.mp3", RATE, 2).astype(np.float64) / 32768.0


def lufs(x: np.ndarray) -> float:
    return pyloudnorm.Meter(RATE).integrated_loudness(x)


def true_peak(x: np.ndarray) -> float:
    return 20 * math.log10(np.abs(resample_poly(x, 4, 1, axis=0)).max())


def metadata(target) -> dict:
    return json.loads((target / "metadata.json").read_text())


def index_rows(store: Store) -> list[dict]:
    return list(csv.DictReader(io.StringIO((store.staging / "index.csv").read_text())))


@pytest.mark.parametrize("consent", [Consent(full_story=False, anonymise=False), Consent(full_story=False)])
def test_held_back_without_consent(store, settings, consent):
    why = "did not consent"
    story = put_story(store, consent)
    assert stage_story(story.story_id, store, settings) is None
    assert not (store.staging / story.story_id).exists()
    saved = read_model(store.story_dir(story.story_id) / "story.json", Story)
    assert saved.state == "extracted"
    assert any(why in p for p in saved.problems)
    assert why in hold_reason(saved)


def test_staged_package_is_complete_and_checksummed(store, settings):
    story = put_story(store, ALL_YES, title="Heard", storyteller="R.", demographics={"age_range": "35-44"},
                      sectors=["housing"], roles=["peer researcher"])
    target = stage_story(story.story_id, store, settings)
    assert target == store.staging / story.story_id
    names = sorted(p.name for p in target.iterdir())
    assert names == sorted(package_files(SID))
    assert names == ["SHA256SUMS", "metadata.json", "story.mp3", f"{SID}.zip", "transcript.txt", "transcript.vtt"]
    # SHA256SUMS verifies every other file, the zip included.
    listed = {}
    for line in (target / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ")
        listed[name] = digest
        assert hashlib.sha256((target / name).read_bytes()).hexdigest() == digest
    assert sorted(listed) == sorted(n for n in names if n != "SHA256SUMS")
    if shutil.which("sha256sum"):  # and the tool itself agrees
        subprocess.run(["sha256sum", "--check", "--quiet", "--strict", "SHA256SUMS"], cwd=target, check=True)
    # The zip holds the package's content files, byte for byte, under a folder named after the story.
    with zipfile.ZipFile(target / f"{SID}.zip") as z:
        assert z.testzip() is None
        assert sorted(z.namelist()) == sorted(f"{SID}/{n}" for n in
                                              ("story.mp3", "transcript.txt", "transcript.vtt", "metadata.json"))
        for member in z.namelist():
            assert z.read(member) == (target / member.split("/", 1)[1]).read_bytes()
    meta = metadata(target)
    assert meta["title"] == "Heard" and meta["storyteller"] == "R." and meta["pseudonym"] == "R."
    assert meta["sectors"] == ["housing"] and meta["roles"] == ["peer researcher"]
    assert "demographics" not in meta
    assert meta["loudness"]["integrated_lufs"] == pytest.approx(settings.stage.target_lufs, abs=1.0)
    assert len(meta["inputs"]) == 64 and meta["staged_at"]
    info = probe(target / "story.mp3")
    assert info.channels == 2 and info.sample_rate == RATE and abs(info.duration_s - 2.0) < 0.2
    assert (target / "transcript.vtt").read_text().startswith("WEBVTT")
    saved = read_model(store.story_dir(story.story_id) / "story.json", Story)
    assert saved.state == "staged" and saved.history[-1].seconds is not None
    # No temporary build folders are left behind; the index sits beside the packages.
    assert sorted(p.name for p in store.staging.iterdir() if not p.name.endswith(".lock")) == ["index.csv", SID]


@pytest.mark.parametrize("source", [
    "sine=frequency=440:duration=3,volume=-14dB",  # a quiet tone, about -36 LUFS: turned up
    # loud noise in the speech band (a 128k mp3 drops what is above ~16 kHz), about -9 LUFS: turned down
    "anoisesrc=color=white:amplitude=1:duration=3:seed=7,lowpass=f=5000",
])
def test_full_story_is_normalised_to_the_target_loudness(store, settings, source):
    story = put_story(store, ALL_YES, source=source)
    original = decode_pcm16(store.original_dir(SID) / "tone.wav", RATE, 2).astype(np.float64) / 32768.0
    original_level = lufs(original)
    assert abs(original_level - settings.stage.target_lufs) > 6  # the input is well off the target
    target = stage_story(story.story_id, store, settings)
    x = staged_pcm(target)
    assert lufs(x) == pytest.approx(settings.stage.target_lufs, abs=1.0)
    assert true_peak(x) <= settings.stage.true_peak_db + 0.5
    loud = metadata(target)["loudness"]  # measured by stage on the mp3 it wrote: the same figures
    assert loud["source_lufs"] == pytest.approx(original_level, abs=0.01)
    assert loud["integrated_lufs"] == pytest.approx(lufs(x), abs=0.01)
    assert loud["true_peak_db"] == pytest.approx(true_peak(x), abs=0.01)
    assert loud["normalised"] is True and loud["limited_by_true_peak"] is False


def test_peaks_limit_the_gain(store, settings):
    """A quiet tone with loud clicks cannot reach the target without pushing the clicks over the
    ceiling: the gain stops at the ceiling, and metadata says so."""
    t = np.arange(3 * RATE) / RATE
    x = 0.01 * np.sin(2 * np.pi * 440 * t)
    for at in (0.5, 1.5, 2.5):
        i = int(at * RATE)
        x[i: i + 220] += 0.5 * np.sin(2 * np.pi * 1000 * t[:220])
    story = put_story(store, ALL_YES, pcm=np.round(np.stack([x, x], 1) * 32767).astype(np.int16))
    target = stage_story(story.story_id, store, settings)
    staged = staged_pcm(target)
    assert true_peak(staged) <= settings.stage.true_peak_db + 0.5
    assert lufs(staged) < settings.stage.target_lufs - 3
    loud = metadata(target)["loudness"]
    assert loud["limited_by_true_peak"] is True and "ceiling" in loud["note"]
    # The gain put the clicks' true peak exactly at the ceiling (before mp3 encoding).
    assert loud["source_true_peak_db"] + loud["gain_db"] == pytest.approx(settings.stage.true_peak_db, abs=0.01)
    assert loud["integrated_lufs"] == pytest.approx(lufs(staged), abs=0.01)


@pytest.mark.parametrize("source, note", [("anullsrc=r=44100:cl=stereo:d=2", "silent"),
                                          ("sine=frequency=440:duration=0.3", "too short")])
def test_silence_and_very_short_audio_are_staged_without_normalising(store, settings, source, note):
    story = put_story(store, ALL_YES, source=source)
    target = stage_story(story.story_id, store, settings)
    loud = metadata(target)["loudness"]
    assert loud["integrated_lufs"] is None and loud["normalised"] is False and note in loud["note"]
    assert loud["gain_db"] == 0.0
    assert probe(target / "story.mp3").duration_s > 0


def test_loudness_matches_pyloudnorm_chunk_by_chunk():
    """The chunked measurement is pyloudnorm's, whatever the chunk size; true peak is 4x oversampled."""
    rng = np.random.default_rng(1)
    t = np.arange(int(2.7 * RATE)) / RATE
    x = 0.2 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 0.7 * t)) + 0.02 * rng.standard_normal(len(t))
    pcm = np.round(np.stack([x, 0.5 * x], 1) * 32767).astype(np.int16)
    f = pcm / 32768.0
    for chunk in (997, 1 << 19):
        m = measure_loudness(pcm, RATE, chunk=chunk)
        assert m.integrated_lufs == pytest.approx(lufs(f), abs=1e-6)
        assert m.true_peak_db == pytest.approx(true_peak(f), abs=1e-3)
    assert measure_loudness(np.zeros((RATE, 2), np.int16), RATE).integrated_lufs == -math.inf


def test_restaging_after_the_package_was_tampered_with_rebuilds_it(store, settings):
    story = put_story(store, ALL_YES)
    first = stage_story(story.story_id, store, settings)
    (first / "stale.txt").write_text("old")
    again = stage_story(story.story_id, store, settings)
    assert again == first and not (again / "stale.txt").exists()
    assert sorted(p.name for p in store.staging.iterdir() if not p.name.endswith(".lock")) == ["index.csv", SID]


def test_restaging_with_unchanged_inputs_does_nothing_and_an_edit_rebuilds(store, settings):
    from storypipe.app import review

    story = put_story(store, ALL_YES, title="Heard")
    target = stage_story(story.story_id, store, settings)
    mp3 = (target / "story.mp3").stat().st_mtime_ns
    meta = metadata(target)
    history = len(read_model(store.story_dir(SID) / "story.json", Story).history)

    assert stage_story(story.story_id, store, settings) == target
    assert (target / "story.mp3").stat().st_mtime_ns == mp3
    assert metadata(target) == meta
    assert len(read_model(store.story_dir(SID) / "story.json", Story).history) == history

    review.edit_segment(store, SID, 0, "I was finally heard by the people who run the whole service.", None)
    assert stage_story(story.story_id, store, settings) == target
    assert "who run the whole service." in (target / "transcript.txt").read_text()
    assert (target / "story.mp3").stat().st_mtime_ns != mp3
    assert metadata(target)["inputs"] != meta["inputs"]
    # A changed setting that shapes the package rebuilds it too.
    before = metadata(target)["inputs"]
    settings.stage.target_lufs = -20.0
    stage_story(story.story_id, store, settings)
    assert metadata(target)["inputs"] != before
    assert metadata(target)["loudness"]["integrated_lufs"] == pytest.approx(-20.0, abs=1.0)


def test_speaker_names_are_used_unless_anonymised(store, settings):
    turns = [("interviewer", "How did it start for you?"), ("storyteller", "With a phone call from the team.")]
    story = put_story(store, ALL_YES, turns=turns)
    path = store.story_dir(SID) / "transcript.json"
    transcript = read_model(path, Transcript)
    transcript.speaker_names = {"storyteller": "Ros"}
    transcript.warnings = ["the speech may not be English"]
    write_model(path, transcript)
    target = stage_story(story.story_id, store, settings)
    txt, vtt = (target / "transcript.txt").read_text(), (target / "transcript.vtt").read_text()
    assert "] Ros: With a phone call from the team." in txt and "] interviewer: How did it start" in txt
    assert "<v Ros>With a phone call from the team." in vtt and "<v interviewer>How did it start" in vtt
    assert "Warning" not in txt  # cautions for the reviewer are not published

    story.consent = ANONYMISE
    write_model(store.story_dir(SID) / "story.json", story)
    target = stage_story(story.story_id, store, settings)
    txt, vtt = (target / "transcript.txt").read_text(), (target / "transcript.vtt").read_text()
    assert "Ros" not in txt + vtt
    assert "] storyteller: With a phone call" in txt and "<v storyteller>With a phone call" in vtt


def test_summary_is_made_of_the_best_approved_quotes(store, settings):
    story = put_story(store, ALL_YES)
    put_quotes(store,
               quote("qbest", "Not approved, however good.", 0.99, status="candidate"),
               quote("qthird", "We ran the meetings ourselves.", 0.5),
               quote("qfirst", "I was finally heard.", 0.9),
               quote("qno", "Rejected words.", 0.95, status="rejected"),
               quote("qfourth", "One too many.", 0.2),
               quote("qsecond", "My experience counted.", 0.7))
    meta = metadata(stage_story(story.story_id, store, settings))
    best = ["I was finally heard.", "My experience counted.", "We ran the meetings ourselves."]
    assert meta["summary"] == " ".join(f"“{text}”" for text in best)
    assert "summary_note" not in meta


def test_summary_is_empty_with_a_note_when_nothing_is_approved(store, settings):
    story = put_story(store, ALL_YES)
    put_quotes(store, quote("qa", "A candidate only.", 0.9, status="candidate"))
    meta = metadata(stage_story(story.story_id, store, settings))
    assert meta["summary"] == "" and "no quotes are approved" in meta["summary_note"]


def test_anonymised_story_is_staged_without_names_in_text_or_audio(store, settings):
    text = "I met Margaret in Rochdale and she helped me."
    story = put_story(store, ANONYMISE, text=text, title="Rochdale days", interviewer="Sam", storyteller="R.")
    put_quotes(store, quote("qm", text, 0.9, end=3.6))
    target = stage_story(story.story_id, store, settings)
    assert target is not None
    text = (target / "transcript.txt").read_text() + (target / "transcript.vtt").read_text()
    meta = metadata(target)
    assert "[NAME]" in text and "[PLACE]" in text
    assert meta["summary"] == "“I met [NAME] in [PLACE] and she helped me.”"
    with zipfile.ZipFile(target / f"{SID}.zip") as z:
        packed = {name: z.read(name) for name in z.namelist()}
    everything = [text, json.dumps(meta, ensure_ascii=False), (store.staging / "index.csv").read_text(),
                  *(data.decode("utf-8") for name, data in packed.items() if not name.endswith(".mp3"))]
    for name in ("Margaret", "Rochdale", "Sam"):
        assert all(name not in part for part in everything), name
        assert all(name.encode() not in data for data in packed.values())
    assert meta["anonymised"] is True and meta["interviewer"] is None and meta["storyteller"] == "R."
    # The words "Margaret" (0.8-1.16 s) and "Rochdale" (1.6-1.96 s) are silent; the rest is the tone.
    pcm = decode_pcm16(target / "story.mp3", RATE, 1).astype(float)

    def rms(a, b):
        return (pcm[int(a * RATE): int(b * RATE)] ** 2).mean() ** 0.5

    assert rms(0.1, 0.6) > 1000
    assert rms(0.85, 1.1) < 50 and rms(1.65, 1.9) < 50
    assert rms(1.3, 1.45) > 1000
    # Loudness was measured after the names were muted: the muted story measures quieter than the
    # original tone, and reaches the target all the same.
    original = decode_pcm16(store.original_dir(SID) / "tone.wav", RATE, 2) / 32768.0
    loud = meta["loudness"]
    assert loud["source_lufs"] < lufs(original) - 1
    assert loud["integrated_lufs"] == pytest.approx(settings.stage.target_lufs, abs=1.0)


def test_index_lists_staged_stories_and_unstage_removes_them(store, settings, caplog, monkeypatch):
    monkeypatch.setattr(logging.getLogger("storypipe"), "propagate", True)
    caplog.set_level(logging.INFO, logger="storypipe")
    story = put_story(store, ALL_YES, title="Heard", storyteller="R.")
    stage_story(story.story_id, store, settings)
    (row,) = index_rows(store)
    assert row["story_id"] == SID and row["title"] == "Heard" and row["pseudonym"] == "R."
    assert row["anonymised"] == "false" and float(row["duration_s"]) == story.source.duration_s
    assert row["zip"] == f"{SID}/{SID}.zip" and (store.staging / row["zip"]).is_file()
    assert row["staged_at"] == metadata(store.staging / SID)["staged_at"]
    assert list(row) == ["story_id", "title", "pseudonym", "duration_s", "anonymised", "staged_at", "zip"]

    assert unstage(SID, store) is True
    assert not (store.staging / SID).exists()
    assert index_rows(store) == []
    assert "removed because consent was withdrawn" in caplog.text
    saved = read_model(store.story_dir(SID) / "story.json", Story)
    assert saved.state == "extracted" and "consent was withdrawn" in saved.history[-1].note
    assert unstage(SID, store) is False
    assert sorted(p.name for p in store.staging.iterdir() if not p.name.endswith(".lock")) == ["index.csv"]
