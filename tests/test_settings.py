"""Settings: project config, then the root's storypipe.toml, then STORYPIPE_* environment variables."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from storypipe.settings import PROJECT_CONFIG, load_settings


def test_project_config_has_the_contract_keys():
    text = PROJECT_CONFIG.read_text()
    assert 'engine = "openai-whisper"' in text and 'model = "tiny.en"' in text
    s = load_settings()
    assert s.transcribe.engine == "openai-whisper" and s.transcribe.model == "tiny.en"


def test_root_file_overrides_key_by_key(tmp_path, monkeypatch):
    monkeypatch.delenv("STORYPIPE_TRANSCRIBE__MODEL", raising=False)
    (tmp_path / "storypipe.toml").write_text('[transcribe]\nmodel = "base.en"\n[extract]\nmax_quotes = 3\n')
    s = load_settings(tmp_path)
    assert s.transcribe.model == "base.en"
    assert s.transcribe.beam_size == 5  # the rest of the section still comes from the project
    assert s.extract.max_quotes == 3 and s.extract.min_words == 8


def test_environment_beats_files(tmp_path, monkeypatch):
    (tmp_path / "storypipe.toml").write_text('[transcribe]\nmodel = "base.en"\n')
    monkeypatch.setenv("STORYPIPE_TRANSCRIBE__MODEL", "small.en")
    monkeypatch.setenv("STORYPIPE_INGEST__DEFAULT_CONSENT__CLIPS", "true")
    s = load_settings(tmp_path)
    assert s.transcribe.model == "small.en"
    assert s.ingest.default_consent.clips is True


def test_bad_values_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("STORYPIPE_TRANSCRIBE__ENGINE", "dragon")
    with pytest.raises(ValidationError):
        load_settings(tmp_path)
