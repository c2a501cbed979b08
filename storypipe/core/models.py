"""One model of the data. Every stage reads and writes these; JSON is validated where it enters."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_serializer

SCHEMA_VERSION = 1

State = Literal["ingested", "transcribed", "extracted", "staged", "published", "failed"]
# The pipeline's stages in order, each with the state a story reaches when it is done. The one list:
# flows/stages.py runs them in this order, and a story's next stage is read from it.
STAGES: tuple[tuple[str, State], ...] = (("transcribe", "transcribed"), ("extract", "extracted"), ("stage", "staged"))
# The stage a story needs next, by the last state it reached.
NEXT_STAGE: dict[str, str] = {
    before: stage for before, (stage, _) in zip(["ingested"] + [s for _, s in STAGES], STAGES)
}
QuoteStatus = Literal["candidate", "approved", "rejected"]
# Sidecar `speaker_roles` keys: the first voice heard, or the voice on each channel of split stereo.
SPEAKER_ROLE_KEYS = ("first", "left", "right")


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def _yes_or_no(value: object) -> bool:
    """Only true or false: a typo, a number or "maybe" must never turn into a yes."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"must be true or false, not {value!r}")


ConsentFlag = Annotated[bool, BeforeValidator(_yes_or_no)]
# Unset (None) where the contract gives a default that follows another answer.
OptionalConsentFlag = Annotated[bool | None, BeforeValidator(lambda v: None if v is None else _yes_or_no(v))]


class Consent(BaseModel):
    """What the storyteller agreed to."""

    model_config = ConfigDict(extra="forbid")

    transcript: ConsentFlag = True
    # Quotes may be used in the project's written report (`storypipe report`). Not given (None): the
    # same as `transcript`, worked out when asked, so it follows the transcript answer wherever that
    # comes from (a sidecar over the default, a change in the review app).
    report: OptionalConsentFlag = None
    clips: ConsentFlag = False
    full_story: ConsentFlag = False
    anonymise: ConsentFlag = True

    @model_serializer(mode="wrap")
    def _leave_out_unanswered(self, handler):
        """`report` is written only when it was given: the contract's four answers stay as they were."""
        data = handler(self)
        if isinstance(data, dict) and data.get("report", False) is None:
            del data["report"]
        return data

    def answers(self) -> dict[str, bool]:
        """Every consent question with its answer, `report` worked out when it was not given."""
        return {**self.model_dump(), "report": self.transcript if self.report is None else self.report}


class Metadata(BaseModel):
    """Sidecar fields about the story. Unknown fields are kept (a team may track more)."""

    model_config = ConfigDict(extra="allow")

    title: str | None = None
    storyteller: str | None = None
    interviewer: str | None = None
    recorded_on: dt.date | None = None
    language: str | None = None
    sectors: list[str] = Field(default_factory=list)
    roles: list[str] = Field(default_factory=list)
    demographics: dict[str, Any] = Field(default_factory=dict)
    speakers: int | None = Field(default=None, ge=1, le=10)
    # Who is who, when the default (the storyteller speaks most) is wrong; see tasks/speakers.py.
    speaker_roles: dict[str, str] | None = None
    # People, places and organisations the storyteller names, hidden when the story is anonymised
    # (on top of those found automatically); see tasks/anonymise.py.
    names: list[str] = Field(default_factory=list)

    @field_validator("speaker_roles")
    @classmethod
    def _known_role_keys(cls, roles: dict[str, str] | None) -> dict[str, str] | None:
        unknown = sorted(k for k in roles or {} if k.lower() not in SPEAKER_ROLE_KEYS)
        if unknown:
            raise ValueError(f"unknown key(s) {unknown}; use {', '.join(SPEAKER_ROLE_KEYS)}")
        return roles


class Sidecar(Metadata):
    """The optional `<stem>.yaml` dropped beside a recording."""

    consent: Consent | None = None


class Source(BaseModel):
    filename: str
    sha256: str
    bytes: int
    format: str
    duration_s: float
    channels: int
    sample_rate: int


class HistoryEntry(BaseModel):
    state: State
    at: dt.datetime = Field(default_factory=now)
    seconds: float | None = None  # how long the stage took
    note: str | None = None
    retry: bool | None = None  # on a failure: whether the next run should try again


class Story(BaseModel):
    schema_version: int = SCHEMA_VERSION
    story_id: str
    source: Source
    metadata: Metadata = Field(default_factory=Metadata)
    consent: Consent
    state: State = "ingested"
    history: list[HistoryEntry] = Field(default_factory=list)
    # Plain-words notes for the team: why a story was held back, what went wrong.
    problems: list[str] = Field(default_factory=list)
    # When a person marked the transcript and quotes as checked against the recording.
    reviewed_at: dt.datetime | None = None

    def advance(self, state: State, seconds: float | None = None, note: str | None = None) -> Story:
        """Record that the story reached a state (history keeps every step, with its timing)."""
        self.state = state
        self.history.append(HistoryEntry(state=state, seconds=seconds, note=note))
        return self

    def last_good_state(self) -> str:
        """The state before any failure: where a re-run picks the story up."""
        return next((e.state for e in reversed(self.history) if e.state != "failed"), "ingested")

    def reached(self) -> str:
        """The furthest state the story reached: its state, or, when it failed, the state before."""
        return self.last_good_state() if self.state == "failed" else self.state

    def failed_stage(self) -> str:
        """The stage a failure happened in (the one after the last good state)."""
        return NEXT_STAGE.get(self.last_good_state(), "processing")


# Quote and clip times are word times rounded to the millisecond: this slack keeps the edge words in.
TIME_SLACK_S = 0.01


class Word(BaseModel):
    word: str
    start: float
    end: float
    probability: float
    low_confidence: bool = False  # the recogniser was unsure: a reviewer should listen here

    def within(self, start: float, end: float) -> bool:
        return self.start >= start - TIME_SLACK_S and self.end <= end + TIME_SLACK_S


class Segment(BaseModel):
    id: int
    start: float
    end: float
    text: str
    speaker: str | None = None
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float | None = None
    low_confidence: bool = False
    words: list[Word] = Field(default_factory=list)
    # The recogniser's own text, kept when a reviewer corrects `text` (exports use `text`).
    machine_text: str | None = None
    # The speaker the machine gave ("" for none), kept when a reviewer changes who said this segment
    # or splits it (storypipe/app/review.py); a re-run of the pipeline keeps such a transcript.
    machine_speaker: str | None = None


class Transcript(BaseModel):
    schema_version: int = SCHEMA_VERSION
    story_id: str
    language: str
    duration_s: float
    engine: str
    model: str
    language_probability: float | None = None
    # Where voice-activity detection found speech ([start, end] seconds); only these were transcribed.
    speech_regions: list[tuple[float, float]] = Field(default_factory=list)
    # Plain-words cautions for the reviewer (e.g. "the speech may not be English").
    warnings: list[str] = Field(default_factory=list)
    segments: list[Segment] = Field(default_factory=list)
    # Names the reviewer gave the speaker labels ({"storyteller": "Ros"}); labels stay as they are.
    speaker_names: dict[str, str] = Field(default_factory=dict)

    def words(self) -> list[Word]:
        return [w for s in self.segments for w in s.words]

    def word_indices_between(self, start: float, end: float) -> list[int]:
        """Positions in words() of the words spoken from start to end (a quote's or a clip's)."""
        return [i for i, w in enumerate(self.words()) if w.within(start, end)]

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())


class Quote(BaseModel):
    id: str
    text: str
    start: float
    end: float
    speaker: str | None = None
    score: float
    keyphrases: list[str] = Field(default_factory=list)
    themes: list[str] = Field(default_factory=list)
    status: QuoteStatus = "candidate"
    # Why the quote was put forward: each part of the score (0..1), and under "themes" each theme's
    # score and the words that matched it: {"themes": {"sharing-power": {"score": 2.0, "cues": [...]}}}.
    why: dict[str, Any] = Field(default_factory=dict)
    title: str | None = None
    description: str | None = None
    # Set when a person moved the quote's edges or made it from a selection: a re-run keeps it.
    edited: bool = False
    # Set when a person chose the quote's themes (confirmed, added or removed one): a re-run keeps them.
    themes_checked: bool = False
    # For the reviewer, in plain words, when a correction of who spoke touched this decided quote
    # (e.g. its words are now said by two people); worked out again at each such correction.
    review_note: str | None = None


class QuotesFile(BaseModel):
    schema_version: int = SCHEMA_VERSION
    story_id: str
    quotes: list[Quote] = Field(default_factory=list)


class KeyPhrase(BaseModel):
    text: str
    score: float
    count: int


class Entity(BaseModel):
    text: str
    label: str
    count: int


class KeyphrasesFile(BaseModel):
    schema_version: int = SCHEMA_VERSION
    story_id: str
    keyphrases: list[KeyPhrase] = Field(default_factory=list)
    entities: list[Entity] = Field(default_factory=list)


class YouTubeMeta(BaseModel):
    title: str
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    categoryId: str = "22"
    privacyStatus: Literal["private", "unlisted", "public"] = "private"
    playlist: str | None = None


class Published(BaseModel):
    video_id: str
    at: dt.datetime


class Clip(BaseModel):
    file: str
    video_file: str | None = None
    captions: list[str] = Field(default_factory=list)
    story_id: str
    quote_id: str
    start: float
    end: float
    duration_s: float
    youtube: YouTubeMeta
    published: Published | None = None


class ClipBatch(BaseModel):
    schema_version: int = SCHEMA_VERSION
    batch: str
    created_at: dt.datetime = Field(default_factory=now)
    clips: list[Clip] = Field(default_factory=list)


class Outcome(BaseModel):
    """What one run did with one inbox file (or one resumed story)."""

    file: str
    story_id: str | None = None
    # "ingested" only inside a run (its stages follow); "skipped": another run has the story
    result: Literal["processed", "duplicate", "quarantined", "failed", "ingested", "skipped"]
    reason: str | None = None
