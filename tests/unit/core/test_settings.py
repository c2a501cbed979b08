"""Settings: the shipped config/pipeline.toml, then the root's storypipe.toml, then STORYPIPE_* environment
variables. Every value is written once, in the shipped file; a key nobody knows is an error naming it."""

from __future__ import annotations

import tomllib
from importlib.resources import files
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError
from typer.testing import CliRunner

from storypipe.core import settings as settings_module
from storypipe.core.settings import (
    SHIPPED_CONFIG,
    ConfigError,
    DiarizeSettings,
    ExtractSettings,
    Lexicon,
    QuoteWeights,
    Settings,
    VadSettings,
    default_root,
    load_settings,
)


@pytest.fixture
def clean_env(monkeypatch):
    """No STORYPIPE_* variable from the shell changes what these tests read."""
    import os

    for key in [k for k in os.environ if k.upper().startswith("STORYPIPE_")]:
        monkeypatch.delenv(key)


def shipped_toml() -> dict:
    """config/pipeline.toml as the installed package holds it, read here on its own."""
    return tomllib.loads(files("storypipe.config").joinpath("pipeline.toml").read_text("utf-8"))


def leaves(data: dict, prefix: str = "") -> dict:
    """{"transcribe.vad.threshold": 0.5, ...}: every value of nested tables by its dotted name."""
    out = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out |= leaves(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return out


def test_project_config_has_the_contract_keys():
    text = SHIPPED_CONFIG.read_text()
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


# --- one source of values: the shipped file --------------------------------------------------------


def test_the_settings_in_effect_are_the_shipped_files_values(tmp_path, clean_env):
    """Every value in effect is the one config/pipeline.toml (read from the package) says, and the file
    sets every setting: no value hides in the code, and a config that does not ship is caught."""
    assert SHIPPED_CONFIG.parent == Path(str(files("storypipe.config")))
    shipped = leaves(shipped_toml())
    assert leaves(load_settings(tmp_path).model_dump(mode="json")) == shipped
    assert leaves(load_settings().model_dump(mode="json")) == shipped
    assert shipped["extract.max_words"] == 75 and shipped["extract.weights.evaluative"] == 2.0  # not the old code's


def test_a_section_built_on_its_own_takes_the_shipped_values(clean_env):
    shipped = shipped_toml()

    def check(model: BaseModel, table: dict, where: str) -> None:
        assert leaves(model.model_dump(mode="json")) == leaves(table), where
        for name, value in model:
            if isinstance(value, BaseModel) and isinstance(table.get(name), dict):
                check(type(value)(), table[name], f"{where}.{name}")  # the nested section alone, too

    for name, section in Settings().model_dump().items():
        check(getattr(Settings(), name), shipped[name], name)
        check(type(getattr(Settings(), name))(), shipped[name], name)
    assert VadSettings() == VadSettings(**shipped["transcribe"]["vad"])
    assert ExtractSettings().ideal_words == tuple(shipped["extract"]["ideal_words"])
    assert Lexicon().evaluative == shipped["extract"]["lexicon"]["evaluative"] != []
    assert QuoteWeights(length=3.0).ends_turn == shipped["extract"]["weights"]["ends_turn"]
    assert DiarizeSettings().contexts_s == shipped["speakers"]["diarize"]["contexts_s"] != []


def test_layers_shipped_then_root_then_environment(tmp_path, monkeypatch, clean_env):
    (tmp_path / "storypipe.toml").write_text("[transcribe.vad]\nthreshold = 0.3\npad_ms = 100\n")
    monkeypatch.setenv("STORYPIPE_TRANSCRIBE__VAD__PAD_MS", "50")
    vad = load_settings(tmp_path).transcribe.vad
    shipped = shipped_toml()["transcribe"]["vad"]
    assert (vad.min_speech_ms, vad.threshold, vad.pad_ms) == (shipped["min_speech_ms"], 0.3, 50)
    assert load_settings(None).transcribe.vad.threshold == shipped["threshold"]  # no root: no root file


# --- unknown keys are errors -----------------------------------------------------------------------


@pytest.mark.parametrize("text, key", [
    ("[extract]\nmax_word = 5\n", "extract.max_word"),
    ("[transcribe.vad]\nthreshhold = 0.3\n", "transcribe.vad.threshhold"),
    ("[ingest.default_consent]\nclip = true\n", "ingest.default_consent.clip"),
    ("[speaker]\ndefault_count = 1\n", "speaker"),
    ("engine = 'faster-whisper'\n", "engine"),
])
def test_an_unknown_key_in_a_file_is_an_error_naming_the_file_and_key(tmp_path, clean_env, text, key):
    path = tmp_path / "storypipe.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_settings(tmp_path)
    assert str(e.value).startswith(f"{path}: unknown setting '{key}'")


def test_an_unknown_key_says_what_was_meant(tmp_path, clean_env):
    (tmp_path / "storypipe.toml").write_text("[extract]\nmax_word = 5\n")
    with pytest.raises(ConfigError, match=r"did you mean 'extract\.max_words'"):
        load_settings(tmp_path)


def test_an_unknown_key_in_the_environment_is_an_error_naming_the_variable_and_key(tmp_path, monkeypatch, clean_env):
    monkeypatch.setenv("STORYPIPE_EXTRACT__MAX_WORD", "5")
    with pytest.raises(ConfigError, match=r"^environment variable STORYPIPE_EXTRACT__MAX_WORD: unknown setting 'extract\.max_word'"):
        load_settings(tmp_path)
    monkeypatch.delenv("STORYPIPE_EXTRACT__MAX_WORD")
    monkeypatch.setenv("STORYPIPE_NOPE__X", "1")
    with pytest.raises(ConfigError, match="STORYPIPE_NOPE__X: unknown setting 'nope'"):
        load_settings(tmp_path)


def test_variables_that_are_not_settings_are_left_alone(tmp_path, monkeypatch, clean_env):
    monkeypatch.setenv("STORYPIPE_ROOT", str(tmp_path))  # no `__`: not a setting
    monkeypatch.setenv("STORYPIPE_RUN__SETTLE_S", "0.5")
    assert load_settings(tmp_path).run.settle_s == 0.5


def test_a_file_that_is_not_toml_names_the_file(tmp_path, clean_env):
    path = tmp_path / "storypipe.toml"
    path.write_text("[transcribe\nmodel = ")
    with pytest.raises(ConfigError, match=f"^{path}: not valid TOML"):
        load_settings(tmp_path)


def test_a_typo_in_the_root_settings_exits_2_naming_file_and_key(tmp_path, clean_env):
    from storypipe.app.cli import app

    (tmp_path / "audio" / "inbox").mkdir(parents=True)
    (tmp_path / "audio" / "inbox" / "a.wav").write_bytes(b"RIFF")
    (tmp_path / "storypipe.toml").write_text("[extract]\nmax_word = 5\n")
    result = CliRunner().invoke(app, ["run", "--root", str(tmp_path)])
    assert result.exit_code == 2
    said = "".join(result.output.split())  # rich may wrap the long line anywhere
    assert f"{tmp_path / 'storypipe.toml'}:unknownsetting'extract.max_word'" in said
    assert (tmp_path / "audio" / "inbox" / "a.wav").exists()


# --- the default root ----------------------------------------------------------------------------


def test_the_default_root_is_the_checkout_here_and_the_current_folder_when_installed(tmp_path, monkeypatch):
    checkout = Path(__file__).resolve().parents[3]
    assert (checkout / "pyproject.toml").is_file()
    assert default_root() == checkout
    monkeypatch.setattr(settings_module, "PROJECT_DIR", None)  # as in a wheel install: no checkout
    monkeypatch.chdir(tmp_path)
    assert default_root() == tmp_path
