"""Where things live under a root (see CONTRACT.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
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

    def ensure(self) -> Layout:
        for folder in (self.inbox, self.originals, self.quarantine, self.transcripts, self.staging):
            folder.mkdir(parents=True, exist_ok=True)
        return self
