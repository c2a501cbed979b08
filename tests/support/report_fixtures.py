"""A root of twelve finished stories for the findings report (written as the pipeline writes them,
without running it): sidecar details, transcripts with word times, quotes with themes and decisions,
key phrases, a staged package and a published clip. Used by tests/unit/report/test_report.py and the README
screenshot (tests/browser/test_report_browser.py).

Who is in it (so the expected numbers can be read off):
- 12 reportable stories (25 approved quotes: 2 in each, and one without a theme in story 4), plus one whose storyteller said no to the report and one still being
  processed; story 12 ("Ama", in Bolton, talking of Dr Okafor) is anonymised.
- sectors: health and social care 7, mental health 5, housing 2 (a storyteller can have two);
  roles: person with lived experience 8, peer researcher 5, professional 3;
  age range: 35-44 6, 45-54 5, 18-24 1 (so 45-54 is hidden with 18-24); gender: woman 6, man 5,
  not stated 1 (so man is hidden with not stated).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from storypipe.core.jsonio import write_model
from storypipe.core.store import Store
from storypipe.core.models import (
    Clip, ClipBatch, Consent, KeyPhrase, KeyphrasesFile, Published, Quote, QuotesFile, YouTubeMeta,
)
from tests.support.factories import make_story, make_transcript

QUESTION = "Can you tell me what co-production has meant for you?"
# What storytellers say, with the themes a workshop tagged. Quotes are whole answer turns.
ANSWERS = [
    ("For the first time I was treated as an equal at the table and we shared the power to decide together.",
     ["sharing-power"]),
    ("My lived experience changed what the doctors understood about how hard it is to ask for help.",
     ["lived-experience"]),
    ("The funding ran out after six months and the meetings moved back into the council offices.",
     ["challenges"]),
    ("I got my confidence back and learned new skills, and now I run the peer support group myself.",
     ["value-individuals"]),
    ("The service changed the way it does things and now people with experience sit on every panel.",
     ["value-organisations", "creating-change"]),
    ("It made things fairer for everyone, it took on the stigma that keeps people away from support.",
     ["value-society"]),
]
SECTORS = [["health and social care", "mental health"]] * 5 + [["health and social care"]] * 2 + \
          [["housing"]] * 2 + [[]] * 3
ROLES = [["person with lived experience", "peer researcher"]] * 5 + [["person with lived experience"]] * 3 + \
        [["professional"]] * 3 + [[]]
AGES = ["35-44"] * 6 + ["45-54"] * 5 + ["18-24"]
GENDERS = ["woman"] * 6 + ["man"] * 5 + [None]
PSEUDONYMS = ["Ros", "Dev", "Mo", "Kit", "Lee", "Sam", "Jo", "Pat", "Ali", "Max", "Bea", "Ama"]
# The anonymised story: names in the sidecar, and a place and a person in what was said.
ANON_NAMES = ["Ama", "Bolton", "Okafor", "Priya"]
REJECTED = "My landlord would recognise himself if this bit were ever read out, so leave it out."
UNTAGGED = "We still meet for a coffee every Thursday, years after the project ended."
# A title with Markdown's special characters, which must stay plain text.
ODD_TITLE = "Mo's story | part *one* <b>"
ANON_ANSWER = ("When I came to Bolton Dr Okafor and the whole team treated me as an equal at the table, "
               "we shared the power to decide.")


def story_id(i: int) -> str:
    return f"story-{i:02d}-{i:08x}"


def _write_story(store: Store, i: int, answers: list[tuple[str, list[str]]], *, consent: Consent,
                 state: str = "extracted", approve: bool = True, **meta) -> None:
    sid = story_id(i)
    folder = store.story_dir(sid)
    folder.mkdir(parents=True, exist_ok=True)
    turns = [("interviewer", QUESTION)]
    for text, _ in answers:
        turns += [("storyteller", text), ("interviewer", "Thank you, tell me more.")]
    transcript = make_transcript(turns, story_id=sid)
    story = make_story(sid, f"{sid}.wav", consent=consent, **meta)
    story.source.duration_s = 600.0 + 60 * i
    for s in ("transcribed", "extracted"):
        story.advance(s)
    if state != "extracted":
        story.advance(state)
    quotes = []
    for n, (text, themes) in enumerate(answers):
        seg = transcript.segments[1 + 2 * n]
        quotes.append(Quote(id=f"q{n + 1}", text=text, start=seg.start, end=seg.end, speaker="storyteller",
                            score=round(0.9 - 0.05 * n - 0.01 * i, 3), themes=themes,
                            status="approved" if approve and n != 1 else "candidate"))
    write_model(folder / "story.json", story)
    write_model(folder / "transcript.json", transcript)
    write_model(folder / "quotes.json", QuotesFile(story_id=sid, quotes=quotes))
    phrases = [KeyPhrase(text="peer support", score=0.3, count=2), KeyPhrase(text="the council", score=0.2, count=1)]
    if i % 2:
        phrases.append(KeyPhrase(text="co-production", score=0.25, count=3))
    write_model(folder / "keyphrases.json", KeyphrasesFile(story_id=sid, keyphrases=phrases))


def build_root(root: Path) -> Store:
    """The twelve stories (and two left out) under root; returns its store."""
    store = Store(root).ensure()
    for i in range(1, 12):
        answers = [ANSWERS[(i + k) % len(ANSWERS)] for k in range(3)]
        _write_story(
            store, i, answers,
            consent=Consent(transcript=True, clips=True, full_story=True, anonymise=False),
            title=ODD_TITLE if i == 3 else f"Story of {PSEUDONYMS[i - 1]}", storyteller=PSEUDONYMS[i - 1], interviewer="Sam",
            recorded_on=dt.date(2026, 10, i), sectors=SECTORS[i - 1], roles=ROLES[i - 1],
            demographics={"age_range": AGES[i - 1], **({"gender": GENDERS[i - 1]} if GENDERS[i - 1] else {})},
        )
    _write_story(
        store, 12, [(ANON_ANSWER, ["sharing-power"]), ANSWERS[2], ANSWERS[3]],
        consent=Consent(transcript=True, clips=False, full_story=False, anonymise=True),
        title="Ama finds her voice in Bolton", storyteller="Ama", interviewer="Priya",
        recorded_on=dt.date(2026, 10, 12), sectors=SECTORS[11], roles=ROLES[11],
        demographics={"age_range": AGES[11]}, names=["Priya"],
    )
    # Left out: consent to a transcript but not to the report; and one not yet through extraction.
    _write_story(store, 13, [("Nobody outside this room should read what I said about my brother Ezra.", ["trust"])],
                 consent=Consent(transcript=True, report=False), title="Not for the report", storyteller="Zed",
                 recorded_on=dt.date(2026, 10, 13), sectors=["housing"] * 1, demographics={"age_range": "18-24"})
    _write_story(store, 14, [(ANSWERS[0][0], ["sharing-power"])], consent=Consent(), state="extracted",
                 title="Still going", storyteller="Yan")
    still = store.story_dir(story_id(14)) / "story.json"
    data = json.loads(still.read_text())
    data["state"] = "transcribed"
    still.write_text(json.dumps(data))

    # A quote the team rejected: it counts for nothing and is never shown.
    path = store.story_dir(story_id(2)) / "quotes.json"
    quotes = QuotesFile.model_validate_json(path.read_text())
    quotes.quotes.append(Quote(id="q9", text=REJECTED, start=0.0, end=3.0, score=0.99, themes=["trust"],
                               status="rejected"))
    write_model(path, quotes)
    # A quote a reviewer picked by hand, approved without a theme yet.
    path = store.story_dir(story_id(4)) / "quotes.json"
    quotes = QuotesFile.model_validate_json(path.read_text())
    quotes.quotes.append(Quote(id="q8", text=UNTAGGED, start=0.0, end=3.0, score=1.0, status="approved", edited=True))
    write_model(path, quotes)

    # Story 1 staged, with one clip published and one cut but not yet published.
    staged = store.staging / story_id(1)
    staged.mkdir(parents=True)
    (staged / "story.mp3").write_bytes(b"ID3")
    batch = ClipBatch(batch="2026-11-01", clips=[
        Clip(file=f"{story_id(1)}-q1.mp3", story_id=story_id(1), quote_id="q1", start=0, end=8, duration_s=8,
             youtube=YouTubeMeta(title="Equal"), published=Published(video_id="abc123XYZ_-", at=dt.datetime(2026, 11, 2))),
        Clip(file=f"{story_id(1)}-q3.mp3", story_id=story_id(1), quote_id="q3", start=20, end=28, duration_s=8,
             youtube=YouTubeMeta(title="Skills")),
    ])
    (store.clips / batch.batch).mkdir(parents=True)
    write_model(store.clips / batch.batch / "manifest.json", batch)
    return store
