"""Every Prefect @task of the pipeline: thin wrappers that give each stage (storypipe.tasks.*) its
retries, caching and name in the Prefect UI. The stages themselves run and test without Prefect."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from prefect import task

from storypipe.core.models import STAGES, Transcript
from storypipe.core.settings import Settings
from storypipe.core.store import Store
from storypipe.tasks import extract, ingest, search, stage, transcribe
from storypipe.tasks.common import claims
from storypipe.tasks.common.retry import transient_only

log = logging.getLogger("storypipe")


@task(name="ingest", retry_condition_fn=transient_only)
def ingest_task(root: str, filename: str, settings: Settings) -> tuple[str | None, bool, str | None]:
    """(story_id, is_new, None), or (None, False, reason) when the file must go to quarantine.
    `filename` is in the inbox, or a full path (a run's claimed copy).

    Bad input is an expected outcome, not a task failure, so it is returned rather than raised.
    """
    store = Store(Path(root))
    try:
        story, is_new = ingest.ingest_recording(store.inbox / filename, store, settings)
    except ingest.IngestError as e:
        return None, False, e.reason
    return story.story_id, is_new, None


@task(name="quarantine")
def quarantine_task(root: str, filename: str, reason: str) -> str:
    store = Store(Path(root))
    return str(ingest.quarantine(store, store.inbox / filename, reason))


def _cache_key(context, parameters: dict) -> str | None:
    """Prefect cache_key_fn: the content key (see transcribe.cache_key), or no caching when it is off."""
    settings: Settings = parameters["settings"]
    if not settings.run.cache:
        return None
    store = Store(Path(parameters["root"]))
    return transcribe.cache_key(store.read_story(parameters["story_id"]), settings, store.root)


@task(name="transcribe", retry_condition_fn=transient_only, cache_key_fn=_cache_key, persist_result=True, tags=["transcribe"])
def transcribe_task(root: str, story_id: str, settings: Settings) -> tuple[Transcript, float]:
    """The transcript and the seconds it took, cached by content in the root's result store; one of
    the machine's transcription slots is held while it runs (common/claims.py)."""
    with claims.machine_slot(settings, "transcribe", story_id):
        return transcribe.compute_transcript(story_id, Store(Path(root)), settings)


@task(name="extract", retry_condition_fn=transient_only)
def extract_task(root: str, story_id: str, settings: Settings) -> int:
    """Returns the number of quotes in quotes.json; shows the best of them in the Prefect UI."""
    from prefect.artifacts import create_markdown_artifact

    store = Store(Path(root))
    count = len(extract.extract_story(story_id, store, settings).quotes)
    create_markdown_artifact(
        markdown=extract.quotes_markdown(story_id, store, settings),
        key=f"quotes-{story_id}",
        description=f"Candidate quotes, themes and key phrases of {story_id}",
    )
    return count


@task(name="search index")
def search_index_task(root: str, story_id: str, settings: Settings) -> int:
    """Make the story searchable (tasks/search); the number of passages. The index is derived and
    `storypipe search` makes it again, so a problem here is reported, never a failed story."""
    from storypipe.core.jsonio import BadFileError
    from storypipe.tasks.common.meaning import MeaningModelError

    try:
        entry = search.index_story(story_id, Store(Path(root)), settings)
    except (BadFileError, MeaningModelError, OSError) as e:
        log.warning("%s could not be made searchable now (%s); `storypipe search` will try again", story_id, e,
                    extra={"story": story_id})
        return 0
    return len(entry.passages) if entry else 0


@task(name="stage", retry_condition_fn=transient_only)
def stage_task(root: str, story_id: str, settings: Settings) -> str | None:
    staged = stage.stage_story(story_id, Store(Path(root)), settings)
    return str(staged) if staged else None


def run_transcribe(root: str, story_id: str, settings: Settings, retries: dict) -> None:
    """Transcribe, unless a person already reviewed the transcript; a cached result is said so."""
    store = Store(Path(root))
    if transcribe.keep_reviewed(story_id, store) is not None:
        return
    results = claims.state_dir(store, settings) / "results"
    began = time.monotonic()
    state = transcribe_task.with_options(result_storage=results, **retries)(root, story_id, settings, return_state=True)
    transcript, seconds = state.result()
    note = None
    if state.name == "Cached":
        seconds, note = time.monotonic() - began, "from the cache: same audio, model and settings"
        log.info("%s: transcript taken from the cache (same audio, model and settings)", story_id, extra={"story": story_id})
    transcribe.save_transcript(transcript, store, seconds, note=note)


def run_extract(root: str, story_id: str, settings: Settings, retries: dict) -> None:
    extract_task.with_options(**retries)(root, story_id, settings)
    search_index_task(root, story_id, settings)


def run_stage(root: str, story_id: str, settings: Settings, retries: dict) -> None:
    stage_task.with_options(**retries)(root, story_id, settings)


RUNNERS = {"transcribe": run_transcribe, "extract": run_extract, "stage": run_stage}
assert list(RUNNERS) == [name for name, _ in STAGES], "a stage in models.STAGES has no runner here"


def run_stages_from(first: str | None, root: str, story_id: str, settings: Settings, retries: dict) -> None:
    """Run `first` and every stage after it, in the order of models.STAGES."""
    names = [name for name, _ in STAGES]
    for name in names[names.index(first):] if first else []:
        RUNNERS[name](root, story_id, settings, retries)
