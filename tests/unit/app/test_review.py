"""Review changes as plain functions: edits, speakers, quote decisions, consent; versions and ids."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from storypipe.app.cli import app
from storypipe.core.jsonio import read_model, write_model
from storypipe.core.models import Consent, QuotesFile, Story, Transcript
from storypipe.app import review
from storypipe.tasks.extract import extract_story
from tests.support.factories import ROS_ID, ROS_TEXT

SID, TEXT = ROS_ID, ROS_TEXT
pytestmark = pytest.mark.usefixtures("ros_story")  # every test here works on Ros's story in `store`


def load(store, name, model):
    return read_model(store.story_dir(SID) / name, model)


def test_realign_keeps_unchanged_word_times_and_shares_the_rest(store):
    seg = load(store, "transcript.json", Transcript).segments[1]
    words = review.realign_words(seg.words, seg.text.replace("invisible", "unseen and ignored"), seg.start, seg.end)
    assert words[0].word == " I" and (words[0].start, words[0].end) == (seg.words[0].start, seg.words[0].end)
    assert words[1].start == seg.words[1].start  # "felt" is unchanged
    new = words[2:5]
    assert [w.word.strip() for w in new] == ["unseen", "and", "ignored"]
    assert seg.words[1].end <= new[0].start < new[-1].end <= seg.words[3].start  # between "felt" and "for"
    assert all(a.start <= b.start for a, b in zip(words, words[1:]))


def test_edit_segment_keeps_machine_text_and_updates_exports(store):
    before = review.version(store.story_dir(SID) / "transcript.json")
    review.edit_segment(store, SID, 1, TEXT.replace("peer support", "peer-support"), before)
    t = load(store, "transcript.json", Transcript)
    assert "peer-support" in t.segments[1].text and t.segments[1].machine_text == TEXT
    assert "peer-support" in (store.story_dir(SID) / "transcript.txt").read_text()
    assert "peer-support" in (store.story_dir(SID) / "transcript.vtt").read_text()
    with pytest.raises(review.StaleVersion) as err:
        review.edit_segment(store, SID, 1, "Something else entirely.", before)
    assert "Reload the page" in str(err.value)
    assert "peer-support" in load(store, "transcript.json", Transcript).segments[1].text


def test_rename_speaker_shows_in_the_text_export(store):
    review.rename_speaker(store, SID, "interviewer", "Sam", None)
    assert "Sam: What was it like" in (store.story_dir(SID) / "transcript.txt").read_text()
    with pytest.raises(review.NotFound):
        review.rename_speaker(store, SID, "narrator", "X", None)


def test_decisions_and_quote_edges(store):
    quotes = load(store, "quotes.json", QuotesFile).quotes
    q = quotes[0]
    review.decide(store, SID, [q.id], "approved")
    review.update_quote(store, SID, q.id, None, widen_start=-2, title="Counted", description="From Ros")
    after = next(x for x in load(store, "quotes.json", QuotesFile).quotes if x.id == q.id)
    assert after.status == "approved" and after.title == "Counted" and after.edited
    assert after.start > q.start and len(after.text.split()) == len(q.text.split()) - 2
    review.update_quote(store, SID, q.id, None, widen_start=2)
    again = next(x for x in load(store, "quotes.json", QuotesFile).quotes if x.id == q.id)
    assert again.start == q.start and again.text == q.text


def test_new_quote_from_a_selection(store):
    t = load(store, "transcript.json", Transcript)
    words = t.segments[1].words
    quote = review.new_quote(store, SID, words[2].start, words[9].end)
    assert quote.status == "approved" and quote.text.startswith("invisible") and quote.speaker == "storyteller"
    assert quote.id in {q.id for q in load(store, "quotes.json", QuotesFile).quotes}


@pytest.mark.parametrize("bad", ["../etc", "ROS-1", "", "ros-12345678/../x", "a" * 200])
def test_bad_story_ids_are_refused(store, bad):
    with pytest.raises(review.NotFound):
        review.mark_reviewed(store, bad)


def test_unknown_quote_changes_nothing(store):
    before = (store.story_dir(SID) / "quotes.json").read_bytes()
    good = load(store, "quotes.json", QuotesFile).quotes[0].id
    with pytest.raises(review.NotFound):
        review.decide(store, SID, [good, "qnothere"], "approved")
    assert (store.story_dir(SID) / "quotes.json").read_bytes() == before


def test_mark_reviewed_is_recorded(store):
    story = review.mark_reviewed(store, SID)
    assert story.reviewed_at is not None and story.history[-1].note == "transcript and quotes reviewed"


def test_consent_withdrawal_removes_the_staged_package(store, settings, monkeypatch):
    from storypipe.tasks import stage

    staged = []
    monkeypatch.setattr(stage, "stage_story", lambda sid, store, s: staged.append(sid))
    (store.staging / SID).mkdir(parents=True)
    (store.staging / SID / "story.mp3").write_bytes(b"x")
    story = load(store, "story.json", Story)
    story.consent = Consent(transcript=True, clips=True, full_story=True, anonymise=False)
    story.advance("staged")
    write_model(store.story_dir(SID) / "story.json", story)

    after = review.change_consent(store, SID, {"full_story": False}, settings)
    assert not (store.staging / SID).exists()
    assert after.consent.full_story is False and after.state == "extracted"
    assert any(h.note == "consent changed: full_story no" for h in after.history)
    assert staged == []
    review.change_consent(store, SID, {"full_story": True}, settings)
    assert staged == [SID]
    with pytest.raises(review.ReviewError):
        review.change_consent(store, SID, {"publish_everything": True}, settings)


def test_approve_and_reject_commands(store):
    quotes = load(store, "quotes.json", QuotesFile).quotes
    runner = CliRunner()
    ok = runner.invoke(app, ["approve", SID, quotes[0].id, "--root", str(store.root)])
    assert ok.exit_code == 0, ok.output
    assert {q.id: q.status for q in load(store, "quotes.json", QuotesFile).quotes}[quotes[0].id] == "approved"
    no = runner.invoke(app, ["reject", SID, quotes[0].id, "--root", str(store.root)])
    assert no.exit_code == 0 and "Rejected" in no.output
    assert {q.id: q.status for q in load(store, "quotes.json", QuotesFile).quotes}[quotes[0].id] == "rejected"
    assert runner.invoke(app, ["approve", SID, "qmissing", "--root", str(store.root)]).exit_code == 2
    assert runner.invoke(app, ["approve", "no-such-story", quotes[0].id, "--root", str(store.root)]).exit_code == 2


def test_a_person_sets_a_quotes_themes_and_a_rerun_keeps_them(store, settings):
    q = load(store, "quotes.json", QuotesFile).quotes[0]
    known = ["sharing-power", "lived-experience", "trust"]
    review.set_themes(store, SID, q.id, ["trust", "lived-experience", "trust"], known)
    after = {x.id: x for x in load(store, "quotes.json", QuotesFile).quotes}[q.id]
    assert after.themes == ["trust", "lived-experience"] and after.themes_checked and after.status == "candidate"
    with pytest.raises(review.ReviewError, match="Unknown theme.*no-such-theme"):
        review.set_themes(store, SID, q.id, ["no-such-theme"], known)
    extract_story(SID, store, settings)  # a re-run of extraction keeps the person's themes
    assert {x.id: x.themes for x in load(store, "quotes.json", QuotesFile).quotes}[q.id] == ["trust", "lived-experience"]


def test_approve_with_themes_from_the_shell(store):
    quotes = load(store, "quotes.json", QuotesFile).quotes
    runner = CliRunner(env={"COLUMNS": "200"})
    before = load(store, "quotes.json", QuotesFile)
    bad = runner.invoke(app, ["approve", SID, quotes[0].id, "--theme", "sharing-powr", "--root", str(store.root)])
    assert bad.exit_code == 2 and "sharing-powr" in bad.output and "sharing-power" in bad.output
    assert load(store, "quotes.json", QuotesFile) == before  # nothing changed
    ok = runner.invoke(app, ["approve", SID, quotes[0].id, "--theme", "trust", "--theme", "co-learning",
                             "--root", str(store.root)])
    assert ok.exit_code == 0, ok.output
    after = {x.id: x for x in load(store, "quotes.json", QuotesFile).quotes}[quotes[0].id]
    assert after.status == "approved" and after.themes[-2:] == ["trust", "co-learning"]
    assert set(quotes[0].themes) <= set(after.themes)  # the machine's tags stay


def test_rerun_of_extraction_keeps_edited_quotes(store, settings):
    q = load(store, "quotes.json", QuotesFile).quotes[0]
    review.update_quote(store, SID, q.id, None, widen_end=-1)
    extract_story(SID, store, settings)
    kept = next(x for x in load(store, "quotes.json", QuotesFile).quotes if x.id == q.id)
    assert kept.edited and kept.end < q.end


def test_a_rerun_of_transcription_keeps_the_reviewed_transcript(store, settings, monkeypatch):
    from storypipe.tasks import transcribe

    review.edit_segment(store, SID, 1, TEXT.replace("invisible", "unseen"), None)
    monkeypatch.setattr(transcribe, "get_engine", lambda cfg: pytest.fail("must not transcribe again"))
    kept = transcribe.transcribe_story(SID, store, settings)
    assert "unseen" in kept.segments[1].text
    assert "unseen" in load(store, "transcript.json", Transcript).segments[1].text
    assert load(store, "story.json", Story).history[-1].note == "kept the reviewed transcript"


def test_withdrawing_clips_consent_removes_unpublished_clips_only(store, settings):
    import datetime as dt

    from storypipe.core.models import Clip, ClipBatch, Published, YouTubeMeta

    folder = store.clips / "2026-11"
    folder.mkdir(parents=True)
    for name in ("a.mp3", "a.mp4", "a.srt", "b.mp3", "c.mp3"):
        (folder / name).write_bytes(b"x")

    def clip(file, sid, published=None, **extra):
        return Clip(file=file, story_id=sid, quote_id="q1", start=0, end=5, duration_s=5,
                    youtube=YouTubeMeta(title=file), published=published, **extra)

    batch = ClipBatch(batch="2026-11", clips=[
        clip("a.mp3", SID, video_file="a.mp4", captions=["a.srt"]),
        clip("b.mp3", SID, published=Published(video_id="yt123", at=dt.datetime(2026, 11, 1))),
        clip("c.mp3", "other-00000000"),
    ])
    write_model(folder / "manifest.json", batch)
    story = load(store, "story.json", Story)
    story.consent = Consent(transcript=True, clips=True, full_story=False, anonymise=False)
    write_model(store.story_dir(SID) / "story.json", story)

    review.change_consent(store, SID, {"clips": False}, settings)
    kept = read_model(folder / "manifest.json", ClipBatch)
    assert [c.file for c in kept.clips] == ["b.mp3", "c.mp3"]  # published stays listed; other story untouched
    assert not (folder / "a.mp3").exists() and not (folder / "a.mp4").exists() and not (folder / "a.srt").exists()
    assert (folder / "b.mp3").exists() and (folder / "c.mp3").exists()
    assert "a.mp3" not in (folder / "manifest.csv").read_text() and "yt123" in (folder / "manifest.csv").read_text()
