"""VAD plumbing (regions, batches, time mapping) and the quality rules (non-speech, confidence, language)."""

from __future__ import annotations

import numpy as np

from storypipe.core.models import Segment, Word
from storypipe.tasks.transcribe import quality, vad


def seg(text, start=0.0, end=1.0, no_speech=0.01, logprob=-0.2, ratio=1.2, probs=None):
    tokens = text.split()
    probs = probs or [0.9] * len(tokens)
    step = (end - start) / max(1, len(tokens))
    words = [Word(word=" " + t, start=start + i * step, end=start + (i + 1) * step, probability=p)
             for i, (t, p) in enumerate(zip(tokens, probs, strict=True))]
    return Segment(id=0, start=start, end=end, text=text, avg_logprob=logprob, no_speech_prob=no_speech,
                   compression_ratio=ratio, words=words)


def test_merge_bridges_short_pauses_only():
    assert vad.merge_regions([(0, 1), (1.5, 2), (5, 6)], bridge_s=1.0) == [(0, 2), (5, 6)]


def test_batches_are_bounded_and_cover_everything():
    regions = [(0.0, 100.0), (200.0, 450.0), (500.0, 510.0)]
    groups = vad.batches(regions, 120.0)
    assert all(sum(e - s for s, e in g) <= 120.0 + 1e-6 for g in groups)
    assert sum(e - s for g in groups for s, e in g) == sum(e - s for s, e in regions)


def test_a_long_region_is_cut_in_a_pause_not_in_a_word():
    raw = [(0.0, 50.0), (50.6, 140.0), (140.4, 260.0)]  # pauses under bridge_s: one region after merging
    regions = vad.merge_regions(raw, bridge_s=1.0)
    pauses = vad.pauses_within(raw, bridge_s=1.0)
    assert regions == [(0.0, 260.0)] and pauses == [(50.0, 50.6), (140.0, 140.4)]
    groups = vad.batches(regions, 120.0, pauses)
    assert groups == [[(0.0, 50.3)], [(50.3, 140.2)], [(140.2, 260.0)]]
    # a group with speech in it is closed rather than cutting the next region where there is no pause
    assert vad.batches([(0.0, 100.0), (110.0, 150.0)], 120.0) == [[(0.0, 100.0)], [(110.0, 150.0)]]
    # ...and only a region with no pause in max_s is cut where the room ends
    assert vad.batches([(0.0, 250.0)], 120.0) == [[(0.0, 120.0)], [(120.0, 240.0)], [(240.0, 250.0)]]


def test_silero_leaves_torch_threads_alone():
    """Importing silero_vad sets torch to one thread for the whole process; the VAD must not, or
    Whisper and the voice encoder then run on one core in every thread that starts afterwards."""
    import subprocess
    import sys

    code = (
        "import threading, torch\n"
        "before = torch.get_num_threads()\n"
        "from storypipe.tasks.transcribe import vad\n"
        "from storypipe.core.settings import VadSettings\n"
        "import numpy as np\n"
        "vad.speech_regions(np.zeros(16000, dtype=np.float32), VadSettings())\n"
        "seen = []\n"
        "t = threading.Thread(target=lambda: seen.append(torch.get_num_threads())); t.start(); t.join()\n"
        "print(before, torch.get_num_threads(), seen[0])\n"
    )
    # Two threads to start with, whatever an earlier test (Dask's workers ask for one) left behind.
    env = {k: v for k, v in __import__("os").environ.items() if not k.endswith("_NUM_THREADS")}
    env.update(OMP_NUM_THREADS="2", MKL_NUM_THREADS="2")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    before, main, fresh = map(int, out.stdout.split())
    assert before == 2 and main == before and fresh == before


def test_compact_maps_times_back():
    speech = np.arange(40 * 16000, dtype=np.float32)
    packed = vad.compact(speech, [(2.0, 5.0), (20.0, 30.0)])
    assert packed.duration == 13.0
    assert packed.to_original(0.5) == 2.5 and packed.to_original(3.5) == 20.5
    assert packed.to_original(3.0, is_end=True) == 5.0 and packed.to_original(3.0) == 20.0
    restored = vad.restore_times([seg("one two three", 2.0, 4.0)], packed)[0]
    assert restored.words[0].start == 4.0 and restored.words[1].end == 5.0  # first region
    assert restored.words[2].start == 20.333 and restored.words[2].end == 21.0  # across the cut
    assert restored.start == restored.words[0].start


def test_repeats_detects_loops():
    assert quality.repeats("thank you thank you thank you thank you") == 4
    assert quality.repeats("I went home and then I went out") == 1
    assert quality.repeats("no no no no no") == 5


def test_non_speech_segments_are_dropped_with_reasons():
    segments = [
        seg("I went to the group every week."),
        seg("Thank you.", no_speech=0.9, logprob=-1.5),
        seg("the the the the the the", ratio=3.1),
        seg("so so so so", ratio=1.5),
    ]
    kept, dropped = quality.drop_non_speech(segments, quality.FilterSettings())
    assert [s.text for s in kept] == ["I went to the group every week."]
    assert dropped == {"no speech": 1, "repetitive": 1, "loop": 1}


def test_confidence_flags_words_and_segments():
    cfg = quality.ConfidenceSettings()
    sure, unsure = quality.flag_confidence(
        [seg("we met at the hall", probs=[0.9, 0.95, 0.3, 0.9, 0.9]),
         seg("mumbled words here", probs=[0.2, 0.3, 0.9], logprob=-1.2)], cfg)
    assert [w.low_confidence for w in sure.words] == [False, False, True, False, False]
    assert not sure.low_confidence and unsure.low_confidence


def test_language_warnings():
    cfg = quality.ConfidenceSettings()
    english = [seg("we met at the hall", probs=[0.9] * 5)]
    garbled = [seg("we met at the hall", probs=[0.2] * 5)]
    assert quality.language_warnings(english, False, None, cfg) == []
    assert "may not be English" in quality.language_warnings(garbled, False, None, cfg)[0]
    assert "only understands English" in quality.language_warnings(english, False, "fr", cfg)[0]
    assert quality.language_warnings(garbled, True, "fr", cfg) == []


def test_whisper_clips_never_end_past_the_audio():
    from storypipe.tasks.transcribe.engine import whisper_clips

    samples = 10.864 * 16000  # 1086.4 frames of 10 ms
    assert whisper_clips([(0.0, 10.864)], int(samples)) == "0"
    assert whisper_clips([(0.0, 3.0), (5.0, 10.864)], int(samples)) == [0.0, 3.0, 5.0, 10.86]
    assert whisper_clips([], int(samples)) == "0"
