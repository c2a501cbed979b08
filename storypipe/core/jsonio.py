"""Atomic writes and validated reads: a crash never leaves half a file, bad JSON names its file."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class BadFileError(ValueError):
    """A file storypipe needs is missing, unreadable or not in the expected shape."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@contextmanager
def atomic_writer(path: Path) -> Iterator[BinaryIO]:
    """A binary file to write `path` through, streamed (a model checkpoint need not sit in memory
    as bytes): a temporary file beside it, synced and renamed into place when the block ends
    without an error, removed when it does not."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    with atomic_writer(path) as f:
        f.write(data)
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_model(path: Path, model: BaseModel) -> Path:
    return atomic_write_text(path, model.model_dump_json(indent=2) + "\n")


def write_json(path: Path, data: object) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def read_model(path: Path, cls: type[M]) -> M:
    try:
        return cls.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        raise BadFileError(path, "file not found") from None
    except ValidationError as e:
        raise BadFileError(path, f"not a valid {cls.__name__} file: {e}") from None
