"""Offline Whisper: the bundled CTranslate2 tiny.en converts to a working openai-whisper checkpoint."""

from __future__ import annotations

import json
import re
import shutil
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import whisper
from whisper.model import ModelDimensions, Whisper

from storypipe.tasks.transcribe.whisper_model import (
    BUNDLED_MODEL_NAME,
    BUNDLED_MODEL_SHA256,
    ModelNotFoundError,
    bundled_model_dir,
    convert_ct2_model,
    load_whisper_model,
    read_ct2_variables,
    resolve_checkpoint,
)
from tests.support import DATA

TINY_EN_DIMS = {
    "n_mels": 80,
    "n_audio_ctx": 1500,
    "n_audio_state": 384,
    "n_audio_head": 6,
    "n_audio_layer": 4,
    "n_vocab": 51864,
    "n_text_ctx": 448,
    "n_text_state": 384,
    "n_text_head": 6,
    "n_text_layer": 4,
}


@pytest.fixture(scope="module")
def variables() -> dict[str, np.ndarray]:
    return read_ct2_variables(bundled_model_dir() / "model.bin")


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled model converted once, named as resolve_checkpoint names its cache file."""
    cache_dir = tmp_path_factory.mktemp("cache")
    out = cache_dir / f"{BUNDLED_MODEL_NAME}-{BUNDLED_MODEL_SHA256[:8]}.pt"
    return convert_ct2_model(bundled_model_dir(), out, expected_sha256=BUNDLED_MODEL_SHA256)


@pytest.fixture(scope="module")
def checkpoint(converted: Path) -> dict:
    return torch.load(converted, map_location="cpu", weights_only=True)


@pytest.fixture
def empty_whisper_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point openai-whisper's cache at an empty folder so this machine's downloads cannot interfere."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "whisper"


def config_heads() -> list[list[int]]:
    return json.loads((bundled_model_dir() / "config.json").read_text())["alignment_heads"]


def dense_heads(model: Whisper) -> torch.Tensor:
    return model.alignment_heads.to_dense()


def words(text: str) -> list[str]:
    return re.sub(r"[^\w\s']", " ", text.lower()).split()


# ---------------------------------------------------------------- reader


def test_reader_finds_variables_and_alias(variables: dict[str, np.ndarray]) -> None:
    assert len(variables) == 148 + 1  # 148 stored variables, 1 alias
    assert variables["encoder/conv1/weight"].shape == (384, 80, 3)
    assert variables["encoder/conv1/weight"].dtype == np.float16
    assert variables["decoder/layer_3/self_attention/linear_0/weight"].shape == (1152, 384)
    assert variables["decoder/layer_0/attention/linear_1/weight"].shape == (768, 384)
    assert int(variables["decoder/num_heads"]) == 6 and int(variables["encoder/num_heads"]) == 6
    assert variables["decoder/projection/weight"] is variables["decoder/embeddings/weight"]


def test_reader_refuses_other_versions_and_truncated_files(tmp_path: Path) -> None:
    head = (bundled_model_dir() / "model.bin").read_bytes()[:4096]
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(head)
    with pytest.raises(ValueError, match=re.escape(str(truncated))):
        read_ct2_variables(truncated)

    other_version = tmp_path / "v5.bin"
    other_version.write_bytes((5).to_bytes(4, "little") + head[4:])
    with pytest.raises(ValueError, match="version 5"):
        read_ct2_variables(other_version)


def test_dropped_key_biases_are_zero(variables: dict[str, np.ndarray]) -> None:
    """openai-whisper's key projection has no bias, so dropping CTranslate2's must lose nothing."""
    for side, n in (("encoder", 4), ("decoder", 4)):
        for i in range(n):
            fused = variables[f"{side}/layer_{i}/self_attention/linear_0/bias"]
            assert not fused[384:768].any()
    for i in range(4):
        assert not variables[f"decoder/layer_{i}/attention/linear_1/bias"][:384].any()


# ---------------------------------------------------------------- conversion


def test_conversion_loads_strict(checkpoint: dict) -> None:
    assert checkpoint["dims"] == TINY_EN_DIMS
    state = checkpoint["model_state_dict"]
    assert {t.dtype for t in state.values()} == {torch.float16}
    model = Whisper(ModelDimensions(**checkpoint["dims"]))
    model.load_state_dict(state, strict=True)
    assert set(state) == set(model.state_dict())


def test_alignment_heads_match_config(checkpoint: dict, converted: Path, tmp_path: Path) -> None:
    assert checkpoint["alignment_heads"] == config_heads()

    model = load_whisper_model(str(converted), tmp_path)
    expected = torch.zeros(4, 6, dtype=torch.bool)
    for layer, head in config_heads():
        expected[layer, head] = True
    assert model.alignment_heads.is_sparse and model.alignment_heads.dtype == torch.bool
    assert torch.equal(dense_heads(model), expected)
    assert "alignment_heads" not in model.state_dict()  # non-persistent, like whisper's own

    # the same heads openai-whisper ships for tiny.en
    official = Whisper(ModelDimensions(**TINY_EN_DIMS))
    official.set_alignment_heads(whisper._ALIGNMENT_HEADS["tiny.en"])
    assert torch.equal(dense_heads(official), expected)


def test_corrupted_model_bin_is_refused(tmp_path: Path) -> None:
    broken_dir = tmp_path / "broken"
    broken_dir.mkdir()
    shutil.copy(bundled_model_dir() / "config.json", broken_dir)
    data = bytearray((bundled_model_dir() / "model.bin").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (broken_dir / "model.bin").write_bytes(data)
    out_dir = tmp_path / "cache"

    with pytest.raises(ModelNotFoundError, match=re.escape(str(broken_dir / "model.bin"))):
        convert_ct2_model(broken_dir, out_dir / "x.pt", expected_sha256=BUNDLED_MODEL_SHA256)
    assert not out_dir.exists() or not any(out_dir.iterdir())


def test_wrong_expected_sha_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"model\.bin.*expected 0{64}"):
        convert_ct2_model(bundled_model_dir(), tmp_path / "x.pt", expected_sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- resolve_checkpoint


def test_pt_path_passes_through(converted: Path, tmp_path: Path) -> None:
    assert resolve_checkpoint(str(converted), tmp_path) == str(converted)


def test_unknown_name_and_missing_path_raise(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="Unknown Whisper model 'tiny-nope'"):
        resolve_checkpoint("tiny-nope", tmp_path)
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_checkpoint(str(tmp_path / "missing.pt"), tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="model.bin"):
        resolve_checkpoint(str(tmp_path / "empty"), tmp_path)


def test_whisper_cache_is_preferred(empty_whisper_cache: Path, tmp_path: Path) -> None:
    empty_whisper_cache.mkdir(parents=True)
    own = empty_whisper_cache / "tiny.en.pt"
    own.write_bytes(b"stand-in for openai's download")
    assert resolve_checkpoint("tiny.en", tmp_path / "cache") == str(own)
    assert not (tmp_path / "cache").exists()  # nothing converted


def test_bundled_conversion_is_reused(empty_whisper_cache: Path, converted: Path) -> None:
    before = converted.stat().st_mtime_ns
    assert resolve_checkpoint("tiny.en", converted.parent) == str(converted)
    assert converted.stat().st_mtime_ns == before


def test_other_names_go_to_whisper(empty_whisper_cache: Path, tmp_path: Path) -> None:
    assert resolve_checkpoint("base.en", tmp_path) == "base.en"


def test_ct2_folder_converts_once(tmp_path: Path) -> None:
    folder = tmp_path / "ct2"
    folder.mkdir()
    for name in ("model.bin", "config.json"):
        (folder / name).symlink_to(bundled_model_dir() / name)
    cache_dir = tmp_path / "cache"

    first = Path(resolve_checkpoint(str(folder), cache_dir))
    assert first == cache_dir / f"ct2-{BUNDLED_MODEL_SHA256[:12]}.pt"
    before = first.stat().st_mtime_ns
    assert resolve_checkpoint(str(folder), cache_dir) == str(first)
    assert first.stat().st_mtime_ns == before
    assert sorted(p.name for p in cache_dir.iterdir()) == [first.name]  # no temp files left


def test_official_checkpoint_gets_official_heads(
    empty_whisper_cache: Path, checkpoint: dict, tmp_path: Path
) -> None:
    """openai's .pt files carry no heads; loading by name must still use tiny.en's, not the default."""
    empty_whisper_cache.mkdir(parents=True)
    plain = {k: v for k, v in checkpoint.items() if k != "alignment_heads"}
    torch.save(plain, empty_whisper_cache / "tiny.en.pt")

    model = load_whisper_model("tiny.en", tmp_path)
    official = Whisper(ModelDimensions(**TINY_EN_DIMS))
    official.set_alignment_heads(whisper._ALIGNMENT_HEADS["tiny.en"])
    assert torch.equal(dense_heads(model), dense_heads(official))


# ---------------------------------------------------------------- real transcription


def test_transcribes_jfk_with_word_timestamps(converted: Path, tmp_path: Path) -> None:
    model = load_whisper_model(str(converted), tmp_path)
    assert load_whisper_model(str(converted), tmp_path) is model  # cached in-process

    audio = whisper.load_audio(str(DATA / "jfk.flac"))
    duration = len(audio) / whisper.audio.SAMPLE_RATE
    result = whisper.transcribe(
        model,
        audio,
        beam_size=5,
        fp16=False,
        language="en",
        condition_on_previous_text=False,
        word_timestamps=True,
    )

    assert words(result["text"]) == words((DATA / "jfk.txt").read_text())

    timed = [w for segment in result["segments"] for w in segment["words"]]
    assert words("".join(w["word"] for w in timed)) == words(result["text"])
    starts = [w["start"] for w in timed]
    assert starts == sorted(starts) and starts[-1] > starts[0]
    assert all(0 <= w["start"] <= w["end"] <= duration + 0.01 for w in timed)


def test_failed_download_says_what_to_do(
    empty_whisper_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(whisper, "load_model", offline)
    with pytest.raises(ModelNotFoundError, match=r"'base\.en'.*'tiny\.en', which works offline"):
        load_whisper_model("base.en", tmp_path)
