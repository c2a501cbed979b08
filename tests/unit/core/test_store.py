"""The Store's reads of the files a stage writes: a missing file is None only when asked for, and
a broken one is always an error naming it."""

from __future__ import annotations

import pytest

from storypipe.core.jsonio import BadFileError
from storypipe.core.models import QuotesFile


def test_a_missing_file_is_none_only_with_missing_ok(store):
    assert store.read_quotes("a-00000001", missing_ok=True) is None
    assert store.read_keyphrases("a-00000001", missing_ok=True) is None
    assert store.read_transcript("a-00000001", missing_ok=True) is None
    with pytest.raises(BadFileError, match="file not found"):
        store.read_quotes("a-00000001")


def test_a_broken_file_is_an_error_even_with_missing_ok(store):
    store.quotes_path("a-00000001").parent.mkdir(parents=True)
    store.quotes_path("a-00000001").write_text("{not json")
    with pytest.raises(BadFileError) as e:
        store.read_quotes("a-00000001", missing_ok=True)
    assert e.value.path == store.quotes_path("a-00000001")


def test_what_is_written_reads_back(store):
    store.write_quotes("a-00000001", QuotesFile(story_id="a-00000001"))
    assert store.read_quotes("a-00000001", missing_ok=True) == QuotesFile(story_id="a-00000001")
