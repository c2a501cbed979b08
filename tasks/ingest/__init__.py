"""Ingest: check a recording and its sidecar, give it a story id, move the original somewhere safe.

Nothing leaves the inbox until it has been read successfully; a file that cannot be used goes to
quarantine with a note saying why, and the other files go on.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import os
import shutil
import time
from pathlib import Path

import yaml
from pydantic import ValidationError
from slugify import slugify

from storypipe.core.jsonio import atomic_write_text
from storypipe.core.store import Store
from storypipe.core.models import Consent, Sidecar, Source, Story
from storypipe.core.settings import Settings
from storypipe.tasks.common import audio, claims, consent
from storypipe.tasks.common.inbox import find_sidecar, free_name, is_sidecar

log = logging.getLogger("storypipe")

HASH_CHUNK = 1 << 20
# Folder names must stay well under the 255-byte file-name limit; a longer stem is cut at a word.
MAX_SLUG = 80
CLOCK_SKEW_S = 60.0


class IngestError(ValueError):
    """A recording (or its sidecar) that must be quarantined; `reason` is for a volunteer."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path.name}: {reason}")
        self.path = path
        self.reason = reason


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def story_id_for(filename: str, sha256: str) -> str:
    """Slug of the file's stem + the first 8 hex digits of its SHA-256 (the contract's rule)."""
    stem = slugify(Path(filename).stem, max_length=MAX_SLUG, word_boundary=True) or "recording"
    return f"{stem}-{sha256[:8]}"


def list_inbox(store: Store, settings: Settings) -> list[Path]:
    """Recordings waiting in the inbox (sidecars, hidden files and copies in progress are skipped)."""
    if not store.inbox.is_dir():
        return []
    skip = tuple(settings.ingest.ignore_suffixes)
    return sorted(
        p
        for p in store.inbox.iterdir()
        if p.is_file() and not p.name.startswith(".") and not is_sidecar(p) and not p.name.endswith(skip)
    )


def settled(paths: list[Path], settle_s: float, timeout_s: float) -> tuple[list[Path], list[Path]]:
    """(arrived, still arriving): a file has arrived once it has not been written to for settle_s.

    A copy in progress keeps moving the file's modification time, so waiting for it to rest means a
    half-copied recording is never taken. Waits up to timeout_s for the rest; gone files are dropped."""
    deadline = time.monotonic() + timeout_s
    pending, ready = list(paths), []
    while True:
        waits = []
        for path in list(pending):
            try:
                age = time.time() - path.stat().st_mtime
            except FileNotFoundError:
                pending.remove(path)
                continue
            if age >= settle_s or age < -CLOCK_SKEW_S:  # far in the future: another machine's clock
                pending.remove(path)
                ready.append(path)
            else:
                waits.append(settle_s - age)
        if not pending or time.monotonic() + min(waits) > deadline:
            return sorted(ready), pending
        if waits and min(waits) > 0.5:
            log.info("Waiting for %s to finish copying", ", ".join(p.name for p in pending))
        time.sleep(min(waits) + 0.05)


def waiting_sidecars(store: Store) -> list[Path]:
    """Sidecars in the inbox whose recording has not arrived (yet)."""
    if not store.inbox.is_dir():
        return []
    recordings = {p.stem for p in store.inbox.iterdir() if p.is_file() and not is_sidecar(p)}
    return sorted(p for p in store.inbox.iterdir() if is_sidecar(p) and p.stem not in recordings)


def read_sidecar(path: Path) -> Sidecar:
    """Parse and validate a sidecar. Any doubt about consent is an error: consent is never guessed."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise IngestError(path, f"the sidecar {path.name} is not valid YAML ({str(e).splitlines()[0]})") from e
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise IngestError(path, f"the sidecar {path.name} should be a list of 'field: value' lines")
    try:
        return Sidecar.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}" for err in e.errors()
        )
        raise IngestError(path, f"the sidecar {path.name} has invalid values ({problems})") from e


def unknown_fields(path: Path | None, sidecar: Sidecar | None) -> str | None:
    """A note naming the sidecar fields storypipe does not know (kept in metadata: often a typo)."""
    unknown = sorted(sidecar.model_extra or {}) if sidecar else []
    if not unknown:
        return None
    known = [f for f in Sidecar.model_fields if f != "consent"] + ["consent"]
    named = []
    for field in unknown:
        near = difflib.get_close_matches(str(field).lower(), known, n=1, cutoff=0.75)
        named.append(f"{field} (did you mean {near[0]}?)" if near else str(field))
    return f"the sidecar {path.name} has fields storypipe does not know ({', '.join(named)}): kept as they are"


def consent_for(sidecar: Sidecar | None, settings: Settings) -> Consent:
    """The sidecar's consent where given, the configured (cautious) default for anything left out."""
    default = settings.ingest.default_consent.model_dump()
    if sidecar and sidecar.consent:
        default.update(sidecar.consent.model_dump(exclude_unset=True))
    return Consent.model_validate(default)


def _move_verified(src: Path, dest: Path, sha256: str | None = None) -> Path:
    """Move a file, then check its bytes arrived intact (hash) before the source is gone."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    expected = sha256 or sha256_file(src)
    if dest.exists() and sha256_file(dest) == expected:  # an earlier run got this far, then stopped
        src.unlink()
        return dest
    try:
        os.link(src, dest)  # keep the source until the copy is proven, even on one filesystem
    except OSError:
        shutil.copy2(src, dest)
    if sha256_file(dest) != expected:
        dest.unlink(missing_ok=True)
        raise OSError(f"copying {src.name} to {dest.parent} changed its bytes; the original was left in place")
    src.unlink()
    return dest


def quarantine(store: Store, recording: Path, reason: str) -> Path:
    """Move a recording (and its sidecar) to quarantine with <filename>.error.txt saying why."""
    store.quarantine.mkdir(parents=True, exist_ok=True)
    sidecar = None if is_sidecar(recording) else find_sidecar(recording)
    target = free_name(store.quarantine / recording.name, sidecar.suffix if sidecar else None)
    if recording.exists():
        _move_verified(recording, target)
    if sidecar:
        _move_verified(sidecar, target.with_suffix(sidecar.suffix))
    note = (
        f"{recording.name} could not be processed.\n\n"
        f"Why: {reason}\n\n"
        "What to do: fix the problem (or replace the file), then move it and its .yaml sidecar back into "
        "audio/inbox/ and run storypipe again. Nothing else was changed.\n"
    )
    atomic_write_text(target.with_name(target.name + ".error.txt"), note)
    log.warning("%s was put in quarantine: %s", recording.name, reason, extra={"story": recording.name, "done": True})
    return target


def existing_story(store: Store, story_id: str) -> Story | None:
    return store.read_story(story_id) if store.has_story(story_id) else None


def story_with_sha(store: Store, sha256: str) -> Story | None:
    """The same bytes under another file name are still the same story."""
    for story_id in store.story_ids(f"*-{sha256[:8]}"):
        story = store.read_story(story_id)
        if story.source.sha256 == sha256:
            return story
    return None


def ingest_recording(recording: Path, store: Store, settings: Settings) -> tuple[Story, bool]:
    """Check one inbox recording and make it a story. Returns (story, is_new).

    Raises IngestError when the file must be quarantined. The recording stays in the inbox until it
    has been read and decoded; then it moves, hash-checked, to audio/originals/<story_id>/.
    """
    started = time.monotonic()
    sidecar_path = find_sidecar(recording)
    sidecar = read_sidecar(sidecar_path) if sidecar_path else None

    size = recording.stat().st_size
    if size == 0:
        raise IngestError(recording, "the file is empty (0 bytes); it may not have finished copying")
    sha = sha256_file(recording)
    with claims.ingest_lock(store, settings, sha):
        return _make_story(recording, sidecar_path, sidecar, sha, size, store, settings, started)


def _make_story(
    recording: Path, sidecar_path: Path | None, sidecar: Sidecar | None, sha: str, size: int,
    store: Store, settings: Settings, started: float,
) -> tuple[Story, bool]:
    story_id = story_id_for(recording.name, sha)
    known = existing_story(store, story_id) or story_with_sha(store, sha)
    if known is not None:
        _drop_duplicate(recording, sidecar_path, store, known)
        return known, False

    try:
        info = audio.probe(recording)
        pcm = audio.decode_pcm16(recording, settings.ingest.speech_sample_rate, audio.speech_channels(info.channels))
    except audio.AudioError as e:
        raise IngestError(recording, str(e)) from e
    duration = len(pcm) / settings.ingest.speech_sample_rate
    cut = audio.cut_short(info.duration_s, duration)
    if duration < settings.ingest.min_duration_s:
        raise IngestError(
            recording,
            f"it holds only {duration:.2f} s of sound; at least {settings.ingest.min_duration_s:g} s is needed"
            + (f" ({cut})" if cut else ""),
        )
    audio.write_wav(store.speech_wav(story_id), pcm, settings.ingest.speech_sample_rate)

    metadata = sidecar.model_dump(exclude={"consent"}, exclude_unset=True) if sidecar else {}
    story = Story(
        story_id=story_id,
        source=Source(
            filename=recording.name,
            sha256=sha,
            bytes=size,
            format=info.format,
            duration_s=round(duration, 3),
            channels=info.channels,
            sample_rate=info.sample_rate,
        ),
        metadata=metadata,
        consent=consent_for(sidecar, settings),
    )
    if sidecar is None:
        story.problems.append("no sidecar: the cautious default consent was used (no clips, no full story)")
    for note in filter(None, [cut, unknown_fields(sidecar_path, sidecar)]):
        story.problems.append(note)
        log.warning("%s: %s", recording.name, note, extra={"story": story_id})
    held = consent.transcribe(story)
    if held:
        story.problems.append(held)
    story.advance("ingested", seconds=round(time.monotonic() - started, 3))
    # story.json first, then the files: a run killed in between leaves a story whose original is
    # still in the inbox (or a claim), and the next run puts it in place (see _drop_duplicate).
    store.write_story(story)
    original_dir = store.original_dir(story_id)
    if sidecar_path:  # the sidecar before the recording, so a stop in between loses neither
        _move_verified(sidecar_path, original_dir / sidecar_path.name)
    _move_verified(recording, original_dir / recording.name, sha)
    log.info(
        "%s is now story %s (%.0f s of audio)", recording.name, story_id, duration, extra={"story": story_id}
    )
    return story, True


def _drop_duplicate(recording: Path, sidecar: Path | None, store: Store, known: Story) -> None:
    """The same bytes were dropped again: remove the extra copy once the kept original is verified."""
    kept = store.original_dir(known.story_id) / known.source.filename
    if not kept.exists() or sha256_file(kept) != known.source.sha256:
        # The stored original is missing or damaged: put this copy in its place instead of dropping it.
        _move_verified(recording, kept, known.source.sha256)
    else:
        recording.unlink()
    if sidecar is not None:
        stored = find_sidecar(kept)
        if stored is None and not any(p.startswith("no sidecar") for p in known.problems):
            # The story was made with a sidecar, but a run stopped before moving it in place.
            _move_verified(sidecar, kept.parent / sidecar.name)
        elif stored is not None and stored.read_bytes() == sidecar.read_bytes():
            sidecar.unlink()
        else:
            quarantine(
                store,
                sidecar,
                f"its recording was already processed as story {known.story_id}; this sidecar differs from "
                "the one used then and was not applied (change consent in the review app instead)",
            )
    log.info(
        "%s was already processed as story %s; the extra copy was removed",
        recording.name,
        known.story_id,
        extra={"story": known.story_id, "done": True},
    )



# ---- Prefect wrappers (thin: the functions above run and test without Prefect) ----
