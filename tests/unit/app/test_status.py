"""Where stories stand: resume points, failures, and the status rows."""

from __future__ import annotations

from storypipe.core.jsonio import read_model, write_model
from storypipe.core.models import QuotesFile, Story
from storypipe.app import status
from storypipe.flows import progress
from storypipe.tasks.common.retry import transient_only
from storypipe.tasks.common.audio import AudioError
from tests.support.factories import make_story


def save(store, story):
    write_model(store.story_dir(story.story_id) / "story.json", story)
    return story


def test_next_stage_follows_the_state(store):
    story = save(store, make_story("a-00000001"))
    assert progress.next_stage(store, "a-00000001") == "transcribe"
    save(store, story.advance("transcribed"))
    assert progress.next_stage(store, "a-00000001") == "extract"
    save(store, story.advance("extracted"))
    assert progress.next_stage(store, "a-00000001") == "stage"
    save(store, story.advance("staged"))
    assert progress.next_stage(store, "a-00000001") is None


def test_a_failure_is_recorded_and_resumed_from_the_last_good_state(store):
    save(store, make_story("a-00000001").advance("transcribed"))
    reason = progress.mark_failed(store, "a-00000001", RuntimeError("spaCy ran out of memory"))
    assert reason == "extract failed: spaCy ran out of memory"
    story = read_model(store.story_dir("a-00000001") / "story.json", Story)
    assert story.state == "failed" and reason in story.problems and story.history[-1].note == reason
    assert progress.next_stage(store, "a-00000001") == "extract"
    assert progress.unfinished_stories(store) == ["a-00000001"]


def test_rows_count_quotes_by_status(store):
    save(store, make_story("a-00000001").advance("transcribed").advance("extracted"))
    save(store, make_story("b-00000002"))
    from storypipe.core.models import Quote

    quotes = [Quote(id=f"q{i}", text="t", start=0, end=1, score=0.5, status=s)
              for i, s in enumerate(["candidate", "candidate", "approved", "rejected"])]
    write_model(store.story_dir("a-00000001") / "quotes.json", QuotesFile(story_id="a-00000001", quotes=quotes))
    rows = {r["story_id"]: r for r in status.story_rows(store)}
    assert rows["a-00000001"]["quotes_candidate"] == 2 and rows["a-00000001"]["quotes_approved"] == 1
    assert rows["b-00000002"]["state"] == "ingested"
    assert progress.unfinished_stories(store) == ["b-00000002"]


def test_summary_lists_quarantine_and_waiting_sidecars(store):
    (store.quarantine / "x.mp3").write_text("x")
    (store.quarantine / "x.mp3.error.txt").write_text("x.mp3 could not be processed.\n\nWhy: it is empty\n")
    (store.inbox / "later.yaml").write_text("title: later\n")
    summary = status.root_summary(store)
    assert summary["quarantined"] == [{"file": "x.mp3", "reason": "it is empty"}]
    assert summary["waiting_sidecars"] == ["later.yaml"]


class _State:
    def __init__(self, exc):
        self.exc = exc

    def result(self):
        raise self.exc


def test_retries_only_help_transient_errors():
    assert transient_only(None, None, _State(OSError("disk busy"))) is True
    assert transient_only(None, None, _State(AudioError("not audio"))) is False
    assert transient_only(None, None, _State(ValueError("bad"))) is False
