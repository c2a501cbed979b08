"""Clips: short extracts of approved quotes, in batches under audio/clips/<batch>/ (manifest.json).

So far this module holds what the review app needs when consent changes: withdrawing a story's
clips that are not yet published. Cutting and publishing arrive with the clips issue.
"""

from __future__ import annotations

import csv
import io
import logging

from storypipe.jsonio import BadFileError, atomic_write_bytes, read_model, write_model
from storypipe.layout import Layout
from storypipe.models import ClipBatch

log = logging.getLogger("storypipe")

MANIFEST_CSV_FIELDS = ["file", "video_file", "story_id", "quote_id", "start", "end", "duration_s", "title",
                       "privacyStatus", "playlist", "video_id"]


def batches(layout: Layout) -> list[ClipBatch]:
    out = []
    for path in sorted(layout.clips.glob("*/manifest.json")):
        try:
            out.append(read_model(path, ClipBatch))
        except BadFileError as e:
            log.warning("Skipping clip batch %s: %s", path.parent.name, e.reason)
    return out


def manifest_csv(batch: ClipBatch) -> str:
    """manifest.csv: one row per clip, for a spreadsheet."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=MANIFEST_CSV_FIELDS)
    writer.writeheader()
    for c in batch.clips:
        writer.writerow({"file": c.file, "video_file": c.video_file or "", "story_id": c.story_id,
                         "quote_id": c.quote_id, "start": c.start, "end": c.end, "duration_s": c.duration_s,
                         "title": c.youtube.title, "privacyStatus": c.youtube.privacyStatus,
                         "playlist": c.youtube.playlist or "", "video_id": c.published.video_id if c.published else ""})
    return buf.getvalue()


def withdraw_story(layout: Layout, story_id: str) -> int:
    """Remove a story's unpublished clips from every batch (files and manifest rows). Published
    clips stay listed, because only the platform can take them down; returns how many were removed."""
    removed = 0
    for batch in batches(layout):
        folder = layout.clips / batch.batch
        gone = [c for c in batch.clips if c.story_id == story_id and c.published is None]
        if not gone:
            continue
        for clip in gone:
            for name in [clip.file, clip.video_file, *clip.captions]:
                if name and "/" not in name and "\\" not in name:
                    (folder / name).unlink(missing_ok=True)
        batch.clips = [c for c in batch.clips if c not in gone]
        write_model(folder / "manifest.json", batch)
        atomic_write_bytes(folder / "manifest.csv", manifest_csv(batch).encode("utf-8"))
        removed += len(gone)
        log.info("Removed %d unpublished clips of %s from batch %s", len(gone), story_id, batch.batch,
                 extra={"story": story_id})
    return removed
