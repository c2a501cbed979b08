"""Fixing who spoke, in a real browser (Playwright + Debian's headless Chromium): give a segment to
the other speaker, give the words from a chosen word on (a turn the machine missed), split a segment
at a word, and find it all in the page and in transcript.json, with the approved quotes' decisions
kept and a note on the one the correction now runs through. Then the same box on a phone-wide
screen, by keyboard.

The story is built from words (no Whisper here): the machine heard every word as Ros's, the
storyteller, though the interviewer asks the second question and says the goodbye."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import uvicorn

from storypipe.app import review
from storypipe.app.web.app import create_app
from storypipe.core.jsonio import read_model, write_model
from storypipe.core.models import QuotesFile, Story, Transcript
from storypipe.core.settings import load_settings
from storypipe.core.store import Store
from tests.support import audio_fixtures as af
from tests.support.browser import launch_browser
from tests.support.factories import ROS_TEXT, make_story, make_transcript

SID = "heard-1a2b3c4d"
MISSED = "Thank you. And what would you say to someone starting out?"
ANSWER = "I would say give it a go, because being listened to changed my life and it can change yours."
GOODBYE = "Thank you so much for talking with me today."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from storypipe.tasks.extract import extract_story

    root = tmp_path_factory.mktemp("who-spoke-root")
    store = Store(root).ensure()
    transcript = make_transcript([
        ("interviewer", "What was it like for you at the start of the project?"),
        ("storyteller", f"{ROS_TEXT} {MISSED}"),  # the machine missed the interviewer's turn at "Thank"
        ("storyteller", ANSWER),
        ("storyteller", GOODBYE),  # the interviewer's goodbye, heard as the storyteller's
    ], SID)
    write_model(store.story_path(SID), make_story(SID, "heard.wav", title="Heard", storyteller="Ros").advance("transcribed"))
    write_model(store.transcript_path(SID), transcript)
    af.sine(store.original_dir(SID), "heard.wav", duration=transcript.duration_s + 1, sample_rate=16000)
    extract_story(SID, store, load_settings(root))
    # A quote the reviewer made of Ros's whole answer, missed question included, and approved.
    words = transcript.segments[1].words
    made = review.new_quote(store, SID, words[0].start, words[-1].end)

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(root), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the review app did not start"
    with launch_browser() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        yield store, f"http://127.0.0.1:{port}/stories/{SID}", page, made.id
    server.should_exit = True
    thread.join(timeout=10)


def on_disk(store: Store) -> Transcript:
    return read_model(store.transcript_path(SID), Transcript)


def seg_text(page, n: int) -> str:
    return page.locator(f"#seg-{n} .text").inner_text().strip()


def save_and_reload(page, button) -> None:
    with page.expect_event("load", timeout=30_000):  # the quotes are derived again in the same request
        button.click()
    page.wait_for_selector("#message.ok")


def test_fix_who_spoke_in_the_browser(served):
    store, url, page, made_id = served
    page.goto(url)

    # Approve a quote from Ros's answer in the page, as a reviewer does.
    quotes = read_model(store.quotes_path(SID), QuotesFile).quotes
    chosen = next(q for q in quotes if q.id != made_id and q.start >= on_disk(store).segments[2].start)
    page.locator(f"#q-{chosen.id} [data-act=approved]").click()
    page.wait_for_selector(f"#q-{chosen.id}.quote-approved")

    # 1. Give a segment to the other speaker: the goodbye is the interviewer's.
    page.locator("#seg-3 .who-open").click()
    box = page.locator("#who-panel-3")
    assert "This part was said by:" in box.inner_text()
    assert page.evaluate("document.activeElement.id") == "who-to-3"  # the box opens at its first choice
    assert box.locator("select#who-to-3").input_value() == "interviewer"  # the other speaker, already chosen
    assert "Save: all of this part was said by interviewer" in box.locator(".who-summary").inner_text()
    save_and_reload(page, box.get_by_role("button", name="Save who said it"))
    assert page.locator("#seg-3 .who").inner_text() == "interviewer"
    assert "is now the interviewer's" in page.locator("#seg-3 .seg-said").inner_text()  # said where you look
    assert page.locator("#seg-3 .badge", has_text="speaker corrected").count() == 1
    t = on_disk(store)
    assert [s.speaker for s in t.segments] == ["interviewer", "storyteller", "storyteller", "interviewer"]
    assert t.segments[3].machine_speaker == "storyteller"

    # 2. The words from a chosen word on: the interviewer's turn starts at "Thank" in segment 1.
    page.locator("#seg-1 .who-open").click()
    box = page.locator("#who-panel-1")
    thank = page.locator("#seg-1 .w", has_text="Thank")
    thank.click()  # in the open box's segment a click chooses the word...
    assert page.evaluate("document.getElementById('player').paused")  # ...and does not play
    assert page.is_checked("#who-from-1")
    assert thank.evaluate("w => w.classList.contains('chosen')")
    assert page.locator("#seg-1 .w.moving").count() == len(MISSED.split())
    assert "Save: “Thank you. And what" in box.locator(".who-summary").inner_text()
    save_and_reload(page, box.get_by_role("button", name="Save who said it"))
    assert seg_text(page, 1) == ROS_TEXT and seg_text(page, 2) == MISSED
    assert page.locator("#seg-2 .who").inner_text() == "interviewer"
    assert "quotes were found again" in page.locator("#message").inner_text()
    t = on_disk(store)
    assert [s.speaker for s in t.segments] == ["interviewer", "storyteller", "interviewer", "storyteller", "interviewer"]
    assert t.segments[2].start == t.segments[2].words[0].start and t.segments[1].end == t.segments[1].words[-1].end

    # 3. Split a segment at a word, chosen with the keyboard this time (the word list).
    page.locator("#seg-3 .who-open").click()
    box = page.locator("#who-panel-3")
    answer_words = ANSWER.split()
    k = answer_words.index("because")
    page.select_option("#who-word-3", str(k))
    assert "the second starting with “because being listened”" in box.locator(".who-summary").inner_text()
    save_and_reload(page, box.get_by_role("button", name="Split this part in two at the chosen word"))
    assert seg_text(page, 3) == " ".join(answer_words[:k]) and seg_text(page, 4) == " ".join(answer_words[k:])
    assert page.locator("#seg-3 .who").inner_text() == page.locator("#seg-4 .who").inner_text() == "storyteller"
    t = on_disk(store)
    assert len(t.segments) == 6 and [s.id for s in t.segments] == list(range(6))
    assert t.segments[4].start == t.segments[4].words[0].start and t.segments[4].words[0].word.strip() == "because"

    # Every decision is kept: the quote approved in the page, and the reviewer's own quote, which
    # the correction now runs through, carries a note saying so.
    page.reload()
    assert page.locator(f"#q-{chosen.id}.quote-approved").count() == 1
    note = page.locator(f"#q-{made_id} .quote-note").inner_text()
    assert "Check this quote" in note and "the storyteller and the interviewer" in note
    decided = {q.id: q for q in read_model(store.quotes_path(SID), QuotesFile).quotes}
    assert decided[chosen.id].status == "approved" and decided[made_id].status == "approved"
    assert decided[made_id].text.endswith("starting out?")  # as the reviewer made it
    assert not any(MISSED.split()[0] in q.text and q.status == "candidate" for q in decided.values())
    history = [h.note or "" for h in read_model(store.story_path(SID), Story).history]
    assert sum(n.startswith("reviewer: ") for n in history) == 3

    # Outside an open box a click on a word still plays from it.
    word = page.locator("#seg-4 .w").first
    start = float(word.get_attribute("data-s"))
    word.click()
    page.wait_for_function("!document.getElementById('player').paused")
    assert abs(page.evaluate("document.getElementById('player').currentTime") - start) < 1.0
    page.evaluate("document.getElementById('player').pause()")


def test_the_box_on_a_narrow_screen_by_keyboard(served):
    store, url, page, _ = served
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto(url)
    opener = page.locator("#seg-1 .who-open")
    opener.focus()
    page.keyboard.press("Enter")
    assert opener.get_attribute("aria-expanded") == "true"
    box = page.locator("#who-panel-1")
    assert box.is_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # nothing off the side
    right = page.evaluate("document.getElementById('who-panel-1').getBoundingClientRect().right")
    assert right <= 360
    page.keyboard.press("Tab")  # from the speaker choice to the first "Which words?" choice
    assert page.evaluate("document.activeElement.id") == "who-all-1"
    page.keyboard.press("Escape")
    assert page.locator("#who-panel-1").count() == 0
    assert page.evaluate("document.activeElement.classList.contains('who-open')")
    assert opener.get_attribute("aria-expanded") == "false"
