"""Search across stories: passages by meaning (an exact phrase first), consent (a withdrawn story is
never indexed, its file goes, a stale one is ignored), the index kept by content, names hidden in
anonymised stories, and `storypipe search` and the review app's Search page on a real root."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from storypipe.app import review
from storypipe.app.cli import app as cli
from storypipe.app.web.app import create_app
from storypipe.core.jsonio import write_model
from storypipe.core.models import Consent, Story
from storypipe.core.store import Store
from storypipe.tasks import search
from storypipe.tasks.common import meaning
from tests.support.factories import make_story, make_transcript

HEARD = ("For years nobody in charge paid any attention to what we said, our voices did not count for anything. "
         "Then the council set up the panel and for the first time they wanted to hear from us, and they acted "
         "on what we told them.")
RADIO = ("We listened to the radio on the way down, being driven to the coast in my uncle's van. It was a long "
         "drive and the van kept breaking down, so we listened to a lot of radio that summer.")
PHRASE = ("The depot is cold first thing and the queue goes right round the corner. Being listened to is not "
          "something you expect there, you just want the bus to turn up before your fingers go numb.")
QUESTION = "Okay, we're recording now. So tell me, did you ever feel that nobody listened to what you had to say?"


def add_story(store: Store, story_id: str, turns: list[tuple[str, str]], state: str = "extracted",
              consent: Consent | None = None, **metadata) -> Story:
    """A story that reached `state`, with a transcript of (speaker, text) turns."""
    story = make_story(story_id, consent=consent or Consent(anonymise=False), **metadata)
    if state != "ingested":
        story.advance("transcribed")
        store.write_transcript(make_transcript(turns, story_id=story_id))
    if state in ("extracted", "staged"):
        story.advance("extracted")
    store.write_story(story)
    return story


@pytest.fixture
def three(store):
    """Three stories: one about being heard, one sharing its words but not its meaning, one holding
    the exact phrase "being listened to" in passing."""
    add_story(store, "heard-00000001", [("interviewer", QUESTION), ("storyteller", HEARD)], title="The panel")
    add_story(store, "radio-00000002", [("interviewer", "Tell me about that summer."), ("storyteller", RADIO)],
              title="Summer")
    add_story(store, "depot-00000003", [("storyteller", PHRASE)], title="The depot")
    return store


def test_passages_are_whole_sentences_of_one_speaker_overlapping_by_a_sentence(settings):
    sentence = "This is one sentence of the storyteller with ten words."  # 10 words
    t = make_transcript([("interviewer", QUESTION), ("storyteller", " ".join([sentence] * 12)),
                         ("interviewer", "Mm."), ("storyteller", "word " * 100)])
    cfg = settings.search.model_copy(update={"leave_out_speakers": []})
    passages = search.passages_of(t, cfg)
    assert {p.speaker for p in passages} == {"interviewer", "storyteller"}
    story = [p for p in passages if p.segment == 1]
    assert [len(p.text.split()) for p in story] == [50, 50, 40]  # 12 sentences: 1-5, 5-9, 9-12
    assert all(p.text.endswith(".") for p in story)
    assert story[0].end > story[1].start  # the shared sentence
    assert not [p for p in passages if p.segment == 2]  # "Mm." is too short to search
    assert all(len(p.text.split()) <= cfg.max_words for p in passages if p.segment == 3)  # an endless "sentence" is cut
    assert not [p for p in search.passages_of(t, settings.search) if p.speaker == "interviewer"]  # by default


def test_meaning_beats_shared_words(three, settings):
    # The radio passage shares "listened to" with the query; the panel passage shares its meaning.
    found = search.search("nobody listened to what we had to say", three, settings)
    ids = [h.story_id for h in found.hits]
    assert ids[0] == "heard-00000001"
    assert "radio-00000002" not in ids[:1]


def test_an_exact_phrase_ranks_first(three, settings):
    # The depot passage says "being listened to" in passing: by meaning alone the radio passage is
    # nearer (the model leans on shared words for a three-word query); the exact words put it first.
    without = settings.model_copy(update={"search": settings.search.model_copy(update={"phrase_boost": 0.0})})
    by_meaning = search.search("Being listened to", three, without)
    assert by_meaning.hits[0].story_id != "depot-00000003"
    found = search.search("Being listened to", three, settings)
    assert found.hits[0].story_id == "depot-00000003"
    before = next(h.score for h in by_meaning.hits if h.story_id == "depot-00000003")
    assert found.hits[0].score == pytest.approx(before + settings.search.phrase_boost)


def test_a_hit_has_story_speaker_time_and_text(three, settings):
    hit = search.search("nobody listened to what we had to say", three, settings).hits[0]
    transcript = three.read_transcript(hit.story_id)
    assert hit.title == "The panel" and hit.speaker == "storyteller" and hit.segment == 1
    assert hit.start == transcript.segments[1].start and hit.end == transcript.segments[1].end
    assert hit.text == HEARD and hit.time == "0:" + f"{int(hit.start):02d}"
    assert set(hit.json()) == {"story_id", "start", "end", "speaker", "text", "score"}


def test_withdrawn_consent_is_never_indexed_and_its_file_goes(three, settings):
    add_story(three, "nope-00000004", [("storyteller", HEARD)], consent=Consent(transcript=False))
    assert search.index_story("nope-00000004", three, settings) is None
    found = search.search("nobody listened to what we had to say", three, settings)
    assert "nope-00000004" not in {h.story_id for h in found.hits} and found.withheld == 1
    assert not three.search_index_path("nope-00000004").exists()

    # Withdrawn in the review app: the file goes at once.
    assert three.search_index_path("heard-00000001").exists()
    review.change_consent(three, "heard-00000001", {"transcript": False}, settings)
    assert not three.search_index_path("heard-00000001").exists()
    assert "heard-00000001" not in {h.story_id for h in search.search(HEARD, three, settings).hits}


def test_a_stale_file_of_a_withdrawn_story_is_ignored_and_removed(three, settings):
    search.refresh(three, settings)
    stale = three.search_index_path("heard-00000001")
    kept = stale.read_bytes()
    story = three.read_story("heard-00000001")
    story.consent = Consent(transcript=False, anonymise=False)
    write_model(three.story_path("heard-00000001"), story)  # changed behind the app's back
    stale.write_bytes(kept)
    cache = search.IndexCache()
    assert "heard-00000001" not in {h.story_id for h in search.search(HEARD, three, settings, cache=cache).hits}
    assert not stale.exists()


def test_the_index_is_kept_by_content(three, settings, monkeypatch):
    calls: list[list[str]] = []
    real = meaning.embed
    monkeypatch.setattr(meaning, "embed", lambda texts, cfg=None: calls.append(list(texts)) or real(texts, cfg))
    first = search.search("the coast", three, settings)
    assert sorted(first.indexed_now) == ["depot-00000003", "heard-00000001", "radio-00000002"]
    assert sum(len(c) for c in calls) == 3 + 1  # one passage each, and the query

    calls.clear()
    again = search.search("the coast", three, settings)
    assert again.indexed_now == [] and calls == [["the coast"]]  # nothing embedded but the query

    calls.clear()  # the same words written again (a new file, say a re-run): read, not embedded
    three.write_transcript(three.read_transcript("radio-00000002"))
    assert search.search("the coast", three, settings).indexed_now == [] and calls == [["the coast"]]

    calls.clear()  # a reviewer corrects one story: only its changed passage is embedded
    t = three.read_transcript("radio-00000002")
    t.segments[1].text = t.segments[1].text.replace("uncle's", "auntie's")
    t.segments[1].words = [w.model_copy(update={"word": w.word.replace("uncle's", "auntie's")}) for w in t.segments[1].words]
    three.write_transcript(t)
    changed = search.search("the coast", three, settings)
    assert changed.indexed_now == ["radio-00000002"]
    assert calls == [[t.segments[1].text], ["the coast"]]
    assert "auntie's" in next(h.text for h in changed.hits if h.story_id == "radio-00000002")

    shutil.rmtree(three.story_dir("depot-00000003"))  # a deleted story's file goes
    search.search("the coast", three, settings)
    assert three.search_indexed_ids() == ["heard-00000001", "radio-00000002"]


def test_an_unextracted_story_waits(store, settings):
    add_story(store, "later-00000005", [("storyteller", HEARD)], state="transcribed")
    found = search.search(HEARD, store, settings)
    assert found.hits == [] and found.waiting == 1 and not store.search_indexed_ids()


def test_names_in_anonymised_stories_are_never_shown(store, settings):
    text = ("Margaret from the council was the first one who really listened to us, and Margaret came to "
            "every meeting at the Hollybank Centre after that.")
    add_story(store, "anon-00000006", [("storyteller", text)], consent=Consent(anonymise=True),
              title="Margaret and the panel", names=["Margaret", "Hollybank Centre"])
    for query in ("someone from the council really listened to us", "Margaret"):
        for hit in search.search(query, store, settings).hits:
            assert "Margaret" not in hit.text and "Hollybank" not in hit.text and "Margaret" not in hit.title
            assert "[NAME]" in hit.text
    entry = search.read_entry(store.search_index_path("anon-00000006"))
    assert entry is not None and not any("Margaret" in p.text for p in entry.passages)  # nor kept in the root's index


def test_the_cli_prints_the_contract_json_and_exits_2_on_usage_errors(three, clean_env):
    runner = CliRunner()
    result = runner.invoke(cli, ["search", "nobody listened to what we had to say", "--json", "--limit", "2",
                                 "--root", str(three.root)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"query", "hits"} and data["query"] == "nobody listened to what we had to say"
    assert 1 <= len(data["hits"]) <= 2
    for hit in data["hits"]:
        assert set(hit) == {"story_id", "start", "end", "speaker", "text", "score"}
    assert data["hits"][0]["story_id"] == "heard-00000001" and data["hits"][0]["speaker"] == "storyteller"
    scores = [h["score"] for h in data["hits"]]
    assert scores == sorted(scores, reverse=True)

    shown = runner.invoke(cli, ["search", "nobody listened to what we had to say", "--root", str(three.root)])
    assert shown.exit_code == 0 and "The panel · storyteller · 0:" in shown.stdout

    for args in (["search", "  "], ["search"], ["search", "x", "--limit", "0"]):
        assert runner.invoke(cli, [*args, "--root", str(three.root)]).exit_code == 2, args


def test_the_cli_indexes_an_extracted_story_on_first_search_and_says_so(three, clean_env):
    result = CliRunner().invoke(cli, ["search", "the coast", "--json", "--root", str(three.root)])
    assert result.exit_code == 0
    assert "Making 3 stories searchable first" in result.stderr
    json.loads(result.stdout)  # the notes stay out of the JSON


def test_the_search_page_lists_hits_with_a_player_from_that_moment(three, clean_env):
    web = create_app(three.root)
    client = TestClient(web, base_url="http://127.0.0.1")
    assert 'href="/search"' in client.get("/").text  # in the menu of every page
    first = client.get("/search", params={"q": "nobody listened to what we had to say"})
    said = " ".join(first.text.split())
    assert first.status_code == 200 and "3 new or changed stories are being made searchable now" in said
    web.state.search_indexing.join(timeout=120)  # indexed in the background; the page did not wait
    page = client.get("/search", params={"q": "nobody listened to what we had to say"})
    assert page.status_code == 200 and "being made searchable" not in page.text
    hit = search.search("nobody listened to what we had to say", three, search_settings(three)).hits[0]
    assert f'src="/stories/heard-00000001/audio#t={hit.start:.2f},{hit.end:.2f}"' in page.text
    assert 'href="/stories/heard-00000001#seg-1"' in page.text
    assert "The panel" in page.text and "storyteller" in page.text and hit.time in page.text
    assert client.get("/search").status_code == 200  # the empty box

    api = client.get("/api/search", params={"q": "the coast", "limit": 1}).json()
    assert len(api["hits"]) == 1 and api["hits"][0]["play"].startswith("/stories/radio-00000002/audio#t=")
    assert client.get("/api/search", params={"q": ""}).status_code == 400


def search_settings(store: Store):
    from storypipe.core.settings import load_settings

    return load_settings(store.root)


def test_an_unreadable_index_file_is_made_again(three, settings):
    search.refresh(three, settings)
    path = three.search_index_path("radio-00000002")
    path.write_bytes(b"not an index")
    found = search.search("the coast", three, settings)
    assert "radio-00000002" in found.indexed_now and np.load(path)["vectors"].shape[1] == 384
