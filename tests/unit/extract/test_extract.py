"""Quotes, key phrases and entities from a word-timed transcript (real spaCy, fake transcripts)."""

from __future__ import annotations

import pytest

from storypipe.core.jsonio import read_model, write_model
from storypipe.core.store import Store
from storypipe.core.models import KeyphrasesFile, QuotesFile, Story
from storypipe.tasks.extract import extract, extract_story, merge_decisions, quote_id
from tests.support.factories import make_story, make_transcript

STORY = (
    "I felt invisible for years and nobody asked what I thought. "
    "When we started the peer support group, for the first time my lived experience counted as expertise. "
    "And that was it. "
    "Co-production means the professionals and the people who use the service sit at the same table as equals. "
    "Janet from the council listened to us in Rochdale and changed the way the service works."
)


@pytest.fixture(autouse=True)
def short_windows(settings):
    """STORY is five sentences, which one window of the shipped six may take whole: these tests
    compare several quotes, so windows here are at most three sentences."""
    settings.extract.max_sentences = 3


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
    assert quotes and keyphrases  # something to check
    assert all(q.speaker == "storyteller" for q in quotes)
    assert not any("thank you" in q.text.lower() for q in quotes)
    assert not any("team" == k.text for k in keyphrases)


def test_best_quote_is_first_person_and_evaluative(settings, transcript):
    settings.extract.weights.ends_turn = 0  # here, only what is said decides
    quotes, _, _ = extract(transcript, settings.extract)
    assert [q.score for q in quotes] == sorted((q.score for q in quotes), reverse=True)
    assert "lived experience counted as expertise" in quotes[0].text
    assert quotes[0].why["first_person"] > 0 and quotes[0].why["evaluative"] > 0
    assert any(q.why["themes"] for q in quotes)  # themes to check
    assert all(cue for q in quotes for t in q.why["themes"].values() for cue in t["cues"])


def test_dangling_opening_scores_lower(settings):
    t = make_transcript([(None, "And that was why I felt so proud of the whole group and everything we did in that hall.")])
    t2 = make_transcript([(None, "I felt so proud of the whole group and everything we did together in that hall.")])
    (q1,), (q2,) = extract(t, settings.extract)[0], extract(t2, settings.extract)[0]
    assert q1.why["stands_alone"] == 0 and q2.why["stands_alone"] == 1
    assert q1.score < q2.score


def test_quotes_do_not_overlap(settings, transcript):
    quotes, _, _ = extract(transcript, settings.extract)
    spans = sorted((q.start, q.end) for q in quotes)
    assert len(spans) >= 2  # something to compare: the story holds more than one quote
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
    store = Store(tmp_path).ensure()
    story = make_story(transcript.story_id)
    folder = store.story_dir(story.story_id)
    write_model(folder / "story.json", story.advance("transcribed"))
    write_model(folder / "transcript.json", transcript)

    first = extract_story(story.story_id, store, settings)
    approved_id = first.quotes[0].id
    first.quotes[0].status = "approved"
    write_model(folder / "quotes.json", first)

    again = extract_story(story.story_id, store, settings)
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
    assert texts  # something to check
    assert all(len(max(k.split(), key=len)) >= 3 for k in texts)
    assert "-" not in texts and "co" not in texts


def test_near_duplicates_are_dropped(settings):
    said = "For the first time in my life I felt that the people running the service really listened to me."
    again = "For the first time in my life I felt the people running the service really listened to me there."
    other = "We painted the whole community centre together over one long weekend and it looked amazing after."
    turns = [("storyteller", said), ("interviewer", "Right."), ("storyteller", other), ("interviewer", "Go on."),
             ("storyteller", again)]
    quotes, _, _ = extract(make_transcript(turns), settings.extract)
    texts = [q.text for q in quotes]
    assert other in texts
    assert (said in texts) != (again in texts), texts  # one of the two, never both


def test_is_near_duplicate_ignores_case_and_punctuation():
    from storypipe.tasks.extract import is_near_duplicate

    assert is_near_duplicate("It changed my life, honestly.", ["it changed my life honestly"], 80)
    assert not is_near_duplicate("It changed my life, honestly.", ["We met every Tuesday at the library."], 80)


def test_quotes_last_between_the_configured_seconds(settings):
    short = "I felt heard at last."  # about 2 s at the test speaking rate
    long = " ".join(["I kept going back every single week because the group gave me something to hold on to."] * 6)
    ok = "When I joined the group I found people who understood me and I started to believe in myself again."
    quotes, _, _ = extract(make_transcript([("storyteller", f"{short} {ok} {long}")]), settings.extract)
    assert quotes
    for q in quotes:
        assert settings.extract.min_seconds <= q.end - q.start <= settings.extract.max_seconds
    assert any("believe in myself" in q.text for q in quotes)


@pytest.mark.parametrize(
    "opener, expected",
    [("And that's why I", 0.0), ("They just never", 0.3), ("I always", 1.0)],
)
def test_stands_alone_part(settings, opener, expected):
    text = f"{opener} wanted the people at the council to hear what it is like to live on this estate."
    (q,) = extract(make_transcript([("storyteller", text)]), settings.extract)[0]
    assert q.why["stands_alone"] == expected


def test_filler_and_confidence_parts(settings):
    clean = make_transcript([("storyteller", "When I joined the group I found people who understood what I had been through all those years.")])
    umm = make_transcript([("storyteller", "Um when I joined the group you know I found people who um understood what I had been through all those years.")])
    (q_clean,), (q_umm,) = extract(clean, settings.extract)[0], extract(umm, settings.extract)[0]
    assert q_clean.why["filler"] == 1.0 and q_umm.why["filler"] == 0.0
    assert q_umm.score < q_clean.score
    for w in clean.segments[0].words:
        w.probability = 0.4
    (q_unsure,) = extract(clean, settings.extract)[0]
    assert q_unsure.why["confidence"] == pytest.approx(0.4) and q_unsure.score < q_clean.score


def test_flow_shows_quotes_as_a_prefect_artifact(tmp_path, settings, prefect_harness):
    from prefect import flow
    from prefect.artifacts import Artifact

    from storypipe.core.models import Consent
    from storypipe.flows.stages import extract_task

    store = Store(tmp_path).ensure()
    transcript = make_transcript([("storyteller", "Margaret at the council finally treated me like an equal, "
                                                  "and for the first time I felt my lived experience counted.")],
                                 "anon-12345678")
    story = make_story(transcript.story_id, consent=Consent(anonymise=True), names=["Margaret"])
    write_model(store.story_dir(story.story_id) / "story.json", story.advance("transcribed"))
    write_model(store.story_dir(story.story_id) / "transcript.json", transcript)

    @flow
    def extract_one():
        return extract_task(str(tmp_path), story.story_id, settings)

    assert extract_one() >= 1
    artifact = Artifact.get(f"quotes-{story.story_id}")
    assert artifact is not None and artifact.type == "markdown"
    from storypipe.tasks.common.themes import PROJECT_THEMES, load_codebook

    top = store.read_quotes(story.story_id).quotes[0]
    book = load_codebook(PROJECT_THEMES)
    assert top.why["themes"] and all(book.name_of(t) in artifact.data for t in top.why["themes"])
    assert "[NAME]" in artifact.data and "Margaret" not in artifact.data
    assert "Key phrases" in artifact.data


def test_ends_turn_part(settings):
    first = "When I joined the group I found people who understood what I had been through all those years."
    last = "We painted the whole community centre together over one long weekend and it looked amazing after."
    quotes, _, _ = extract(make_transcript([("storyteller", f"{first} {last}"), ("interviewer", "Lovely.")]),
                           settings.extract)
    by_text = {q.text: q for q in quotes}
    if first in by_text:
        assert by_text[first].why["ends_turn"] == 0.0
    assert all(q.why["ends_turn"] == 1.0 for q in quotes if q.text.endswith(last))
    assert any(q.text.endswith(last) for q in quotes)


def test_a_lone_yeah_never_starts_or_ends_a_quote(settings):
    text = ("Yeah. When I joined the group I found people who understood what I had been through all those years. "
            "Mm-mm.")
    quotes, _, _ = extract(make_transcript([("storyteller", text)]), settings.extract)
    assert quotes and all(not q.text.startswith("Yeah") and not q.text.endswith("Mm-mm.") for q in quotes)


def test_meaning_parts_are_shown_and_follow_the_codebook(settings):
    """Two passages alike in every word-list part; the one about the codebook's themes (being heard,
    sharing power) ranks above the one about the weather, by `on_theme` alone."""
    settings.extract.weights = settings.extract.weights.model_copy(
        update={k: 0.0 for k in settings.extract.weights.model_dump() if k != "on_theme"})
    transcript = make_transcript([
        ("storyteller", "The staff finally sat down with us and let us decide how the money for the service was spent. "
                        "The rain kept falling on the car park every single morning of that long wet winter."),
    ])
    quotes, _, _ = extract(transcript, settings.extract)
    assert {"central", "on_theme"} <= set(quotes[0].why)
    assert "decide how the money" in quotes[0].text
    assert quotes[0].why["on_theme"] > quotes[-1].why["on_theme"]


def test_rank_share_is_relative_to_the_story():
    from storypipe.tasks.extract import rank_share

    assert rank_share([0.2, 0.9, 0.5]) == [0.0, 1.0, 0.5]
    assert rank_share([0.3, 0.3]) == [0.5, 0.5]
    assert rank_share([0.7]) == [1.0]


def test_interviewers_stock_lines_never_reach_a_quote(settings):
    """Voices mixed up: the interviewer's goodbye is labelled storyteller (issue 16's top quote)."""
    transcript = make_transcript([
        ("storyteller", "I'd say to anyone thinking about it, give it a go, because it gave me my confidence back. "
                        "Which is brilliant. Thank you. I'll stop the recording now."),
    ])
    quotes, _, _ = extract(transcript, settings.extract)
    assert quotes
    for q in quotes:
        assert "thank you" not in q.text.lower() and "recording" not in q.text.lower()


def test_max_quotes_are_given_when_the_storyteller_said_enough(settings):
    """Many short turns: full-length windows alone give fewer than max_quotes; shorter ones fill in."""
    answers = [
        "We ran the café on Fridays for the whole street.",
        "My son learned to cook there with the older men.",
        "The council paid for the ovens after we asked twice.",
        "I felt useful again after years at home alone.",
        "Nobody told us what to do, we just did it together.",
        "The money ran out in March and we carried on anyway.",
        "Now the school sends families to us every single week.",
        "My neighbour found work through the people she met.",
        "We wrote the menu in four languages for everyone.",
        "The first winter we had nowhere warm to meet at all.",
        "It changed how the housing office talks to us now.",
        "I would tell anyone to start small and keep going.",
    ]
    turns = []
    for i, answer in enumerate(answers):
        turns += [("interviewer", f"And what happened next, in part {i + 1}?"), ("storyteller", answer)]
    settings.extract.min_words = 12  # each answer is shorter: only the fallback can find them
    quotes, _, _ = extract(make_transcript(turns), settings.extract)
    assert len(quotes) == settings.extract.max_quotes
    assert all(q.speaker == "storyteller" for q in quotes)


def test_a_quote_never_crosses_a_change_of_speaker(settings):
    """The interviewer's short "Mm, right." between two storyteller sentences splits the turn: no
    quote runs across it, and none holds an interviewer's word."""
    transcript = make_transcript([
        ("storyteller", "I felt for the first time that my lived experience counted as real expertise."),
        ("interviewer", "Were there difficult moments too, along the way for you and the group?"),
        ("storyteller", "The hardest part was when the funding stopped and nobody told us why it ended."),
    ])
    interviewer = transcript.segments[1]
    quotes, _, _ = extract(transcript, settings.extract)
    assert quotes
    for q in quotes:
        assert not (q.start < interviewer.end and q.end > interviewer.start)
        assert "difficult moments" not in q.text


RUN_ON = ("So I get the bus into town and I'm stood there at ten in the morning, nowhere to live till the "
          "afternoon, forty quid in my pocket and every pub in Leeds open, and I didn't even make it to the "
          "appointment, I was back inside within the year, and that is what release day does to people like me.")


def test_a_long_comma_joined_sentence_becomes_clauses_a_quote_can_start_from(settings):
    """Whisper joins spoken sentences with commas: a quote need not take the whole run-on sentence."""
    from storypipe.tasks.extract import _clauses
    from storypipe.tasks.common.nlp import load_nlp

    cfg = settings.extract
    doc = load_nlp(cfg.spacy_model)(RUN_ON)
    (sent,) = list(doc.sents)
    pieces = _clauses(sent, cfg)
    words = lambda span: [t for t in span if not t.is_punct]  # noqa: E731
    assert len(pieces) >= 3 and "".join(p.text_with_ws for p in pieces) == sent.text_with_ws
    assert all(len(words(p)) >= cfg.clause_min_words for p in pieces)
    assert _clauses(sent, cfg.model_copy(update={"long_sentence_words": 0})) == [sent]

    transcript = make_transcript([("storyteller", RUN_ON)])
    quotes, _, _ = extract(transcript, cfg.model_copy(update={"max_words": 40}))
    assert quotes and all(len(q.text.split()) <= 40 for q in quotes)  # a part of the sentence, not none


def test_reply_words_opening_a_sentence_never_start_a_quote(settings):
    """ "Mm, right, and…": the listener's back-channel, written into the storyteller's sentence."""
    said = ("Mm, right, and now there are forty families using the scheme, and most of them never had "
            "anything from social care before.")
    quotes, _, _ = extract(make_transcript([("storyteller", said)]), settings.extract)
    assert quotes and all(not q.text.lower().startswith(("mm", "right")) for q in quotes)
    assert quotes[0].text.startswith("and now there are forty families")
    # A reply word that leads straight into the sentence stays: nothing to split off.
    kept, _, _ = extract(make_transcript([("storyteller", "Well I think the whole group felt listened to for the "
                                                          "first time in years.")]), settings.extract)
    assert kept[0].text.startswith("Well I think")


def test_a_quote_never_runs_across_a_listeners_word(settings):
    """ "…went without. Wow. So when…": the interviewer's "Wow", written into the storyteller's turn."""
    before = "You don't need an address to register, but the woman on the desk didn't know that, so she went without."
    after = "So when we made the card, we put that right at the top, in big letters, for every receptionist."
    settings.extract.ideal_words = (35, 50)  # both sentences together make the best length
    quotes, _, _ = extract(make_transcript([("storyteller", f"{before} Wow. {after}")]), settings.extract)
    assert quotes and all("Wow" not in q.text for q in quotes)
    joined, _, _ = extract(make_transcript([("storyteller", f"{before} {after}")]), settings.extract)
    assert any(before in q.text and after in q.text for q in joined)  # without it, one quote may hold both


def test_a_quote_never_runs_across_speech_the_recogniser_did_not_write(settings):
    """Whisper can skip the listener's "Mm, that's really honest" (or whole sentences) and leave the
    storyteller's words on both sides of a silence in one turn: no quote, and so no clip, runs across it."""
    before = "You don't need an address to register, but the woman on the desk didn't know that, so she went without."
    after = "So when we made the card, we put that right at the top, in big letters, for every receptionist."
    settings.extract.ideal_words = (35, 50)  # both sentences together make the best length
    skipped = make_transcript([("storyteller", before), ("storyteller", after)], gap=6.0)
    quotes, _, _ = extract(skipped, settings.extract)
    gap_start, gap_end = skipped.segments[0].end, skipped.segments[1].start
    assert quotes and all(q.end <= gap_start or q.start >= gap_end for q in quotes)
    # An ordinary pause between the same sentences does not cut the turn.
    joined, _, _ = extract(make_transcript([("storyteller", before), ("storyteller", after)], gap=0.5),
                           settings.extract)
    assert any(before in q.text and after in q.text for q in joined)


def test_the_unheard_pause_follows_the_recordings_own_pauses(settings):
    """A slow speaker's long pauses are theirs: the cut is relative to the recording's pauses."""
    from storypipe.tasks.extract import split_at_unheard, unheard_limits
    from tests.support.factories import words_from_text

    cfg = settings.extract
    text = "one two three four five six seven eight nine ten " * 3
    quick = [("storyteller", words_from_text(text, 0.0))]
    slow = [("storyteller", words_from_text(text, 0.0, seconds_per_word=5.0))]
    assert unheard_limits(quick, cfg)[0] == cfg.unheard_min_s  # gaps of 0.04 s: the floor decides
    assert unheard_limits(slow, cfg)[0] == pytest.approx(cfg.unheard_factor * 0.5)
    assert split_at_unheard(slow, *unheard_limits(slow, cfg)) == slow
    words = quick[0][1]
    words[10:] = [w.model_copy(update={"start": w.start + 5, "end": w.end + 5}) for w in words[10:]]
    pieces = split_at_unheard(quick, *unheard_limits(quick, cfg))
    assert [len(w) for _, w in pieces] == [10, 20] and all(s == "storyteller" for s, _ in pieces)


def test_a_word_stretched_over_unheard_speech_stands_alone(settings):
    """ "…it's amazing. And how": Whisper stretched "how" over the interviewer's question (2.6 s)."""
    from storypipe.tasks.extract import split_at_unheard, unheard_limits
    from tests.support.factories import words_from_text

    words = words_from_text("we started the tenants group in the spring and it is amazing " * 5 + "and how", 0.0)
    words[-1] = words[-1].model_copy(update={"end": words[-1].start + 2.6})
    turns = [("storyteller", words)]
    pause_s, word_s = unheard_limits(turns, settings.extract)
    assert word_s == pytest.approx(max(settings.extract.unheard_min_s, settings.extract.unheard_factor * 0.36))
    pieces = split_at_unheard(turns, pause_s, word_s)
    assert [[w.word.strip() for w in ws] for _, ws in pieces][-1] == ["how"]
    assert len(pieces) == 2


def test_a_quote_never_holds_a_listeners_murmur_written_into_the_sentence(settings):
    """ "…my rubbish life, M.M., but Priya kept saying…": Whisper wrote the listener's "mm" inside the
    storyteller's sentence (as two words, "M" and ".M.,"), too short for the voice labels."""
    from storypipe.tasks.extract import split_at_murmurs
    from tests.support.factories import words_from_text

    before = "I never thought of it like that, like as expertise or whatever, I just thought of it as my rubbish life,"
    after = "but Priya kept saying that, she said you know stuff I can't learn on a course, and that stayed with me."
    settings.extract.ideal_words = (35, 50)  # the two halves together make the best length
    quotes, _, _ = extract(make_transcript([("storyteller", f"{before} M .M., {after}")]), settings.extract)
    assert quotes and all("M.M" not in q.text.replace(" ", "") for q in quotes)
    assert all(not (q.text.startswith("I never") and "Priya" in q.text) for q in quotes)
    joined, _, _ = extract(make_transcript([("storyteller", f"{before} {after}")]), settings.extract)
    assert any("rubbish life" in q.text and "Priya" in q.text for q in joined)  # without it, one quote holds both
    # Spelt any way, by its letters; a word that only holds an m ("M6", "Mum") is not one.
    words = words_from_text("we took the M6 up to see Mum, mhm, and Mm-hmm then hmm home", 0.0)
    pieces = split_at_murmurs([("storyteller", words)], settings.extract.lexicon.murmurs)
    assert [" ".join(w.word.strip() for w in ws) for _, ws in pieces] == [
        "we took the M6 up to see Mum,", "and", "then", "home"]
