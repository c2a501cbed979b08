"""tasks/ingest/ as plain functions (no Prefect run): ids, sidecars, consent, ingest, duplicates, quarantine."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import wave
from pathlib import Path

import pytest

from storypipe.core.jsonio import read_model
from storypipe.core.store import Store
from storypipe.core.models import Consent, Sidecar, Story
from storypipe.core.settings import load_settings
from storypipe.tasks import ingest
from storypipe.tasks.ingest import IngestError
from tests.support import audio_fixtures as af

SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")

SIDECAR_YAML = """\
title: "Finding my voice"
storyteller: "R."                # pseudonym as it may be published
interviewer: "Sam"
recorded_on: 2026-10-02
language: en
sectors: [health and social care, housing]
roles: [person with lived experience, peer researcher]
demographics: {age_range: "35-44", gender: female}
consent: {transcript: true, clips: true, full_story: false, anonymise: true}
project_code: NW-7               # not a known field: kept
"""


@pytest.fixture
def cfg(monkeypatch):
    """The project's settings, unaffected by STORYPIPE_* variables in the caller's environment."""
    for key in [k for k in os.environ if k.startswith("STORYPIPE_")]:
        monkeypatch.delenv(key)
    return load_settings()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under a folder with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def write_sidecar(recording: Path, text: str = SIDECAR_YAML, suffix: str = ".yaml") -> Path:
    path = recording.with_suffix(suffix)
    path.write_text(text, encoding="utf-8")
    return path


# ---- story ids ----


def test_story_id_follows_the_contract_example():
    sha = "1a2b3c4d" + "e" * 56
    assert ingest.story_id_for("Interview 03.m4a", sha) == "interview-03-1a2b3c4d"


@pytest.mark.parametrize(
    "filename, slug",
    [
        ("Interview 03.m4a", "interview-03"),
        ("Zoë Ünal — café.mp3", "zoe-unal-cafe"),
        ('"Quoted" name.wav', "quoted-name"),
        ("  spaces   everywhere .wav", "spaces-everywhere"),
        ("l'été à Nîmes.flac", None),
        ("Mary's “story”.wav", None),
        ("O’Brien (take 2).m4a", None),
        ("中文名字.wav", None),
        ("UPPER_and_under.score.WAV", None),
    ],
)
def test_story_id_is_a_clean_slug(filename, slug):
    sha = hashlib.sha256(filename.encode()).hexdigest()
    story_id = ingest.story_id_for(filename, sha)
    assert story_id.endswith("-" + sha[:8])
    stem_slug = story_id.removesuffix("-" + sha[:8])
    assert SLUG.match(stem_slug), stem_slug
    assert story_id.isascii()
    if slug is not None:
        assert stem_slug == slug


def test_story_id_of_a_name_with_no_letters_still_has_a_stem():
    sha = "ab" * 32
    assert ingest.story_id_for("🎤🎤.wav", sha) == "recording-abababab"


def test_story_id_depends_on_stem_and_bytes_not_extension():
    sha, other = "1" * 64, "2" * 64
    assert ingest.story_id_for("talk.wav", sha) == ingest.story_id_for("talk.mp3", sha)
    assert ingest.story_id_for("talk.wav", sha) != ingest.story_id_for("talk.wav", other)
    assert ingest.story_id_for("talk.wav", sha) != ingest.story_id_for("chat.wav", sha)


# ---- sidecars ----


def test_read_sidecar_valid(tmp_path):
    path = tmp_path / "Interview 03.yaml"
    path.write_text(SIDECAR_YAML, encoding="utf-8")
    sidecar = ingest.read_sidecar(path)
    assert isinstance(sidecar, Sidecar)
    assert sidecar.title == "Finding my voice"
    assert sidecar.storyteller == "R."
    assert sidecar.recorded_on == dt.date(2026, 10, 2)
    assert sidecar.sectors == ["health and social care", "housing"]
    assert sidecar.demographics == {"age_range": "35-44", "gender": "female"}
    assert sidecar.consent == Consent(transcript=True, clips=True, full_story=False, anonymise=True)
    # Unknown fields are kept, not dropped or refused.
    assert sidecar.model_extra == {"project_code": "NW-7"}
    assert sidecar.model_dump()["project_code"] == "NW-7"


@pytest.mark.parametrize("text", ["", "# only a comment\n"])
def test_read_sidecar_empty_is_no_metadata(tmp_path, text):
    path = tmp_path / "x.yaml"
    path.write_text(text)
    sidecar = ingest.read_sidecar(path)
    assert sidecar.consent is None and sidecar.title is None


@pytest.mark.parametrize(
    "text",
    [
        'title: [unclosed\nconsent: {clips: true\n',
        "title: \"Finding my voice\n",
        "\tconsent: {clips: true}\n",
        "title: a: b: c\n",
    ],
)
def test_read_sidecar_invalid_yaml_names_the_file(tmp_path, text):
    path = tmp_path / "Interview 03.yaml"
    path.write_text(text)
    with pytest.raises(IngestError) as caught:
        ingest.read_sidecar(path)
    assert caught.value.path == path
    assert "Interview 03.yaml" in caught.value.reason
    assert "not valid YAML" in caught.value.reason
    assert "Interview 03.yaml" in str(caught.value)


def test_read_sidecar_not_utf8_is_an_ingest_error(tmp_path):
    path = tmp_path / "latin.yaml"
    path.write_bytes("title: café\n".encode("utf-16"))
    with pytest.raises(IngestError, match="latin.yaml"):
        ingest.read_sidecar(path)


def test_read_sidecar_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- title\n- consent\n")
    with pytest.raises(IngestError, match="list.yaml") as caught:
        ingest.read_sidecar(path)
    assert "field: value" in caught.value.reason


@pytest.mark.parametrize(
    "consent",
    [
        '{clips: "yes"}',
        '{clips: "Yes"}',
        "{clips: y}",
        '{clips: "1"}',
        "{clips: 1}",
        "{clips: maybe}",
        '{full_story: "no"}',
        "{clip: true}",  # a typo of a key must not be ignored either
        "true",
        "[transcript, clips]",
    ],
)
def test_read_sidecar_refuses_doubtful_consent(tmp_path, consent):
    path = tmp_path / "story.yaml"
    path.write_text(f"title: A story\nconsent: {consent}\n")
    with pytest.raises(IngestError) as caught:
        ingest.read_sidecar(path)
    assert "story.yaml" in caught.value.reason
    assert "consent" in caught.value.reason
    assert "invalid values" in caught.value.reason


def test_read_sidecar_invalid_field_value(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("speakers: 0\nrecorded_on: last tuesday\n")
    with pytest.raises(IngestError) as caught:
        ingest.read_sidecar(path)
    assert "speakers" in caught.value.reason and "recorded_on" in caught.value.reason


# ---- consent ----


def test_consent_without_sidecar_is_the_settings_default(cfg):
    assert ingest.consent_for(None, cfg) == cfg.ingest.default_consent
    assert ingest.consent_for(None, cfg) == Consent(transcript=True, clips=False, full_story=False, anonymise=True)


def test_consent_without_sidecar_follows_a_changed_default(cfg):
    cfg.ingest.default_consent = Consent(transcript=False, clips=True, full_story=True, anonymise=False)
    assert ingest.consent_for(None, cfg) == Consent(transcript=False, clips=True, full_story=True, anonymise=False)
    assert ingest.consent_for(Sidecar(title="no consent block"), cfg) == cfg.ingest.default_consent


def test_partial_consent_takes_the_default_for_the_rest(cfg, tmp_path):
    cfg.ingest.default_consent = Consent(transcript=False, clips=True, full_story=True, anonymise=False)
    path = tmp_path / "p.yaml"
    path.write_text("consent: {clips: false, anonymise: true}\n")
    consent = ingest.consent_for(ingest.read_sidecar(path), cfg)
    # Given keys win (even where they equal the model's own default); the rest come from settings.
    assert consent == Consent(transcript=False, clips=False, full_story=True, anonymise=True)


def test_empty_consent_block_is_the_default(cfg, tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("consent: {}\n")
    assert ingest.consent_for(ingest.read_sidecar(path), cfg) == cfg.ingest.default_consent


# ---- ingest: the good path ----


def test_ingest_good_wav_with_sidecar(store, cfg):
    recording = af.sine(store.inbox, "Interview 03.wav", duration=1.5, sample_rate=44100, channels=2)
    sidecar = write_sidecar(recording)
    before = {p.name: p.read_bytes() for p in (recording, sidecar)}
    sha, size = sha256(recording), recording.stat().st_size

    story, is_new = ingest.ingest_recording(recording, store, cfg)

    assert is_new is True
    assert story.story_id == f"interview-03-{sha[:8]}"
    # Originals: byte-identical, both files, nothing else.
    assert snapshot(store.original_dir(story.story_id)) == before
    # The inbox is empty again.
    assert list(store.inbox.iterdir()) == []
    # story.json
    on_disk = read_model(store.story_dir(story.story_id) / "story.json", Story)
    assert on_disk == story
    raw = json.loads((store.story_dir(story.story_id) / "story.json").read_text(encoding="utf-8"))
    assert raw["schema_version"] == 1
    assert raw["state"] == "ingested"
    assert [h["state"] for h in raw["history"]] == ["ingested"]
    assert raw["source"] == {
        "filename": "Interview 03.wav",
        "sha256": sha,
        "bytes": size,
        "format": "wav",
        "duration_s": 1.5,
        "channels": 2,
        "sample_rate": 44100,
    }
    assert raw["metadata"]["title"] == "Finding my voice"
    assert raw["metadata"]["recorded_on"] == "2026-10-02"
    assert raw["metadata"]["project_code"] == "NW-7"
    assert "consent" not in raw["metadata"]
    assert raw["consent"] == {"transcript": True, "clips": True, "full_story": False, "anonymise": True}
    # The one problem: a field storypipe does not know, kept as it is (it may be a typo).
    assert story.problems == [
        "the sidecar Interview 03.yaml has fields storypipe does not know (project_code): kept as they are"
    ]
    # The 16 kHz copy for recognition keeps a stereo original's two channels (one voice per channel
    # is common on interview recorders); recognition mixes them to mono in memory.
    speech = store.speech_wav(story.story_id)
    with wave.open(str(speech), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (2, 2, 16000, 24000)
    # Nothing else was left behind (no temp files, nothing in quarantine).
    assert list(store.quarantine.iterdir()) == []
    assert [p.name for p in speech.parent.iterdir()] == ["speech-16k.wav"]


def test_ingest_without_sidecar_uses_the_cautious_default(store, cfg):
    recording = af.noise(store.inbox, "street noise.flac", duration=1.2)
    story, is_new = ingest.ingest_recording(recording, store, cfg)
    assert is_new
    assert story.consent == cfg.ingest.default_consent
    assert story.consent.clips is False and story.consent.full_story is False
    assert any("no sidecar" in p for p in story.problems)
    assert [p.name for p in store.original_dir(story.story_id).iterdir()] == ["street noise.flac"]


@pytest.mark.parametrize("name", ["talk.mp3", "talk.m4a", "talk.ogg", "talk.opus"])
def test_ingest_short_speech_in_compressed_formats(store, cfg, name):
    recording = af.speech(store.inbox, name, "I found people who listened to me, and that changed everything.")
    expected = af.ffprobe_json(recording)
    story, _ = ingest.ingest_recording(recording, store, cfg)
    assert story.source.format == expected["format"]["format_name"]
    assert story.source.sample_rate == int(expected["streams"][0]["sample_rate"])
    assert story.source.channels == 1
    assert story.source.duration_s == pytest.approx(float(expected["format"]["duration"]), abs=0.1)
    assert story.source.duration_s >= 1.0


def test_ingest_video_with_sound(store, cfg):
    recording = af.video_with_audio(store.inbox, "phone video.mp4", duration=1.5)
    story, _ = ingest.ingest_recording(recording, store, cfg)
    assert story.source.format == "mov,mp4,m4a,3gp,3g2,mj2"
    assert story.source.duration_s == pytest.approx(1.5, abs=0.1)
    assert store.speech_wav(story.story_id).exists()


# ---- duplicates ----


def _ingest_once(store, cfg, name="Interview 03.wav", sidecar_text=SIDECAR_YAML):
    recording = af.sine(store.inbox, name, duration=1.2)
    data = recording.read_bytes()
    sidecar_bytes = None
    if sidecar_text is not None:
        sidecar_bytes = write_sidecar(recording, sidecar_text).read_bytes()
    story, is_new = ingest.ingest_recording(recording, store, cfg)
    assert is_new
    return story, data, sidecar_bytes


def test_same_bytes_same_name_again_is_recognised(store, cfg):
    story, data, _ = _ingest_once(store, cfg, sidecar_text=None)
    kept = store.original_dir(story.story_id) / "Interview 03.wav"
    kept_stat = kept.stat()
    story_json = (store.story_dir(story.story_id) / "story.json").read_bytes()

    again = store.inbox / "Interview 03.wav"
    again.write_bytes(data)
    known, is_new = ingest.ingest_recording(again, store, cfg)

    assert is_new is False
    assert known.story_id == story.story_id
    assert list(store.inbox.iterdir()) == []
    assert kept.read_bytes() == data
    assert (kept.stat().st_ino, kept.stat().st_mtime_ns) == (kept_stat.st_ino, kept_stat.st_mtime_ns)
    assert (store.story_dir(story.story_id) / "story.json").read_bytes() == story_json
    assert list(store.quarantine.iterdir()) == []


@pytest.mark.parametrize("stem", ["Interview 03", "copy of the interview"])
def test_the_same_bytes_with_the_same_sidecar_are_the_same_story_and_both_copies_go(store, cfg, stem):
    """Dropped again under the same name, or under another one."""
    story, data, sidecar_bytes = _ingest_once(store, cfg)
    before = snapshot(store.original_dir(story.story_id))
    (store.inbox / f"{stem}.wav").write_bytes(data)
    (store.inbox / f"{stem}.yaml").write_bytes(sidecar_bytes)

    known, is_new = ingest.ingest_recording(store.inbox / f"{stem}.wav", store, cfg)

    assert (known.story_id, is_new) == (story.story_id, False)
    assert list(store.inbox.iterdir()) == []
    assert list(store.quarantine.iterdir()) == []
    assert snapshot(store.original_dir(story.story_id)) == before
    assert len(list(store.transcripts.iterdir())) == 1


def test_duplicate_with_a_different_sidecar_quarantines_the_sidecar(store, cfg):
    story, data, sidecar_bytes = _ingest_once(store, cfg)
    before = snapshot(store.original_dir(story.story_id))
    changed = SIDECAR_YAML.replace("full_story: false", "full_story: true")
    (store.inbox / "Interview 03.wav").write_bytes(data)
    (store.inbox / "Interview 03.yaml").write_text(changed)

    known, is_new = ingest.ingest_recording(store.inbox / "Interview 03.wav", store, cfg)

    assert (known.story_id, is_new) == (story.story_id, False)
    assert known.consent.full_story is False  # the new sidecar was not applied
    assert list(store.inbox.iterdir()) == []
    assert (store.quarantine / "Interview 03.yaml").read_text() == changed
    note = (store.quarantine / "Interview 03.yaml.error.txt").read_text()
    assert story.story_id in note and "differs" in note
    assert snapshot(store.original_dir(story.story_id)) == before


def test_duplicate_restores_a_missing_original(store, cfg):
    story, data, _ = _ingest_once(store, cfg, sidecar_text=None)
    kept = store.original_dir(story.story_id) / "Interview 03.wav"
    kept.unlink()
    (store.inbox / "Interview 03.wav").write_bytes(data)
    _, is_new = ingest.ingest_recording(store.inbox / "Interview 03.wav", store, cfg)
    assert is_new is False
    assert kept.read_bytes() == data
    assert list(store.inbox.iterdir()) == []


def test_same_stem_other_bytes_is_a_new_story(store, cfg):
    story, _, _ = _ingest_once(store, cfg, sidecar_text=None)
    other = af.sine(store.inbox, "Interview 03.wav", duration=1.3, frequency=523)
    story2, is_new = ingest.ingest_recording(other, store, cfg)
    assert is_new and story2.story_id != story.story_id
    assert story2.story_id.startswith("interview-03-")


# ---- bad input: IngestError, inbox untouched ----


def _zero_byte(inbox):
    return af.empty_file(inbox, "empty.m4a")


def _text_as_mp3(inbox):
    return af.text_file(inbox, "letter.mp3", "Dear team, this is not a recording.\n" * 3)


def _too_short(inbox):
    return af.sine(inbox, "short.wav", duration=0.3)


def _video_no_audio(inbox):
    return af.video_only(inbox, "camera.mp4", duration=1.0)


def _bad_sidecar(inbox):
    recording = af.sine(inbox, "bad sidecar.wav", duration=1.2)
    write_sidecar(recording, "title: [unclosed\nconsent: {clips: true\n")
    return recording


def _string_consent(inbox):
    recording = af.sine(inbox, "consent.wav", duration=1.2)
    write_sidecar(recording, 'title: Yes means yes?\nconsent: {clips: "yes"}\n')
    return recording


def _silent_truncated_mp3(inbox):
    real = af.sine(inbox.parent / "elsewhere", "real.mp3", duration=1.0)
    return af.truncated(real, inbox, "cut.mp3", keep_bytes=200)


@pytest.mark.parametrize(
    "make, words",
    [
        (_zero_byte, ["empty (0 bytes)"]),
        (_text_as_mp3, ["not an audio or video file"]),
        (_too_short, ["0.30 s", "at least 1 s"]),
        (_video_no_audio, ["no sound track"]),
        (_bad_sidecar, ["bad sidecar.yaml", "not valid YAML"]),
        (_string_consent, ["consent.yaml", "consent.clips"]),
        (_silent_truncated_mp3, ["not an audio or video file"]),
    ],
    ids=["zero-byte", "text-as-mp3", "0.3s", "video-no-audio", "invalid-sidecar", "consent-yes-string", "truncated-mp3"],
)
def test_bad_input_raises_and_leaves_the_inbox_untouched(store, cfg, make, words):
    recording = make(store.inbox)
    before = snapshot(store.inbox)

    with pytest.raises(IngestError) as caught:
        ingest.ingest_recording(recording, store, cfg)

    for word in words:
        assert word in caught.value.reason
    assert recording.name in str(caught.value) or caught.value.path.name in str(caught.value)
    assert "Traceback" not in caught.value.reason
    assert snapshot(store.inbox) == before
    for folder in (store.originals, store.transcripts, store.quarantine):
        assert list(folder.iterdir()) == []
    assert not store.work.exists() or list(store.work.rglob("*.wav")) == []


def test_bad_input_then_quarantine_keeps_the_reason(store, cfg):
    """What the flow does with an IngestError: the note carries the reason a volunteer reads."""
    recording = _bad_sidecar(store.inbox)
    with pytest.raises(IngestError) as caught:
        ingest.ingest_recording(recording, store, cfg)
    ingest.quarantine(store, recording, caught.value.reason)
    assert sorted(p.name for p in store.quarantine.iterdir()) == [
        "bad sidecar.wav", "bad sidecar.wav.error.txt", "bad sidecar.yaml",
    ]
    assert caught.value.reason in (store.quarantine / "bad sidecar.wav.error.txt").read_text()
    assert list(store.inbox.iterdir()) == []


# ---- quarantine ----


def test_quarantine_moves_recording_and_sidecar_with_a_note(store):
    recording = af.text_file(store.inbox, "letter.mp3", "not audio\n")
    sidecar = write_sidecar(recording, "title: Letter\n")
    before = {p.name: p.read_bytes() for p in (recording, sidecar)}

    target = ingest.quarantine(store, recording, "this is not an audio or video file we can read")

    assert target == store.quarantine / "letter.mp3"
    assert list(store.inbox.iterdir()) == []
    assert (store.quarantine / "letter.mp3").read_bytes() == before["letter.mp3"]
    assert (store.quarantine / "letter.yaml").read_bytes() == before["letter.yaml"]
    note = (store.quarantine / "letter.mp3.error.txt").read_text(encoding="utf-8")
    assert "letter.mp3" in note
    assert "this is not an audio or video file we can read" in note
    assert sorted(p.name for p in store.quarantine.iterdir()) == ["letter.mp3", "letter.mp3.error.txt", "letter.yaml"]


def test_quarantine_without_sidecar(store):
    recording = af.empty_file(store.inbox, "empty.wav")
    ingest.quarantine(store, recording, "the file is empty (0 bytes)")
    assert sorted(p.name for p in store.quarantine.iterdir()) == ["empty.wav", "empty.wav.error.txt"]


def test_quarantine_name_collision_keeps_the_earlier_file(store):
    first = af.text_file(store.inbox, "take.mp3", "first\n")
    ingest.quarantine(store, first, "first reason")
    second = af.text_file(store.inbox, "take.mp3", "second\n")
    target = ingest.quarantine(store, second, "second reason")

    assert target != store.quarantine / "take.mp3"
    assert target.parent == store.quarantine and target.suffix == ".mp3"
    assert (store.quarantine / "take.mp3").read_text() == "first\n"
    assert "first reason" in (store.quarantine / "take.mp3.error.txt").read_text()
    assert target.read_text() == "second\n"
    assert "second reason" in target.with_name(target.name + ".error.txt").read_text()
    assert len(list(store.quarantine.iterdir())) == 4


def test_quarantine_collision_of_both_recording_and_sidecar(store):
    for text in ("first\n", "second\n"):
        recording = af.text_file(store.inbox, "take.mp3", text)
        write_sidecar(recording, f"title: {text}")
        ingest.quarantine(store, recording, text)
    names = sorted(p.name for p in store.quarantine.iterdir())
    assert names == ["take (1).mp3", "take (1).mp3.error.txt", "take (1).yaml", "take.mp3", "take.mp3.error.txt", "take.yaml"]
    assert (store.quarantine / "take.yaml").read_text() == "title: first\n"
    assert (store.quarantine / "take (1).yaml").read_text() == "title: second\n"


def test_quarantine_collision_keeps_each_sidecar_with_its_recording(store):
    first = af.text_file(store.inbox, "take.mp3", "first\n")
    ingest.quarantine(store, first, "first reason")
    second = af.text_file(store.inbox, "take.mp3", "second\n")
    write_sidecar(second, "title: belongs to the second\nconsent: {clips: true}\n")
    target = ingest.quarantine(store, second, "second reason")
    own_sidecar = target.with_suffix(".yaml")
    assert own_sidecar.exists(), sorted(p.name for p in store.quarantine.iterdir())
    assert own_sidecar.read_text().startswith("title: belongs to the second")
    assert not (store.quarantine / "take.yaml").exists()


# ---- what is waiting in the inbox ----


def test_list_inbox_skips_sidecars_hidden_and_partial_files(store, cfg):
    for name in [
        "b talk.wav", "a talk.mp3", "a talk.yaml", "c.yml", "C.YAML", ".hidden.wav", ".DS_Store",
        "d.wav.part", "e.m4a.crdownload", "f.mp3.partial", "g.tmp", "h.wav.download", "i.wav~",
    ]:
        (store.inbox / name).write_bytes(b"x")
    (store.inbox / "folder.wav").mkdir()
    assert [p.name for p in ingest.list_inbox(store, cfg)] == ["a talk.mp3", "b talk.wav"]


def test_list_inbox_of_a_missing_inbox(tmp_path, cfg):
    assert ingest.list_inbox(Store(tmp_path / "nowhere"), cfg) == []
    assert ingest.waiting_sidecars(Store(tmp_path / "nowhere")) == []


def test_waiting_sidecars_lists_sidecars_without_their_recording(store):
    for name in ["paired.wav", "paired.yaml", "orphan.yaml", "later.yml"]:
        (store.inbox / name).write_bytes(b"x")
    assert [p.name for p in ingest.waiting_sidecars(store)] == ["later.yml", "orphan.yaml"]


def test_waiting_sidecar_while_its_recording_is_still_copying(store, cfg):
    (store.inbox / "slow.wav.part").write_bytes(b"x")
    (store.inbox / "slow.yaml").write_text("title: slow\n")
    assert ingest.list_inbox(store, cfg) == []
    assert [p.name for p in ingest.waiting_sidecars(store)] == ["slow.yaml"]


def test_find_sidecar_prefers_yaml_then_yml(tmp_path):
    recording = tmp_path / "x.wav"
    recording.write_bytes(b"x")
    assert ingest.find_sidecar(recording) is None
    (tmp_path / "x.yml").write_text("title: yml\n")
    assert ingest.find_sidecar(recording) == tmp_path / "x.yml"
    (tmp_path / "x.yaml").write_text("title: yaml\n")
    assert ingest.find_sidecar(recording) == tmp_path / "x.yaml"


def test_upper_case_sidecar_suffix_is_applied(store, cfg):
    recording = af.sine(store.inbox, "talk.wav", duration=1.2)
    (store.inbox / "talk.YAML").write_text("title: Upper case\nconsent: {clips: true}\n")
    story, _ = ingest.ingest_recording(recording, store, cfg)
    assert story.metadata.title == "Upper case"
    assert story.consent.clips is True
    assert list(store.inbox.iterdir()) == []


def test_long_non_ascii_name_is_ingested_or_refused_cleanly(store, cfg):
    recording = af.sine(store.inbox, "采访" * 40 + ".wav", duration=1.2)
    try:
        story, _ = ingest.ingest_recording(recording, store, cfg)
    except IngestError:
        return
    assert len(story.story_id.encode()) <= 255


def test_mono_and_multichannel_recordings_get_a_mono_speech_copy(store, cfg):
    for name, channels in (("mono.wav", 1), ("six.wav", 6)):
        recording = af.sine(store.inbox, name, duration=1.2, sample_rate=48000, channels=channels)
        story, _ = ingest.ingest_recording(recording, store, cfg)
        with wave.open(str(store.speech_wav(story.story_id)), "rb") as w:
            assert (w.getnchannels(), w.getframerate()) == (1, 16000)
        assert story.source.channels == channels


# ---- awkward input (issue 7): the reasons a volunteer reads ----


def test_unknown_sidecar_fields_are_kept_with_a_warning(store, cfg):
    import logging

    recording = af.sine(store.inbox, "talk.wav", duration=1.2)
    write_sidecar(recording, "title: Talk\nstoryteler: R.\nproject_code: NW-7\n")
    warnings: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: warnings.append(record.getMessage())
    logging.getLogger("storypipe").addHandler(handler)  # the CLI stops it propagating to the root
    try:
        story, _ = ingest.ingest_recording(recording, store, cfg)
    finally:
        logging.getLogger("storypipe").removeHandler(handler)

    assert story.metadata.model_extra == {"storyteler": "R.", "project_code": "NW-7"}
    note = (
        "the sidecar talk.yaml has fields storypipe does not know "
        "(project_code, storyteler (did you mean storyteller?)): kept as they are"
    )
    assert note in story.problems
    assert warnings == [f"talk.wav: {note}"]
    saved = json.loads((store.story_dir(story.story_id) / "story.json").read_text(encoding="utf-8"))
    assert saved["metadata"]["storyteler"] == "R." and note in saved["problems"]


def test_known_sidecar_fields_give_no_warning(store, cfg):
    recording = af.sine(store.inbox, "talk.wav", duration=1.2)
    write_sidecar(recording, "title: Talk\nstoryteller: R.\nconsent: {clips: true}\n")
    story, _ = ingest.ingest_recording(recording, store, cfg)
    assert story.problems == []


def test_an_mp3_cut_in_half_is_used_and_said_to_be_cut_short(store, cfg):
    real = af.speech(store.root / "elsewhere", "real.mp3", "The group helped me find my voice again after a hard year.")
    data = real.read_bytes()
    recording = store.inbox / "half.mp3"
    recording.write_bytes(data[: len(data) // 2])

    story, _ = ingest.ingest_recording(recording, store, cfg)

    (note,) = [p for p in story.problems if "cut short" in p]
    assert "it says it lasts 3.5 s, but only 1.7 s of sound could be read" in note
    assert story.source.duration_s == pytest.approx(1.7, abs=0.1)
    assert sha256(store.original_dir(story.story_id) / "half.mp3") == hashlib.sha256(data[: len(data) // 2]).hexdigest()


@pytest.mark.parametrize(
    "keep, words",
    [
        (400, ["not an audio or video file", "damaged or cut short"]),  # no sound frame at all
        (1000, ["only 0.03 s", "at least 1 s", "cut short", "it says it lasts 3.5 s"]),  # a few frames
    ],
)
def test_an_mp3_cut_to_a_few_hundred_bytes_says_so(store, cfg, keep, words):
    real = af.speech(store.root / "elsewhere", "real.mp3", "The group helped me find my voice again after a hard year.")
    recording = af.truncated(real, store.inbox, "stub.mp3", keep_bytes=keep)
    with pytest.raises(IngestError) as caught:
        ingest.ingest_recording(recording, store, cfg)
    for word in words:
        assert word in caught.value.reason
    assert list(store.inbox.iterdir()) == [recording]


def test_text_with_an_audio_extension_is_called_text(store, cfg):
    recording = af.text_file(store.inbox, "notes.wav", "Meeting notes for Tuesday, not a recording.\n")
    with pytest.raises(IngestError) as caught:
        ingest.ingest_recording(recording, store, cfg)
    assert caught.value.reason.startswith("this is not an audio or video file we can read: it holds plain text")


def test_a_whole_recording_is_not_said_to_be_cut_short(store, cfg):
    for name in ("whole.mp3", "whole.m4a", "whole.ogg", "whole.wav"):
        recording = af.speech(store.inbox, name, "The group helped me find my voice again after a hard year.")
        story, _ = ingest.ingest_recording(recording, store, cfg)
        assert not any("cut short" in p for p in story.problems), (name, story.problems)
