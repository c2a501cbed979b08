"""How much a passage reads like the quotes sense-making workshops pick: the meaning model, taught.

The word lists behind the other parts of a quote's score (evaluative words, first person, fillers)
miss most of what makes a workshop stop at a passage: a scene told, a before and after, a plain
judgement in the storyteller's own words. A frozen sentence embedding with a linear head on top did
not learn it either (no gain, writer by writer, bench/interviews/README.md). So the top layers of the
meaning model (all-MiniLM-L6-v2, meaning.py) were taught on annotated interviews to read a passage
whole and say how likely a workshop is to pick it (`bench/train_quotable.py`).

Only what training changed ships, in `config/quotable.safetensors`: those layers and the head, in
float16, with the SHA-256 of the meaning model they sit on. The rest is the meaning model, already
on the machine. The file's own SHA-256 is in the settings and is checked when it is loaded.

Its answer (0..1) is the `quotable` part of the score, shown in `why` like every other part.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from storypipe.core.settings import ExtractSettings, MeaningSettings, shipped_file
from storypipe.tasks.common.meaning import file_sha256, model_dir

_LOCK = threading.Lock()  # one passage batch at a time through the shared model


class QuotableModelError(RuntimeError):
    """The quotable model file is missing, damaged, or made for another meaning model."""


@dataclass
class Quotable:
    """The taught model: the meaning model with its top layers replaced, and a head."""

    tokenizer: object
    encoder: object
    head: object
    max_tokens: int

    def probabilities(self, texts: Sequence[str], batch: int = 64) -> np.ndarray:
        import torch

        out = []
        with _LOCK, torch.inference_mode():
            for i in range(0, len(texts), batch):
                tokens = self.tokenizer(list(texts[i: i + batch]), padding=True, truncation=True,
                                        max_length=self.max_tokens, return_tensors="pt")
                hidden = self.encoder(**tokens).last_hidden_state
                mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1)
                out.append(torch.sigmoid(self.head(pooled)).squeeze(-1).numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros(0, dtype=np.float32)


def model_path(name: str) -> Path | None:
    """The model's file: a path, or a file of the shipped config; empty turns the part off."""
    if not name:
        return None
    path = Path(name).expanduser()
    return path if path.is_absolute() or path.exists() else shipped_file(name)


def load(cfg: ExtractSettings, meaning_cfg: MeaningSettings) -> Quotable | None:
    """The taught model of these settings (loaded once per process), or None when it is turned off."""
    path = model_path(cfg.quotable_model)
    if path is None:
        return None
    return _load(str(path), cfg.quotable_sha256, str(model_dir(meaning_cfg)), meaning_cfg.sha256,
                 meaning_cfg.max_tokens)


@functools.cache
def _load(path: str, sha256: str, base: str, base_sha256: str, max_tokens: int) -> Quotable:
    import torch
    from safetensors import safe_open
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    file = Path(path)
    if not file.is_file():
        raise QuotableModelError(f"{file}: the quotable model is missing; set [extract] quotable_model = \"\" "
                                 "to score quotes without it")
    found = file_sha256(file)
    if sha256 and found != sha256:
        raise QuotableModelError(f"{file} is damaged or not the one these settings name: SHA-256 {found}, "
                                 f"expected {sha256}")
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    with safe_open(str(file), framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("base_sha256") != base_sha256:
            raise QuotableModelError(f"{file} was taught on another meaning model ({meta.get('base_sha256', '?')[:12]}), "
                                     f"not the one in [meaning] ({base_sha256[:12]})")
        tensors = {k: f.get_tensor(k).float() for k in f.keys()}
    encoder = AutoModel.from_pretrained(base, local_files_only=True)
    layers = {k.removeprefix("encoder."): v for k, v in tensors.items() if k.startswith("encoder.")}
    missing = set(layers) - set(encoder.state_dict())
    if missing:
        raise QuotableModelError(f"{file}: weights for layers this meaning model does not have ({sorted(missing)[0]}…)")
    encoder.load_state_dict(layers, strict=False)
    head = torch.nn.Linear(tensors["head.weight"].shape[1], 1)
    head.load_state_dict({"weight": tensors["head.weight"], "bias": tensors["head.bias"]})
    encoder.eval()
    head.eval()
    return Quotable(AutoTokenizer.from_pretrained(base, local_files_only=True), encoder, head, max_tokens)
