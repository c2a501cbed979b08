"""Quotes, key phrases and entities from a word-timed transcript (real spaCy, fake transcripts)."""

from __future__ import annotations

import pytest

from storypipe.jsonio import read_model, write_model
from storypipe.layout import Layout
from storypipe.models import KeyphrasesFile, QuotesFile, Story
from tasks.extract import extract, extract_story, merge_decisions, quote_id
from tests.factories import make_story, make_transcript

STORY = (
    "I felt invisible for years and nobody asked what I thought. "
    "When we started the peer support group, for the first time my lived experience counted as expertise. "
    "And that was it. "
    "Co-production means the professionals and the people who use the service sit at the same table as equals. "
    "Janet from the council listened to us in Rochdale and changed the way the service works."
)


@pytest.fixture
def transcript():
    return make_transcript(
        [
            ("interviewer", "What was it like for you when you first joined the project and met the team there?"),
            ("storyteller", STORY),
            ("interviewer", "Thank you so much, that is really important for us to hear today."),
        ]
    )


def test_quotes_are_whole_sentences_timed_from_their_words(settings, transcript):
    quotes, _, _ = extract(transcript, settings.extract)
    assert quotes
    words = transcript.segments[1].words
    starts, ends = {w.start for w in words}, {w.end for w in words}
    for q in quotes:
        assert q.start in starts and q.end in ends
        assert q.text[0].isupper() and q.text.endswith(".")
        n = len(q.text.split())
        assert settings.extract.min_words <= n <= settings.extract.max_words
        assert set(q.why) >= {"length", "first_person", "evaluative", "keyphrases", "stands_alone", "confidence", "filler"}
        assert 0 <= q.score <= 1


def test_interviewer_is_never_quoted(settings, transcript):
    quotes, keyphrases, _ = extract(transcript, settings.extract)
    assert all(q.speaker == "storyteller" for q in quotes)
    assert not any("thank you" in q.text.lower() for q in quotes)
    assert not any("team" == k.text for k in keyphrases)


def test_best_quote_is_first_person_and_evaluative(settings, transcript):
    quotes, _, _ = extract(transcript, settings.extract)
    assert [q.score for q in quotes] == sorted((q.score for q in quotes), reverse=True)
    assert "lived experience counted as expertise" in quotes[0].text
    assert quotes[0].why["first_person"] > 0 and quotes[0].why["evaluative"] > 0


def test_dangling_opening_scores_lower(settings):
    t = make_transcript([(None, "And that was why I felt so proud of the whole group and everything we did in that hall.")])
    t2 = make_transcript([(None, "I felt so proud of the whole group and everything we did together in that hall.")])
    (q1,), (q2,) = extract(t, settings.extract)[0], extract(t2, settings.extract)[0]
    assert q1.why["stands_alone"] == 0 and q2.why["stands_alone"] == 1
    assert q1.score < q2.score


def test_quotes_do_not_overlap(settings, transcript):
    quotes, _, _ = extract(transcript, settings.extract)
    spans = sorted((q.start, q.end) for q in quotes)
    assert all(a_end < b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:]))


def test_keyphrases_merge_by_lemma_and_drop_stop_phrases(settings):
    text = (
        "Peer support changed my life. I went to peer support every week. "
        "Peer supports like ours are rare. There was a lot of kind of stuff going on at the time."
    )
    _, keyphrases, _ = extract(make_transcript([(None, text)]), settings.extract)
    texts = [k.text for k in keyphrases]
    assert sum("peer support" in t for t in texts) == 1
    peer = next(k for k in keyphrases if "peer support" in k.text)
    assert peer.count >= 3
    assert not {"a lot", "stuff", "kind"} & set(texts)


def test_entities_are_counted(settings, transcript):
    _, _, entities = extract(transcript, settings.extract)
    labels = {(e.text, e.label) for e in entities}
    assert ("Rochdale", "GPE") in labels


def test_merge_keeps_human_decisions(settings, transcript):
    quotes, _, _ = extract(transcript, settings.extract)
    decided = quotes[1].model_copy(update={"status": "approved", "title": "Equals"})
    gone = quotes[0].model_copy(update={"id": "qgone1", "status": "rejected", "score": 0.01})
    merged = merge_decisions(quotes, [decided, gone])
    by_id = {q.id: q for q in merged}
    assert by_id[decided.id].status == "approved" and by_id[decided.id].title == "Equals"
    assert by_id["qgone1"].status == "rejected"
    assert len(merged) == len(quotes) + 1


def test_quote_id_is_stable():
    assert quote_id(1.0, 2.5) == quote_id(1.0, 2.5) != quote_id(1.0, 2.6)


def test_extract_story_writes_files_and_keeps_decisions(tmp_path, settings, transcript):
    layout = Layout(tmp_path).ensure()
    story = make_story(transcript.story_id)
    folder = layout.story_dir(story.story_id)
    write_model(folder / "story.json", story.advance("transcribed"))
    write_model(folder / "transcript.json", transcript)

    first = extract_story(story.story_id, layout, settings)
    approved_id = first.quotes[0].id
    first.quotes[0].status = "approved"
    write_model(folder / "quotes.json", first)

    again = extract_story(story.story_id, layout, settings)
    assert {q.id: q.status for q in again.quotes}[approved_id] == "approved"
    assert read_model(folder / "story.json", Story).state == "extracted"
    kp = read_model(folder / "keyphrases.json", KeyphrasesFile)
    assert kp.keyphrases and kp.story_id == story.story_id
    assert read_model(folder / "quotes.json", QuotesFile).quotes[0].score >= again.quotes[-1].score


def test_questions_are_never_quotes_even_without_speakers(settings):
    t = make_transcript([(None, "What was it like for you when the group first started meeting in the hall? "
                                "I felt welcome from the very first evening because the people there really listened to me.")])
    quotes, _, _ = extract(t, settings.extract)
    assert quotes and all("?" not in q.text for q in quotes)


def test_keyphrases_keep_hyphenated_words_whole(settings):
    t = make_transcript([(None, "Co-production changed how the council works. We believe in co-production now. "
                                "Co-production means sharing power with the people who use services.")])
    _, keyphrases, _ = extract(t, settings.extract)
    texts = [k.text for k in keyphrases]
    assert all(len(max(k.split(), key=len)) >= 3 for k in texts)
    assert "-" not in texts and "co" not in texts
