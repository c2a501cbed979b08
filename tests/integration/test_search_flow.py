"""Search is built as stories are extracted: `storypipe run` leaves each story searchable, and
`storypipe search` finds it without indexing anything again."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from storypipe.app import status
from storypipe.app.cli import app
from tests.support import audio_fixtures as af


def test_a_run_makes_the_story_searchable(store, prefect_harness, monkeypatch):
    monkeypatch.setenv("STORYPIPE_RUN__SETTLE_S", "0")
    af.speech(store.inbox, "heard.wav", "For the first time the council listened to what we had to say, "
                                        "and they changed the service because of it.")
    (store.inbox / "heard.yaml").write_text("title: Heard\nspeakers: 1\n")  # one voice: all the storyteller's
    runner = CliRunner()
    assert runner.invoke(app, ["run", "--root", str(store.root)]).exit_code == 0
    (row,) = status.story_rows(store)
    assert store.search_indexed_ids() == [row["story_id"]]  # indexed by the flow, after extraction

    found = runner.invoke(app, ["search", "the council listened to us", "--json", "--root", str(store.root)])
    assert found.exit_code == 0, found.output
    assert "searchable first" not in found.stderr  # nothing left to index
    hits = json.loads(found.stdout)["hits"]
    assert hits and hits[0]["story_id"] == row["story_id"] and "council" in hits[0]["text"]
