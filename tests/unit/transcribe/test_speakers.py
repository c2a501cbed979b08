"""Speaker labels: words attributed per channel (split stereo) or by voice (mono), segments split at
every change of speaker, names from word counts or the sidecar's roles.

The interview fixtures are synthesised here with espeak-ng (bench/speaker_fixtures.py); word timings
are spread over each turn's known span, so no recogniser runs in these tests. The clustering and the
Viterbi pass are tested on synthetic voice embeddings (test_diarize.py), and on a real two-person
recording with its committed Whisper words (test_diarize.py too).
"""

from __future__ import annotations

import socket
import threading

import numpy as np
import pytest

from bench.speaker_fixtures import ESPEAK, SAMPLE_RATE, SCRIPT_SHORT, build_interview, fake_segments
from storypipe.core.models import Segment, Word
from storypipe.tasks.transcribe import speakers
from storypipe.tasks.transcribe.speakers import (
    INTERVIEWER,
    STORYTELLER,
    check_roles,
    is_split_stereo,
    label_speakers,
)

needs_espeak = pytest.mark.skipif(ESPEAK is None, reason="espeak-ng is not installed")
VOICES = {"interviewer": "en-us+m3", "storyteller": "en-us+f2"}


def seg(i: int, words: list[tuple[str, float, float]], **extra) -> Segment:
    ws = [Word(word=" " + w, start=a, end=b, probability=0.9) for w, a, b in words]
    return Segment(id=i, start=ws[0].start, end=ws[-1].end, text="".join(w.word for w in ws).strip(),
                   avg_logprob=-0.3, no_speech_prob=0.02, compression_ratio=1.4, **extra, words=ws)


def channels_for(spans: list[tuple[float, float, int]], duration: float, bleed_db: float = -30.0) -> np.ndarray:
    """Stereo noise bursts: each (start, end, channel) is loud on its channel, faint on the other."""
    rng = np.random.default_rng(1)
    out = (rng.standard_normal((int(duration * SAMPLE_RATE), 2)) * 1e-4).astype(np.float32)
    for a, b, ch in spans:
        burst = rng.standard_normal(int((b - a) * SAMPLE_RATE)).astype(np.float32) * 0.1
        i = int(a * SAMPLE_RATE)
        out[i: i + len(burst), ch] += burst
        out[i: i + len(burst), 1 - ch] += burst * 10 ** (bleed_db / 20)
    return out


def words_of(segments: list[Segment]) -> list[tuple[float, str]]:
    return [((w.start + w.end) / 2, s.speaker) for s in segments for w in s.words]


@pytest.fixture(scope="module")
def interview():
    if ESPEAK is None:
        pytest.skip("espeak-ng is not installed")
    return build_interview(SCRIPT_SHORT, VOICES, bleed_db=-25.0)


# --- splitting -----------------------------------------------------------------------------------

def _two_segments() -> list[Segment]:
    # "A" speaks words 0-3 (left), "B" answers mid-segment with words 4-6 (right), then a wordless segment.
    first = seg(0, [("So", 0.0, 0.3), ("tell", 0.4, 0.7), ("me", 0.8, 1.0), ("more.", 1.1, 1.4),
                    ("Well,", 2.0, 2.3), ("it", 2.4, 2.6), ("started", 2.7, 3.2)], low_confidence=True)
    second = seg(1, [("when", 3.3, 3.6), ("the", 3.7, 3.8), ("centre", 3.9, 4.3), ("closed.", 4.4, 4.9)])
    silent = Segment(id=2, start=5.5, end=6.5, text="[inaudible]", avg_logprob=-1.0, no_speech_prob=0.5)
    return [first, second, silent]


def _two_channel_audio() -> np.ndarray:
    return channels_for([(0.0, 1.45, 0), (2.0, 4.95, 1), (5.5, 6.5, 1)], 7.0)


def test_a_change_mid_segment_splits_it_and_rebuilds_text_and_times():
    segments = _two_segments()
    channels = _two_channel_audio()
    out = label_speakers(segments, channels.mean(axis=1), channels)
    assert [s.id for s in out] == list(range(len(out)))
    assert [(s.speaker, s.text, s.start, s.end) for s in out] == [
        (INTERVIEWER, "So tell me more.", 0.0, 1.4),
        (STORYTELLER, "Well, it started", 2.0, 3.2),
        (STORYTELLER, "when the centre closed.", 3.3, 4.9),
        (STORYTELLER, "[inaudible]", 5.5, 6.5),
    ]
    # the parts keep their parent's recogniser scores and flags
    assert all(s.avg_logprob == -0.3 and s.compression_ratio == 1.4 and s.low_confidence for s in out[:2])
    assert out[3].words == [] and out[3].no_speech_prob == 0.5
    # no word lost, none doubled, order kept
    assert [w.word for s in out for w in s.words] == [w.word for s in segments for w in s.words]


def test_no_segment_mixes_speakers_and_inputs_are_not_changed():
    segments = _two_segments()
    before = [s.model_dump() for s in segments]
    channels = _two_channel_audio()
    out = label_speakers(segments, channels.mean(axis=1), channels)
    assert [s.model_dump() for s in segments] == before
    assert all(s.speaker for s in out)
    assert len({s.speaker for s in out}) == 2


def test_one_speaker_labels_everyone_storyteller_without_splitting(monkeypatch):
    def no_diarization(*args, **kwargs):
        raise AssertionError("diarized a one-speaker recording")

    monkeypatch.setattr(speakers, "diarize", no_diarization)
    segments = _two_segments()
    channels = _two_channel_audio()
    out = label_speakers(segments, channels.mean(axis=1), channels, n_speakers=1)
    assert [s.speaker for s in out] == [STORYTELLER] * 3
    assert [s.text for s in out] == [s.text for s in segments]


def test_no_segments_give_no_segments():
    assert label_speakers([], np.zeros(SAMPLE_RATE, np.float32), None) == []


# --- roles ---------------------------------------------------------------------------------------

def test_first_voice_override_names_the_opener():
    # the left voice opens but says fewer words: by default it is the interviewer
    segments = _two_segments()
    channels = _two_channel_audio()
    mono = channels.mean(axis=1)
    assert label_speakers(segments, mono, channels)[0].speaker == INTERVIEWER
    out = label_speakers(segments, mono, channels, roles={"first": "storyteller"})
    assert [s.speaker for s in out] == [STORYTELLER, INTERVIEWER, INTERVIEWER, INTERVIEWER]
    out = label_speakers(segments, mono, channels, roles={"First": "interviewer"})
    assert [s.speaker for s in out] == [INTERVIEWER, STORYTELLER, STORYTELLER, STORYTELLER]


def test_left_right_override_names_the_channels():
    segments = _two_segments()
    channels = _two_channel_audio()
    mono = channels.mean(axis=1)
    out = label_speakers(segments, mono, channels, roles={"left": "storyteller", "right": "interviewer"})
    assert [s.speaker for s in out] == [STORYTELLER, INTERVIEWER, INTERVIEWER, INTERVIEWER]
    out = label_speakers(segments, mono, channels, roles={"right": "Sam"})
    assert [s.speaker for s in out] == [STORYTELLER, "Sam", "Sam", "Sam"]
    # left/right beat "first" when both are given
    out = label_speakers(segments, mono, channels, roles={"left": "interviewer", "first": "storyteller"})
    assert out[0].speaker == INTERVIEWER and out[1].speaker == STORYTELLER


def test_role_keys_are_checked():
    assert check_roles({" LEFT ": " interviewer "}) == {"left": "interviewer"}
    with pytest.raises(ValueError, match="unknown speaker role key"):
        check_roles({"opener": "interviewer"})
    with pytest.raises(ValueError, match="needs a name"):
        check_roles({"first": ""})
    with pytest.raises(ValueError, match="cannot both be"):
        check_roles({"left": "storyteller", "right": "storyteller"})


# --- stereo detection ----------------------------------------------------------------------------

@needs_espeak
def test_split_dual_mono_and_mixed_stereo_are_told_apart(interview):
    assert is_split_stereo(interview.stereo)
    assert not is_split_stereo(np.stack([interview.mono, interview.mono], axis=1))  # dual mono
    # a mix with both voices near the centre (a few dB apart), as from a stereo mic pair
    a = interview.stereo[:, 0] + interview.stereo[:, 1]
    rng = np.random.default_rng(0)
    other = np.roll(a, 7) * 0.7 + rng.standard_normal(len(a)).astype(np.float32) * 1e-3
    assert not is_split_stereo(np.stack([a, other], axis=1))
    # only one channel carries anything (a mono mic into a stereo recorder)
    assert not is_split_stereo(np.stack([interview.mono, np.zeros_like(interview.mono)], axis=1))
    assert not is_split_stereo(None)


# --- real voices ---------------------------------------------------------------------------------

@needs_espeak
def test_split_stereo_interview_words_go_to_their_channel(interview):
    segments = fake_segments(interview)
    out = label_speakers(segments, interview.mono, interview.stereo)
    got = words_of(out)
    correct = np.mean([who == interview.speaker_at(t) for t, who in got])
    assert correct >= 0.95, correct
    assert len(got) == sum(len(s.words) for s in segments)
    swapped = label_speakers(segments, interview.mono, interview.stereo,
                             roles={"left": "storyteller", "right": "interviewer"})
    assert np.mean([who != interview.speaker_at(t) for t, who in words_of(swapped)]) >= 0.95


@needs_espeak
def test_mono_interview_is_diarized_and_the_talker_is_the_storyteller(interview):
    segments = fake_segments(interview)
    out = label_speakers(segments, interview.mono, None)
    got = words_of(out)
    correct = np.mean([who == interview.speaker_at(t) for t, who in got])
    assert correct >= 0.95, correct
    # the voice with more words is the one named storyteller
    counts = {name: sum(1 for _, who in got if who == name) for name in (STORYTELLER, INTERVIEWER)}
    assert counts[STORYTELLER] > counts[INTERVIEWER] > 0
    # dual-mono stereo is treated exactly like mono
    dual = np.stack([interview.mono, interview.mono], axis=1)
    assert [s.speaker for s in label_speakers(segments, interview.mono, dual)] == [s.speaker for s in out]
    # the interviewer opens: naming the first voice gives the same answer here
    first = label_speakers(segments, interview.mono, None, roles={"first": "interviewer"})
    assert [s.speaker for s in first] == [s.speaker for s in out]


# --- the voice encoder ---------------------------------------------------------------------------

def test_voice_encoder_loads_from_the_wheel_without_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the voice encoder tried to use the network")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    encoder = speakers._load_encoder.__wrapped__()
    assert sum(p.numel() for p in encoder.parameters()) > 1_000_000


def test_voice_encoder_is_loaded_once_across_threads():
    found = []
    threads = [threading.Thread(target=lambda: found.append(speakers.voice_encoder())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(found) == 4 and all(e is found[0] for e in found)


def test_mel_frames_are_librosas():
    """speakers._mel writes out librosa's melspectrogram (to spare every process librosa's imports):
    the same filter bank, and the same frames to float32 rounding, on speech-like noise of an odd length."""
    import librosa

    rng = np.random.default_rng(7)
    mono = (rng.standard_normal(SAMPLE_RATE * 3 + 123) * 0.1).astype(np.float32)
    reference = librosa.feature.melspectrogram(
        y=np.pad(mono, 200), sr=SAMPLE_RATE, n_fft=400, hop_length=160, n_mels=40, center=False).T
    np.testing.assert_array_equal(speakers._mel_basis(400, 40), librosa.filters.mel(sr=SAMPLE_RATE, n_fft=400, n_mels=40))
    ours = speakers._mel(mono, chunk_frames=97)  # chunk edges must not show
    assert ours.shape == reference.shape and ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-6 * float(reference.max()))
