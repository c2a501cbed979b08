"""The one door to a root's files (see CONTRACT.md): where every folder and every story file lives,
validated reads, atomic writes, and the per-story edit lock. No other module names a story's files."""

from __future__ import annotations

import csv
import io
import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from filelock import FileLock
from pydantic import BaseModel

from storypipe.core.jsonio import BadFileError, atomic_write_text, read_model, write_model
from storypipe.core.models import ClipBatch, KeyphrasesFile, QuotesFile, Story, Transcript

M = TypeVar("M", bound=BaseModel)

log = logging.getLogger("storypipe")


# A story's files, under transcripts/<story_id>/ (CONTRACT.md). Only this module names them.
STORY_FILE = "story.json"
TRANSCRIPT_FILE = "transcript.json"
QUOTES_FILE = "quotes.json"
KEYPHRASES_FILE = "keyphrases.json"
TEXT_FILES = ("transcript.txt", "transcript.srt", "transcript.vtt")
# Held while a person's edit or a stage reads, changes and writes one of a story's files.
EDIT_LOCK = ".edit.lock"
EDIT_LOCK_TIMEOUT_S = 10
# A clip batch's files, under audio/clips/<batch>/ (CONTRACT.md).
MANIFEST_FILE = "manifest.json"
MANIFEST_CSV_FILE = "manifest.csv"
# A findings report: reports/<yyyy-mm-dd>/ (tasks/report writes them).
REPORT_MD, REPORT_HTML, REPORT_PDF = "report.md", "report.html", "report.pdf"
REPORT_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# The search index (tasks/search): one file per story. It holds transcript text, so it always stays
# inside the root, whatever [run] state_dir says.
SEARCH_DIR = Path(".storypipe") / "search"
SEARCH_SUFFIX = ".npz"
MANIFEST_CSV_FIELDS = ["file", "video_file", "story_id", "quote_id", "start", "end", "duration_s", "title",
                       "privacyStatus", "playlist", "video_id"]


def _read(path: Path, cls: type[M], missing_ok: bool) -> M | None:
    return None if missing_ok and not path.is_file() else read_model(path, cls)


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


@dataclass(frozen=True)
class Store:
    """A root: the folder that holds audio/, transcripts/, staging/ and reports/."""

    root: Path

    @property
    def inbox(self) -> Path:
        return self.root / "audio" / "inbox"

    @property
    def originals(self) -> Path:
        return self.root / "audio" / "originals"

    @property
    def quarantine(self) -> Path:
        return self.root / "audio" / "quarantine"

    @property
    def work(self) -> Path:
        """Derived audio (the 16 kHz copy for recognition): safe to delete, rebuilt from originals."""
        return self.root / "audio" / "work"

    @property
    def clips(self) -> Path:
        return self.root / "audio" / "clips"

    @property
    def transcripts(self) -> Path:
        return self.root / "transcripts"

    @property
    def staging(self) -> Path:
        return self.root / "staging"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    def story_dir(self, story_id: str) -> Path:
        return self.transcripts / story_id

    def original_dir(self, story_id: str) -> Path:
        return self.originals / story_id

    def speech_wav(self, story_id: str) -> Path:
        return self.work / story_id / "speech-16k.wav"

    def ensure(self) -> Store:
        for folder in (self.inbox, self.originals, self.quarantine, self.transcripts, self.staging):
            folder.mkdir(parents=True, exist_ok=True)
        return self

    def story_path(self, story_id: str) -> Path:
        return self.story_dir(story_id) / STORY_FILE

    def transcript_path(self, story_id: str) -> Path:
        return self.story_dir(story_id) / TRANSCRIPT_FILE

    def quotes_path(self, story_id: str) -> Path:
        return self.story_dir(story_id) / QUOTES_FILE

    def keyphrases_path(self, story_id: str) -> Path:
        return self.story_dir(story_id) / KEYPHRASES_FILE

    def text_path(self, story_id: str, suffix: str) -> Path:
        """transcript.txt, .srt or .vtt: the readable copies of transcript.json."""
        return self.story_dir(story_id) / f"transcript.{suffix.lstrip('.')}"

    def has_story(self, story_id: str) -> bool:
        return self.story_path(story_id).is_file()

    def story_ids(self, pattern: str = "*") -> list[str]:
        """Ids of the stories that have a story.json, optionally only those matching a glob pattern."""
        return sorted(p.parent.name for p in self.transcripts.glob(f"{pattern}/{STORY_FILE}"))

    def quoted_story_ids(self) -> list[str]:
        """Ids of the folders that have a quotes.json (its story.json may be missing or broken)."""
        return sorted(p.parent.name for p in self.transcripts.glob(f"*/{QUOTES_FILE}"))

    def read_story(self, story_id: str) -> Story:
        return read_model(self.story_path(story_id), Story)

    # A transcript, quotes and key phrases exist only once their stage has run: missing_ok=True
    # gives None for a missing file (a file that is there but broken is still a BadFileError).

    def read_transcript(self, story_id: str, missing_ok: bool = False) -> Transcript | None:
        return _read(self.transcript_path(story_id), Transcript, missing_ok)

    def read_quotes(self, story_id: str, missing_ok: bool = False) -> QuotesFile | None:
        return _read(self.quotes_path(story_id), QuotesFile, missing_ok)

    def read_keyphrases(self, story_id: str, missing_ok: bool = False) -> KeyphrasesFile | None:
        return _read(self.keyphrases_path(story_id), KeyphrasesFile, missing_ok)

    def write_story(self, story: Story) -> Path:
        return write_model(self.story_path(story.story_id), story)

    def write_transcript(self, transcript: Transcript) -> Path:
        return write_model(self.transcript_path(transcript.story_id), transcript)

    def write_quotes(self, story_id: str, quotes: QuotesFile) -> Path:
        return write_model(self.quotes_path(story_id), quotes)

    def write_keyphrases(self, story_id: str, keyphrases: KeyphrasesFile) -> Path:
        return write_model(self.keyphrases_path(story_id), keyphrases)

    def set_aside(self, path: Path) -> Path:
        """Rename an unreadable file out of the way, kept beside the others for a person to look at
        (quotes.json becomes quotes.unreadable-<unix time>.json)."""
        return path.rename(path.with_name(f"{path.stem}.unreadable-{int(time.time())}{path.suffix}"))

    def stories(self) -> list[Story]:
        """Every readable story; one broken story.json is logged and skipped, never fatal."""
        stories = []
        for story_id in self.story_ids():
            try:
                stories.append(self.read_story(story_id))
            except BadFileError as e:
                log.warning("Skipping %s", e)
        return stories

    def edit_lock(self, story_id: str) -> FileLock:
        """The per-story lock around a read-change-write of its files. One instance per lock file
        (is_singleton), so a thread that holds it can take it again (nested use) while other threads
        and processes wait, up to EDIT_LOCK_TIMEOUT_S; two separate instances would block each other
        even in one thread."""
        return FileLock(str(self.story_dir(story_id) / EDIT_LOCK), timeout=EDIT_LOCK_TIMEOUT_S, is_singleton=True)

    @contextmanager
    def updating_story(self, story_id: str) -> Iterator[Story]:
        """Read story.json, let the caller change it, write it back atomically, under the edit lock.
        Nothing is written when the caller changed nothing (or raised)."""
        with self.edit_lock(story_id):
            story = self.read_story(story_id)
            before = story.model_copy(deep=True)
            yield story
            if story != before:
                write_model(self.story_path(story_id), story)

    # ---- the search index: .storypipe/search/<story_id>.npz (tasks/search writes them) ----

    @property
    def search_dir(self) -> Path:
        return self.root / SEARCH_DIR

    def search_index_path(self, story_id: str) -> Path:
        return self.search_dir / f"{story_id}{SEARCH_SUFFIX}"

    def search_indexed_ids(self) -> list[str]:
        """Ids of the stories that have a search index file (their story may be gone since)."""
        return sorted(p.name.removesuffix(SEARCH_SUFFIX) for p in self.search_dir.glob(f"*{SEARCH_SUFFIX}"))

    # ---- findings reports: reports/<day>/report.md, report.html (and report.pdf) ----

    def report_dir(self, day: str) -> Path:
        return self.reports / day

    def report_days(self) -> list[str]:
        """The days a report.html was made on, newest first."""
        return sorted((p.parent.name for p in self.reports.glob(f"*/{REPORT_HTML}") if REPORT_DAY.match(p.parent.name)),
                      reverse=True)

    # ---- clip batches: audio/clips/<batch>/manifest.json and manifest.csv ----

    def batch_dir(self, batch: str) -> Path:
        return self.clips / batch

    def manifest_path(self, batch: str) -> Path:
        return self.batch_dir(batch) / MANIFEST_FILE

    def batch_names(self) -> list[str]:
        return sorted(p.parent.name for p in self.clips.glob(f"*/{MANIFEST_FILE}"))

    def read_batch(self, batch: str) -> ClipBatch:
        return read_model(self.manifest_path(batch), ClipBatch)

    def batches(self) -> list[ClipBatch]:
        """Every readable clip batch, in folder order; a broken manifest is logged and skipped."""
        out = []
        for path in sorted(self.clips.glob(f"*/{MANIFEST_FILE}")):
            try:
                out.append(read_model(path, ClipBatch))
            except BadFileError as e:
                log.warning("Skipping clip batch %s: %s", path.parent.name, e.reason)
        return out

    def write_batch(self, batch: ClipBatch, folder: Path | None = None) -> Path:
        """manifest.json and manifest.csv, each atomically, into the batch's folder (or into
        `folder`, a batch being built that will be renamed into place)."""
        folder = folder if folder is not None else self.batch_dir(batch.batch)
        path = write_model(folder / MANIFEST_FILE, batch)
        atomic_write_text(folder / MANIFEST_CSV_FILE, manifest_csv(batch))
        return path
