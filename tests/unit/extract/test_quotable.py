"""The taught quotable model: shipped, checked, shown in `why`, and refusing a file it cannot trust."""

from __future__ import annotations

import shutil

import pytest

from storypipe.tasks.extract import extract
from storypipe.tasks.extract.quotable import QuotableModelError, load, model_path
from tests.support.factories import make_transcript

POINT = ("When they finally sat and listened to us, the whole service changed, and for the first time in years "
         "I felt that what I'd been through was worth something to somebody.")
LOGISTICS = "We got the number nine bus at half past nine and then we had a cup of tea and a biscuit before it started."


def test_the_shipped_model_is_checked_and_reads_a_told_point_above_logistics(settings):
    reader = load(settings.extract, settings.meaning)
    assert reader is not None and len(settings.extract.quotable_sha256) == 64
    point, logistics = reader.probabilities([POINT, LOGISTICS])
    assert 0.0 <= logistics < point <= 1.0


def test_every_quote_shows_how_quotable_it_reads_and_the_part_can_be_turned_off(settings):
    transcript = make_transcript([("interviewer", "How did it start for you, and what changed?"),
                                  ("storyteller", f"{LOGISTICS} {POINT} {LOGISTICS}")])
    quotes, _, _ = extract(transcript, settings.extract, meaning_cfg=settings.meaning)
    assert quotes and all(0.0 <= q.why["quotable"] <= 1.0 for q in quotes)
    settings.extract.quotable_model = ""
    plain, _, _ = extract(transcript, settings.extract, meaning_cfg=settings.meaning)
    assert plain and all("quotable" not in q.why for q in plain)


def test_a_damaged_model_file_is_refused_by_name(settings, tmp_path):
    damaged = tmp_path / "quotable.safetensors"
    shutil.copy(model_path(settings.extract.quotable_model), damaged)
    data = bytearray(damaged.read_bytes())
    data[-1] ^= 0xFF
    damaged.write_bytes(bytes(data))
    settings.extract.quotable_model = str(damaged)
    with pytest.raises(QuotableModelError, match="quotable.safetensors is damaged"):
        load(settings.extract, settings.meaning)


def test_a_model_taught_on_another_meaning_model_is_refused(settings, tmp_path):
    from safetensors.torch import save_file
    import torch

    other = tmp_path / "other.safetensors"
    save_file({"head.weight": torch.zeros(1, 384), "head.bias": torch.zeros(1)}, str(other),
              metadata={"base_sha256": "0" * 64})
    settings.extract.quotable_model, settings.extract.quotable_sha256 = str(other), ""
    with pytest.raises(QuotableModelError, match="taught on another meaning model"):
        load(settings.extract, settings.meaning)


def test_a_missing_model_file_says_how_to_go_on_without_it(settings, tmp_path):
    settings.extract.quotable_model = str(tmp_path / "gone.safetensors")
    with pytest.raises(QuotableModelError, match='quotable_model = ""'):
        load(settings.extract, settings.meaning)
