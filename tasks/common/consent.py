"""Consent, enforced in one place: every stage that makes something leave the machine asks here.

Each question returns None when the storyteller's consent allows it, or the reason it does not,
in words for the team (shown by `storypipe status` and the review app).

| what                         | needs                          |
|------------------------------|--------------------------------|
| transcribe (and extract)     | transcript                     |
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


def clips(subject: Story | Consent) -> str | None:
    c = _consent(subject)
    if not c.transcript:
        return f"no clips: {NO_TRANSCRIPT}"
    return None if c.clips else "no clips: the storyteller did not consent to clips being published"


def publish(subject: Story | Consent) -> str | None:
    reason = clips(subject)
    return reason.replace("no clips:", "not published:") if reason else None


def stage(subject: Story | Consent) -> str | None:
    c = _consent(subject)
    if not c.transcript:
        return f"not staged: {NO_TRANSCRIPT}"
    return None if c.full_story else "not staged: the storyteller did not consent to publishing the full story"


def report(subject: Story | Consent) -> str | None:
    c = _consent(subject)
    if not c.transcript:
        return f"not in the report: {NO_TRANSCRIPT}"
    if not c.answers()["report"]:
        return "not in the report: the storyteller did not consent to their quotes being used in the report"
    return None


def anonymise(subject: Story | Consent) -> bool:
    return _consent(subject).anonymise
