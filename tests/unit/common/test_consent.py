"""Consent is decided in one place (tasks/common/consent.py); every combination against every use."""

from __future__ import annotations

import itertools

import pytest

from storypipe.core.models import Consent
from storypipe.tasks.common import consent

COMBINATIONS = [Consent(transcript=t, clips=c, full_story=f, anonymise=a)
                for t, c, f, a in itertools.product([True, False], repeat=4)]


@pytest.mark.parametrize("c", COMBINATIONS, ids=lambda c: "".join("TF"[not v] for v in c.model_dump().values()))
def test_matrix(c):
    assert (consent.transcribe(c) is None) == c.transcript
    assert (consent.clips(c) is None) == (c.transcript and c.clips)
    assert (consent.publish(c) is None) == (c.transcript and c.clips)
    assert (consent.stage(c) is None) == (c.transcript and c.full_story)
    assert (consent.report(c) is None) == c.transcript
    assert consent.anonymise(c) == c.anonymise
    for reason in (consent.transcribe(c), consent.clips(c), consent.publish(c), consent.stage(c), consent.report(c)):
        assert reason is None or ("did not consent" in reason)


def test_no_transcript_consent_means_no_transcription(tmp_path, settings):
    from storypipe.core.jsonio import write_model
    from storypipe.core.store import Store
    from storypipe.flows import progress
    from tests.support.factories import make_story

    store = Store(tmp_path).ensure()
    story = make_story("quiet-12345678", consent=Consent(transcript=False, clips=True, full_story=True))
    write_model(store.story_dir(story.story_id) / "story.json", story)
    assert progress.next_stage(store, story.story_id) is None
    assert progress.unfinished_stories(store) == []
