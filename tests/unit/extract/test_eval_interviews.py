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


def test_every_evaluation_voice_pair_is_two_different_voices():
    """Each interview is spoken by two voices, and the speaker labels are measured on them: a pair
    that espeak-ng speaks as one voice (the first pair was "en-gb+m3" with "en-gb+f2" until
    2026-12-03: espeak drops both variants) measures nothing but chance."""
    from bench.quotes_eval import VOICE_PAIRS
    from bench.speaker_fixtures import ESPEAK, PAIR_CASES, dropped_variant, sound_of

    if ESPEAK is None:
        pytest.skip("espeak-ng is not installed")
    pairs = [(a, b) for a, b in VOICE_PAIRS] + [((c.interviewer.voice, c.interviewer.pitch),
                                                  (c.storyteller.voice, c.storyteller.pitch)) for c in PAIR_CASES]
    for (va, pa), (vb, pb) in pairs:
        assert sound_of(va, pa) != sound_of(vb, pb), f"{va} -p {pa} and {vb} -p {pb} are one voice"
    dropped = sorted({v for pair in pairs for v, _ in pair if dropped_variant(v)})
    assert not dropped, f"espeak-ng ignores the variant of {dropped}: name the voice it speaks"


def test_the_second_readers_picks_are_ten_verbatim_storyteller_passages_per_test_interview():
    picks = yaml.safe_load((FOLDER / "second-reader" / "test.yaml").read_text("utf-8"))
    tests = {p.stem for p in PAIRS if split_of(p) == "test"}
    assert set(picks) == tests
    for name, passages in picks.items():
        said = [text for who, text in turns(FOLDER / f"{name}.txt") if who == "storyteller"]
        assert len(passages) == 10, name
        for passage in passages:
            assert sum(passage in line for line in said) == 1, (name, passage[:60])
