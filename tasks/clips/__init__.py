"""Clips: short extracts of approved quotes for the YouTube playlist, in batches under
audio/clips/<batch>/ with manifest.json and manifest.csv (contract).

A clip is cut from the original recording at its own quality. Its edges sit at word boundaries
plus a pad, moved to the quietest moment nearby but never into the neighbouring word. It fades in
and out, and is loudness-normalised (pyloudnorm) with its true peak kept under a ceiling. Each
clip gets an mp3, captions in clip time (.srt and .vtt, from the reviewed text), and the 1280x720
video YouTube needs: a still card with the title and the storyteller's pseudonym, or a waveform.
For anonymised stories, names are muted or bleeped in the audio and redacted in the captions and
metadata, using the same function as staging (tasks/anonymise.py).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from storypipe.core.jsonio import BadFileError
from storypipe.core.store import Store
from storypipe.core.models import Clip, ClipBatch, KeyphrasesFile, Quote, Segment, Story, Transcript, Word, YouTubeMeta
from storypipe.core.settings import ClipSettings, Settings
from storypipe.tasks.common import audio, consent, formats, loudness
from storypipe.tasks.common.anonymise import anonymise, hide_in_audio, redact_text
from storypipe.tasks.common.themes import codebook_path, load_codebook

log = logging.getLogger("storypipe")


def withdraw_story(store: Store, story_id: str) -> int:
    """Remove a story's unpublished clips from every batch (files and manifest rows). Published
    clips stay listed, because only the platform can take them down; returns how many were removed."""
    removed = 0
    for batch in store.batches():
        folder = store.batch_dir(batch.batch)
        gone = [c for c in batch.clips if c.story_id == story_id and c.published is None]
        if not gone:
            continue
        for clip in gone:
            for name in [clip.file, clip.video_file, *clip.captions]:
                if name and "/" not in name and "\\" not in name:
                    (folder / name).unlink(missing_ok=True)
        batch.clips = [c for c in batch.clips if c not in gone]
        store.write_batch(batch)
        removed += len(gone)
        log.info("Removed %d unpublished clips of %s from batch %s", len(gone), story_id, batch.batch,
                 extra={"story": story_id})
    return removed


# ---- cutting ----

FRAME_S = 0.01  # the resolution at which quiet moments are looked for


def _rms_db(x: np.ndarray) -> float:
    return 20 * np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64))) + 1e-12)


def _quietest(mono: np.ndarray, rate: int, lo: float, hi: float, prefer: float, silence_db: float) -> float:
    """The quietest 10 ms frame between lo and hi; the preferred time when nothing there is quiet."""
    if hi - lo < FRAME_S:
        return prefer
    n = int(FRAME_S * rate)
    best_t, best_db = prefer, silence_db
    t = lo
    while t + FRAME_S <= hi:
        i = int(t * rate)
        level = _rms_db(mono[i : i + n]) if i + n <= len(mono) else 0.0
        if level < best_db - 0.5 or (abs(level - best_db) <= 0.5 and abs(t - prefer) < abs(best_t - prefer)):
            best_t, best_db = t + FRAME_S / 2, level
        t += FRAME_S
    return best_t


def clip_bounds(words: list[Word], first: int, last: int, mono: np.ndarray, rate: int, cfg: ClipSettings,
                duration: float) -> tuple[float, float]:
    """Where to cut a quote spanning words[first..last]: pad, then the quietest point nearby, never
    inside the words before or after."""
    w0, w1 = words[first], words[last]
    floor = words[first - 1].end if first > 0 else 0.0
    ceiling = words[last + 1].start if last + 1 < len(words) else duration
    start = max(floor, w0.start - cfg.pad_s)
    end = min(ceiling, w1.end + cfg.pad_s)
    start = _quietest(mono, rate, max(floor, start - cfg.snap_s), min(w0.start, start + cfg.snap_s), start,
                      cfg.silence_db)
    end = _quietest(mono, rate, max(w1.end, end - cfg.snap_s), min(ceiling, end + cfg.snap_s), end, cfg.silence_db)
    return round(max(0.0, min(start, w0.start)), 3), round(min(duration, max(end, w1.end)), 3)


def fade(x: np.ndarray, rate: int, ms: int) -> np.ndarray:
    n = min(len(x) // 2, int(rate * ms / 1000))
    if n <= 0:
        return x
    ramp = np.linspace(0.0, 1.0, n)
    if x.ndim == 2:
        ramp = ramp[:, None]
    x = x.copy()
    x[:n] *= ramp
    x[-n:] *= ramp[::-1]
    return x


def clip_transcript(transcript: Transcript, start: float, end: float) -> Transcript:
    """The words spoken from start to end, as a transcript in clip time (for captions)."""
    segments = []
    for seg in transcript.segments:
        words = [w for w in seg.words if w.within(start, end)]
        if not words:
            continue
        shifted = [w.model_copy(update={"start": round(w.start - start, 3), "end": round(w.end - start, 3)})
                   for w in words]
        segments.append(Segment(id=len(segments), start=shifted[0].start, end=shifted[-1].end,
                                text="".join(w.word for w in words).strip(), speaker=seg.speaker,
                                avg_logprob=seg.avg_logprob, no_speech_prob=seg.no_speech_prob, words=shifted))
    return transcript.model_copy(update={"segments": segments, "duration_s": round(end - start, 3)})


# ---- video ----


def _drawtext_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace(":", "\\:").replace("'", "\u2019").replace("%", "\\%")


def make_video(mp3: Path, out: Path, title: str, credit: str, captions: Path | None, cfg: ClipSettings) -> Path:
    """The 1280x720 video YouTube needs, with the clip's audio: a card or a waveform."""
    w, h = cfg.video_size.split("x")
    if cfg.video == "waves":
        graph = f"[1:a]showwaves=s={cfg.video_size}:mode=cline:colors=0x9ecbff,format=yuv420p[v]"
        inputs = ["-f", "lavfi", "-i", f"color=c=0x1b2a41:s={cfg.video_size}:r=25"]
    else:
        lines = _wrap(title, 38)[:4]
        text = "\n".join(lines)
        graph = (f"[0:v]drawtext=text='{_drawtext_escape(text)}':fontcolor=white:fontsize=56:line_spacing=14:"
                 f"x=(w-text_w)/2:y=(h-text_h)/2-40,"
                 f"drawtext=text='{_drawtext_escape(credit)}':fontcolor=0xcfd8e3:fontsize=32:x=(w-text_w)/2:y=h-120,"
                 f"format=yuv420p[v]")
        inputs = ["-f", "lavfi", "-i", f"color=c=0x1b2a41:s={cfg.video_size}:r=25"]
    if cfg.burn_captions and captions is not None:
        graph = graph.replace("format=yuv420p[v]", f"subtitles='{captions.as_posix()}',format=yuv420p[v]")
    cmd = [audio.ffmpeg_binary(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *inputs, "-i", str(mp3),
           "-filter_complex", graph, "-map", "[v]", "-map", "1:a", "-c:v", "libx264", "-preset", "veryfast",
           "-tune", "stillimage", "-c:a", "aac", "-b:a", "160k", "-shortest", "-movflags", "+faststart", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0 and cfg.video == "card":
        # An ffmpeg without drawtext (no fontconfig): a plain card still makes a valid upload.
        log.warning("Could not write text on the video card (%s); using a plain card", done.stderr.strip()[-200:])
        plain = [c if c != graph else "[0:v]format=yuv420p[v]" for c in cmd]
        done = subprocess.run(plain, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg could not make the video {out.name}: {done.stderr.strip()[-300:]}")
    return out


def _wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + ([line] if line else [])


# ---- batches ----


@dataclass
class Candidate:
    story: Story
    quote: Quote


def in_batches(store: Store) -> set[tuple[str, str]]:
    return {(c.story_id, c.quote_id) for b in store.batches() for c in b.clips}


def eligible(store: Store) -> tuple[list[Candidate], list[str]]:
    """Approved quotes not yet in a batch, from stories whose consent allows clips; and the reasons
    the other stories' approved quotes were left out."""
    done = in_batches(store)
    chosen, skipped = [], []
    for story_id in store.quoted_story_ids():
        try:
            story = store.read_story(story_id)
            quotes = store.read_quotes(story_id).quotes
        except BadFileError as e:
            skipped.append(f"{story_id}: {e.reason}")
            continue
        approved = [q for q in quotes if q.status == "approved" and (story.story_id, q.id) not in done]
        if not approved:
            continue
        reason = consent.clips(story)
        if reason:
            skipped.append(f"{story.story_id}: {reason} ({len(approved)} approved quotes left out)")
            continue
        chosen += [Candidate(story, q) for q in sorted(approved, key=lambda q: q.start)]
    return chosen, skipped


def batch_name(store: Store, wanted: str | None) -> str:
    if wanted:
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,80}$", wanted):
            raise ValueError(f"{wanted!r} is not a usable batch name: use letters, digits, dots, dashes")
        if store.batch_dir(wanted).exists():
            raise ValueError(f"batch {wanted} already exists in {store.clips}")
        return wanted
    base = dt.date.today().isoformat()
    name, n = base, 2
    while store.batch_dir(name).exists():
        name, n = f"{base}-{n}", n + 1
    return name


def _title(quote: Quote, text: str) -> str:
    if quote.title:
        return quote.title
    words = text.split()
    short = " ".join(words[:10])
    return (short + ("…" if len(words) > 10 else "")).strip(" ,.;:")[:100]


def make_clips(store: Store, settings: Settings, wanted_batch: str | None = None) -> tuple[ClipBatch | None, list[str]]:
    """Cut a batch of clips for every eligible approved quote. Built in a temporary folder and renamed
    into place, so a batch is never half there. Returns the batch (None when nothing was eligible)
    and the notes about what was left out and why."""
    name = batch_name(store, wanted_batch)  # a bad name is an error even when nothing is waiting
    candidates, notes = eligible(store)
    if not candidates:
        return None, notes or ["no approved quotes are waiting for a clip"]
    store.clips.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(dir=store.clips, prefix=f".{name}."))
    book = load_codebook(codebook_path(store.root, settings.extract.themes_file))
    clips: list[Clip] = []
    try:
        by_story: dict[str, list[Candidate]] = {}
        for c in candidates:
            by_story.setdefault(c.story.story_id, []).append(c)
        for items in by_story.values():
            clips += _story_clips(store, settings, items, build, book)
        batch = ClipBatch(batch=name, clips=clips)
        store.write_batch(batch, build)
        build.rename(store.batch_dir(name))
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    log.info("Cut %d clips into batch %s", len(clips), name)
    return batch, notes


def _story_clips(store: Store, settings: Settings, items: list[Candidate], build: Path, book) -> list[Clip]:
    story = items[0].story
    sid = story.story_id
    transcript = store.read_transcript(sid)
    keyphrases = (store.read_keyphrases(sid, missing_ok=True) or KeyphrasesFile(story_id=sid)).keyphrases
    hidden = anonymise(transcript, story.metadata, settings) if consent.anonymise(story) else None
    text_source = hidden.transcript if hidden else transcript
    original = store.original_dir(story.story_id) / story.source.filename
    info = audio.probe(original)
    rate, channels = audio.mp3_rate(info.sample_rate), max(1, min(2, info.channels))
    pcm = audio.decode_pcm16(original, rate, channels)
    if hidden and hidden.mute:
        pcm = hide_in_audio(pcm, rate, hidden.mute, settings.anonymise)
    x = pcm.astype(np.float32) / 32768.0
    mono = x.mean(axis=1) if x.ndim == 2 else x
    words = transcript.words()
    duration = len(mono) / rate
    pseudonym = story.metadata.storyteller or "a storyteller"
    out: list[Clip] = []
    for item in items:
        q = item.quote
        inside = transcript.word_indices_between(q.start, q.end)
        if not inside:
            log.warning("Quote %s of %s no longer matches the transcript; no clip", q.id, story.story_id,
                        extra={"story": story.story_id})
            continue
        start, end = clip_bounds(words, inside[0], inside[-1], mono, rate, settings.clips, duration)
        piece = fade(x[int(start * rate): int(end * rate)], rate, settings.clips.fade_ms)
        piece, lufs, peak = loudness.normalise(piece, rate, settings.clips.target_lufs, settings.clips.true_peak_db)
        stem = f"{story.story_id}-{q.id}"
        mp3 = build / f"{stem}.mp3"
        audio.encode_mp3((np.clip(piece, -1, 1) * 32767).astype("<i2"), rate, mp3, settings.clips.mp3_bitrate)
        sub = clip_transcript(text_source, start, end)
        srt, vtt = build / f"{stem}.srt", build / f"{stem}.vtt"
        srt.write_text(formats.captions(sub, "srt"), "utf-8")
        vtt.write_text(formats.captions(sub, "vtt"), "utf-8")
        spoken = hidden.text_between(q.start, q.end) if hidden else q.text
        title = _title(q, spoken)
        if hidden:
            (title,) = redact_text([title], story.metadata, settings, hidden)
        credit = f"{pseudonym} · {settings.project.name}"
        video = None
        if settings.clips.video != "none":
            video = make_video(mp3, build / f"{stem}.mp4", title, credit, srt, settings.clips).name
        tags = [book.name_of(t) for t in q.themes] + [k for k in q.keyphrases if k in {p.text for p in keyphrases[:15]}]
        if hidden:
            tags = [t for t in redact_text(tags, story.metadata, settings, hidden, any_case=True) if "[" not in t]
        out.append(Clip(
            file=mp3.name, video_file=video, captions=[srt.name, vtt.name], story_id=story.story_id, quote_id=q.id,
            start=start, end=end, duration_s=round(end - start, 3),
            youtube=YouTubeMeta(
                title=title,
                description=f"\u201c{spoken}\u201d\n\n{pseudonym}, {settings.project.name}. "
                            f"Shared with the storyteller's consent.",
                tags=tags[:15], categoryId=settings.publish.category_id,
                privacyStatus=settings.publish.privacy_status, playlist=settings.publish.playlist,
            ),
        ))
        log.info("Clip %s: %.1f s, %.1f LUFS, peak %.1f dBTP", stem, end - start, lufs, peak,
                 extra={"story": story.story_id})
    return out
