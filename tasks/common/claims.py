"""Who works on what: claims on inbox files, per-story locks, machine-wide transcription slots, and
the clean-up of what a killed run left half done.

Two `storypipe run` or `watch` processes (or Dask workers, or machines sharing a network folder) may
look at one root at the same time. They must never take the same file or story twice:

- An inbox file is claimed by renaming it into this run's own folder `audio/inbox/.claimed/<token>/`.
  A rename is atomic, so exactly one process wins. While the run lives it holds an OS lock on its
  claim; a claim whose lock is free belongs to a run that died (kill -9, a laptop that never woke),
  and its files go back to the inbox.
- A story is carried through its stages only under its own lock (filelock: an OS lock, released by
  the kernel when a process dies, so a killed run never leaves a story locked).
- Transcription takes one of `transcribe_per_machine` slots shared by every process on the machine.
  Prefect's own concurrency limits live on a Prefect server; the default here runs without one (a
  temporary server per process), so the machine-wide limit is a set of lock files. The task also
  carries the Prefect tag `transcribe`, so a team with a server can add a cluster-wide limit
  (`prefect concurrency-limit create transcribe 2`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from storypipe.core.store import Store
from storypipe.core.settings import Settings
from storypipe.tasks.common.inbox import find_sidecar, free_name

log = logging.getLogger("storypipe")

CLAIMS = ".claimed"
SLOT_WAIT_S = 1.0  # how often a transcription waiting for a free slot looks again
# Set once this process has claimed a recording: the command loads its models only then, so a run
# that finds the inbox taken by another costs no model loads.
TOOK_WORK = threading.Event()


class InboxNotWritable(OSError):
    """The inbox cannot be changed: nothing can be claimed, so nothing is moved."""


def state_dir(store: Store, settings: Settings) -> Path:
    folder = settings.run.state_folder(store.root)
    (folder / "locks").mkdir(parents=True, exist_ok=True)
    return folder


def _lock_path(store: Store, settings: Settings, name: str) -> str:
    return str(state_dir(store, settings) / "locks" / f"{name}.lock")


class Claim:
    """This run's claim on inbox files (see the module docstring). Use as a context manager."""

    def __init__(self, store: Store, settings: Settings):
        self.store = store
        token = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.folder = store.inbox / CLAIMS / token
        self.lock = FileLock(_lock_path(store, settings, f"claim-{token}"))

    def __enter__(self) -> Claim:
        self.lock.acquire()
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self.folder.is_dir():
                give_back(self.folder, self.store.inbox)
            with contextlib.suppress(OSError):
                self.folder.parent.rmdir()  # only when no other run has a claim
        finally:
            self.lock.release()
            Path(self.lock.lock_file).unlink(missing_ok=True)

    def take(self, recording: Path) -> Path | None:
        """Move a recording (and its sidecar) into this claim. None when another run took it first.

        Raises InboxNotWritable when the inbox cannot be changed (nothing is moved then)."""
        sidecar = find_sidecar(recording)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            os.rename(recording, self.folder / recording.name)
        except FileNotFoundError:
            return None  # another run claimed it a moment ago
        except PermissionError as e:
            raise InboxNotWritable(
                f"the inbox folder {self.store.inbox} cannot be changed ({e.strerror}): storypipe must move "
                "recordings out of it to process them. Nothing was moved; give this user write permission "
                "on the folder and run again."
            ) from e
        if sidecar is not None:
            with contextlib.suppress(FileNotFoundError):
                os.rename(sidecar, self.folder / sidecar.name)
        TOOK_WORK.set()
        return self.folder / recording.name

    def give_back(self, claimed: Path) -> None:
        """Return one claimed recording (and its sidecar) to the inbox, e.g. after a disk error."""
        sidecar = find_sidecar(claimed)
        for path in (claimed, sidecar):
            if path is not None and path.exists():
                _return(path, self.store.inbox)


def _return(path: Path, inbox: Path) -> Path:
    target = inbox / path.name
    if target.exists():  # the same name was dropped again meanwhile: keep both
        target = free_name(target)
    os.rename(path, target)
    return target


def give_back(folder: Path, inbox: Path) -> list[Path]:
    """Put every file of a claim folder back in the inbox and remove the folder."""
    returned = [_return(p, inbox) for p in sorted(folder.iterdir()) if p.is_file()]
    shutil.rmtree(folder, ignore_errors=True)
    return returned


def recover_claims(store: Store, settings: Settings) -> list[Path]:
    """Claims of runs that died go back to the inbox, so their recordings are processed now."""
    claims = store.inbox / CLAIMS
    returned: list[Path] = []
    if not claims.is_dir():
        return returned
    for folder in sorted(p for p in claims.iterdir() if p.is_dir()):
        lock = FileLock(_lock_path(store, settings, f"claim-{folder.name}"), timeout=0)
        try:
            with lock:
                back = give_back(folder, store.inbox)
        except Timeout:
            continue  # its run is alive
        Path(lock.lock_file).unlink(missing_ok=True)
        for path in back:
            log.info("%s was being processed by a run that stopped; it is back in the inbox", path.name,
                     extra={"story": path.name})
        returned += back
    with contextlib.suppress(OSError):
        claims.rmdir()  # only when empty
    return returned


@contextlib.contextmanager
def story_lock(store: Store, settings: Settings, story_id: str) -> Iterator[bool]:
    """Yields True while this process alone works on the story; False when another run has it."""
    lock = FileLock(_lock_path(store, settings, f"story-{story_id}"), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


@contextlib.contextmanager
def ingest_lock(store: Store, settings: Settings, sha256: str) -> Iterator[None]:
    """Held while one recording's bytes become a story, so the same bytes under two names, taken by
    two runs at once, still make one story."""
    with FileLock(_lock_path(store, settings, f"sha-{sha256[:16]}"), timeout=600):
        yield


@contextlib.contextmanager
def machine_slot(settings: Settings, name: str, story_id: str = "") -> Iterator[int]:
    """One of `transcribe_per_machine` slots shared by every process on this machine; waits for one."""
    folder = settings.run.machine_folder()
    folder.mkdir(parents=True, exist_ok=True)
    limit = settings.run.transcribe_per_machine
    told = False
    while True:
        for i in range(limit):
            lock = FileLock(str(folder / f"{name}-{i}.lock"), timeout=0)
            try:
                lock.acquire()
            except Timeout:
                continue
            try:
                yield i
            finally:
                lock.release()
            return
        if not told:
            log.info("%s waits: %d %s already running on this machine", story_id or name, limit,
                     "transcription is" if limit == 1 else "transcriptions are", extra={"story": story_id})
            told = True
        time.sleep(SLOT_WAIT_S)


def sweep_leftovers(store: Store, story_id: str) -> list[Path]:
    """Remove what a killed run left half written for this story: temporary files beside its JSON
    and half-built staging folders. Call only while holding the story's lock."""
    gone: list[Path] = []
    story_dir = store.story_dir(story_id)
    candidates = list(story_dir.glob(".*.tmp")) if story_dir.is_dir() else []
    candidates += list(store.work.glob(f"{story_id}/.*.tmp")) if store.work.is_dir() else []
    candidates += list(store.staging.glob(f".{story_id}.*")) if store.staging.is_dir() else []
    for path in candidates:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        gone.append(path)
    if gone:
        log.info("%s: removed %d half-written files left by a run that stopped", story_id, len(gone),
                 extra={"story": story_id})
    return gone
