"""How much a passage sounds like the quotes sense-making workshops pick, from what it means.

The word lists behind the other parts of a quote's score (evaluative words, first person, fillers)
miss most of what makes a workshop stop at a passage: a concrete scene, a before and after, a
plain judgement. A small logistic head over the passage's sentence embedding (meaning.py) learns
that from annotated interviews: `bench/train_quotable.py` fits it on the passages that were picked
and the ones that were not, and writes `config/quotable.json`, shipped with the package. The head
is 384 numbers and a bias, so scoring costs one dot product per window.

Its answer (0..1) is the `quotable` part of the score, shown in `why` like every other part.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from storypipe.core.jsonio import read_model
from storypipe.core.settings import MeaningSettings, shipped_file


class QuotableHead(BaseModel):
    """config/quotable.json: the head's weights and what they were learnt from."""

    model_config = ConfigDict(extra="forbid")

    embedding_model: str  # the [meaning] model whose vectors it reads (its archive's SHA-256)
    bias: float
    weights: list[float] = Field(min_length=1)
    trained_on: list[str]  # the annotated interview sets, for provenance
    regularisation: float = Field(gt=0)  # scikit-learn's C
    positives: int = Field(ge=1)
    negatives: int = Field(ge=1)

    @model_validator(mode="after")
    def _finite(self) -> "QuotableHead":
        if not all(math.isfinite(w) for w in [self.bias, *self.weights]):
            raise ValueError("weights must be finite numbers")
        return self


def head_path(name: str) -> Path | None:
    """The head's file: a path, or a name of the shipped config; empty turns the part off."""
    if not name:
        return None
    path = Path(name).expanduser()
    return path if path.is_absolute() or path.exists() else shipped_file(name)


@functools.cache
def load_head(path: Path) -> QuotableHead:
    return read_model(path, QuotableHead)


def usable_head(name: str, meaning_cfg: MeaningSettings, dim: int) -> QuotableHead | None:
    """The head, when it reads vectors of this embedding model and size; else None (the part is left out)."""
    path = head_path(name)
    if path is None:
        return None
    head = load_head(path)
    if head.embedding_model != meaning_cfg.sha256 or len(head.weights) != dim:
        return None
    return head


def quotable(vectors: np.ndarray, head: QuotableHead) -> np.ndarray:
    """Each window's probability (0..1) of being one a workshop picks."""
    z = vectors @ np.asarray(head.weights, dtype=vectors.dtype) + head.bias
    return 1.0 / (1.0 + np.exp(-z))
