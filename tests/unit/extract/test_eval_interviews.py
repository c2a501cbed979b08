"""The independent evaluation interviews (bench/interviews/) are usable: every workshop quote is a
verbatim passage of one storyteller turn, every theme is in the codebook, every name is in the text,
and the tune/test split holds every writer."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

PROJECT = Path(__file__).resolve().parents[3]
FOLDER = PROJECT / "bench" / "interviews"
PAIRS = sorted(FOLDER.glob("w[a-z]-[0-9][0-9]-*.yaml"))
THEMES = {t["id"] for t in tomllib.loads((PROJECT / "config" / "themes.toml").read_text())["themes"]}
TURN = re.compile(r"^(interviewer|storyteller): (.+)$")


def split_of(path: Path) -> str:
    """The yaml's `split` (the `final` set, written after all tuning), else odd numbers tune, even test."""
    meta = yaml.safe_load(path.read_text("utf-8"))
    return meta.get("split") or ("tune" if int(path.name.split("-")[1]) % 2 else "test")


def turns(path: Path) -> list[tuple[str, str]]:
    lines = [ln for ln in path.read_text("utf-8").splitlines() if ln.strip() and not ln.startswith("#")]
    found = [TURN.match(ln) for ln in lines]
    assert all(found), f"{path.name}: lines that are not turns: {[ln for ln, m in zip(lines, found) if not m][:3]}"
    return [(m.group(1), m.group(2)) for m in found]


def test_there_are_interviews_from_every_writer_in_both_splits():
    tuned = [p for p in PAIRS if split_of(p) in {"tune", "test"}]
    writers = {p.name[:2] for p in tuned}
    assert len(tuned) >= 24 and len(writers) >= 3
    for writer in writers:
        assert {split_of(p) for p in PAIRS if p.name.startswith(writer)} == {"tune", "test"}


@pytest.mark.parametrize("meta_path", PAIRS, ids=[p.stem for p in PAIRS])
def test_each_interview_is_well_formed(meta_path):
    meta = yaml.safe_load(meta_path.read_text("utf-8"))
    said = turns(meta_path.with_suffix(".txt"))
    storyteller = [text for who, text in said if who == "storyteller"]
    interviewer = [text for who, text in said if who == "interviewer"]
    assert storyteller and interviewer
    assert 5 <= len(meta["quotes"]) <= 7
    for quote in meta["quotes"]:
        inside = [t for t in storyteller if quote["text"] in t]
        assert inside, f"{meta_path.name}: not verbatim in one storyteller turn: {quote['text'][:60]}"
        assert "(" not in quote["text"], "a stage direction such as (laughs) is not a word of a quote"
        assert 1 <= len(quote["themes"]) <= 2 and set(quote["themes"]) <= THEMES, quote["themes"]
    text = meta_path.with_suffix(".txt").read_text("utf-8")
    for name in meta.get("names", []):
        assert name["text"] in text and name["label"] in {"PERSON", "PLACE", "ORGANISATION"}, name
