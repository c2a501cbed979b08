"""Reading recordings: find ffmpeg, probe a file, decode it once to 16 kHz mono for recognition."""

from __future__ import annotations

import functools
import io
import json
import re
import shutil
import os
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from storypipe.core.jsonio import atomic_write_bytes

AUDIO_EXTENSIONS = {
    ".wav", ".mp3", ".m4a", ".aac", ".ogg", ".oga", ".opus", ".flac", ".webm", ".mp4", ".mov",
    ".wma", ".aif", ".aiff", ".amr", ".3gp", ".mkv",
}


class AudioError(ValueError):
    """A recording that cannot be used, with a reason a volunteer can act on."""


@dataclass(frozen=True)
class Probe:
    format: str
    duration_s: float
    channels: int
    sample_rate: int


@functools.cache
def ffmpeg_binary() -> str:
    """The system ffmpeg, else the one shipped in imageio-ffmpeg (pip-only installs)."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception as e:  # pragma: no cover - only on broken installs
        raise AudioError(
            "ffmpeg was not found. Install it (Debian/Ubuntu: sudo apt-get install ffmpeg) "
            f"or reinstall storypipe so imageio-ffmpeg is present ({e})"
        ) from e


@functools.cache
def ffprobe_binary() -> str | None:
    return shutil.which("ffprobe")


def configure_pydub() -> None:
    """Point pydub at the same ffmpeg we use, so it works without one on PATH."""
    from pydub import AudioSegment

    AudioSegment.converter = ffmpeg_binary()


def _ffmpeg_error(stderr: bytes, path: Path | None = None) -> str:
    lines = [
        ln.strip()
        for ln in stderr.decode("utf-8", "replace").splitlines()
        if ln.strip() and not ln.strip().startswith("To ignore this")  # advice for ffmpeg users, not ours
    ]
    last = lines[-1] if lines else "unknown error"
    return last.replace(f"{path}: ", "") if path else last


def probe(path: Path) -> Probe:
    """Format, duration, channels and sample rate of the first audio stream.

    Raises AudioError for empty, unreadable and soundless files.
    """
    if path.stat().st_size == 0:
        raise AudioError("the file is empty (0 bytes); it may not have finished copying")
    if ffprobe_binary():
        return _probe_ffprobe(path)
    return _probe_ffmpeg(path)


def _unreadable(path: Path, tool: str, stderr: bytes) -> AudioError:
    """Why a file could not be opened, in words: a text document, or a damaged (often cut-off) recording."""
    detail = f"({tool}: {_ffmpeg_error(stderr, path)})"
    if _looks_like_text(path):
        return AudioError(f"this is not an audio or video file we can read: it holds plain text {detail}")
    return AudioError(f"this is not an audio or video file we can read; it may be damaged or cut short {detail}")


def _looks_like_text(path: Path) -> bool:
    with path.open("rb") as f:
        head = f.read(4096)
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 3:  # not merely a character cut in two at the end of the sample
            return False
        text = head[: e.start].decode("utf-8")
    text = text.removeprefix("\ufeff")
    return bool(text.strip()) and all(c.isprintable() or c in "\t\r\n" for c in text)


# The decoded sound may fall short of the length a file declares by this much before it counts as cut off.
CUT_SHORT_S, CUT_SHORT_FRACTION = 1.0, 0.1


def cut_short(declared_s: float, decoded_s: float) -> str | None:
    """A note when a file says it lasts longer than the sound that could be read (a copy cut off)."""
    missing = declared_s - decoded_s
    if missing < CUT_SHORT_S or missing < CUT_SHORT_FRACTION * declared_s:
        return None
    return (
        f"the file seems cut short: it says it lasts {declared_s:.1f} s, but only {decoded_s:.1f} s of sound "
        "could be read (check that the whole recording was copied)"
    )


def _probe_ffprobe(path: Path) -> Probe:
    cmd = [ffprobe_binary(), "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)]
    run = subprocess.run(cmd, capture_output=True)
    if run.returncode != 0:
        raise _unreadable(path, "ffprobe", run.stderr)
    info = json.loads(run.stdout or b"{}")
    streams = [s for s in info.get("streams", []) if s.get("codec_type") == "audio"]
    if not streams:
        raise AudioError("the file has no sound track (no audio stream found)")
    stream, fmt = streams[0], info.get("format", {})
    duration = stream.get("duration") or fmt.get("duration") or 0
    return Probe(
        format=fmt.get("format_name", "unknown"),
        duration_s=float(duration),
        channels=int(stream.get("channels") or 0),
        sample_rate=int(stream.get("sample_rate") or 0),
    )


_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_INPUT = re.compile(r"Input #0, ([^,]+(?:,[^,\s]+)*), from")
_AUDIO = re.compile(r"Stream #0:\d+.*?: Audio: .*?(\d+) Hz, ([^,]+)")
_LAYOUT_CHANNELS = {
    "mono": 1, "stereo": 2, "2.1": 3, "3.0": 3, "quad": 4, "4.0": 4, "4.1": 5, "5.0": 5, "5.1": 6, "6.0": 6,
    "hexagonal": 6, "6.1": 7, "7.0": 7, "7.1": 8, "octagonal": 8, "hexadecagonal": 16, "22.2": 24,
}


def _probe_ffmpeg(path: Path) -> Probe:
    """Fallback when ffprobe is missing (imageio-ffmpeg ships ffmpeg alone): read `ffmpeg -i`'s banner.

    Hand-rolled because no library parses it; the decoded length later confirms the duration.
    """
    run = subprocess.run([ffmpeg_binary(), "-hide_banner", "-nostdin", "-i", str(path)], capture_output=True)
    text = run.stderr.decode("utf-8", "replace")
    if "Input #0" not in text:
        raise _unreadable(path, "ffmpeg", run.stderr)
    audio = _AUDIO.search(text)
    if not audio:
        raise AudioError("the file has no sound track (no audio stream found)")
    store = audio.group(2).strip().split("(")[0]
    counted = re.match(r"(\d+) channels", store)
    channels = _LAYOUT_CHANNELS.get(store) or (int(counted.group(1)) if counted else 0)
    dur = _DURATION.search(text)
    duration = int(dur.group(1)) * 3600 + int(dur.group(2)) * 60 + float(dur.group(3)) if dur else 0.0
    fmt = _INPUT.search(text)
    return Probe(
        format=fmt.group(1) if fmt else "unknown",
        duration_s=duration,
        channels=channels,
        sample_rate=int(audio.group(1)),
    )


def speech_channels(source_channels: int) -> int:
    """Channels of the 16 kHz copy for recognition: a stereo original keeps both (an interview recorder
    often puts one voice on each, which tells the speakers apart); anything else is mixed to mono."""
    return 2 if source_channels == 2 else 1


def decode_pcm16(path: Path, sample_rate: int, channels: int = 1) -> np.ndarray:
    """Decode any recording to interleaved 16-bit PCM at the given rate (ffmpeg resamples and mixes)."""
    cmd = [
        ffmpeg_binary(), "-nostdin", "-hide_banner", "-loglevel", "error", "-threads", "0",
        "-i", str(path), "-vn", "-map", "0:a:0", "-f", "s16le", "-ac", str(channels), "-ar", str(sample_rate), "-",
    ]
    # Read into one growing buffer rather than subprocess.run's chunks joined at the end: an hour of
    # 44.1 kHz stereo is 635 MB, and it is held once. The array is writable (gain is applied in place).
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
        buf = bytearray()
        while chunk := proc.stdout.read(1 << 20):
            buf += chunk
        proc.stdout.close()
        code = proc.wait()
        err.seek(0)
        stderr = err.read()
    if code != 0:
        if b"matches no streams" in stderr:
            raise AudioError("the file has no sound track (no audio stream found)")
        raise AudioError(f"the sound could not be decoded (ffmpeg: {_ffmpeg_error(stderr, path)})")
    pcm = np.frombuffer(buf, dtype=np.int16)
    return pcm.reshape(-1, channels) if channels > 1 else pcm


def write_wav(path: Path, pcm: np.ndarray, sample_rate: int) -> Path:
    """Write 16-bit PCM as a wav file, atomically."""
    channels = 1 if pcm.ndim == 1 else pcm.shape[1]
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(np.ascontiguousarray(pcm, dtype="<i2").tobytes())
    return atomic_write_bytes(path, buf.getvalue())


def read_wav_float(path: Path) -> np.ndarray:
    """A 16-bit wav as float32 in [-1, 1] (the form Whisper takes): shape (n,) or (n, channels)."""
    with wave.open(str(path), "rb") as w:
        frames, channels = w.readframes(w.getnframes()), w.getnchannels()
    pcm = np.frombuffer(frames, dtype="<i2").astype(np.float32)
    del frames
    pcm /= 32768.0  # in place: an hour of audio is 230 MB as float32, and once is enough
    return pcm.reshape(-1, channels) if channels > 1 else pcm


# mp3 allows only these sample rates; anything else is written at the nearest one above (48 kHz at most).
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)


def mp3_rate(rate: int) -> int:
    """The original's rate where mp3 allows it, else the nearest rate above it (48 kHz at most)."""
    return next((r for r in MP3_RATES if r >= rate), MP3_RATES[-1]) if rate > 0 else 44100


def encode_mp3(pcm: np.ndarray, rate: int, dest: Path, bitrate: str) -> Path:
    """16-bit PCM (samples or samples x channels) to mp3, piped straight into ffmpeg (no temporary wav, no extra copy)."""
    channels = 1 if pcm.ndim == 1 else pcm.shape[1]
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    cmd = [
        ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-f", "s16le", "-ar", str(rate),
        "-ac", str(channels), "-i", "pipe:0", "-f", "mp3", "-b:a", bitrate, "-y", str(tmp),
    ]
    data = memoryview(np.ascontiguousarray(pcm, dtype="<i2")).cast("B")
    try:
        run = subprocess.run(cmd, input=data, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
        if run.returncode != 0:
            raise AudioError(f"{dest.name} could not be written (ffmpeg: {_ffmpeg_error(run.stderr)})")
        os.replace(tmp, dest)  # whole or absent, like every file storypipe writes
    finally:
        tmp.unlink(missing_ok=True)
    return dest
