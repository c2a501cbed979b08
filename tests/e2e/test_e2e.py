"""End to end: real speech, the real Whisper model, the real Prefect flow, the real command.

Slow by nature (Whisper on a CPU); kept to two recordings of real and synthetic speech.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jiwer
import pytest
from rapidfuzz import fuzz
from typer.testing import CliRunner

from storypipe.app.cli import SAMPLE_DIR, app
from storypipe.core.jsonio import read_model
from storypipe.core.store import Store
from storypipe.core.models import KeyphrasesFile, QuotesFile, Story, Transcript
from storypipe.app import review
from storypipe.tasks.common.audio import decode_pcm16
from tests.support import audio_fixtures as af
from tests.support import DATA

pytestmark = pytest.mark.e2e

STORYPIPE = Path(sys.executable).parent / "storypipe"


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s']", " ", text.lower())).strip()


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def story_by_source(store: Store, filename: str) -> Story:
    for p in store.transcripts.glob("*/story.json"):
        story = read_model(p, Story)
        if story.source.filename == filename:
            return story
    raise AssertionError(f"no story for {filename}")


@pytest.fixture(scope="module")
def processed_root(tmp_path_factory, prefect_api):
    """A root with jfk (no sidecar), the demo interview (consents to all), a second interview that must be
    anonymised, and a non-audio file; processed by the installed `storypipe run` command."""
    root = tmp_path_factory.mktemp("root")
    store = Store(root).ensure()
    shutil.copy2(DATA / "jfk.flac", store.inbox / "jfk.flac")
    shutil.copy2(SAMPLE_DIR / "interview.mp3", store.inbox / "Interview 01.mp3")
    shutil.copy2(SAMPLE_DIR / "interview.yaml", store.inbox / "Interview 01.yaml")
    af.speech(store.inbox, "second.wav", "We met every week in the library in Rochdale with Margaret. "
              "I learned that my voice matters.", voice="en-us+f2", words_per_minute=150)
    (store.inbox / "second.yaml").write_text(
        'title: "Second"\nstoryteller: "J."\nconsent: {transcript: true, clips: true, full_story: true, anonymise: true}\n'
    )
    (store.inbox / "agenda.txt").write_text("Agenda for the sense-making workshop\n")
    before = {p.name: sha(p) for p in store.inbox.iterdir()}
    env = dict(os.environ)  # the session's Prefect server (PREFECT_API_URL), as a team's own would be
    run = subprocess.run([str(STORYPIPE), "run", "--root", str(root)], capture_output=True, text=True, env=env,
                         timeout=1800)
    status = subprocess.run([str(STORYPIPE), "status", "--json", "--root", str(root)], capture_output=True,
                            text=True, env=env)
    return store, before, run, json.loads(status.stdout)


def test_exit_status_is_1_and_the_non_audio_file_is_quarantined(processed_root):
    store, _, run, _ = processed_root
    assert run.returncode == 1, run.stdout + run.stderr
    assert (store.quarantine / "agenda.txt").exists()
    note = (store.quarantine / "agenda.txt.error.txt").read_text()
    assert "agenda.txt" in note and "not an audio or video file" in note
    assert "agenda.txt" in run.stdout and "quarantined" in run.stdout


def test_inbox_is_empty_and_originals_are_byte_identical(processed_root):
    store, before, _, _ = processed_root
    assert [p.name for p in store.inbox.iterdir() if not p.name.startswith(".")] == []
    for name in ("jfk.flac", "Interview 01.mp3", "Interview 01.yaml", "second.wav", "second.yaml"):
        matches = list(store.originals.glob(f"*/{name}"))
        assert len(matches) == 1, name
        assert sha(matches[0]) == before[name]


def test_story_ids_follow_the_contract(processed_root):
    store, before, _, _ = processed_root
    story = story_by_source(store, "Interview 01.mp3")
    assert story.story_id == "interview-01-" + before["Interview 01.mp3"][:8]
    assert story.metadata.storyteller == "Ros" and story.consent.full_story is True


def test_jfk_is_transcribed_accurately_with_rising_word_times(processed_root):
    store, _, _, _ = processed_root
    story = story_by_source(store, "jfk.flac")
    transcript = read_model(store.story_dir(story.story_id) / "transcript.json", Transcript)
    reference = (DATA / "jfk.txt").read_text()
    wer = jiwer.wer(normalise(reference), normalise(transcript.text))
    assert wer <= 0.1, (wer, transcript.text)
    words = transcript.words()
    assert len(words) >= 20
    assert all(0 <= w.start <= w.end <= transcript.duration_s + 0.05 for w in words)
    assert all(a.start <= b.start for a, b in zip(words, words[1:]))
    assert transcript.engine == "openai-whisper" and transcript.model == "tiny.en"
    for ext in ("txt", "srt", "vtt"):
        assert "country" in (store.story_dir(story.story_id) / f"transcript.{ext}").read_text().lower()


def test_demo_interview_gives_quotes_and_keyphrases(processed_root):
    store, _, _, _ = processed_root
    story = story_by_source(store, "Interview 01.mp3")
    folder = store.story_dir(story.story_id)
    quotes = read_model(folder / "quotes.json", QuotesFile).quotes
    assert len(quotes) >= 3
    transcript = read_model(folder / "transcript.json", Transcript)
    assert all(0 <= q.start < q.end <= transcript.duration_s + 0.05 for q in quotes)
    keyphrases = read_model(folder / "keyphrases.json", KeyphrasesFile)
    assert any("peer support" in k.text or "co" in k.text for k in keyphrases.keyphrases)
    script = (SAMPLE_DIR / "interview.txt").read_text()
    reference = " ".join(line.split(":", 1)[1] for line in script.splitlines() if ":" in line)
    assert jiwer.wer(normalise(reference), normalise(transcript.text)) <= 0.25


def test_staging_follows_consent(processed_root):
    store, _, _, status = processed_root
    demo = story_by_source(store, "Interview 01.mp3")
    assert demo.state == "staged"
    package = store.staging / demo.story_id
    assert {p.name for p in package.iterdir()} == {"story.mp3", "transcript.txt", "transcript.vtt", "metadata.json",
                                                   f"{demo.story_id}.zip", "SHA256SUMS"}
    jfk = story_by_source(store, "jfk.flac")  # no sidecar: the cautious default consent
    assert jfk.state == "extracted"
    assert not (store.staging / jfk.story_id).exists()
    assert any(p.startswith("not staged") for p in jfk.problems)
    rows = {r["source"]: r for r in status["stories"]}
    assert rows["Interview 01.mp3"]["state"] == "staged" and rows["second.wav"]["state"] == "staged"
    assert rows["Interview 01.mp3"]["quotes_candidate"] >= 3
    assert status["quarantined"][0]["file"] == "agenda.txt"


def test_a_team_prefect_server_in_prefect_api_url_is_used_as_it_is(processed_root, prefect_api):
    """The run above had PREFECT_API_URL set (the session's server, as a team's own would be): it
    started no server of its own, and status names that server's UI."""
    store, _, _, status = processed_root
    assert not (store.root / ".storypipe" / "prefect").exists()
    assert status["prefect_ui"] == prefect_api.removesuffix("/api") + "/"


def test_a_second_run_does_no_work_twice(processed_root, prefect_harness):
    store, _, _, _ = processed_root
    demo = story_by_source(store, "Interview 01.mp3")
    shutil.copy2(store.original_dir(demo.story_id) / "Interview 01.mp3", store.inbox / "Interview 01.mp3")
    before = (store.story_dir(demo.story_id) / "transcript.json").stat().st_mtime_ns
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["run", "--root", str(store.root)])  # no wrapping
    assert result.exit_code == 0, result.output
    assert "duplicate" in result.output
    assert not (store.inbox / "Interview 01.mp3").exists()
    assert (store.story_dir(demo.story_id) / "transcript.json").stat().st_mtime_ns == before


def test_demo_interview_knows_who_spoke(processed_root):
    """Real flow, real model, mono recording: questions are the interviewer's, quotes the storyteller's."""
    store, _, _, _ = processed_root
    story = story_by_source(store, "Interview 01.mp3")
    folder = store.story_dir(story.story_id)
    transcript = read_model(folder / "transcript.json", Transcript)
    assert {s.speaker for s in transcript.segments} == {"storyteller", "interviewer"}
    questions = [s for s in transcript.segments if s.text.rstrip().endswith("?")]
    assert len(questions) >= 5
    assert sum(s.speaker == "interviewer" for s in questions) / len(questions) >= 0.8
    words = transcript.words()
    storyteller_words = sum(len(s.words) for s in transcript.segments if s.speaker == "storyteller")
    assert storyteller_words / len(words) >= 0.6  # she speaks about 75% of the script's words
    quotes = read_model(folder / "quotes.json", QuotesFile).quotes
    assert quotes and all(q.speaker == "storyteller" for q in quotes)
    text = (folder / "transcript.txt").read_text()
    assert "interviewer: " in text and "storyteller: " in text


def test_anonymised_story_is_staged_without_names(processed_root):
    """Real speech through the real flow: the names heard are hidden in the staged text and audio."""
    store, _, _, _ = processed_root
    story = story_by_source(store, "second.wav")
    transcript = read_model(store.story_dir(story.story_id) / "transcript.json", Transcript)
    # However the recogniser spelt them ("Rachdale"), the two names are the words nearest to them.
    heard = [max(transcript.words(), key=lambda w: fuzz.ratio(w.word.strip(" .,").lower(), name))
             for name in ("rochdale", "margaret")]
    assert all(fuzz.ratio(w.word.strip(" .,").lower(), n) >= 75 for w, n in zip(heard, ("rochdale", "margaret"))), \
        transcript.text
    package = store.staging / story.story_id
    text = (package / "transcript.txt").read_text() + (package / "transcript.vtt").read_text()
    assert "[NAME]" in text and ("[PLACE]" in text or "[ORGANISATION]" in text)  # spaCy may take a town for an org
    assert "my voice matters" in text
    for w in heard:
        assert w.word.strip(" .,") not in text
    # Key phrases come lower case ("rachdale"): the names are hidden however they are written.
    phrases = " ".join(json.loads((package / "metadata.json").read_text())["keyphrases"]).lower()
    for w in heard:
        assert w.word.strip(" .,").lower() not in phrases, phrases
    rate = 16000
    pcm = decode_pcm16(package / "story.mp3", rate, 1).astype(float)
    original = decode_pcm16(store.original_dir(story.story_id) / "second.wav", rate, 1).astype(float)

    def rms(a, lo, hi):
        return (a[int(lo * rate): int(hi * rate)] ** 2).mean() ** 0.5

    for w in heard:
        middle = (w.start + w.end) / 2
        assert rms(original, middle - 0.05, middle + 0.05) > 300  # the name is spoken there...
        assert rms(pcm, middle - 0.05, middle + 0.05) < 30  # ...and silent in the staged audio
    first = transcript.words()[0]
    assert rms(pcm, first.start, first.end) > 300  # the rest is still there


def test_the_findings_report_from_real_stories(processed_root):
    """Real transcripts and quotes through `storypipe report`: approved quotes appear, credited as
    consent says; the anonymised story's names are nowhere; the staged story is linked."""
    store, _, _, _ = processed_root
    runner = CliRunner(env={"COLUMNS": "200"})
    demo, second = story_by_source(store, "Interview 01.mp3"), story_by_source(store, "second.wav")
    approved = {}
    # The second story is two sentences: too short for a candidate quote, so a reviewer picks one.
    words = read_model(store.story_dir(second.story_id) / "transcript.json", Transcript).words()
    review.new_quote(store, second.story_id, words[0].start, words[-1].end)
    for story in (demo, second):
        quotes = read_model(store.story_dir(story.story_id) / "quotes.json", QuotesFile).quotes
        assert quotes, story.story_id
        approved[story.story_id] = quotes[:2]
        done = runner.invoke(app, ["approve", story.story_id, *[q.id for q in quotes[:2]], "--root", str(store.root)])
        assert done.exit_code == 0, done.output
    result = runner.invoke(app, ["report", "--root", str(store.root)])
    assert result.exit_code == 0, result.output
    folder = next(store.reports.iterdir())
    md = (folder / "report.md").read_text()
    stories = [p for p in store.transcripts.glob("*/story.json")]
    assert f"**{len(stories)} stories**" in md
    flat = normalise(md)
    for q in approved[demo.story_id]:
        assert normalise(q.text) in flat
    assert "— Ros, [story" in md and "— a storyteller, [story" in md
    assert "(staging" not in md and f"../../staging/{demo.story_id}/story.mp3" in md
    transcript = read_model(store.story_dir(second.story_id) / "transcript.json", Transcript)
    for name in ("rochdale", "margaret"):
        heard = max(transcript.words(), key=lambda w: fuzz.ratio(w.word.strip(" .,").lower(), name))
        assert not re.search(rf"\b{re.escape(heard.word.strip(' .,'))}\b", md, re.I), heard.word
    assert "Margaret" not in md and "Rochdale" not in md
    # Three storytellers: every group is too small to count.
    who = md[md.index("## Who shared"): md.index("## Themes")]
    assert "fewer than 5" in who and not re.search(r"\| [1-4] \|", who)
