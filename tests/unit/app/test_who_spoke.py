"""A reviewer fixes who spoke (storypipe.app.review): a segment to another speaker, the words from a
chosen word on, a split at a word; over HTTP and from the shell. Quotes are derived again from the
corrected speakers and every decision is kept."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from storypipe.app import review
from storypipe.app.cli import app
from storypipe.app.web.app import create_app
from storypipe.core.jsonio import read_model, write_model
from storypipe.core.models import QuotesFile, Story, Transcript
from tests.support.factories import ROS_ID, ROS_TEXT, make_transcript

SID = ROS_ID
QUESTION = "What was it like for you at the start of the project?"
pytestmark = pytest.mark.usefixtures("ros_story")  # segment 0: the interviewer's question; 1: Ros's answer


def load(store, name, model):
    return read_model(store.story_dir(SID) / name, model)


def tversion(store) -> str:
    return review.version(store.transcript_path(SID))


def word_index(seg, word: str) -> int:
    return next(i for i, w in enumerate(seg.words) if w.word.strip() == word)


def approve_answer(store):
    """Ros's whole answer, both sentences, as an approved quote with a title."""
    words = load(store, "transcript.json", Transcript).segments[1].words
    quote = review.new_quote(store, SID, words[0].start, words[-1].end)
    review.update_quote(store, SID, quote.id, None, title="Counted")
    return quote


# ---- a whole segment ----


def test_give_a_segment_to_the_other_speaker(store, settings):
    before = load(store, "transcript.json", Transcript)
    change = review.give_segment(store, SID, 0, None, settings, tversion(store))
    t = load(store, "transcript.json", Transcript)
    assert change.changed and change.segments == [0]
    assert [s.speaker for s in t.segments] == ["storyteller", "storyteller"]
    assert t.segments[0].machine_speaker == "interviewer" and t.segments[1].machine_speaker is None
    assert t.segments[0].words == before.segments[0].words and t.segments[0].text == QUESTION  # only who changed
    assert "is now the storyteller's" in change.said and "0:00" in change.said
    assert f"storyteller: {QUESTION}" in store.text_path(SID, "txt").read_text()
    story = load(store, "story.json", Story)
    assert story.history[-2].note.startswith("reviewer: Segment 0 (0:00, “What was it like")
    assert story.history[-1].state == "extracted"  # the quotes, derived again right after
    # The question is the storyteller's now, so quotes are found again from both turns.
    assert change.quotes is not None and all(q.speaker == "storyteller" for q in change.quotes.quotes)


def test_a_named_speaker_a_name_and_a_voice_the_machine_missed(store, settings):
    review.rename_speaker(store, SID, "interviewer", "Sam", None)
    review.give_segment(store, SID, 0, "speaker 3", settings)
    assert load(store, "transcript.json", Transcript).segments[0].speaker == "speaker 3"
    change = review.give_segment(store, SID, 0, "sam", settings)  # a name the reviewer gave, any case
    t = load(store, "transcript.json", Transcript)
    assert t.segments[0].speaker == "interviewer" and t.segments[0].machine_speaker == "interviewer"
    assert "Sam (interviewer)" in change.said
    again = review.give_segment(store, SID, 0, "Interviewer", settings)
    assert not again.changed and "already Sam (interviewer)'s" in again.said
    assert review.speaker_choices(t) == ["interviewer", "storyteller", "speaker 3"]


def test_the_other_speaker_of_a_recording_heard_as_one_voice(store, settings):
    """The issue's mono interview: every word was the storyteller's. "The other speaker" is the interviewer."""
    t = make_transcript([("storyteller", "Okay, I think we're recording now. Can you hear me all right?"),
                         ("storyteller", ROS_TEXT)], SID)
    write_model(store.transcript_path(SID), t)
    review.give_segment(store, SID, 0, None, settings)
    assert [s.speaker for s in load(store, "transcript.json", Transcript).segments] == ["interviewer", "storyteller"]


def test_who_cannot_be_guessed_or_is_unknown(store, settings):
    before = store.transcript_path(SID).read_bytes()
    review.give_segment(store, SID, 0, "speaker 3", settings)  # three voices now: "the other" is unclear
    with pytest.raises(review.ReviewError, match="Say who said it: 'speaker 3' or 'interviewer'"):
        review.give_segment(store, SID, 1, None, settings)
    with pytest.raises(review.ReviewError, match=r"Nobody called 'narrator'.*'storyteller'.*'speaker 4'"):
        review.give_segment(store, SID, 1, "narrator", settings)
    review.give_segment(store, SID, 0, "interviewer", settings)
    assert load(store, "transcript.json", Transcript).segments[0].speaker == "interviewer"
    assert before != store.transcript_path(SID).read_bytes()  # machine_speaker is remembered


def test_a_stale_version_or_a_bad_segment_changes_nothing(store, settings):
    stale = tversion(store)
    review.edit_segment(store, SID, 1, ROS_TEXT.replace("invisible", "unseen"), None)  # another tab
    before = (store.transcript_path(SID).read_bytes(), store.quotes_path(SID).read_bytes())
    with pytest.raises(review.StaleVersion, match="Reload the page"):
        review.give_segment(store, SID, 0, None, settings, stale)
    with pytest.raises(review.StaleVersion):
        review.give_words_from(store, SID, 1, 3, None, settings, stale)
    with pytest.raises(review.StaleVersion):
        review.split_segment(store, SID, 1, 3, stale)
    with pytest.raises(review.NotFound, match="There is no segment 7 in ros-12345678: its segments are numbered 0 to 1"):
        review.give_segment(store, SID, 7, None, settings)
    with pytest.raises(review.NotFound, match="segment -1"):
        review.split_segment(store, SID, -1, 2)
    with pytest.raises(review.NotFound, match="no story"):
        review.give_segment(store, "no-such-story", 0, None, settings)
    assert (store.transcript_path(SID).read_bytes(), store.quotes_path(SID).read_bytes()) == before


# ---- the words from a chosen word on ----


def test_give_the_words_from_a_word_on_and_keep_the_approved_quote(store, settings):
    best = approve_answer(store)  # spans both sentences of Ros's answer
    seg = load(store, "transcript.json", Transcript).segments[1]
    k = word_index(seg, "When")  # say the second sentence was the interviewer's
    change = review.give_words_from(store, SID, 1, k, "interviewer", settings, tversion(store))

    t = load(store, "transcript.json", Transcript)
    assert change.segments == [1, 2] and [s.id for s in t.segments] == [0, 1, 2]
    head, tail = t.segments[1], t.segments[2]
    assert (head.speaker, tail.speaker) == ("storyteller", "interviewer")
    assert head.machine_speaker == tail.machine_speaker == "storyteller"
    assert head.words + tail.words == seg.words
    assert head.text == "I felt invisible for years and nobody asked what I thought." and tail.text.startswith("When we")
    assert (head.start, head.end) == (seg.start, seg.words[k - 1].end)
    assert (tail.start, tail.end) == (seg.words[k].start, seg.end)
    assert "The words from “When we started" in change.said and "as segment 2" in change.said

    quotes = {q.id: q for q in load(store, "quotes.json", QuotesFile).quotes}
    kept = quotes[best.id]  # the decision, its text and its title are as they were...
    assert (kept.status, kept.title, kept.text, kept.start, kept.end) == ("approved", "Counted", best.text, best.start, best.end)
    assert "storyteller and the interviewer" in kept.review_note  # ...and the reviewer is told why to look again
    assert change.notes == {best.id: kept.review_note}
    others = [q for q in quotes.values() if q.id != best.id]
    assert others and all(q.end <= head.end + 0.01 and "When" not in q.text for q in others)  # only Ros's words now

    # Narrowing the quote to Ros's own words clears the note.
    review.update_quote(store, SID, best.id, None, widen_end=-len(tail.words))
    narrowed = {q.id: q for q in load(store, "quotes.json", QuotesFile).quotes}[best.id]
    assert narrowed.review_note is None and narrowed.status == "approved" and narrowed.text.endswith("thought.")


def test_a_quote_made_the_interviewers_is_noted(store, settings):
    best = approve_answer(store)
    change = review.give_segment(store, SID, 1, None, settings)
    kept = {q.id: q for q in change.quotes.quotes}[best.id]
    assert kept.status == "approved" and kept.speaker == "interviewer"
    assert kept.review_note.startswith("Now said by the interviewer")
    rejected = review.decide(store, SID, [best.id], "rejected")
    assert rejected  # a rejected quote needs no note at the next correction
    review.give_segment(store, SID, 0, "storyteller", settings)
    assert {q.id: q for q in load(store, "quotes.json", QuotesFile).quotes}[best.id].review_note is None


def test_from_the_first_word_is_the_whole_segment_and_bad_words_are_named(store, settings):
    change = review.give_words_from(store, SID, 0, 0, None, settings)
    t = load(store, "transcript.json", Transcript)
    assert change.segments == [0] and len(t.segments) == 2 and t.segments[0].speaker == "storyteller"
    n = len(t.segments[1].words)
    with pytest.raises(review.ReviewError, match=f"Segment 1 has {n} words, numbered 0 to {n - 1}: there is no word {n}"):
        review.give_words_from(store, SID, 1, n, None, settings)
    with pytest.raises(review.ReviewError, match="there is no word -2"):
        review.give_words_from(store, SID, 1, -2, None, settings)
    t.segments[1].words = []
    write_model(store.transcript_path(SID), t)
    with pytest.raises(review.ReviewError, match="Segment 1 has no timed words.*give it whole"):
        review.give_words_from(store, SID, 1, 3, None, settings)


def test_quotes_follow_the_newest_transcript_and_a_failure_is_said(store, settings, monkeypatch):
    from storypipe.tasks import extract

    real, calls = extract.extract_story, []

    def racing(story_id, st, se):
        calls.append(story_id)
        if len(calls) == 1:  # another correction lands while the quotes are being derived
            t = st.read_transcript(story_id)
            t.speaker_names["storyteller"] = "Ros"
            st.write_transcript(t)
        return real(story_id, st, se)

    monkeypatch.setattr(extract, "extract_story", racing)
    change = review.give_segment(store, SID, 0, None, settings)
    assert len(calls) == 2 and change.quotes is not None  # derived again from the newest transcript

    def broken(story_id, st, se):
        raise RuntimeError("spaCy model missing")

    monkeypatch.setattr(extract, "extract_story", broken)
    change = review.give_segment(store, SID, 0, None, settings)
    assert change.changed and change.quotes is None
    assert change.problem.startswith("The change is saved, but the quotes could not be derived again (spaCy model missing)")
    assert load(store, "transcript.json", Transcript).segments[0].speaker == "interviewer"


# ---- a split ----


def test_split_a_segment_at_a_word(store, settings):
    quotes_before = store.quotes_path(SID).read_bytes()
    seg = load(store, "transcript.json", Transcript).segments[1]
    k = word_index(seg, "When")
    change = review.split_segment(store, SID, 1, k, tversion(store))
    t = load(store, "transcript.json", Transcript)
    assert change.segments == [1, 2] and [s.id for s in t.segments] == [0, 1, 2]
    first, second = t.segments[1], t.segments[2]
    assert first.speaker == second.speaker == "storyteller"
    assert first.words == seg.words[:k] and second.words == seg.words[k:]
    assert (first.start, first.end, second.start, second.end) == (seg.start, seg.words[k - 1].end, seg.words[k].start, seg.end)
    assert first.text + " " + second.text == seg.text
    assert "segment 1 ends with “thought.”" in change.said and "segment 2 starts with “When we" in change.said
    assert store.quotes_path(SID).read_bytes() == quotes_before  # who said what did not change
    assert load(store, "story.json", Story).history[-1].note.startswith("reviewer: Segment 1 is split in two")
    assert store.text_path(SID, "txt").read_text().count("storyteller:") == 2
    # ...and the second part can now be given on its own.
    review.give_segment(store, SID, 2, None, settings)
    assert [s.speaker for s in load(store, "transcript.json", Transcript).segments] == ["interviewer", "storyteller", "interviewer"]


def test_a_split_needs_words_on_both_sides(store):
    n = len(load(store, "transcript.json", Transcript).segments[1].words)
    with pytest.raises(review.ReviewError, match="cannot be split before its first word.*from 1 to"):
        review.split_segment(store, SID, 1, 0)
    with pytest.raises(review.ReviewError, match=f"there is no word {n}"):
        review.split_segment(store, SID, 1, n)


def test_a_corrected_transcript_survives_a_rerun_of_transcription(store, settings, monkeypatch):
    from storypipe.tasks import transcribe

    review.split_segment(store, SID, 1, 4)
    monkeypatch.setattr(transcribe, "get_engine", lambda cfg: pytest.fail("must not transcribe again"))
    kept = transcribe.transcribe_story(SID, store, settings)
    assert len(kept.segments) == 3


# ---- over HTTP ----


@pytest.fixture
def client(ros_story):
    return TestClient(create_app(ros_story.root), base_url="http://127.0.0.1")


def api(client, path, body):
    csrf = re.search(r'name="csrf" content="([^"]+)"', client.get("/").text).group(1)
    return client.post(f"/api/stories/{SID}{path}", json=body, headers={"X-CSRF-Token": csrf})


def test_the_routes(client, store):
    page = client.get(f"/stories/{SID}")
    assert 'class="who-open"' in page.text and '"speaker_choices"' in page.text
    version = client.get(f"/api/stories/{SID}").json()["versions"]["transcript"]
    k = word_index(load(store, "transcript.json", Transcript).segments[1], "When")
    res = api(client, "/segments/1/speaker", {"to": "interviewer", "from_word": k, "version": version})
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["change"]["changed"] and body["change"]["segments"] == [1, 2] and body["change"]["quotes_derived"]
    assert [s["speaker"] for s in body["transcript"]["segments"]] == ["interviewer", "storyteller", "interviewer"]
    assert api(client, "/segments/1/split", {"at_word": 2, "version": version}).status_code == 409  # stale
    fresh = body["versions"]["transcript"]
    assert api(client, "/segments/1/split", {"at_word": 2, "version": fresh}).json()["change"]["segments"] == [1, 2]
    assert 'speaker corrected' in client.get(f"/stories/{SID}").text


@pytest.mark.parametrize("path, body, says", [
    ("/segments/1/speaker", {"from_word": "three"}, "from_word"),
    ("/segments/1/speaker", {"to": "x", "whom": "y"}, "whom"),
    ("/segments/1/split", {}, "at_word"),
    ("/segments/1/split", {"at_word": True}, "at_word"),
    ("/segments/9/split", {"at_word": 1}, "There is no segment 9"),
    ("/segments/1/speaker", {"to": "narrator"}, "Nobody called 'narrator'"),
])
def test_bad_changes_are_refused_with_what_is_wrong(client, store, path, body, says):
    before = store.transcript_path(SID).read_bytes()
    res = api(client, path, body)
    assert res.status_code in (400, 404) and says in res.json()["error"]
    assert store.transcript_path(SID).read_bytes() == before


# ---- from the shell ----


def test_the_speaker_command(store):
    runner = CliRunner(env={"COLUMNS": "200"})
    root = ["--root", str(store.root)]
    listed = runner.invoke(app, ["speaker", SID, "--show", *root])
    assert listed.exit_code == 0 and "0:00  the interviewer: What was it like" in listed.output
    words = runner.invoke(app, ["speaker", SID, "--segment", "1", "--show", *root])
    assert words.exit_code == 0 and "[0] I  [1] felt  [2] invisible" in words.output
    k = word_index(load(store, "transcript.json", Transcript).segments[1], "When")

    moved = runner.invoke(app, ["speaker", SID, "--segment", "1", "--from-word", str(k), *root])
    assert moved.exit_code == 0, moved.output
    assert "are now the interviewer's, as segment 2" in moved.output and "Quotes derived again" in moved.output
    assert [s.speaker for s in load(store, "transcript.json", Transcript).segments] == ["interviewer", "storyteller", "interviewer"]

    split = runner.invoke(app, ["speaker", SID, "--segment", "1", "--split-at", "2", *root])
    assert split.exit_code == 0 and "is split in two" in split.output
    given = runner.invoke(app, ["speaker", SID, "--segment", "0", "--to", "storyteller", *root])
    assert given.exit_code == 0 and "is now the storyteller's" in given.output
    assert len(load(store, "transcript.json", Transcript).segments) == 4

    before = store.transcript_path(SID).read_bytes()
    for args, says in [(["--segment", "9"], "There is no segment 9"), (["--segment", "1", "--split-at", "0"], "first word"),
                       (["--segment", "1", "--to", "narrator"], "Nobody called"), ([], "Say which segment"),
                       (["--segment", "1", "--from-word", "1", "--split-at", "1"], "not both"),
                       (["--segment", "1", "--split-at", "1", "--to", "interviewer"], "keeps the speaker")]:
        bad = runner.invoke(app, ["speaker", SID, *args, *root])
        assert bad.exit_code == 2 and says in bad.output, (args, bad.output)
    assert runner.invoke(app, ["speaker", "no-such-story", "--segment", "0", *root]).exit_code == 2
    assert store.transcript_path(SID).read_bytes() == before
