"""Stage: a full story package ready for upload, only where consent allows it.

staging/<story_id>/ holds:

- story.mp3        the whole interview, loudness-normalised (names muted first when anonymised);
- transcript.txt   the reviewed text, one line per segment with time and speaker;
- transcript.vtt   the same as captions (speakers as WebVTT voice tags);
- metadata.json    what the website needs (title, pseudonym, sectors, roles, themes, key phrases,
                   a summary made of approved quotes, loudness, the fingerprint of the inputs);
- <story_id>.zip   the four files above in one download (under a <story_id>/ folder);
- SHA256SUMS       `sha256sum -c` lines for every file, the zip included.

staging/index.csv lists every staged story; it is rewritten (temp file + rename) after each stage
and unstage. The package is built in a temporary folder and renamed into place, so it is never half
there; staging again with unchanged inputs (same fingerprint) leaves it untouched.

Loudness: integrated loudness and true peak are measured by common.loudness, in chunks of the
16-bit PCM, so an hour-long interview needs no float copy of itself: memory is the decoded PCM
twice (before and after gain) plus a few MB per chunk. The gain brings the story to
`stage.target_lufs`, turned down where that would push the true peak over `stage.true_peak_db`
(no limiter: a full story is played as a whole, gain alone keeps it natural).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import re
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from filelock import FileLock

from storypipe.core.jsonio import atomic_write_text, write_json
from storypipe.core.store import Store
from storypipe.core.models import KeyphrasesFile, QuotesFile, Story, Transcript, now
from storypipe.core.settings import AnonymiseSettings, Settings
from storypipe.tasks.common import audio, consent, formats
from storypipe.tasks.common.anonymise import Anonymised, anonymise, hide_in_audio, public_quote_text, redact_text
from storypipe.tasks.common.loudness import CHUNK_FRAMES
from storypipe.tasks.common.loudness import measure as measure_loudness

log = logging.getLogger("storypipe")

# Bumped when what a package holds changes, so packages staged by older code are rebuilt.
PACKAGE_VERSION = 2
CONTENT_FILES = ("story.mp3", "transcript.txt", "transcript.vtt", "metadata.json")
INDEX_NAME = "index.csv"
INDEX_FIELDS = ["story_id", "title", "pseudonym", "duration_s", "anonymised", "staged_at", "zip"]
SUMMARY_QUOTES = 3
NO_SUMMARY = "no quotes are approved yet: the summary is made of up to three approved quotes"


def hold_reason(story: Story) -> str | None:
    """Why a story may not be staged, in plain words; None when it may."""
    return consent.stage(story)


def package_files(story_id: str) -> list[str]:
    """Every file of a complete package, SHA256SUMS last."""
    return [*CONTENT_FILES, f"{story_id}.zip", "SHA256SUMS"]


# ---- loudness ----


def apply_gain(pcm: np.ndarray, gain_db: float, chunk: int = CHUNK_FRAMES, out: np.ndarray | None = None) -> np.ndarray:
    """16-bit PCM turned up or down by gain_db, chunk by chunk (rounded, clipped to 16 bits), into
    `out` (which may be `pcm` itself: an hour of 44.1 kHz stereo is 635 MB) or a new array."""
    factor = np.float32(10 ** (gain_db / 20))
    out = np.empty_like(pcm) if out is None else out
    for c0 in range(0, len(pcm), chunk):
        piece = pcm[c0 : c0 + chunk].astype(np.float32) * factor
        out[c0 : c0 + chunk] = np.clip(np.rint(piece), -32768, 32767)
    return out


def _db(value: float) -> float | None:
    return round(value, 2) if math.isfinite(value) else None


def normalise_pcm(pcm: np.ndarray, rate: int, target_lufs: float, true_peak_db: float,
                  in_place: bool = False) -> tuple[np.ndarray, dict]:
    """16-bit PCM at target_lufs, or quieter when that gain would push the true peak past
    true_peak_db; with what was measured and done, for metadata.json. Silence, and audio shorter
    than one 400 ms block, have no measurable loudness and are left as they are. `in_place`
    changes `pcm` itself instead of a copy."""
    before = measure_loudness(pcm, rate)
    report = {"target_lufs": target_lufs, "max_true_peak_db": true_peak_db,
              "source_lufs": _db(before.integrated_lufs), "source_true_peak_db": _db(before.true_peak_db)}
    if not math.isfinite(before.integrated_lufs):
        short = len(pcm) < 0.4 * rate
        note = "too short to measure loudness" if short else "silent: no loudness to measure"
        return pcm, {**report, "gain_db": 0.0, "normalised": False, "note": f"not normalised: {note}"}
    gain = target_lufs - before.integrated_lufs
    limited = math.isfinite(before.true_peak_db) and before.true_peak_db + gain > true_peak_db
    if limited:
        gain = true_peak_db - before.true_peak_db
    report |= {"gain_db": round(gain, 2), "normalised": True, "limited_by_true_peak": limited}
    if limited:
        report["note"] = "below the target loudness: more gain would have pushed peaks over the ceiling"
    return apply_gain(pcm, gain, out=pcm if in_place else None), report


# ---- audio ----


def export_mp3(
    original: Path,
    dest: Path,
    bitrate: str,
    hide: list[tuple[float, float]] = (),
    cfg: AnonymiseSettings | None = None,
    target_lufs: float | None = None,
    true_peak_db: float = -1.0,
) -> dict:
    """The story's audio as mp3 at the original's channels (mono or stereo) and rate (where mp3
    allows it), with the `hide` spans muted or bleeped (names, when the story is anonymised) and
    then, given target_lufs, loudness-normalised. The original is decoded once; returns the
    loudness report, measured on the mp3 written."""
    info = audio.probe(original)
    rate = audio.mp3_rate(info.sample_rate)
    pcm = audio.decode_pcm16(original, rate, max(1, min(info.channels, 2)))
    if hide:
        pcm = hide_in_audio(pcm, rate, list(hide), cfg or AnonymiseSettings())  # before measuring
    channels = 1 if pcm.ndim == 1 else pcm.shape[1]
    report: dict = {}
    if target_lufs is not None:
        pcm, report = normalise_pcm(pcm, rate, target_lufs, true_peak_db, in_place=True)  # pcm is ours
    audio.encode_mp3(pcm, rate, dest, bitrate)
    del pcm
    # Measured again on the mp3 itself: what listeners get (the encoder shaves a few tenths of a dB).
    heard = measure_loudness(audio.decode_pcm16(dest, rate, channels), rate)
    return {"integrated_lufs": _db(heard.integrated_lufs), "true_peak_db": _db(heard.true_peak_db), **report}


# ---- text ----


def summary(quotes: QuotesFile | None, story: Story, settings: Settings,
            anonymised: Anonymised | None = None) -> tuple[str, str | None]:
    """Up to three approved quotes, best first, each as a quoted sentence; with the reason when
    there is none. Anonymised: the redacted words spoken over each quote's span."""
    approved = sorted((q for q in (quotes.quotes if quotes else []) if q.status == "approved"), key=lambda q: -q.score)
    parts = []
    for q in approved[:SUMMARY_QUOTES]:
        text = public_quote_text(q, story, settings, anonymised)
        if text:
            parts.append(f"“{text}”")
    return " ".join(parts), (None if parts else NO_SUMMARY)


def story_metadata(
    story: Story,
    transcript: Transcript,
    keyphrases: KeyphrasesFile | None,
    quotes: QuotesFile | None,
    settings: Settings,
    anonymised: Anonymised | None = None,
) -> dict:
    """What the website needs about the story. Demographics stay on the machine; with anonymise,
    the interviewer's name is left out and names in the title, key phrases and summary are hidden."""
    meta = story.metadata
    title = meta.title or story.story_id
    phrases = [k.text for k in keyphrases.keyphrases[:10]] if keyphrases else []
    if anonymised is not None:
        (title,) = redact_text([title], meta, settings, anonymised)
        phrases = redact_text(phrases, meta, settings, anonymised, any_case=True)
    themes: list[str] = []
    for q in sorted(quotes.quotes if quotes else [], key=lambda q: (q.status != "approved", -q.score)):
        if q.status != "rejected":
            themes += [t for t in q.themes if t not in themes]
    text, note = summary(quotes, story, settings, anonymised)
    out = {
        "schema_version": story.schema_version,
        "story_id": story.story_id,
        "title": title,
        "storyteller": meta.storyteller,
        "pseudonym": meta.storyteller,
        "interviewer": None if anonymised is not None else meta.interviewer,
        "anonymised": anonymised is not None,
        "recorded_on": meta.recorded_on.isoformat() if meta.recorded_on else None,
        "language": transcript.language,
        "duration_s": story.source.duration_s,
        "sectors": meta.sectors,
        "roles": meta.roles,
        "project": settings.project.name,
        "keyphrases": phrases,
        "themes": themes,
        "summary": text,
    }
    if note:
        out["summary_note"] = note
    out["consent"] = story.consent.answers()
    out["transcript"] = {"engine": transcript.engine, "model": transcript.model}
    return out


def captions_with_voices(transcript: Transcript) -> str:
    """WebVTT captions with each cue's speaker as a voice tag (<v Ros>): the reviewer's name for
    the speaker, or its label; anonymised transcripts carry labels only."""
    def voice(label: str) -> str:
        return re.sub(r"[<>&\s]+", " ", transcript.speaker_names.get(label, label)).strip()

    segments = [
        s.model_copy(update={"text": f"<v {voice(s.speaker)}>{s.text.strip()}"})
        if s.speaker and s.text.strip() and voice(s.speaker) else s
        for s in transcript.segments
    ]
    return formats.captions(transcript.model_copy(update={"segments": segments}), "vtt")


# ---- package ----


def file_sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def sha256sums(folder: Path) -> str:
    """The `sha256sum -c` format, so anyone can check the upload arrived intact."""
    lines = [f"{file_sha256(p)}  {p.name}" for p in sorted(folder.iterdir()) if p.is_file() and p.name != "SHA256SUMS"]
    return "\n".join(lines) + "\n"


def write_zip(folder: Path, story_id: str) -> Path:
    """<story_id>.zip of the content files, under a <story_id>/ folder; the mp3 is stored as it is
    (it does not compress), the text is deflated."""
    dest = folder / f"{story_id}.zip"
    with zipfile.ZipFile(dest, "w") as z:
        for name in CONTENT_FILES:
            kind = zipfile.ZIP_STORED if name.endswith(".mp3") else zipfile.ZIP_DEFLATED
            z.write(folder / name, f"{story_id}/{name}", compress_type=kind)
    return dest


def inputs_fingerprint(story: Story, store: Store, settings: Settings) -> str:
    """What a package is made from: the original audio (its SHA-256), the transcript, quotes and
    key phrases files as they are now, the sidecar metadata, consent and the settings that shape
    the package. The same fingerprint means staging again would give the same package."""
    def digest(path: Path) -> str | None:
        return file_sha256(path) if path.exists() else None

    anonymised = consent.anonymise(story)
    used = {"stage": settings.stage.model_dump(), "project": settings.project.name}
    if anonymised:
        used |= {"anonymise": settings.anonymise.model_dump(), "spacy_model": settings.extract.spacy_model}
    parts = {
        "package_version": PACKAGE_VERSION,
        "audio": story.source.sha256,
        "filename": story.source.filename,
        "transcript": digest(store.transcript_path(story.story_id)),
        "quotes": digest(store.quotes_path(story.story_id)),
        "keyphrases": digest(store.keyphrases_path(story.story_id)),
        "metadata": story.metadata.model_dump(mode="json"),
        "consent": story.consent.model_dump(exclude={"report"}),  # the report does not shape a package
        "settings": used,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def is_current(target: Path, inputs: str) -> bool:
    """A package made from these very inputs is already staged, complete, with nothing else in it,
    and every file still matches SHA256SUMS."""
    try:
        meta = json.loads((target / "metadata.json").read_text("utf-8"))
        expected = sorted(package_files(target.name))
        if meta.get("inputs") != inputs or sorted(p.name for p in target.iterdir()) != expected:
            return False
        listed = {}
        for line in (target / "SHA256SUMS").read_text("utf-8").splitlines():
            digest, name = line.split("  ", 1)
            listed[name] = digest
        return sorted([*listed, "SHA256SUMS"]) == expected and all(
            file_sha256(target / name) == digest for name, digest in listed.items())
    except (OSError, ValueError):
        return False


def _index_text(store: Store) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=INDEX_FIELDS, lineterminator="\n")
    writer.writeheader()
    for folder in sorted(p for p in store.staging.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            meta = json.loads((folder / "metadata.json").read_text("utf-8"))
        except (OSError, ValueError):
            continue  # not a complete package
        archive = folder / f"{folder.name}.zip"
        writer.writerow({
            "story_id": folder.name,
            "title": meta.get("title") or "",
            "pseudonym": meta.get("pseudonym") or meta.get("storyteller") or "",
            "duration_s": meta.get("duration_s", ""),
            "anonymised": str(bool(meta.get("anonymised"))).lower(),
            "staged_at": meta.get("staged_at") or "",
            "zip": f"{folder.name}/{archive.name}" if archive.is_file() else "",
        })
    return buf.getvalue()


def write_index(store: Store) -> Path:
    """staging/index.csv: one row per staged story, rebuilt from the packages themselves (so it
    heals if it was lost), under a lock so two stories staged at once both appear. Written to a
    temporary file and renamed into place; left alone when nothing changed."""
    store.staging.mkdir(parents=True, exist_ok=True)
    path = store.staging / INDEX_NAME
    with FileLock(str(store.staging / f".{INDEX_NAME}.lock"), timeout=60):
        text = _index_text(store)
        if not path.exists() or path.read_text("utf-8") != text:
            atomic_write_text(path, text)
    return path


def _mark_staged(store: Store, story_id: str, seconds: float | None = None, note: str | None = None) -> None:
    with store.updating_story(story_id) as story:
        stale = [p for p in story.problems if p.startswith("not staged")]
        if story.state == "staged" and not stale and note:
            return  # already recorded (nothing changed, so nothing is written)
        story.problems = [p for p in story.problems if p not in stale]
        story.advance("staged", seconds=seconds, note=note)


def stage_story(story_id: str, store: Store, settings: Settings) -> Path | None:
    """Build staging/<story_id>/ when consent allows; otherwise record why it was held back."""
    with store.updating_story(story_id) as story:
        reason = hold_reason(story)
        if reason and reason not in story.problems:
            story.problems.append(reason)
    if reason:
        log.info("%s %s", story_id, reason, extra={"story": story_id, "done": True})
        return None

    started = time.monotonic()
    target = store.staging / story_id
    inputs = inputs_fingerprint(story, store, settings)
    if is_current(target, inputs):
        _mark_staged(store, story_id, note="staged package already up to date")
        write_index(store)
        log.info("%s is already staged from the same inputs; left as it is", story_id,
                 extra={"story": story_id, "done": True})
        return target

    transcript = store.read_transcript(story_id)
    keyphrases = store.read_keyphrases(story_id, missing_ok=True)
    quotes = store.read_quotes(story_id, missing_ok=True)
    anonymised = anonymise(transcript, story.metadata, settings) if consent.anonymise(story) else None
    # The reviewed text, with the reviewer's speaker names (anonymise leaves only the labels);
    # the cautions meant for the reviewer are not published.
    text = (anonymised.transcript if anonymised else transcript).model_copy(update={"warnings": []})
    store.staging.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(dir=store.staging, prefix=f".{story_id}."))
    try:
        loudness = export_mp3(
            store.original_dir(story_id) / story.source.filename, build / "story.mp3", settings.stage.mp3_bitrate,
            hide=anonymised.mute if anonymised else (), cfg=settings.anonymise,
            target_lufs=settings.stage.target_lufs, true_peak_db=settings.stage.true_peak_db,
        )
        metadata = story_metadata(story, transcript, keyphrases, quotes, settings, anonymised)
        metadata |= {"loudness": loudness, "staged_at": now().isoformat(), "inputs": inputs}
        (build / "transcript.txt").write_text(formats.transcript_text(text, metadata["title"], mark=False), "utf-8")
        (build / "transcript.vtt").write_text(captions_with_voices(text), "utf-8")
        write_json(build / "metadata.json", metadata)
        write_zip(build, story_id)
        (build / "SHA256SUMS").write_text(sha256sums(build), "utf-8")
        if target.exists():
            old = target.rename(store.staging / f".{story_id}.old-{time.time_ns()}")
            build.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            build.rename(target)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    _mark_staged(store, story_id, seconds=round(time.monotonic() - started, 3))
    write_index(store)
    hidden = f", with {len(anonymised.redactions)} names hidden" if anonymised else ""
    level = f", at {loudness['integrated_lufs']} LUFS" if loudness.get("integrated_lufs") is not None else ""
    log.info("%s is staged for upload in %s%s%s", story_id, target, hidden, level,
             extra={"story": story_id, "done": True})
    return target


def unstage(story_id: str, store: Store, reason: str = "consent was withdrawn") -> bool:
    """Remove a story's staged package (consent withdrawn or changed) and its row in index.csv;
    True if there was one."""
    target = store.staging / story_id
    if not target.exists():
        if (store.staging / INDEX_NAME).exists():
            write_index(store)
        return False
    gone = target.rename(store.staging / f".{story_id}.withdrawn-{time.time_ns()}")
    shutil.rmtree(gone, ignore_errors=True)
    write_index(store)
    with store.updating_story(story_id) as story:
        if story.state == "staged":
            story.advance("extracted", note=f"staged package removed because {reason}")
    log.info("%s: staged package removed because %s", story_id, reason, extra={"story": story_id})
    return True


# ---- Prefect wrapper ----
