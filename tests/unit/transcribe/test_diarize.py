"""Mono diarization (tasks/transcribe/speakers.py): the expected number of voices is always found,
turns stay whole, turns change where people take them, and on real speech most words are right.

The clustering and the Viterbi pass run on synthetic voice embeddings (the voice encoder is replaced
by vectors whose voice is known), so these tests say what the decisions do, not what resemblyzer
hears. The last test runs the real encoder on a committed two-person recording.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from storypipe.core.models import Segment, Word
from storypipe.core.settings import DiarizeSettings
from storypipe.tasks.common.audio import decode_pcm16
from storypipe.tasks.transcribe import speakers
from storypipe.tasks.transcribe.speakers import STORYTELLER, label_speakers

DATA = Path(__file__).resolve().parents[2] / "data"
RATE = 16000


def words_at(spec: list[tuple[str, float, float]]) -> list[Segment]:
    """One segment per word: (text, start, end)."""
    return [Segment(id=i, start=a, end=b, text=w, avg_logprob=-0.2, no_speech_prob=0.01,
                    words=[Word(word=" " + w, start=a, end=b, probability=0.9)])
            for i, (w, a, b) in enumerate(spec)]


def conversation(turns: list[tuple[int, int]], gap_in_turn: float = 0.05, gap_between: float = 0.6,
                 word_s: float = 0.3) -> tuple[list[Segment], np.ndarray]:
    """Segments for turns of (voice, words): words word_s long, gap_in_turn apart, gap_between turns."""
    spec, truth, t = [], [], 0.0
    for n, (voice, count) in enumerate(turns):
        if n:
            t += gap_between - gap_in_turn
        for k in range(count):
            end = "." if k == count - 1 else ""
            spec.append((f"w{len(spec)}{end}", round(t, 3), round(t + word_s, 3)))
            truth.append(voice)
            t += word_s + gap_in_turn
    return words_at(spec), np.array(truth)


def fake_encoder(monkeypatch, truth: np.ndarray, similarity: float, noise: float, seed: int = 0,
                 voices: int = 2, loud: dict[int, int] | None = None) -> None:
    """Replace the voice-encoder evidence: one window per word, each its voice's centre plus noise,
    normalised; voice centres `similarity` alike (cosine), `noise` the noise's length relative to
    the distance between two centres (0.5: a window strays half-way to the other voice, about
    what real windows do). `loud` puts a word's window on another voice (a cough, a laugh)."""
    rng = np.random.default_rng(seed)
    dim = 64
    base = rng.standard_normal(dim)
    base /= np.linalg.norm(base)
    centres = []
    for _ in range(voices):
        d = rng.standard_normal(dim)
        d -= (d @ base) * base
        d /= np.linalg.norm(d)
        centres.append(similarity ** 0.5 * base + (1 - similarity) ** 0.5 * d)
    loud = loud or {}
    noise *= (2 * (1 - similarity)) ** 0.5 if similarity < 1 else 1.0

    def centre(j: int) -> np.ndarray:
        if j in loud:  # a laugh or a cough: more like the other voice than like its own
            return 0.3 * centres[int(truth[j])] + 0.7 * centres[loud[j]]
        return centres[int(truth[j])]

    def evidence(items, mel, cfg):
        emb = np.stack([centre(j) + rng.standard_normal(dim) * noise / dim ** 0.5 for j in range(len(items))])
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        runs = speakers.speech_runs(items, cfg)
        return speakers._Evidence(runs, emb.astype(np.float32), np.zeros(len(items), int), np.ones(len(items)),
                                  [np.array([j]) for j in range(len(items))])

    monkeypatch.setattr(speakers, "_evidence", evidence)


def labels_of(out: list[Segment]) -> list[str]:
    return [s.speaker for s in out for _ in s.words]


def accuracy(labels: list[str], truth: np.ndarray) -> float:
    """Word accuracy under the best renaming of the voices (two voices)."""
    names = sorted(set(labels))
    ids = np.array([names.index(x) for x in labels])
    return max(float(np.mean(ids == truth)), float(np.mean(ids != truth))) if len(names) <= 2 else float("nan")


TURNS = [(1, 6), (0, 25), (1, 4), (0, 30), (1, 8), (0, 20), (1, 3)]


def silence(segments: list[Segment]) -> np.ndarray:
    return np.zeros(int((segments[-1].end + 1) * RATE), np.float32)


# --- two voices are two voices -------------------------------------------------------------------


@pytest.mark.parametrize("similarity", [0.6, 0.9, 0.97, 0.99])
def test_two_expected_voices_are_never_merged_into_one(monkeypatch, similarity):
    """The old guard merged voice centres more alike than 0.90 and labelled everyone the storyteller;
    two voices are now always two, however alike, and the words still go to the right one."""
    segments, truth = conversation(TURNS)
    fake_encoder(monkeypatch, truth, similarity, noise=0.3)
    out = label_speakers(segments, silence(segments), None, n_speakers=2)
    labels = labels_of(out)
    assert set(labels) == {"storyteller", "interviewer"}
    assert accuracy(labels, truth) >= 0.95


def test_voices_the_encoder_cannot_tell_apart_still_give_two(monkeypatch):
    """Pure noise (no voice in the windows at all): the count comes from the sidecar, not from a
    guess, so both voices still get words."""
    segments, truth = conversation(TURNS)
    fake_encoder(monkeypatch, truth, similarity=1.0, noise=1.0)
    assert set(labels_of(label_speakers(segments, silence(segments), None, n_speakers=2))) == {
        "storyteller", "interviewer"}


def test_even_two_words_make_two_voices_when_two_are_expected(monkeypatch):
    segments, truth = conversation([(0, 1), (1, 1)])
    fake_encoder(monkeypatch, truth, similarity=1.0, noise=0.0)
    assert len(set(labels_of(label_speakers(segments, silence(segments), None, n_speakers=2)))) == 2


def test_speakers_1_is_a_monologue(monkeypatch):
    segments, truth = conversation(TURNS)
    fake_encoder(monkeypatch, truth, similarity=0.5, noise=0.3)
    assert set(labels_of(label_speakers(segments, silence(segments), None, n_speakers=1))) == {STORYTELLER}


def test_three_expected_voices_give_three(monkeypatch):
    turns = [(0, 10), (1, 8), (2, 9), (0, 7), (2, 6), (1, 10)]
    segments, truth = conversation(turns)
    fake_encoder(monkeypatch, truth, similarity=0.9, noise=0.3, voices=3)
    labels = labels_of(label_speakers(segments, silence(segments), None, n_speakers=3))
    assert len(set(labels)) == 3
    # each true voice is one label
    assert all(len({lab for lab, t in zip(labels, truth) if t == v}) == 1 for v in range(3))


# --- turns ---------------------------------------------------------------------------------------


def test_a_turn_stays_whole_through_a_word_that_sounds_like_the_other_voice(monkeypatch):
    """A cough or a laugh mid-turn (no pause around it) does not hand the turn over."""
    segments, truth = conversation([(0, 12), (1, 30), (0, 12)])
    odd = 12 + 15
    fake_encoder(monkeypatch, truth, similarity=0.8, noise=1.0, loud={odd: 0})
    labels = labels_of(label_speakers(segments, silence(segments), None, n_speakers=2))
    assert labels[odd] == labels[odd - 1] == labels[odd + 1]
    assert accuracy(labels, truth) == 1.0


def test_a_short_reply_between_pauses_is_its_own_turn(monkeypatch):
    """'Right.' between two long turns, with pauses around it, is the other person."""
    segments, truth = conversation([(1, 8), (0, 30), (1, 1), (0, 30), (1, 8)], gap_between=0.9)
    fake_encoder(monkeypatch, truth, similarity=0.8, noise=0.5)
    labels = labels_of(label_speakers(segments, silence(segments), None, n_speakers=2))
    assert labels[38] == labels[0] != labels[37] == labels[39]
    assert accuracy(labels, truth) == 1.0


def test_a_change_of_speaker_lands_on_the_pause():
    """Evidence that is torn for a word or two near a turn change: the change goes where the
    pause is (its rank among the recording's gaps makes the change cheap there)."""
    segments, _ = conversation([(0, 6), (1, 6)], gap_between=0.8)
    items = speakers._items(segments)
    cfg = DiarizeSettings()
    scores = np.zeros((12, 2))
    scores[:5, 0] = scores[7:, 1] = 2.0  # words 5 and 6 (either side of the pause) are unclear
    scores[5] = scores[6] = [0.05, 0.0]
    ids = speakers.viterbi(scores, speakers.switch_costs(items, cfg))
    assert ids.tolist() == [0] * 6 + [1] * 6


def test_switching_is_cheapest_after_long_pauses_and_questions():
    segments = words_at([("So", 0, .3), ("what", .35, .6), ("happened?", .65, 1.0), ("Well", 1.8, 2.0),
                         ("it", 2.05, 2.2), ("began.", 2.25, 2.6), ("Then", 2.9, 3.1)])
    cost = speakers.switch_costs(speakers._items(segments), DiarizeSettings())
    assert cost[3] < cost[6] < cost[1]  # after "happened?" and a long pause < after "began." < mid-sentence
    assert cost.min() >= 0


def test_pauses_are_long_for_this_recording_not_by_a_fixed_length():
    """Slow speech (every gap twice as long) has the same pauses and speech runs."""
    spec = [("a", 0, .3), ("b", .35, .6), ("c", 1.2, 1.5), ("d", 1.52, 1.8), ("e", 2.6, 2.9), ("f", 2.95, 3.2)]
    slow = [(w, a * 2, b * 2) for w, a, b in spec]
    fast_items, slow_items = speakers._items(words_at(spec)), speakers._items(words_at(slow))
    np.testing.assert_allclose(speakers.gap_ranks(fast_items), speakers.gap_ranks(slow_items))
    cfg = DiarizeSettings(max_run_s=100.0, run_break_rank=0.5)
    assert speakers.speech_runs(fast_items, cfg) == speakers.speech_runs(slow_items, cfg) == [(0, 2), (2, 4), (4, 6)]


def test_long_runs_are_cut_into_sub_runs_at_their_longest_gap():
    spec = [(f"w{k}", k * 0.4 + (0.3 if k >= 10 else 0), k * 0.4 + 0.35 + (0.3 if k >= 10 else 0)) for k in range(20)]
    items = speakers._items(words_at(spec))
    runs = speakers.speech_runs(items, DiarizeSettings(max_run_s=5.0, run_break_rank=0.99))
    assert (0, 10) in runs and all(items[b - 1].end - items[a].start <= 5.0 for a, b in runs)


# --- real speech ---------------------------------------------------------------------------------


def committed_words() -> tuple[list[Segment], list[str]]:
    """tests/data/two-voices.words.tsv: Whisper's words of two-voices.flac and who said each."""
    rows = [line.split("\t") for line in (DATA / "two-voices.words.tsv").read_text().splitlines()
            if line and not line.startswith("#")]
    segments: list[Segment] = []
    truth: list[str] = []
    for seg_id in sorted({int(r[0]) for r in rows}):
        words = [Word(word=r[1], start=float(r[2]), end=float(r[3]), probability=float(r[4]))
                 for r in rows if int(r[0]) == seg_id]
        truth += [r[5] for r in rows if int(r[0]) == seg_id]
        segments.append(Segment(id=len(segments), start=words[0].start, end=words[-1].end,
                                text="".join(w.word for w in words).strip(), avg_logprob=-0.3,
                                no_speech_prob=0.01, words=words))
    return segments, truth


def test_a_real_two_person_recording_gets_its_words_right():
    """A LibriVox reader and J.F. Kennedy taking turns (mono, real voices, Whisper's own words):
    at least 0.9 of the words go to the right person, under the pipeline's own names (the reader,
    who says more, is the storyteller)."""
    segments, truth = committed_words()
    mono = decode_pcm16(DATA / "two-voices.flac", RATE, 1).astype(np.float32) / 32768.0
    started = time.perf_counter()
    out = label_speakers(segments, mono, None, n_speakers=2)
    assert time.perf_counter() - started < 20
    labels = labels_of(out)
    expected = ["storyteller" if t == "reader" else "interviewer" for t in truth]
    assert np.mean([a == b for a, b in zip(labels, expected)]) >= 0.9
