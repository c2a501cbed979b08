"""The spaCy pipeline storypipe shares between quotes, themes and anonymisation, and the bridge
between Whisper's timed words and spaCy's characters."""

from __future__ import annotations

import functools
import threading
from pathlib import Path

from storypipe.core.models import Transcript, Word

_NLP_LOCK = threading.Lock()


def load_nlp(model: str):
    """spaCy with pytextrank; loaded once per process (about a second), thread-safe."""
    with _NLP_LOCK:
        return _load_nlp(model)


@functools.cache
def import_textrank() -> None:
    """Import pytextrank (it registers the "textrank" pipe) without the git error its version.py
    prints on import. That module is loaded first with a `print` of its own that prints nothing.
    Why not redirect sys.stdout: that swaps it for every thread, and done from the warm-up thread it
    swallowed what the main thread printed meanwhile (a run's summary table)."""
    import importlib.util
    import sys

    if "pytextrank" in sys.modules:
        return
    package = importlib.util.find_spec("pytextrank")  # finds it without running it
    path = Path(next(iter(package.submodule_search_locations))) / "version.py"
    spec = importlib.util.spec_from_file_location("pytextrank.version", path)
    version = importlib.util.module_from_spec(spec)
    version.print = lambda *args, **kwargs: None
    sys.modules["pytextrank.version"] = version
    spec.loader.exec_module(version)
    import pytextrank  # noqa: F401


@functools.cache
def _load_nlp(model: str):
    import spacy

    import_textrank()
    nlp = spacy.load(model)
    _keep_hyphenated_words(nlp)
    nlp.add_pipe("textrank", last=True)
    return nlp


def _keep_hyphenated_words(nlp) -> None:
    """'co-production' and 'self-esteem' stay one token, so they are one key phrase and one cue.

    spaCy's English tokenizer splits at hyphens between letters; this is its documented recipe for
    keeping them, with every other infix rule unchanged."""
    from spacy.lang.char_classes import ALPHA, ALPHA_LOWER, ALPHA_UPPER, CONCAT_QUOTES, LIST_ELLIPSES, LIST_ICONS
    from spacy.util import compile_infix_regex

    infixes = (
        LIST_ELLIPSES
        + LIST_ICONS
        + [
            r"(?<=[0-9])[+\-\*^](?=[0-9-])",
            r"(?<=[{al}{q}])\.(?=[{au}{q}])".format(al=ALPHA_LOWER, au=ALPHA_UPPER, q=CONCAT_QUOTES),
            r"(?<=[{a}]),(?=[{a}])".format(a=ALPHA),
            r"(?<=[{a}0-9])[:<>=/](?=[{a}])".format(a=ALPHA),
        ]
    )
    nlp.tokenizer.infix_finditer = compile_infix_regex(infixes).finditer


def join_words(words: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """Whisper's words (" Hello", " world.") as one text, and each word's character span in it."""
    text, spans = "", []
    for w in words:
        token = w if text else w.lstrip()
        begin = len(text) + len(token) - len(token.lstrip())
        text += token
        spans.append((begin, len(text.rstrip())))
    return text, spans


def word_range(spans: list[tuple[int, int]], start_char: int, end_char: int, touching: bool = False) -> tuple[int, int] | None:
    """First and last index of the words that begin inside [start_char, end_char), or with
    `touching`, of every word that overlaps it (a name inside "(Margaret's" still takes the word)."""
    if touching:
        idx = [i for i, (a, b) in enumerate(spans) if a < end_char and b > start_char]
    else:
        idx = [i for i, (a, _) in enumerate(spans) if start_char <= a < end_char]
    return (idx[0], idx[-1]) if idx else None


def speaker_turns(transcript: Transcript) -> list[tuple[str | None, list[Word]]]:
    """Consecutive segments of the same speaker, as word lists: quotes never cross a turn."""
    turns: list[tuple[str | None, list[Word]]] = []
    for seg in transcript.segments:
        if not seg.words:
            continue
        if turns and turns[-1][0] == seg.speaker:
            turns[-1][1].extend(seg.words)
        else:
            turns.append((seg.speaker, list(seg.words)))
    return turns
