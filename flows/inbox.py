"""The pipeline, as it reads: every recording that has finished arriving in the inbox is claimed,
ingested, transcribed, mined for quotes and, where consent allows, staged. One bad file never stops
the others, two runs never take the same file or story, and a run that was killed is finished by the
next one."""

from __future__ import annotations

import logging
from pathlib import Path

from prefect import flow, task
from prefect.task_runners import ThreadPoolTaskRunner

from storypipe.core.store import Store
from storypipe.core.models import Outcome
from storypipe.core.settings import Settings, load_settings
from storypipe.tasks.common import claims
from storypipe.tasks import ingest
from storypipe.flows import progress
from storypipe.flows.stages import ingest_task, quarantine_task, run_stages_from

log = logging.getLogger("storypipe")


def task_runner(settings: Settings):
    """Where stories are carried through: `workers` threads here, or a Dask cluster when an address
    is configured (prefect-dask's DaskTaskRunner: every worker must see the root at the same path)."""
    if settings.run.dask_address:
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=settings.run.dask_address)
    return ThreadPoolTaskRunner(max_workers=settings.run.workers)


def run_inbox(root: str, settings: Settings | None = None) -> list[Outcome]:
    """process_inbox with the task runner the settings ask for."""
    settings = settings or load_settings(Path(root))
    return process_inbox.with_options(task_runner=task_runner(settings))(root)


@flow(name="process-inbox", task_runner=ThreadPoolTaskRunner(max_workers=1))
def process_inbox(root: str) -> list[Outcome]:
    """Process every recording now in <root>/audio/inbox/, then finish stories an earlier run left."""
    store = Store(Path(root)).ensure()
    settings = load_settings(store.root)
    claims.recover_claims(store, settings)
    arrived, arriving = ingest.settled(
        ingest.list_inbox(store, settings), settings.run.settle_s, settings.run.settle_timeout_s
    )
    for path in arriving:
        log.info("%s is still being copied; it is left for the next run", path.name, extra={"story": path.name})
    outcomes: list[Outcome] = []
    with claims.Claim(store, settings) as claim:
        for path in arrived:
            outcome = claim_and_ingest(claim, path, settings)
            if outcome is not None:
                outcomes.append(outcome)
    todo = [o for o in outcomes if o.result == "ingested"]
    started = {o.story_id for o in todo}
    todo += [Outcome(file=s, story_id=s, result="ingested") for s in progress.unfinished_stories(store) if s not in started]
    finishing = [
        finish_story_task.with_options(task_run_name=f"story: {o.story_id}").submit(root, o.story_id, settings, o.file)
        for o in todo
    ]
    return [o for o in outcomes if o.result != "ingested"] + [f.result() for f in finishing]


def claim_and_ingest(claim: claims.Claim, path: Path, settings: Settings) -> Outcome | None:
    """Take the recording from the inbox (None when another run took it) and make it a story."""
    try:
        claimed = claim.take(path)
    except claims.InboxNotWritable as e:
        log.error("%s: %s", path.name, e, extra={"story": path.name, "done": True})
        return Outcome(file=path.name, result="failed", reason=str(e))
    if claimed is None:
        return None
    return process_recording.with_options(flow_run_name=f"recording: {path.name}")(
        str(claim.store.root), str(claimed), settings
    )


@flow(name="process-recording")
def process_recording(root: str, claimed: str, settings: Settings) -> Outcome:
    """One recording: ingest it, or quarantine it with the reason. Bad input is an outcome, not a crash.
    (Whatever stays in the run's claim goes back to the inbox when the run ends.)"""
    path = Path(claimed)
    try:
        story_id, is_new, problem = ingest_task.with_options(**_retries(settings))(root, claimed, settings)
        if problem:
            quarantine_task(root, claimed, problem)
            return Outcome(file=path.name, result="quarantined", reason=problem)
    except Exception as e:  # noqa: BLE001 - e.g. a disk error: this file goes back to the inbox, the others go on
        return Outcome(file=path.name, result="failed", reason=f"could not be ingested, left in the inbox: {e}")
    if not is_new and not progress.is_unfinished(Store(Path(root)), story_id):
        return Outcome(file=path.name, story_id=story_id, result="duplicate", reason="already processed")
    return Outcome(file=path.name, story_id=story_id, result="ingested")


def _retries(settings: Settings) -> dict:
    return {"retries": settings.prefect.retries, "retry_delay_seconds": settings.prefect.retry_delay_s}


@task(name="finish-story")
def finish_story_task(root: str, story_id: str, settings: Settings, file: str, retry: bool = False) -> Outcome:
    """A story's remaining stages, on whichever worker the task runner chose."""
    return finish_story(root, story_id, settings, file, retry)


def finish_story(root: str, story_id: str, settings: Settings, file: str, retry: bool = False) -> Outcome:
    """Run the stages a story still needs, under its lock; a failure marks that story failed and the
    run goes on. A stage that finished is never done again: each records itself in story.json.
    `retry` also takes a failed story that a plain run leaves alone."""
    store = Store(Path(root))
    retries = _retries(settings)
    with claims.story_lock(store, settings, story_id) as mine:
        if not mine:
            return Outcome(file=file, story_id=story_id, result="skipped", reason="another run is working on it")
        if not (retry or progress.is_unfinished(store, story_id)):
            return Outcome(file=file, story_id=story_id, result="skipped", reason="another run finished it")
        claims.sweep_leftovers(store, story_id)
        try:
            run_stages_from(progress.next_stage(store, story_id), root, story_id, settings, retries)
        except Exception as e:  # noqa: BLE001 - any stage's failure is recorded on the story, not fatal to the run
            reason = progress.mark_failed(store, story_id, e)
            return Outcome(file=file, story_id=story_id, result="failed", reason=reason)
    return Outcome(file=file, story_id=story_id, result="processed")


@flow(name="retry-stories")
def retry_stories(root: str, story_ids: list[str]) -> list[Outcome]:
    """Failed stories again, each from the stage where it failed (also those a plain run leaves
    alone because trying again would not help by itself, e.g. after the audio was fixed)."""
    settings = load_settings(Path(root))
    return [
        finish_story_task.with_options(task_run_name=f"story: {story_id}")(root, story_id, settings, story_id, retry=True)
        for story_id in story_ids
    ]
