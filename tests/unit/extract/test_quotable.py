"""The quotable part: a shipped head over the real sentence model, how it enters the score, and
reply words that open a sentence (real spaCy, real all-MiniLM-L6-v2, fake transcripts)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from storypipe.core.jsonio import BadFileError
from storypipe.core.settings import shipped_file
from storypipe.tasks.common import meaning
from storypipe.tasks.extract import extract
from storypipe.tasks.extract.quotable import QuotableHead, load_head, quotable, usable_head
from tests.support.factories import make_transcript

PICKED = ("I sat in that waiting room for three years and nobody once asked me what would help. "
          "Now I sit on the panel that decides how the service is run.")
CHATTER = "Is the little red light on? I think it is recording now, yeah, the battery was full this morning."


def test_the_shipped_head_reads_the_shipped_sentence_model(settings):
    head = load_head(shipped_file(settings.extract.quotable_model))
    assert head.embedding_model == settings.meaning.sha256
    assert len(head.weights) == 384 and head.positives > 100 and head.negatives > head.positives
    assert "interviews:tune" in head.trained_on and not any("test" in s or "final" in s for s in head.trained_on)
    assert usable_head(settings.extract.quotable_model, settings.meaning, 384) == head


def test_a_passage_a_workshop_would_pick_sounds_more_quotable_than_recording_chatter(settings):
    head = usable_head(settings.extract.quotable_model, settings.meaning, 384)
    picked, chatter = quotable(meaning.embed([PICKED, CHATTER], settings.meaning), head)
    assert 0 <= chatter < picked <= 1
    assert picked > 0.5 > chatter


def test_every_quote_shows_its_quotable_part_and_it_counts(settings):
    transcript = make_transcript([("storyteller", PICKED + " " + CHATTER + " We had a cup of tea after, the biscuits were nice.")])
    quotes, _, _ = extract(transcript, settings.extract)
    assert quotes and all(0 <= q.why["quotable"] <= 1 for q in quotes)
    settings.extract.weights.quotable = 0.0
    unweighted, _, _ = extract(transcript, settings.extract)
    assert {q.id: q.score for q in unweighted} != {q.id: q.score for q in quotes}


def test_no_head_leaves_the_part_out(settings):
    settings.extract.quotable_model = ""
    quotes, _, _ = extract(make_transcript([("storyteller", PICKED)]), settings.extract)
    assert quotes and "quotable" not in quotes[0].why and "central" in quotes[0].why


def test_a_head_for_another_sentence_model_is_not_used(tmp_path, settings):
    head = load_head(shipped_file(settings.extract.quotable_model))
    other = tmp_path / "other.json"
    other.write_text(head.model_copy(update={"embedding_model": "0" * 64}).model_dump_json())
    assert usable_head(str(other), settings.meaning, 384) is None
    assert usable_head(settings.extract.quotable_model, settings.meaning, 768) is None


@pytest.mark.parametrize("content, reason", [
    ("{not json", "not a valid QuotableHead"),
    (json.dumps({"embedding_model": "x", "bias": 0, "weights": [], "trained_on": [], "regularisation": 1,
                 "positives": 1, "negatives": 1}), "weights"),
])
def test_a_broken_head_names_the_file_and_the_reason(tmp_path, settings, content, reason):
    bad = tmp_path / "quotable.json"
    bad.write_text(content)
    with pytest.raises(BadFileError) as e:
        usable_head(str(bad), settings.meaning, 384)
    assert "quotable.json" in str(e.value) and reason in str(e.value)


def test_scores_are_a_logistic_of_the_vector():
    head = QuotableHead(embedding_model="m", bias=-1.0, weights=[2.0, 0.0], trained_on=["x"], regularisation=1,
                        positives=1, negatives=1)
    assert quotable(np.array([[0.5, 9.0], [0.0, 0.0]]), head) == pytest.approx([0.5, 1 / (1 + np.e)])


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
