"""Synthesise small test recordings at test time with ffmpeg's lavfi sources and espeak-ng.

Every helper writes one file into the given folder and returns its Path. The container and codec
follow the file name's extension (see CODECS), so `sine(tmp_path, "a.ogg")` is Ogg Vorbis and
`sine(tmp_path, "a.webm")` is WebM/Opus. Nothing here touches the network.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

FFMPEG = shutil.which("ffmpeg") or "/usr/bin/ffmpeg"
FFPROBE = shutil.which("ffprobe") or "/usr/bin/ffprobe"
ESPEAK = shutil.which("espeak-ng") or shutil.which("espeak")

# extension -> (audio encoder args, forced sample rate or None, extra muxer args)
CODECS: dict[str, tuple[list[str], int | None, list[str]]] = {
    ".wav": (["-c:a", "pcm_s16le"], None, []),
    ".mp3": (["-c:a", "libmp3lame", "-b:a", "96k"], None, []),
    ".m4a": (["-c:a", "aac", "-b:a", "96k"], None, []),
    ".aac": (["-c:a", "aac", "-b:a", "96k"], None, ["-f", "adts"]),
    ".ogg": (["-c:a", "libvorbis", "-q:a", "3"], None, []),
    ".oga": (["-c:a", "libvorbis", "-q:a", "3"], None, ["-f", "ogg"]),
    ".opus": (["-c:a", "libopus", "-b:a", "48k"], 48000, []),
    ".flac": (["-c:a", "flac"], None, []),
    ".webm": (["-c:a", "libopus", "-b:a", "48k"], 48000, []),
    ".mp4": (["-c:a", "aac", "-b:a", "96k"], None, []),
    ".mov": (["-c:a", "aac", "-b:a", "96k"], None, []),
    ".mkv": (["-c:a", "libvorbis"], None, []),
}

# extension -> video encoder args, for the containers that carry a picture
VIDEO_CODECS: dict[str, list[str]] = {
    ".mp4": ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"],
    ".mov": ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"],
    ".mkv": ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"],
    ".webm": ["-c:v", "libvpx", "-deadline", "realtime", "-b:v", "200k"],
}

CHANNEL_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 8: "7.1"}


def run_ffmpeg(*args: str) -> None:
    """Run ffmpeg quietly; raise with its error text if it fails."""
    cmd = [FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args]
    run = subprocess.run(cmd, capture_output=True)
    if run.returncode != 0:
        raise RuntimeError(f"ffmpeg failed ({' '.join(cmd)}):\n{run.stderr.decode('utf-8', 'replace')}")


def _audio_out_args(path: Path, sample_rate: int, channels: int) -> list[str]:
    ext = path.suffix.lower()
    if ext not in CODECS:
        raise ValueError(f"no codec chosen for {ext!r}; add it to CODECS")
    codec, forced_rate, mux = CODECS[ext]
    rate = forced_rate or sample_rate
    return [*codec, "-ar", str(rate), "-ac", str(channels), *mux]


def _write_audio(source: str, folder: Path, name: str, duration: float, sample_rate: int, channels: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / name
    store = CHANNEL_LAYOUTS.get(channels)
    # Mono lavfi source, then upmix to the requested store so each channel carries the signal.
    filt = f"aformat=channel_layouts={store}" if store else f"pan={channels}c|" + "|".join(
        f"c{i}=c0" for i in range(channels)
    )
    run_ffmpeg(
        "-f", "lavfi", "-i", f"{source}:sample_rate={sample_rate}:duration={duration}",
        "-af", filt, *_audio_out_args(out, sample_rate, channels), str(out),
    )
    return out


def sine(
    folder: Path, name: str = "tone.wav", duration: float = 1.5, frequency: float = 440,
    sample_rate: int = 44100, channels: int = 1,
) -> Path:
    """A sine tone in the container/codec that `name`'s extension implies."""
    return _write_audio(f"sine=frequency={frequency}", folder, name, duration, sample_rate, channels)


def noise(
    folder: Path, name: str = "noise.wav", duration: float = 1.5, sample_rate: int = 44100,
    channels: int = 1, colour: str = "pink", amplitude: float = 0.3,
) -> Path:
    """Coloured noise (anoisesrc) — a stand-in for room tone."""
    return _write_audio(
        f"anoisesrc=color={colour}:amplitude={amplitude}", folder, name, duration, sample_rate, channels
    )


def silence(
    folder: Path, name: str = "silence.wav", duration: float = 1.5, sample_rate: int = 44100, channels: int = 1,
) -> Path:
    """Digital silence of the given length."""
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / name
    store = CHANNEL_LAYOUTS.get(channels, f"{channels}c")
    run_ffmpeg(
        "-f", "lavfi", "-i", f"anullsrc=channel_layout={store}:sample_rate={sample_rate}",
        "-t", str(duration), *_audio_out_args(out, sample_rate, channels), str(out),
    )
    return out


def video_with_audio(
    folder: Path, name: str = "clip.mp4", duration: float = 1.5, frequency: float = 440,
    sample_rate: int = 44100, channels: int = 1, size: str = "160x120", rate: int = 10,
) -> Path:
    """A testsrc picture plus a sine-tone sound track (video stream first, audio second)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / name
    run_ffmpeg(
        "-f", "lavfi", "-i", f"testsrc=size={size}:rate={rate}:duration={duration}",
        "-f", "lavfi", "-i", f"sine=frequency={frequency}:sample_rate={sample_rate}:duration={duration}",
        "-map", "0:v", "-map", "1:a",
        *VIDEO_CODECS[out.suffix.lower()], *_audio_out_args(out, sample_rate, channels),
        "-shortest", str(out),
    )
    return out


def video_only(
    folder: Path, name: str = "silent.mp4", duration: float = 1.5, size: str = "160x120", rate: int = 10,
) -> Path:
    """A testsrc picture with no sound track at all."""
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / name
    run_ffmpeg(
        "-f", "lavfi", "-i", f"testsrc=size={size}:rate={rate}:duration={duration}",
        *VIDEO_CODECS[out.suffix.lower()], "-an", str(out),
    )
    return out


def speech(
    folder: Path, name: str = "speech.wav", text: str = "Hello, this is a short test recording.",
    voice: str = "en", words_per_minute: int = 170,
) -> Path:
    """Short synthetic speech from espeak-ng; transcoded when `name` is not a .wav."""
    if ESPEAK is None:
        raise RuntimeError("espeak-ng is not installed")
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / name
    raw = out if out.suffix.lower() == ".wav" else folder / f".{out.stem}.espeak.wav"
    run = subprocess.run(
        [ESPEAK, "-v", voice, "-s", str(words_per_minute), "-w", str(raw), text], capture_output=True
    )
    if run.returncode != 0:
        raise RuntimeError(f"espeak-ng failed: {run.stderr.decode('utf-8', 'replace')}")
    if raw != out:
        run_ffmpeg("-i", str(raw), *_audio_out_args(out, 22050, 1), str(out))
        raw.unlink()
    return out


def speech_as(
    folder: Path, name: str, text: str, sample_rate: int = 16000, channels: int = 1,
    codec: list[str] | None = None, voice: str = "en", words_per_minute: int = 170,
) -> Path:
    """espeak-ng speech resampled and upmixed (every channel carries the voice) into an unusual format,
    e.g. 6-channel 48 kHz, 96 kHz 24-bit (`codec=["-c:a", "pcm_s24le"]`) or 8 kHz phone audio
    (`codec=["-c:a", "pcm_mulaw"]`). Without `codec`, the name's extension picks it (see CODECS)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / name
    raw = speech(folder, f".{out.stem}.espeak.wav", text, voice, words_per_minute)
    store = CHANNEL_LAYOUTS.get(channels)
    filt = f"aformat=channel_layouts={store}" if store else f"pan={channels}c|" + "|".join(
        f"c{i}=c0" for i in range(channels)
    )
    out_args = [*codec, "-ar", str(sample_rate), "-ac", str(channels)] if codec else _audio_out_args(
        out, sample_rate, channels
    )
    try:
        run_ffmpeg("-i", str(raw), "-af", filt, *out_args, str(out))
    finally:
        raw.unlink()
    return out


def text_file(folder: Path, name: str = "notes.mp3", text: str = "This is not a recording.\n") -> Path:
    """A plain-text file, usually given an audio extension to look like a recording."""
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / name
    out.write_text(text, encoding="utf-8")
    return out


def empty_file(folder: Path, name: str = "empty.wav") -> Path:
    """A zero-byte file (an upload that never finished)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / name
    out.write_bytes(b"")
    return out


def truncated(source: Path, folder: Path, name: str | None = None, keep_bytes: int = 200) -> Path:
    """The first `keep_bytes` bytes of `source` (a copy cut off mid-transfer)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / (name or f"truncated{source.suffix}")
    out.write_bytes(source.read_bytes()[:keep_bytes])
    return out


def ffprobe_json(path: Path) -> dict:
    """ffprobe's own view of a file, to compare against (independent of the code under test)."""
    import json

    run = subprocess.run(
        [FFPROBE, "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
        capture_output=True, check=True,
    )
    return json.loads(run.stdout)
