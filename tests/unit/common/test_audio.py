"""tasks/common/audio.py on real recordings made at test time: probe, decode, the ffprobe-less fallback, errors."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from tests.support import audio_fixtures as af
from storypipe.tasks.common import audio

RATE = 16000
TONE_HZ = 440
DURATION = 2.0
# Lossy codecs add priming/padding samples (AAC ~1024 at the start, MP3 an encoder delay); allow for it.
TOLERANCE_S = 0.1

# name -> (expected probe.format, source sample rate the container should report)
CONTAINERS = {
    "tone.wav": ("wav", 44100),
    "tone.mp3": ("mp3", 44100),
    "tone.m4a": ("mov,mp4,m4a,3gp,3g2,mj2", 44100),
    "tone.aac": ("aac", 44100),
    "tone.ogg": ("ogg", 44100),
    "tone.opus": ("ogg", 48000),
    "tone.flac": ("flac", 44100),
    "tone.webm": ("matroska,webm", 48000),
}
VIDEO_CONTAINERS = {
    "clip.mp4": ("mov,mp4,m4a,3gp,3g2,mj2", 44100),
    "clip.mov": ("mov,mp4,m4a,3gp,3g2,mj2", 44100),
    "clip.webm": ("matroska,webm", 48000),
}
LOSSLESS = {".wav", ".flac"}


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> dict[str, Path]:
    """One 2 s 440 Hz tone per container (made once for the module: each is a few hundred ms of ffmpeg)."""
    folder = tmp_path_factory.mktemp("recordings")
    made = {name: af.sine(folder, name, duration=DURATION, frequency=TONE_HZ) for name in CONTAINERS}
    made |= {name: af.video_with_audio(folder, name, duration=DURATION, frequency=TONE_HZ) for name in VIDEO_CONTAINERS}
    return made


@pytest.fixture(scope="module")
def multichannel(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("multichannel")
    return {
        "stereo.flac": af.sine(folder, "stereo.flac", duration=1.5, sample_rate=44100, channels=2),
        "six.wav": af.sine(folder, "six.wav", duration=1.5, sample_rate=48000, channels=6),
    }


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad")
    real_mp3 = af.sine(folder / "src", "real.mp3", duration=1.0)
    return {
        "empty": af.empty_file(folder, "empty.wav"),
        "text": af.text_file(folder, "notes.mp3", "Meeting notes: bring the recorder.\n" * 5),
        "video_only": af.video_only(folder, "no-sound.mp4", duration=1.0),
        "truncated_mp3": af.truncated(real_mp3, folder, "cut-off.mp3", keep_bytes=200),
    }


def dominant_frequency(pcm: np.ndarray, rate: int) -> float:
    x = pcm.astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[int(np.argmax(spectrum))])


# ---- probe + decode, every accepted container ----

ALL = {**CONTAINERS, **VIDEO_CONTAINERS}


@pytest.mark.parametrize("name", list(ALL))
def test_probe_reports_format_duration_channels_rate(recordings, name):
    expected_format, expected_rate = ALL[name]
    info = audio.probe(recordings[name])
    assert info.format == expected_format
    assert info.channels == 1
    assert info.sample_rate == expected_rate
    assert info.duration_s == pytest.approx(DURATION, abs=TOLERANCE_S)


@pytest.mark.parametrize("name", list(ALL))
def test_decode_pcm16_gives_16k_mono_of_the_right_length(recordings, name):
    pcm = audio.decode_pcm16(recordings[name], RATE)
    assert pcm.dtype == np.int16
    assert pcm.ndim == 1
    if Path(name).suffix in LOSSLESS:
        assert len(pcm) == int(DURATION * RATE)
    else:
        assert len(pcm) == pytest.approx(DURATION * RATE, abs=TOLERANCE_S * RATE)
    # It is the tone, resampled correctly, not silence or noise.
    assert np.abs(pcm).max() > 1000
    assert dominant_frequency(pcm, RATE) == pytest.approx(TONE_HZ, abs=5)


def test_suffixes_of_all_tested_containers_are_accepted():
    assert {Path(n).suffix for n in ALL} <= audio.AUDIO_EXTENSIONS


def test_decode_keeps_channels_when_asked(multichannel):
    pcm = audio.decode_pcm16(multichannel["stereo.flac"], 22050, channels=2)
    assert pcm.dtype == np.int16
    assert pcm.shape == (int(1.5 * 22050), 2)
    # The fixture puts the same tone on both channels.
    assert np.abs(pcm[:, 0].astype(int) - pcm[:, 1].astype(int)).max() <= 1


def test_decode_mixes_six_channels_down_to_mono(multichannel):
    pcm = audio.decode_pcm16(multichannel["six.wav"], RATE)
    assert pcm.ndim == 1
    assert len(pcm) == int(1.5 * RATE)
    assert np.abs(pcm).max() > 1000


def test_decode_short_speech(tmp_path):
    wav = af.speech(tmp_path, "hello.wav", "Hello, my name is Sam.")
    mp3 = af.speech(tmp_path, "hello.mp3", "Hello, my name is Sam.")
    truth = audio.probe(wav).duration_s
    assert 0.8 < truth < 3.5
    pcm = audio.decode_pcm16(mp3, RATE)
    assert len(pcm) / RATE == pytest.approx(truth, abs=TOLERANCE_S)
    assert np.abs(pcm).max() > 1000


# ---- the fallback when ffprobe is missing ----


@pytest.mark.parametrize(
    "name, channels, rate", [("stereo.flac", 2, 44100), ("six.wav", 6, 48000)]
)
def test_probe_ffmpeg_fallback_matches_ffprobe(multichannel, name, channels, rate):
    path = multichannel[name]
    with_ffprobe = audio._probe_ffprobe(path)
    fallback = audio._probe_ffmpeg(path)
    assert (with_ffprobe.format, with_ffprobe.channels, with_ffprobe.sample_rate) == (name.split(".")[1], channels, rate)
    assert fallback.format == with_ffprobe.format
    assert fallback.channels == with_ffprobe.channels
    assert fallback.sample_rate == with_ffprobe.sample_rate
    # ffmpeg's banner rounds the duration to 10 ms.
    assert fallback.duration_s == pytest.approx(with_ffprobe.duration_s, abs=0.011)
    assert fallback.duration_s == pytest.approx(1.5, abs=0.011)


@pytest.mark.parametrize("name", ["stereo.flac", "six.wav"])
def test_probe_without_ffprobe_uses_the_fallback(multichannel, monkeypatch, name):
    path = multichannel[name]
    expected = audio.probe(path)  # ffprobe is installed here
    monkeypatch.setattr(audio, "ffprobe_binary", lambda: None)
    calls = []
    real = audio._probe_ffmpeg
    monkeypatch.setattr(audio, "_probe_ffmpeg", lambda p: calls.append(p) or real(p))
    info = audio.probe(path)
    assert calls == [path]
    assert (info.format, info.channels, info.sample_rate) == (expected.format, expected.channels, expected.sample_rate)
    assert info.duration_s == pytest.approx(expected.duration_s, abs=0.011)


@pytest.mark.parametrize("name", list(ALL))
def test_fallback_agrees_with_ffprobe_on_every_container(recordings, name):
    a, b = audio._probe_ffprobe(recordings[name]), audio._probe_ffmpeg(recordings[name])
    assert (b.format, b.channels, b.sample_rate) == (a.format, a.channels, a.sample_rate)
    assert b.duration_s == pytest.approx(a.duration_s, abs=0.011)


@pytest.mark.parametrize("store, channels", [("quad", 4), ("4.0", 4), ("5.1(side)", 6), ("6.0", 6), ("7.1", 8)])
def test_fallback_counts_channels_of_named_layouts(tmp_path, store, channels):
    path = tmp_path / "store.wav"
    af.run_ffmpeg("-f", "lavfi", "-i", "sine=duration=1", "-af", f"aformat=channel_layouts={store}",
                  "-c:a", "pcm_s16le", str(path))
    assert audio._probe_ffprobe(path).channels == channels
    assert audio._probe_ffmpeg(path).channels == channels


@pytest.mark.parametrize("store, channels", [("hexagonal", 6), ("octagonal", 8)])
def test_fallback_handles_worded_layouts(tmp_path, store, channels):
    path = tmp_path / "store.wav"
    af.run_ffmpeg("-f", "lavfi", "-i", "sine=duration=1", "-af", f"aformat=channel_layouts={store}",
                  "-c:a", "pcm_s16le", str(path))
    assert audio._probe_ffmpeg(path).channels == channels


def test_fallback_counts_22_2_as_24_channels(tmp_path):
    path = tmp_path / "store.wav"
    af.run_ffmpeg("-f", "lavfi", "-i", "sine=duration=0.5", "-af", "aformat=channel_layouts=22.2",
                  "-c:a", "pcm_s16le", str(path))
    assert audio._probe_ffprobe(path).channels == 24
    assert audio._probe_ffmpeg(path).channels == 24


# ---- errors a volunteer can act on ----


def _first_error(path: Path) -> audio.AudioError:
    """What the pipeline meets first: probe, then decode."""
    with pytest.raises(audio.AudioError) as caught:
        audio.probe(path)
        audio.decode_pcm16(path, RATE)
    return caught.value


@pytest.mark.parametrize("ffprobe", ["present", "missing"])
@pytest.mark.parametrize(
    "kind, words",
    [
        ("empty", ["empty", "0 bytes"]),
        ("text", ["not an audio or video file"]),
        ("video_only", ["no sound track"]),
        ("truncated_mp3", ["not an audio or video file"]),
    ],
)
def test_unusable_files_raise_audio_error_with_a_plain_reason(bad_files, monkeypatch, ffprobe, kind, words):
    if ffprobe == "missing":  # as on a pip-only install (imageio-ffmpeg ships ffmpeg alone); the lookup is cached
        monkeypatch.setattr(audio, "ffprobe_binary", lambda: None)
    error = _first_error(bad_files[kind])
    assert isinstance(error, ValueError)
    message = str(error)
    for word in words:
        assert word in message
    # No Python internals or the full temp path leaking into the reason.
    assert "Traceback" not in message
    assert str(bad_files[kind].parent) not in message


@pytest.mark.parametrize("kind", ["empty", "text", "truncated_mp3"])
def test_decode_alone_raises_audio_error_on_unreadable_files(bad_files, kind):
    with pytest.raises(audio.AudioError, match="could not be decoded"):
        audio.decode_pcm16(bad_files[kind], RATE)


def test_decode_alone_explains_a_missing_sound_track(bad_files):
    with pytest.raises(audio.AudioError) as caught:
        audio.decode_pcm16(bad_files["video_only"], RATE)
    message = str(caught.value)
    assert "trailing '?'" not in message
    assert "sound" in message and ("no audio" in message or "matches no streams" in message)


def test_missing_file_is_not_mistaken_for_an_audio_problem(tmp_path):
    with pytest.raises(FileNotFoundError):
        audio.probe(tmp_path / "nothing-here.wav")


# ---- write_wav / read_wav_float ----


def test_write_wav_read_wav_float_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    pcm = rng.integers(-32768, 32768, size=RATE, dtype=np.int16)
    pcm[:3] = [-32768, 0, 32767]
    path = tmp_path / "deep" / "er" / "speech-16k.wav"
    assert audio.write_wav(path, pcm, RATE) == path
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (1, 2, RATE, RATE)
    back = audio.read_wav_float(path)
    assert back.dtype == np.float32
    assert len(back) == len(pcm)
    assert back[:3].tolist() == [-1.0, 0.0, 32767 / 32768]
    assert np.array_equal(np.round(back * 32768).astype(np.int16), pcm)
    assert back.min() >= -1.0 and back.max() < 1.0
    # Atomic write: no temporary file left beside it.
    assert [p.name for p in path.parent.iterdir()] == ["speech-16k.wav"]


def test_write_wav_stereo_and_readable_by_ffmpeg(tmp_path):
    t = np.arange(8000) / 8000
    left = (np.sin(2 * np.pi * 300 * t) * 10000).astype(np.int16)
    pcm = np.stack([left, -left], axis=1)
    path = audio.write_wav(tmp_path / "stereo.wav", pcm, 8000)
    info = audio.probe(path)
    assert (info.format, info.channels, info.sample_rate) == ("wav", 2, 8000)
    assert info.duration_s == pytest.approx(1.0, abs=0.001)
    assert np.array_equal(audio.decode_pcm16(path, 8000, channels=2), pcm)


def test_write_wav_overwrites_and_decode_round_trip(tmp_path):
    path = tmp_path / "x.wav"
    audio.write_wav(path, np.zeros(100, dtype=np.int16), RATE)
    pcm = (np.sin(2 * np.pi * 440 * np.arange(RATE) / RATE) * 12000).astype(np.int16)
    audio.write_wav(path, pcm, RATE)
    assert np.array_equal(audio.decode_pcm16(path, RATE), pcm)
    assert np.allclose(audio.read_wav_float(path), pcm / 32768.0)
