"""The pipeline, as it reads: every recording in the inbox is ingested, transcribed, mined for quotes
and, where consent allows, staged. One bad file never stops the others."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from storypipe.layout import Layout
from storypipe.models import Outcome
from storypipe.settings import Settings, load_settings
from tasks import ingest, status
from tasks.extract import extract_task
from tasks.ingest import ingest_task, quarantine_task
from tasks.stage import stage_task
from tasks.transcribe import transcribe_task


@flow(name="process-inbox")
def process_inbox(root: str) -> list[Outcome]:
    """Process every recording now in <root>/audio/inbox/, then finish stories an earlier run left."""
    layout = Layout(Path(root)).ensure()
    settings = load_settings(layout.root)
    outcomes = [
        process_recording.with_options(flow_run_name=f"recording: {path.name}")(root, path.name, settings)
        for path in ingest.list_inbox(layout, settings)
    ]
    done = {o.story_id for o in outcomes}
    for story_id in status.unfinished_stories(layout):
        if story_id not in done:
            outcomes.append(finish_story(root, story_id, settings, file=story_id))
    return outcomes


@flow(name="process-recording")
def process_recording(root: str, filename: str, settings: Settings) -> Outcome:
    """One recording: ingest it (or quarantine it with the reason), then carry its story through."""
    try:
        story_id, is_new, problem = ingest_task.with_options(**_retries(settings))(root, filename, settings)
        if problem:
            quarantine_task(root, filename, problem)
            return Outcome(file=filename, result="quarantined", reason=problem)
    except Exception as e:  # noqa: BLE001 - e.g. a disk error: this file waits in the inbox, the others go on
        return Outcome(file=filename, result="failed", reason=f"could not be ingested, left in the inbox: {e}")
    if not is_new and not status.is_unfinished(Layout(Path(root)), story_id):
        return Outcome(file=filename, story_id=story_id, result="duplicate", reason="already processed")
    return finish_story(root, story_id, settings, file=filename)


def _retries(settings: Settings) -> dict:
    return {"retries": settings.prefect.retries, "retry_delay_seconds": settings.prefect.retry_delay_s}


def finish_story(root: str, story_id: str, settings: Settings, file: str) -> Outcome:
    """Run the stages a story still needs; a failure marks that story failed and the run goes on."""
    layout = Layout(Path(root))
    retries = _retries(settings)
    try:
        stage = status.next_stage(layout, story_id)
        if stage == "transcribe":
            transcribe_task.with_options(**retries)(root, story_id, settings)
            stage = "extract"
        if stage == "extract":
            extract_task.with_options(**retries)(root, story_id, settings)
            stage = "stage"
        if stage == "stage":
            stage_task.with_options(**retries)(root, story_id, settings)
    except Exception as e:  # noqa: BLE001 - any stage's failure is recorded on the story, not fatal to the run
        reason = status.mark_failed(layout, story_id, e)
        return Outcome(file=file, story_id=story_id, result="failed", reason=reason)
    return Outcome(file=file, story_id=story_id, result="processed")
