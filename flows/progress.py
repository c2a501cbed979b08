"""What each story still needs: the stage it goes to next, whether a run should take it up again, and
how a failure is recorded on it. The order of stages is models.STAGES."""

from __future__ import annotations

import logging

from storypipe.core.models import NEXT_STAGE, Story
from storypipe.core.store import Store
from storypipe.tasks.common import consent

log = logging.getLogger("storypipe")


def next_stage(store: Store, story_id: str) -> str | None:
    story = store.read_story(story_id)
    if consent.transcribe(story):
        return None  # without consent to a transcript, nothing more is done with the recording
    return NEXT_STAGE.get(story.reached())


def needs_work(story: Story) -> bool:
    """Stopped part-way, or failed at a stage that trying again can fix.

    A failure that trying again cannot fix (no speech in the recording) is left for a person to look at.
    """
    if consent.transcribe(story):
        return False
    if story.state == "extracted":  # stopped before staging: only work when consent allows staging
        return consent.stage(story) is None
    return story.state in ("ingested", "transcribed") or (story.state == "failed" and story.history[-1].retry is not False)


def is_unfinished(store: Store, story_id: str) -> bool:
    return needs_work(store.read_story(story_id))


def unfinished_stories(store: Store) -> list[str]:
    """Stories an earlier run did not finish: the next run resumes them."""
    return [s.story_id for s in store.stories() if needs_work(s)]


def mark_failed(store: Store, story_id: str, error: BaseException) -> str:
    """Record a stage failure on the story, in words; the run goes on with the other stories."""
    permanent = getattr(error, "permanent", False)
    with store.updating_story(story_id) as story:
        reason = str(error) if permanent else f"{story.failed_stage()} failed: {error}"
        story.problems.append(reason)
        story.advance("failed", note=reason)
        story.history[-1].retry = not permanent
    log.error("%s: %s%s", story_id, reason, "" if permanent else " (it will be tried again on the next run)",
              extra={"story": story_id, "done": True})
    return reason
