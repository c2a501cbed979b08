"""`storypipe watch`: process recordings as they arrive in the inbox.

watchfiles (inotify on Linux, FSEvents on macOS, or polling) says *that* something changed in the
inbox. Three small rules on top are hand-rolled, because no file watcher knows when a copy is
finished or what a recording is:

- Settling: a file has arrived only when its size and modification time have not changed for
  `settle_s` seconds, watched by us. Copies from a recorder or over the network write for minutes,
  and the copying program never says when it is done.
- Bursts: recordings landing within `burst_s` of each other are processed in one run, so that
  dropping ten files starts the pipeline (and Prefect) once, not ten times.
- Rescans: every `rescan_s` the inbox is listed again. On network folders change events may never
  arrive, and a watcher can miss events (a full event queue, a laptop waking from sleep).

Hidden files and folders (rsync's temporary copies, the pipeline's own `.claimed` folder), copies
in progress (`.part`, ...) and sidecars whose recording is not in the inbox are ignored.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import watchfiles

from storypipe.core.settings import IngestSettings, WatchSettings
from storypipe.tasks.common.inbox import is_sidecar

log = logging.getLogger("storypipe")

OnEvent = Callable[[str, list[Path]], object]
Signature = tuple[int, int]  # (size, mtime in ns)

DEFAULT_IGNORE = tuple(IngestSettings().ignore_suffixes)


def is_recording(path: Path, ignore_suffixes: Iterable[str] = DEFAULT_IGNORE) -> bool:
    """By name, what `storypipe.tasks.ingest.list_inbox` would process: not hidden, not a sidecar, not a copy in progress."""
    return not path.name.startswith(".") and not is_sidecar(path) and not path.name.endswith(tuple(ignore_suffixes))


def recordings_in(inbox: Path, ignore_suffixes: Iterable[str] = DEFAULT_IGNORE) -> list[Path]:
    if not inbox.is_dir():
        return []
    return sorted(p for p in inbox.iterdir() if p.is_file() and is_recording(p, ignore_suffixes))


def _signature(path: Path) -> Signature | None:
    """Size and modification time of a regular file; None when it is gone (moved, claimed, deleted)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns) if path.is_file() else None


def _not_hidden(_change: watchfiles.Change, path: str) -> bool:
    return not Path(path).name.startswith(".")


def _names(paths: list[Path]) -> str:
    return ", ".join(p.name for p in paths)


def watch_inbox(
    inbox: Path,
    process: Callable[[], object],
    settings: WatchSettings,
    stop: threading.Event | None = None,
    on_event: OnEvent | None = None,
    ignore_suffixes: Iterable[str] = DEFAULT_IGNORE,
) -> int:
    """Call `process()` (which handles the whole inbox) once for the recordings already there, then
    once per burst of arrivals that have finished copying. Runs until `stop` is set (returns the
    number of batches) or KeyboardInterrupt. `on_event(kind, paths)` hears "arrived", "batch" and
    "processed". An exception from `process()` is logged and the watch goes on."""
    inbox.mkdir(parents=True, exist_ok=True)
    inbox = inbox.resolve()  # events name files under the path watched; compare like with like
    ignore = tuple(ignore_suffixes)
    notify: OnEvent = on_event or (lambda kind, paths: None)
    pending: dict[Path, tuple[Signature, float]] = {}  # file -> (signature, when it last changed)
    seen: dict[Path, Signature] = {}  # recordings already handed to process() and still in the inbox
    told: set[Path] = set()  # lone sidecars already mentioned
    last_arrival = -math.inf  # the first scan (files already there) waits for settling only
    next_scan = 0.0
    batches = 0
    tick_ms = int(min(1.0, max(0.05, settings.settle_s / 4)) * 1000)

    def arrive(path: Path, now: float, why: str) -> None:
        sig = _signature(path)
        if sig is None or path in pending:
            return
        pending[path] = (sig, now)
        log.info("%s %s; waiting until it has finished copying", path.name, why)
        notify("arrived", [path])

    for changes in watchfiles.watch(
        inbox, watch_filter=_not_hidden, stop_event=stop, rust_timeout=tick_ms, yield_on_timeout=True,
        debounce=tick_ms, force_polling=True if settings.force_polling else None, recursive=False,
    ):
        now = time.monotonic()
        for path in sorted({Path(p) for _, p in changes if Path(p).parent == inbox}):
            sig = _signature(path)
            if sig is None or path in pending:
                continue
            if is_recording(path, ignore):
                if seen.get(path) != sig:  # not a file the last run handed back unchanged
                    arrive(path, now, "arrived")
                    last_arrival = now
            elif is_sidecar(path):
                recording = next((r for r in recordings_in(inbox, ignore) if r.stem == path.stem), None)
                if recording is not None:  # details for a recording that waits in the inbox
                    arrive(path, now, f"(the details for {recording.name}) arrived")
                    arrive(recording, now, "is in the inbox")
                    last_arrival = now
                elif path not in told:
                    told.add(path)
                    log.info("%s arrived; it waits for its recording (%s.*) to arrive", path.name, path.stem)
        if now >= next_scan:
            next_scan = now + settings.rescan_s
            for path in recordings_in(inbox, ignore):
                if path not in pending and seen.get(path) != _signature(path):
                    arrive(path, now, "is in the inbox" if batches == 0 else "was found in the inbox")

        for path, (old, _) in list(pending.items()):
            sig = _signature(path)
            if sig is None:
                del pending[path]
                log.info("%s left the inbox before it was processed (moved, deleted or taken by another run)",
                         path.name)
            elif sig != old:
                pending[path] = (sig, now)
        settled = all(now - changed_at >= settings.settle_s for _, changed_at in pending.values())
        if not pending or not settled or now - last_arrival < settings.burst_s:
            continue

        batch = sorted(p for p in pending if is_recording(p, ignore))
        pending.clear()
        if not batch:
            continue
        batches += 1
        before = {p: s for p in recordings_in(inbox, ignore) if (s := _signature(p)) is not None}
        if len(batch) == 1:
            log.info("%s has finished copying: processing it now", batch[0].name)
        else:
            log.info("%d recordings have finished copying (%s): processing them now", len(batch), _names(batch))
        notify("batch", batch)
        try:
            process()
        except Exception as e:  # noqa: BLE001 - one bad run must not end the watch
            log.error("Processing stopped with a problem: %s. What was not processed stays in the inbox and is "
                      "tried again with the next arrival or `storypipe run`.", e)
        seen = {p: s for p, s in {**seen, **before}.items() if p.exists()}
        told = {p for p in told if p.exists()}
        notify("processed", batch)
        if stop is not None and stop.is_set():
            break
        log.info("Watching %s for new recordings (press Ctrl-C to stop)", inbox)
    return batches
