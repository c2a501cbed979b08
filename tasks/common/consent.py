"""Consent, enforced in one place: every stage that makes something leave the machine asks here.

Each question returns None when the storyteller's consent allows it, or the reason it does not,
in words for the team (shown by `storypipe status` and the review app).

| what                         | needs                          |
|------------------------------|--------------------------------|
| transcribe (and extract)     | transcript                     |
| search across stories        | transcript                     |
| cut clips of quotes          | transcript and clips           |
| publish clips (YouTube)      | transcript and clips           |
| stage the full story         | transcript and full_story      |
| use quotes in the report     | transcript and report (report: as transcript when unset) |
| hide names in all of these   | anonymise                      |
"""

from __future__ import annotations

from storypipe.core.models import Consent, Story

NO_TRANSCRIPT = "the storyteller did not consent to a transcript"


def _consent(subject: Story | Consent) -> Consent:
    return subject.consent if isinstance(subject, Story) else subject


def transcribe(subject: Story | Consent) -> str | None:
    return None if _consent(subject).transcript else f"not transcribed: {NO_TRANSCRIPT}"


def search(subject: Story | Consent) -> str | None:
    """The search index holds the transcript's text, so the transcript answer decides (tasks/search)."""
    return None if _consent(subject).transcript else f"not searchable: {NO_TRANSCRIPT}"


def _needs(subject: Story | Consent, answer: str, refused: str, why: str) -> str | None:
    """None when the storyteller said yes to a transcript and to `answer`; otherwise the reason,
    starting with what is not done (`refused`)."""
    c = _consent(subject)
    if not c.transcript:
        return f"{refused}: {NO_TRANSCRIPT}"
    return None if c.answers()[answer] else f"{refused}: the storyteller did not consent to {why}"


def clips(subject: Story | Consent) -> str | None:
    return _needs(subject, "clips", "no clips", "clips being published")


def publish(subject: Story | Consent) -> str | None:
    return _needs(subject, "clips", "not published", "clips being published")


def stage(subject: Story | Consent) -> str | None:
    return _needs(subject, "full_story", "not staged", "publishing the full story")


def report(subject: Story | Consent) -> str | None:
    return _needs(subject, "report", "not in the report", "their quotes being used in the report")


def anonymise(subject: Story | Consent) -> bool:
    return _consent(subject).anonymise
