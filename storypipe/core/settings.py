"""All settings in one place, each value written once: in the shipped config/pipeline.toml.

Layers, later ones winning key by key: config/pipeline.toml as installed inside the package
(storypipe.config, with its comments), then the root's storypipe.toml, then STORYPIPE_<SECTION>__<KEY>
environment variables. The models below say what each setting is (its type and limits), not what it
is set to: a section built on its own (`VadSettings()`) takes the shipped file's values.

A key that no model knows, in a settings file or in a STORYPIPE_*__* variable, is a ConfigError that
names the file (or variable) and the key: a typo never silently does nothing.
"""

from __future__ import annotations

import copy
import difflib
import functools
import os
import tomllib
from collections.abc import Mapping
from importlib.resources import files
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from storypipe.core.models import Consent

ROOT_CONFIG_NAME = "storypipe.toml"
ENV_PREFIX = "STORYPIPE_"
ENV_DELIMITER = "__"


def shipped_file(name: str) -> Path:
    """A file of the config that ships inside the package (storypipe.config): editable or wheel install."""
    return Path(str(files("storypipe.config").joinpath(name)))


SHIPPED_CONFIG = shipped_file("pipeline.toml")


def _source_checkout() -> Path | None:
    top = Path(__file__).resolve().parents[2]
    if (top / "pyproject.toml").is_file() and (top / "config" / SHIPPED_CONFIG.name).is_file():
        return top
    return None


# The source checkout storypipe runs from (the project folder), or None when it is installed.
PROJECT_DIR: Path | None = _source_checkout()


def default_root() -> Path:
    """The root without --root or STORYPIPE_ROOT: the source checkout when running from one (as
    today), otherwise the current directory; never the installed package's folder."""
    return PROJECT_DIR if PROJECT_DIR is not None else Path.cwd()


class ConfigError(ValueError):
    """A settings file or variable that cannot be used; the message names it and the key."""


# --- reading and checking settings files ---------------------------------------------------------


def _model_class(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def unknown_keys(model: type[BaseModel], data: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the keys in `data` (at any depth) that `model` has no field for."""
    found = []
    for key, value in data.items():
        field = model.model_fields.get(key)
        if field is None:
            found.append(f"{prefix}{key}")
        elif (sub := _model_class(field.annotation)) is not None and isinstance(value, Mapping):
            found += unknown_keys(sub, value, f"{prefix}{key}.")
    return found


def _describe(model: type[BaseModel], keys: list[str]) -> str:
    """'extract.max_word' (did you mean 'extract.max_words'?), for each unknown key."""
    out = []
    for key in keys:
        *parents, last = key.split(".")
        table = model
        for name in parents:
            table = _model_class(table.model_fields[name].annotation)
        close = difflib.get_close_matches(last, list(table.model_fields), n=1)
        hint = f" (did you mean '{'.'.join([*parents, close[0]])}'?)" if close else ""
        out.append(f"'{key}'{hint}")
    return ("unknown setting " if len(keys) == 1 else "unknown settings ") + ", ".join(out)


def read_settings_file(path: Path, model: type[BaseModel] | None = None) -> dict[str, Any]:
    """A settings file's tables, checked: a ConfigError names the file when it cannot be read, is not
    TOML, or names a key the settings do not have."""
    model = model or Settings
    try:
        data = tomllib.loads(Path(path).read_text("utf-8"))
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the settings file: {e.strerror or e}") from e
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from e
    bad = unknown_keys(model, data)
    if bad:
        raise ConfigError(f"{path}: {_describe(model, bad)}")
    return data


def check_environment(model: type[BaseModel] | None = None, environ: Mapping[str, str] | None = None) -> None:
    """Every STORYPIPE_<SECTION>__<KEY>[__<KEY>...] variable names a setting (the names are read
    case-insensitively, as pydantic-settings does). Variables without `__` (STORYPIPE_ROOT) are not
    settings and are left alone."""
    model = model or Settings
    for name in (os.environ if environ is None else environ):
        rest = name.upper()[len(ENV_PREFIX):] if name.upper().startswith(ENV_PREFIX) else ""
        if ENV_DELIMITER not in rest:
            continue
        parts = rest.lower().split(ENV_DELIMITER)
        nested: dict[str, Any] = {}
        for part in reversed(parts):
            nested = {part: nested}
        bad = unknown_keys(model, nested)
        if bad:
            raise ConfigError(f"environment variable {name}: {_describe(model, bad)}")


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), dict) else value
    return out


@functools.cache
def _shipped() -> dict[str, Any]:
    if not SHIPPED_CONFIG.is_file():
        raise ConfigError(f"{SHIPPED_CONFIG}: the settings that ship with storypipe are missing (reinstall it)")
    return read_settings_file(SHIPPED_CONFIG)


def shipped_values() -> dict[str, Any]:
    """The shipped config/pipeline.toml, as read (a copy)."""
    return copy.deepcopy(_shipped())


# --- the sections ----------------------------------------------------------------------------------


class Section(BaseModel):
    """A table of config/pipeline.toml. Keys left out take the shipped file's values (found by where
    the section sits under Settings), so each default is written only there; unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _shipped_defaults(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            table: Any = _shipped()
            for name in _tables()[cls]:
                table = table.get(name, {})
            return {**copy.deepcopy(table), **data}
        return data


@functools.cache
def _tables() -> dict[type[BaseModel], tuple[str, ...]]:
    """Each section class -> its table's path in pipeline.toml (VadSettings -> ("transcribe", "vad"))."""
    found: dict[type[BaseModel], tuple[str, ...]] = {}

    def walk(model: type[BaseModel], path: tuple[str, ...]) -> None:
        for name, field in model.model_fields.items():
            sub = _model_class(field.annotation)
            if sub is not None and issubclass(sub, Section):
                found.setdefault(sub, (*path, name))
                walk(sub, (*path, name))

    walk(Settings, ())
    return found


class ProjectSettings(Section):
    name: str


class IngestSettings(Section):
    min_duration_s: float
    speech_sample_rate: int
    ignore_suffixes: list[str]
    default_consent: Consent


class VadSettings(Section):
    """Voice-activity detection (Silero): only speech is transcribed."""

    enabled: bool
    threshold: float
    min_speech_ms: int
    min_silence_ms: int
    pad_ms: int
    # Pauses shorter than this stay inside the speech around them.
    bridge_s: float


class FilterSettings(Section):
    """Whisper segments that are probably not speech are dropped (hallucinations over noise)."""

    no_speech_prob: float
    logprob: float
    compression_ratio: float
    # A word or phrase repeated this many times in a row is a decoding loop, not speech.
    max_repeats: int


class ConfidenceSettings(Section):
    """Below these, a word or segment is marked for the reviewer to check against the audio."""

    low_word_probability: float
    low_segment_logprob: float
    low_segment_word_share: float
    # With an English-only model, speech this unsure throughout is probably not English.
    not_english_word_probability: float
    not_english_logprob: float


class TranscribeSettings(Section):
    engine: Literal["openai-whisper", "faster-whisper"]
    model: str
    language: str
    beam_size: int
    condition_on_previous_text: bool
    word_timestamps: bool
    device: str
    cache_dir: str
    # Speech is transcribed in batches of at most this many seconds: bounded memory, visible progress.
    batch_s: float
    # faster-whisper: batches transcribed at once (0: two on a machine with two or more cores).
    parallel: int = Field(ge=0)
    parallel_min_batch_s: float = Field(gt=0)
    # The project's words given to the engine as a prompt (tasks/transcribe/vocabulary.py).
    vocabulary: list[str]
    vocabulary_codebook: Literal["names", "descriptors", "none"]
    vocabulary_sidecar_names: bool
    vocabulary_language: str
    vocabulary_max_terms: int = Field(ge=0)
    vocabulary_max_chars: int = Field(gt=0)
    vocabulary_prompt: str = Field(pattern=r"\{terms\}")
    # Speech the prompted pass left without words, and short doubtful segments, are decoded again without it.
    vocabulary_recheck_gap_s: float = Field(gt=0)
    vocabulary_recheck_max_s: float = Field(ge=0)
    vocabulary_recheck_repeat_words: int = Field(gt=0)
    vocabulary_recheck_context_s: float = Field(ge=0)
    vad: VadSettings
    filter: FilterSettings
    confidence: ConfidenceSettings

    def model_cache_dir(self) -> Path:
        if self.cache_dir:
            return Path(self.cache_dir).expanduser()
        return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "storypipe"


class MeaningSettings(Section):
    """Sentence embeddings (tasks/common/meaning.py); see [meaning]."""

    package: str
    archive: str
    folder: str
    sha256: str
    batch_size: int = Field(gt=0)
    max_tokens: int = Field(gt=0)
    cache_dir: str

    def model_cache_dir(self) -> Path:
        if self.cache_dir:
            return Path(self.cache_dir).expanduser()
        return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "storypipe"


class ThemeSettings(Section):
    """Themes by meaning and from the team's examples (tasks/common/theme_meaning.py); see [themes]."""

    embed_cues: bool
    meaning_weight: float = Field(ge=0)
    meaning_from_z: float
    meaning_full_z: float
    min_lean: float = Field(ge=-1, le=1)
    min_place: float = Field(ge=0, le=1)
    min_background: int = Field(ge=2)
    examples: bool
    example_weight: float = Field(ge=0)
    example_neighbours: int = Field(ge=1)
    example_from_z: float
    examples_shown: int = Field(ge=0)
    example_words: int = Field(ge=1)
    cache_folder: str


class StereoSettings(Section):
    """Split-stereo detection and word attribution (tasks/transcribe/speakers.py); see [speakers.stereo]."""

    frame_s: float
    active_db: float
    floor_dbfs: float
    identical_correlation: float
    side_db: float
    min_side_share: float
    min_one_sided_share: float
    min_active_s: float
    word_margin_db: float


class DiarizeSettings(Section):
    """Mono diarization (tasks/transcribe/speakers.py); see [speakers.diarize]."""

    window_s: float = Field(gt=0)
    hop_s: float = Field(gt=0)
    word_pad_s: float = Field(ge=0)
    run_break_rank: float = Field(ge=0, lt=1)
    max_run_s: float = Field(gt=0)
    contexts_s: list[float] = Field(min_length=1)
    restarts: int = Field(ge=1)
    refine_rounds: int = Field(ge=1)
    switch_cost: float = Field(ge=0)
    pause_bonus: float = Field(ge=0)
    sentence_bonus: float = Field(ge=0)
    question_bonus: float = Field(ge=0)


class SpeakerSettings(Section):
    # Voices expected when the sidecar does not say (`speakers:`): an interview has two.
    default_count: int
    stereo: StereoSettings
    diarize: DiarizeSettings


class QuoteWeights(Section):
    length: float
    complete: float
    first_person: float
    evaluative: float
    keyphrases: float
    stands_alone: float
    confidence: float
    filler: float
    carries_themes: float
    ends_turn: float
    central: float
    on_theme: float
    quotable: float


class Lexicon(Section):
    """Word lists behind the quote score; a team can tune them in its storypipe.toml."""

    first_person: list[str]
    evaluative: list[str]
    fillers: list[str]
    dangling_openers: list[str]
    unresolved_openers: list[str]
    reply_openers: list[str]
    murmurs: list[str]
    interviewer_phrases: list[str]
    stop_phrases: list[str]


class ExtractSettings(Section):
    spacy_model: str
    max_quotes: int
    min_words: int
    max_words: int
    max_sentences: int
    long_sentence_words: int = Field(ge=0)  # 0: whole sentences only
    clause_min_words: int = Field(ge=1)
    # A clip of a quote should run at least this long and at most this long.
    min_seconds: float
    max_seconds: float
    max_keyphrases: int
    # The keyphrases part of a quote's score is full at one key phrase per this many words.
    words_per_keyphrase: int
    fallback_length_share: float = Field(gt=0, le=1)
    interviewer_line_words: int = Field(ge=0)
    # A pause inside a turn (or one word) this many times the recording's 95th-percentile pause
    # (word), and at least unheard_min_s, is speech the recogniser did not write: no quote spans it.
    unheard_factor: float = Field(gt=0)
    unheard_min_s: float = Field(ge=0)
    # Two candidates this similar (rapidfuzz token_sort_ratio, 0..100) are one quote said twice.
    duplicate_similarity: float
    # The themes codebook; empty means <root>/themes.toml if there is one, else config/themes.toml.
    themes_file: str
    # A quote of about this many words reads best; the length part of the score peaks here.
    ideal_words: tuple[int, int]
    # The taught quotable model (tasks/extract/quotable.py): a file of the shipped config or a path,
    # and its SHA-256; empty: the part is left out.
    quotable_model: str
    quotable_sha256: str
    weights: QuoteWeights
    lexicon: Lexicon


class AnonymiseSettings(Section):
    """How names are found and hidden when consent says `anonymise: true` (tasks/common/anonymise.py)."""

    # spaCy entity labels that are names, and the placeholder each becomes.
    entity_labels: dict[str, str]
    # Names always hidden (local places, services, people the team knows are mentioned).
    deny_people: list[str]
    deny_places: list[str]
    deny_organisations: list[str]
    # Words never hidden, even when spaCy thinks they are names (case-insensitive).
    allow: list[str]
    # A known name that speech recognition misspelt or split still matches when this similar.
    similarity: float
    min_fuzzy_letters: int
    max_split_words: int
    # Audio around a hidden name is muted (or bleeped) this much wider on each side.
    pad_s: float
    audio: Literal["mute", "bleep"]
    bleep_hz: float
    bleep_db: float


class StageSettings(Section):
    mp3_bitrate: str
    # Full stories are loudness-normalised to this (integrated LUFS), peaks kept under true_peak_db.
    target_lufs: float
    true_peak_db: float


class ClipSettings(Section):
    """Clips of approved quotes for the YouTube playlist (tasks/clips)."""

    pad_s: float
    snap_s: float
    silence_db: float
    fade_ms: int
    target_lufs: float
    true_peak_db: float
    mp3_bitrate: str
    video: Literal["card", "waves", "none"]
    burn_captions: bool
    video_size: str


class PublishSettings(Section):
    """Publishing clip batches to YouTube (tasks/publish)."""

    playlist: str
    category_id: str
    privacy_status: Literal["private", "unlisted", "public"]
    # The OAuth client secrets (a Desktop-app client from Google Cloud); the token is stored beside it.
    client_secrets: str
    token_file: str
    # YouTube Data API quota: units per day, and what each call costs.
    daily_quota: int
    upload_cost: int


class PrefectSettings(Section):
    """Retries, and storypipe's own local Prefect server (storypipe/app/prefect_server.py)."""

    retries: int
    retry_delay_s: float
    server_port: int = Field(ge=1024, le=65535)
    port_tries: int = Field(ge=1)
    server_start_timeout_s: float = Field(gt=0)
    server_idle_s: float = Field(ge=0)


class RunSettings(Section):
    """How a run shares the work: with copies still arriving, other runs, and other machines."""

    settle_s: float
    settle_timeout_s: float
    workers: int = Field(ge=1)
    dask_address: str
    transcribe_per_machine: int = Field(ge=1)
    cache: bool
    state_dir: str

    def state_folder(self, root: Path) -> Path:
        """Locks and the result cache of one root (kept in the root: transcripts never leave it)."""
        return Path(self.state_dir).expanduser() if self.state_dir else root / ".storypipe"

    def machine_folder(self) -> Path:
        """Locks shared by every storypipe process on this machine (the transcription slots)."""
        return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "storypipe" / "slots"


class WatchSettings(Section):
    """`storypipe watch` (storypipe/app/watch.py): when an arrival counts as finished, and what is one batch."""

    settle_s: float = Field(gt=0)
    burst_s: float = Field(ge=0)
    force_polling: bool
    rescan_s: float = Field(gt=0)


class ReportSettings(Section):
    """`storypipe report` (tasks/report): the team's own words, and what the report shows."""

    title: str  # empty: "Findings: <project name>"
    purpose: str
    method: str
    # Codebook themes with sections of their own (the rest are listed under Themes).
    challenges_theme: str
    value_themes: dict[str, str]
    # Sidecar `demographics:` keys charted under "Who shared their stories".
    demographics: list[str]
    # Groups smaller than this are not shown, so no one can be picked out.
    min_group: int = Field(ge=1)
    # Approved quotes shown under each theme (best first, one story at a time); 0: all of them.
    quotes_per_theme: int = Field(ge=0)
    max_keyphrases: int = Field(ge=0)
    # Chart images: dots per inch (print quality) and width in inches.
    chart_dpi: int
    chart_width_in: float


class SearchSettings(Section):
    """Search across stories (tasks/search): how passages are cut and ranked; see [search]."""

    window_words: int = Field(gt=0)
    max_words: int = Field(gt=0)
    overlap_sentences: int = Field(ge=0)
    min_words: int = Field(ge=1)
    leave_out_speakers: list[str]
    limit: int = Field(ge=1)
    min_score: float = Field(ge=-1, le=1)
    phrase_boost: float = Field(ge=0)
    short_penalty: float = Field(ge=0)

    @model_validator(mode="after")
    def _window_fits(self) -> SearchSettings:
        if self.max_words < self.window_words:
            raise ValueError(f"search.max_words ({self.max_words}) must be at least search.window_words "
                             f"({self.window_words})")
        return self


# --- all of them -----------------------------------------------------------------------------------


class _Environment(PydanticBaseSettingsSource):
    """pydantic-settings' STORYPIPE_* source, after checking that every variable names a setting."""

    def __init__(self, settings_cls: type[BaseSettings], env: PydanticBaseSettingsSource):
        super().__init__(settings_cls)
        self.env = env

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        check_environment(self.settings_cls)
        return self.env()


class _Files(PydanticBaseSettingsSource):
    """The shipped config/pipeline.toml, then each of the class's `extra_files` that exists, merged key by key."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values = shipped_values()
        for path in self.settings_cls.extra_files:
            if Path(path).is_file():
                values = _merge(values, read_settings_file(Path(path), self.settings_cls))
        return values


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_DELIMITER, extra="ignore")
    # Settings files read over the shipped one, in order, where they exist (load_settings: the root's).
    extra_files: ClassVar[tuple[Path, ...]] = ()

    project: ProjectSettings = Field(default_factory=ProjectSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    transcribe: TranscribeSettings = Field(default_factory=TranscribeSettings)
    speakers: SpeakerSettings = Field(default_factory=SpeakerSettings)
    meaning: MeaningSettings = Field(default_factory=MeaningSettings)
    themes: ThemeSettings = Field(default_factory=ThemeSettings)
    extract: ExtractSettings = Field(default_factory=ExtractSettings)
    anonymise: AnonymiseSettings = Field(default_factory=AnonymiseSettings)
    stage: StageSettings = Field(default_factory=StageSettings)
    clips: ClipSettings = Field(default_factory=ClipSettings)
    publish: PublishSettings = Field(default_factory=PublishSettings)
    prefect: PrefectSettings = Field(default_factory=PrefectSettings)
    run: RunSettings = Field(default_factory=RunSettings)
    watch: WatchSettings = Field(default_factory=WatchSettings)
    report: ReportSettings = Field(default_factory=ReportSettings)
    search: SearchSettings = Field(default_factory=SearchSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment beats every file; later files win key by key (deep merge).
        return (init_settings, _Environment(settings_cls, env_settings), _Files(settings_cls))


def load_settings(root: Path | None = None) -> Settings:
    """Settings for one root: the shipped config, overridden by the root's storypipe.toml and env.

    Raises ConfigError (a file or variable naming an unknown key, a file that is not TOML) and
    pydantic's ValidationError (a value of the wrong kind)."""

    class _RootSettings(Settings):
        extra_files: ClassVar[tuple[Path, ...]] = () if root is None else (Path(root) / ROOT_CONFIG_NAME,)

    return Settings.model_validate(_RootSettings().model_dump())
