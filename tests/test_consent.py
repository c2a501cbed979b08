"""Consent is decided in one place (tasks/consent.py); every combination against every use."""

from __future__ import annotations

import itertools

import pytest

from storypipe.models import Consent
from tasks import consent

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
    from storypipe.jsonio import write_model
    from storypipe.layout import Layout
    from tasks import status
    from tests.factories import make_story

    layout = Layout(tmp_path).ensure()
    story = make_story("quiet-12345678", consent=Consent(transcript=False, clips=True, full_story=True))
    write_model(layout.story_dir(story.story_id) / "story.json", story)
    assert status.next_stage(layout, story.story_id) is None
    assert status.unfinished_stories(layout) == []
