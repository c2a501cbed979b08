"""Anonymisation: names found by NER, the sidecar, config lists and fuzzy matching; text and audio."""

from __future__ import annotations

import numpy as np
import pytest

from storypipe.core.models import Metadata
from storypipe.tasks.common.anonymise import anonymise, hide_in_audio, mute_spans, redact_text, Redaction
from tests.support.factories import make_transcript


def words_of(result):
    return [w.word.strip() for w in result.transcript.words()]


def test_names_of_people_places_and_organisations_are_replaced(settings):
    t = make_transcript([("storyteller", "I grew up in Leeds and Margaret from Barclays helped me find a flat.")])
    out = anonymise(t, None, settings)
    text = out.transcript.segments[0].text
    assert "Leeds" not in text and "Margaret" not in text and "Barclays" not in text
    assert "[PLACE]" in text and "[NAME]" in text and "[ORGANISATION]" in text
    assert text.startswith("I grew up in [PLACE] and [NAME]")
    assert text.endswith("helped me find a flat.")


def test_a_name_split_over_two_words_is_found_and_muted_whole(settings):
    # The sidecar says "Oluwaseun"; speech recognition heard "Oluwa Seun".
    t = make_transcript([("storyteller", "My key worker Oluwa Seun believed in me when nobody else did.")])
    out = anonymise(t, Metadata(names=["Oluwaseun"]), settings)
    assert "Oluwa" not in " ".join(words_of(out)) and "Seun" not in " ".join(words_of(out))
    assert out.transcript.segments[0].text.startswith("My key worker [NAME] believed")
    words = t.segments[0].words
    (r,) = out.redactions
    assert (r.start, r.end) == (words[3].start, words[4].end) and r.heard == "Oluwa Seun"
    pad = settings.anonymise.pad_s
    assert out.mute == [(round(words[3].start - pad, 3), round(words[4].end + pad, 3))]


def test_a_name_found_once_is_hidden_everywhere(settings):
    # spaCy sees "Margaret" as a person in the first turn; the lower-case mention is hidden too.
    t = make_transcript([("storyteller", "Then Margaret Jones called me back."),
                         ("interviewer", "and what did margaret say to you then")])
    out = anonymise(t, None, settings)
    words = words_of(out)
    assert words.count("[NAME]") == 2 and words[-4:] == ["say", "to", "you", "then"]  # both turns are there
    assert all("argaret" not in w for w in words)


def test_sidecar_and_deny_list_names_with_common_words_left_alone(settings):
    settings.anonymise.deny_places = ["Hulme"]
    t = make_transcript([("interviewer", "So Will, you lived in hulme?"),
                         ("storyteller", "Yes, in Hulme. I will always remember the same people there.")])
    out = anonymise(t, Metadata(interviewer="Sam", names=["Will"]), settings)
    text = " ".join(s.text for s in out.transcript.segments)
    assert "So [NAME], you" in text and "in [PLACE]." in text
    assert "I will always remember the same people" in text  # "will" and "same" are not names


def test_allow_list_keeps_words_that_are_not_names_for_this_team(settings):
    t = make_transcript([("storyteller", "I went to Mind every week and met Priya there.")])
    settings.anonymise.allow = ["Mind"]
    text = anonymise(t, None, settings).transcript.segments[0].text
    assert "Mind" in text and "Priya" not in text


def test_redact_text_for_titles_and_key_phrases(settings):
    assert redact_text(["Margaret's story"], Metadata(names=["Margaret"]), settings) == ["[NAME]'s story"]


def test_audio_spans_are_muted_or_bleeped(settings):
    rate = 8000
    pcm = (np.ones((rate * 2, 2)) * 1000).astype(np.int16)
    spans = mute_spans([Redaction(0.5, 0.75, "NAME", "x"), Redaction(0.78, 1.0, "NAME", "y")], 0.05, 2.0)
    assert spans == [(0.45, 1.05)]
    muted = hide_in_audio(pcm, rate, spans, settings.anonymise)
    assert (muted[int(0.46 * rate): int(1.04 * rate)] == 0).all()
    assert (muted[: int(0.44 * rate)] == 1000).all() and (muted[int(1.06 * rate):] == 1000).all()
    assert (pcm == 1000).all()  # the input is not changed
    settings.anonymise.audio = "bleep"
    bleeped = hide_in_audio(pcm, rate, spans, settings.anonymise)
    middle = bleeped[int(0.5 * rate): int(1.0 * rate), 0].astype(float)
    assert 0 < np.abs(middle).max() < 32767 * 0.2 and not (middle == 1000).all()


@pytest.mark.parametrize("text", ["It was the same for everyone.", "I will go there again next week."])
def test_plain_sentences_are_unchanged(settings, text):
    t = make_transcript([("storyteller", text)])
    out = anonymise(t, Metadata(interviewer="Sam", names=["Will"]), settings)
    assert out.transcript.segments[0].text == text and out.mute == []


def test_sidecar_names_with_small_words_inside(settings):
    t = make_transcript([("storyteller", "The Express and Star ran a story about the Job Centre and us.")])
    out = anonymise(t, Metadata(names=["Express and Star", "the Job Centre"]), settings)
    text = out.transcript.segments[0].text
    assert "Express" not in text and "Star" not in text and "Job Centre" not in text, text
