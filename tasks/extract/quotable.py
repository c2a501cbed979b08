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

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from storypipe.core.settings import ExtractSettings, MeaningSettings, shipped_file
from storypipe.tasks.common.meaning import encoder, file_sha256

_LOCK = threading.Lock()  # one passage batch at a time through the shared model


class QuotableModelError(RuntimeError):
    """The quotable model file is missing, damaged, or made for another meaning model."""


@dataclass
class Quotable:
    """The meaning model already loaded for quotes and search, read through its own lower layers and
    the taught top ones: only the taught layers (14 MB) and the head are held in memory twice."""

    tokenizer: object
    base: object  # the meaning model's transformer (shared, never changed)
    top: object  # the taught copies of its top layers
    head: object
    max_tokens: int

    def probabilities(self, texts: Sequence[str], batch: int = 16) -> np.ndarray:
        import torch

        out = []
        lower = self.base.encoder.layer[: len(self.base.encoder.layer) - len(self.top)]
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # alike lengths batch with little padding
        by_length = [texts[i] for i in order]
        with _LOCK, torch.inference_mode():
            for i in range(0, len(by_length), batch):
                tokens = self.tokenizer(by_length[i: i + batch], padding=True, truncation=True,
                                        max_length=self.max_tokens, return_tensors="pt")
                mask = tokens["attention_mask"]
                blocked = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
                hidden = self.base.embeddings(input_ids=tokens["input_ids"], token_type_ids=tokens.get("token_type_ids"))
                for layer in [*lower, *self.top]:
                    hidden = layer(hidden, attention_mask=blocked)
                    hidden = hidden[0] if isinstance(hidden, tuple) else hidden
                weights = mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * weights).sum(1) / weights.sum(1)
                out.append(torch.sigmoid(self.head(pooled)).squeeze(-1).numpy())
        found = np.zeros(len(texts), dtype=np.float32)
        if out:
            found[order] = np.concatenate(out)
        return found


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
    key = (str(path), cfg.quotable_sha256, meaning_cfg.model_dump_json())
    with _LOADING:
        if key not in _LOADED:
            _LOADED[key] = _load(str(path), cfg.quotable_sha256, meaning_cfg)
        return _LOADED[key]


_LOADED: dict[tuple[str, str, str], Quotable] = {}
_LOADING = threading.Lock()


def _load(path: str, sha256: str, meaning_cfg: MeaningSettings) -> Quotable:
    import copy

    import torch
    from safetensors import safe_open

    file = Path(path)
    if not file.is_file():
        raise QuotableModelError(f"{file}: the quotable model is missing; set [extract] quotable_model = \"\" "
                                 "to score quotes without it")
    found = file_sha256(file)
    if sha256 and found != sha256:
        raise QuotableModelError(f"{file} is damaged or not the one these settings name: SHA-256 {found}, "
                                 f"expected {sha256}")
    with safe_open(str(file), framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("base_sha256") != meaning_cfg.sha256:
            raise QuotableModelError(f"{file} was taught on another meaning model ({meta.get('base_sha256', '?')[:12]}), "
                                     f"not the one in [meaning] ({meaning_cfg.sha256[:12]})")
        # Saved as "encoder." + the transformer's own names ("encoder.layer.4.…"), and "head.…".
        tensors = {k.removeprefix("encoder."): f.get_tensor(k).float() for k in f.keys()}
    sentence_model = encoder(meaning_cfg)
    base = sentence_model[0].auto_model
    count = len(base.encoder.layer)
    taught = sorted({int(k.split(".")[2]) for k in tensors if k.startswith("encoder.layer.")})
    if not taught or taught != list(range(taught[0], count)):
        raise QuotableModelError(f"{file}: holds layers {taught} where the meaning model's top layers "
                                 f"(up to {count - 1}) were expected")
    top = torch.nn.ModuleList(copy.deepcopy(base.encoder.layer[i]) for i in taught)
    for i, layer in zip(taught, top):
        prefix = f"encoder.layer.{i}."
        layer.load_state_dict({k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)})
    head = torch.nn.Linear(tensors["head.weight"].shape[1], 1)
    head.load_state_dict({"weight": tensors["head.weight"], "bias": tensors["head.bias"]})
    top.eval()
    head.eval()
    return Quotable(sentence_model.tokenizer, base, top, head, meaning_cfg.max_tokens)
