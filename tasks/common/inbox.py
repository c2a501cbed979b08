"""Files in the inbox and the folders beside it: which file is a sidecar, and a name that is free."""

from __future__ import annotations

from pathlib import Path

SIDECAR_SUFFIXES = (".yaml", ".yml")


def is_sidecar(path: Path) -> bool:
    return path.suffix.lower() in SIDECAR_SUFFIXES


def find_sidecar(recording: Path) -> Path | None:
    """`<stem>.yaml` (preferred) or `<stem>.yml`, in any letter case."""
    if not recording.parent.is_dir():
        return None
    found = {
        p.suffix.lower(): p for p in recording.parent.iterdir() if p.stem == recording.stem and is_sidecar(p)
    }
    return next((found[s] for s in SIDECAR_SUFFIXES if s in found), None)


def free_name(path: Path, sidecar_suffix: str | None = None) -> Path:
    """`name.ext`, else `name (1).ext`, ...: a name free for the file and, if given, its sidecar."""
    n, candidate = 1, path
    while candidate.exists() or (sidecar_suffix and candidate.with_suffix(sidecar_suffix).exists()):
        candidate = path.with_name(f"{path.stem} ({n}){path.suffix}")
        n += 1
    return candidate
