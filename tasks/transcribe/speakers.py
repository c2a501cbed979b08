"""Speakers: who said each word, so a quote is never a mix of two people.

Every word of the transcript gets a speaker, and a segment is split wherever the speaker changes
between two of its words. Two ways to tell the voices apart, chosen per recording:

- **Split stereo** (one voice per channel, e.g. two lapel mics into a stereo recorder): each word goes
  to the channel that is louder over its span. Exact and cheap, so it is used whenever two speakers
  are expected and the channels really carry different voices (`is_split_stereo`).
- **Mono** (or stereo whose channels carry the same mix): offline diarization. Resemblyzer's bundled
  voice encoder embeds sliding windows of speech (only where the recogniser found words, silence cut
  out), the windows are clustered into `n_speakers` voices, each word takes the voice whose centre the
  windows covering it are nearest to, and short flips are smoothed away.

Names: the voice with the most words is `storyteller`, the next `interviewer`, then `speaker 3`,
`speaker 4`... A team can override this per recording with `roles` (from the sidecar):

    roles key   meaning                                           example
    ---------   -----------------------------------------------   ------------------------------
    "left"      the voice on the left (first) channel             {"left": "interviewer",
    "right"     the voice on the right (second) channel            "right": "storyteller"}
    "first"     the first voice heard (the interviewer usually    {"first": "interviewer"}
                opens the recording)

Values are the labels to use (any non-empty text; normally "storyteller" or "interviewer"); voices not
named get the default names not already taken, most words first. "left"/"right" apply only when the
recording is split stereo (otherwise they are ignored and "first", if given, decides); they win over
"first" when both are given. Keys are case-insensitive; any other key is an error (`check_roles`).

The tuning is `[speakers]` in config/pipeline.toml (SpeakerSettings: `stereo` and `diarize`), and
the audio's rate is `ingest.speech_sample_rate`; each function takes its part of them, and the
shipped values when a caller gives none.
"""

from __future__ import annotations

import functools
import logging
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from storypipe.core.models import SPEAKER_ROLE_KEYS, Segment, Word
from storypipe.core.settings import DiarizeSettings, IngestSettings, SpeakerSettings, StereoSettings

log = logging.getLogger("storypipe")

# --- names ---------------------------------------------------------------------------------------
STORYTELLER = "storyteller"
INTERVIEWER = "interviewer"
ROLE_KEYS = SPEAKER_ROLE_KEYS  # one list, shared with the sidecar validation


def _rate(rate: int | None) -> int:
    """The sample rate of `mono` and `channels` (as decoded for the recogniser)."""
    return rate or IngestSettings().speech_sample_rate


# --- the public entry point ----------------------------------------------------------------------


def label_speakers(
    segments: list[Segment],
    mono: np.ndarray,
    channels: np.ndarray | None,
    n_speakers: int | None = None,
    roles: Mapping[str, str] | None = None,
    cfg: SpeakerSettings | None = None,
    rate: int | None = None,
) -> list[Segment]:
    """New segments, ids 0..n-1, each spoken by one person: split wherever the speaker changes.

    `mono` is the float32 audio the recogniser saw (at `rate`, the speech sample rate); `channels`
    None or a (samples, 2) float32 array of the original's two channels at the same rate.
    `n_speakers` None: cfg.default_count. A split segment's parts keep its avg_logprob,
    no_speech_prob, compression_ratio and low_confidence; text and times come from their words.
    """
    cfg = cfg or SpeakerSettings()
    n_speakers = cfg.default_count if n_speakers is None else n_speakers
    roles = check_roles(roles)
    items = _items(segments)
    if not items:
        return []
    if n_speakers <= 1:
        ids = np.zeros(len(items), dtype=int)
        names = {0: STORYTELLER}
    else:
        split = n_speakers == 2 and is_split_stereo(channels, cfg.stereo, rate)
        if split:
            ids = attribute_by_channel(items, channels, cfg.stereo, rate)
            log.info("speakers: split stereo, one voice per channel")
        else:
            ids = diarize(items, mono, n_speakers, cfg.diarize, rate)
        if not split and ({"left", "right"} & roles.keys()):
            log.warning("speakers: roles name the left/right channel, but this recording does not have one "
                        "voice per channel; those roles were not used")
        names = _names(ids, items, roles, split_stereo=split)
    return _rebuild(segments, items, [names[int(i)] for i in ids])


def check_roles(roles: Mapping[str, str] | None) -> dict[str, str]:
    """The role overrides, keys lower-cased; a plain-words ValueError for anything we'd misread."""
    if not roles:
        return {}
    out: dict[str, str] = {}
    for key, value in roles.items():
        k = str(key).strip().lower()
        if k not in ROLE_KEYS:
            raise ValueError(f"unknown speaker role key {key!r}: use {', '.join(ROLE_KEYS)}")
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"speaker role {key!r} needs a name, e.g. 'storyteller' or 'interviewer'")
        out[k] = value.strip()
    if "left" in out and out.get("left") == out.get("right"):
        raise ValueError(f"left and right channels cannot both be {out['left']!r}")
    return out


# --- words as items ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Item:
    """One thing to attribute: a word, or a whole segment that has no words."""

    segment: int
    word: int | None
    start: float
    end: float
    words: int  # how many words it counts for (role by word count)


def _items(segments: list[Segment]) -> list[_Item]:
    items = []
    for i, seg in enumerate(segments):
        if seg.words:
            items += [_Item(i, j, w.start, max(w.end, w.start), 1) for j, w in enumerate(seg.words)]
        else:
            items.append(_Item(i, None, seg.start, max(seg.end, seg.start), len(seg.text.split())))
    return items


def _rebuild(segments: list[Segment], items: list[_Item], labels: list[str]) -> list[Segment]:
    """Cut each segment into runs of one speaker; text and times rebuilt from the run's words."""
    out: list[Segment] = []
    by_segment: dict[int, list[tuple[_Item, str]]] = {}
    for item, label in zip(items, labels):
        by_segment.setdefault(item.segment, []).append((item, label))
    for i, seg in enumerate(segments):
        pairs = by_segment[i]
        if pairs[0][0].word is None:
            out.append(seg.model_copy(update={"id": len(out), "speaker": pairs[0][1]}))
            continue
        run: list[Word] = []
        for k, (item, label) in enumerate(pairs):
            run.append(seg.words[item.word])
            if k + 1 == len(pairs) or pairs[k + 1][1] != label:
                out.append(seg.model_copy(update={
                    "id": len(out), "speaker": label, "start": run[0].start, "end": run[-1].end,
                    "text": "".join(w.word for w in run).strip(), "words": [w.model_copy() for w in run],
                }))
                run = []
    return out


def _names(ids: np.ndarray, items: list[_Item], roles: dict[str, str], split_stereo: bool) -> dict[int, str]:
    """Voice id -> label: overrides first, then storyteller/interviewer/speaker N by words spoken."""
    counts: dict[int, int] = {}
    first_at: dict[int, int] = {}
    for k, (voice, item) in enumerate(zip(ids, items)):
        counts[int(voice)] = counts.get(int(voice), 0) + item.words
        first_at.setdefault(int(voice), k)
    voices = sorted(counts, key=lambda v: (-counts[v], first_at[v]))
    names: dict[int, str] = {}
    if split_stereo:
        for key, channel in (("left", 0), ("right", 1)):
            if key in roles and channel in counts:
                names[channel] = roles[key]
    if "first" in roles and roles["first"] not in names.values():
        opener = _first_voice(ids, items)
        if opener not in names:
            names[opener] = roles["first"]
    defaults = [STORYTELLER, INTERVIEWER] + [f"speaker {n}" for n in range(3, len(voices) + len(names) + 3)]
    free = [d for d in defaults if d not in names.values()]
    for v in voices:
        if v not in names:
            names[v] = free.pop(0)
    return names


def _first_voice(ids: np.ndarray, items: list[_Item], min_s: float = 1.0, min_words: int = 3) -> int:
    """The voice of the first real turn (a run of ≥ min_s or ≥ min_words), not a stray first word."""
    start = 0
    for k in range(1, len(ids) + 1):
        if k == len(ids) or ids[k] != ids[start]:
            run = items[start:k]
            if sum(i.words for i in run) >= min_words or run[-1].end - run[0].start >= min_s:
                return int(ids[start])
            start = k
    return int(ids[0])


# --- split stereo --------------------------------------------------------------------------------


def is_split_stereo(
    channels: np.ndarray | None, cfg: StereoSettings | None = None, rate: int | None = None,
) -> bool:
    """True when the two channels carry different voices (one per channel), not one mix twice.

    Looks at the sounding frames' left-minus-right level: in split stereo most frames are clearly
    one-sided and both sides have their share. Dual mono (near-identical channels), a stereo mic pair
    or a mix with the voices near the centre → False, and the mono mix is diarized instead.
    """
    if channels is None or channels.ndim != 2 or channels.shape[1] != 2:
        return False
    cfg = cfg or StereoSettings()
    frame = max(1, int(cfg.frame_s * _rate(rate)))
    power, cross = _frame_power(channels, frame)
    if len(power) == 0:
        return False
    db = 10 * np.log10(power + 1e-12)
    loud = db.max(axis=1)
    active = (loud > np.percentile(loud, 95) - cfg.active_db) & (loud > cfg.floor_dbfs)
    if active.sum() * cfg.frame_s < cfg.min_active_s:
        return False
    energy = power.sum(axis=0)
    if energy.min() == 0 or cross.sum() / np.sqrt(energy[0] * energy[1]) >= cfg.identical_correlation:
        return False
    diff = db[active, 0] - db[active, 1]
    left_share, right_share = float(np.mean(diff > cfg.side_db)), float(np.mean(diff < -cfg.side_db))
    log.debug("stereo: %.2f of sounding frames left-only, %.2f right-only", left_share, right_share)
    return min(left_share, right_share) >= cfg.min_side_share and left_share + right_share >= cfg.min_one_sided_share


def _frame_power(channels: np.ndarray, frame: int, block: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Mean power per frame and channel, and per-frame left·right products (block by block: an hour
    of stereo would not fit in memory as float64 at once)."""
    n = len(channels) // frame
    power = np.empty((n, 2))
    cross = np.empty(n)
    for i in range(0, n, block):
        x = channels[i * frame: min(n, i + block) * frame].astype(np.float64).reshape(-1, frame, 2)
        power[i: i + len(x)] = np.mean(x**2, axis=1)
        cross[i: i + len(x)] = np.mean(x[:, :, 0] * x[:, :, 1], axis=1)
    return power, cross


def attribute_by_channel(
    items: list[_Item], channels: np.ndarray, cfg: StereoSettings | None = None, rate: int | None = None,
) -> np.ndarray:
    """0 (left) or 1 (right) per word: the louder channel over the word's span.

    Nearly equal levels (within cfg.word_margin_db) lean towards the neighbouring words: when the nearest decided
    words on both sides agree (or only one side has any), the word takes their channel; at a turn
    boundary the louder channel still decides. Overlaps and breaths don't flip the speaker.
    """
    cfg, rate = cfg or StereoSettings(), _rate(rate)
    n = len(channels)
    diffs = np.empty(len(items))
    for k, item in enumerate(items):
        a = min(int(item.start * rate), n - 1)
        b = min(max(int(item.end * rate), a + 1), n)
        power = np.mean(channels[a:b].astype(np.float64) ** 2, axis=0)
        diffs[k] = 10 * np.log10(power[0] + 1e-12) - 10 * np.log10(power[1] + 1e-12)
    louder = (diffs < 0).astype(int)
    decided = np.abs(diffs) >= cfg.word_margin_db
    ids = louder.copy()
    marks = np.flatnonzero(decided)
    for k in np.flatnonzero(~decided):
        p = int(np.searchsorted(marks, k))  # marks[p - 1] < k < marks[p]
        sides = {int(louder[marks[p - 1]])} if p > 0 else set()
        sides |= {int(louder[marks[p]])} if p < len(marks) else set()
        if len(sides) == 1:
            ids[k] = sides.pop()
    return ids


def _fill_undecided(ids: list[int | None]) -> list[int]:
    decided = [i for i in ids if i is not None]
    if not decided:
        return [0] * len(ids)
    out, last = [], decided[0]
    for i in ids:
        last = last if i is None else i
        out.append(last)
    return out


# --- mono diarization ----------------------------------------------------------------------------

_ENCODER_LOCK = threading.Lock()


@functools.cache
def _load_encoder():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # webrtcvad's pkg_resources deprecation notice
        from resemblyzer import VoiceEncoder

    # The weights (pretrained.pt) ship inside the resemblyzer wheel: nothing is downloaded.
    return VoiceEncoder("cpu", verbose=False).eval()


def voice_encoder():
    """Resemblyzer's voice encoder, loaded once per process (thread-safe)."""
    with _ENCODER_LOCK:
        return _load_encoder()


@functools.cache
def _mel_basis(n_fft: int, n_mels: int, rate: int | None = None) -> np.ndarray:
    """librosa.filters.mel(sr=rate, n_fft, n_mels) (Slaney's mel scale and area normalisation).

    Written out because librosa's first call costs about 2.6 s of imports (numba) in every process;
    tests/unit/transcribe/test_speakers.py checks it against librosa."""
    rate = _rate(rate)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0

    def hz_to_mel(f):
        f = np.asarray(f, dtype=np.float64)
        return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)

    def mel_to_hz(m):
        return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)

    fft_freqs = np.fft.rfftfreq(n_fft, 1.0 / rate)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(rate / 2), n_mels + 2))
    fdiff, ramps = np.diff(mel_f), np.subtract.outer(mel_f, fft_freqs)
    weights = np.zeros((n_mels, len(fft_freqs)), dtype=np.float32)
    for i in range(n_mels):
        weights[i] = np.maximum(0, np.minimum(-ramps[i] / fdiff[i], ramps[i + 2] / fdiff[i + 1]))
    weights *= (2.0 / (mel_f[2: n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights


def _mel(mono: np.ndarray, chunk_frames: int = 6000, rate: int | None = None) -> np.ndarray:
    """Resemblyzer's 40-band mel power frames (25 ms window, 10 ms hop) of the whole recording.

    Same numbers as resemblyzer.audio.wav_to_mel_spectrogram (librosa's melspectrogram with a
    periodic Hann window), computed a minute at a time: an hour's spectrogram in one go needs
    gigabytes.
    """
    rate = _rate(rate)
    n_fft, hop = rate * 25 // 1000, rate * 10 // 1000
    n, pad = len(mono), n_fft // 2  # librosa's centring: zeros before and after, added chunk by chunk
    frames = 1 + (n + 2 * pad - n_fft) // hop
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)
    basis = _mel_basis(n_fft, 40, rate)
    out = np.empty((frames, 40), np.float32)  # filled chunk by chunk: no list of pieces joined at the end
    for i in range(0, frames, chunk_frames):
        j = min(frames, i + chunk_frames)
        start, end = i * hop - pad, (j - 1) * hop + n_fft - pad
        piece = np.asarray(mono[max(0, start): min(n, end)], dtype=np.float32)
        piece = np.pad(piece, (max(0, -start), max(0, end - n)))
        windows = np.lib.stride_tricks.sliding_window_view(piece, n_fft)[::hop] * window
        power = np.abs(np.fft.rfft(windows, axis=1).astype(np.complex64)) ** 2
        out[i:j] = power @ basis.T
    return out


def embed_windows(frames: np.ndarray, starts: np.ndarray, width: int, batch: int = 64) -> np.ndarray:
    """L2-normalised voice embeddings of frames[s:s+width] for each start s."""
    import torch

    encoder = voice_encoder()
    out = []
    with torch.inference_mode():
        for i in range(0, len(starts), batch):
            chunk = np.stack([frames[s: s + width] for s in starts[i: i + batch]])
            out.append(encoder(torch.from_numpy(chunk)).numpy())
    emb = np.concatenate(out)
    return emb / (np.linalg.norm(emb, axis=1, keepdims=True) + 1e-9)


def diarize(
    items: list[_Item], mono: np.ndarray, n_speakers: int, cfg: DiarizeSettings | None = None, rate: int | None = None,
) -> np.ndarray:
    """A voice id (0..n_speakers-1) per item, from voice-encoder windows over the words' speech."""
    cfg = cfg or DiarizeSettings()
    fps = 100  # mel frames per second (10 ms hop)
    zeros = np.zeros(len(items), dtype=int)
    mel = _mel(mono, rate=rate)
    mel *= np.float32(_gain(mono, items, rate=rate) ** 2)  # power: the square of the level gain (in place: an hour is 58 MB)
    total = len(mel)
    spans = [(min(int(it.start * fps), total - 1), min(max(int(np.ceil(it.end * fps)), int(it.start * fps) + 1), total))
             for it in items]
    mask = np.zeros(total, dtype=bool)
    pad = int(cfg.word_pad_s * fps)
    for a, b in spans:
        mask[max(0, a - pad): b + pad] = True
    speech = np.flatnonzero(mask)  # compact position -> mel frame
    width, hop = int(cfg.window_s * fps), max(1, int(cfg.hop_s * fps))
    if len(speech) < max(cfg.min_speech_s * fps, width):
        log.info("speakers: too little speech to tell voices apart; one speaker")
        return zeros
    starts = np.arange(0, len(speech) - width + 1, hop)
    if starts[-1] != len(speech) - width:
        starts = np.append(starts, len(speech) - width)
    speech_mel = mel[speech]
    del mel  # only the speech frames are needed from here on
    emb = embed_windows(speech_mel, starts, width)
    del speech_mel
    k = min(n_speakers, len(emb))
    centroids = merge_same_voices(_cluster(emb, k, cfg.max_cluster_windows), cfg.same_voice_similarity)
    if len(centroids) < 2:
        log.info("speakers: the voices are too alike to be two people; one speaker")
        return zeros
    sims = emb @ centroids.T  # (windows, voices)
    # Each speech frame scores each voice by the mean similarity of the windows covering it.
    acc = np.zeros((len(speech) + 1, len(centroids)))
    cover = np.zeros(len(speech) + 1)
    np.add.at(acc, starts, sims)
    np.add.at(acc, starts + width, -sims)
    np.add.at(cover, starts, 1)
    np.add.at(cover, starts + width, -1)
    frame_scores = np.cumsum(acc, axis=0)[:-1] / np.maximum(np.cumsum(cover)[:-1], 1)[:, None]
    position = np.full(total, -1)
    position[speech] = np.arange(len(speech))
    item_scores = np.full((len(items), len(centroids)), np.nan)
    for n, (a, b) in enumerate(spans):
        pos = position[a:b]
        pos = pos[pos >= 0]
        if len(pos):
            item_scores[n] = frame_scores[pos].mean(axis=0)
    known = ~np.isnan(item_scores[:, 0])
    scores = np.nan_to_num(item_scores, nan=-np.inf)
    weight = np.array([it.words for it in items], dtype=float)
    alive = np.ones(len(centroids), dtype=bool)
    while True:  # drop voices with too few words, smallest first; their words go to the next nearest
        ids = np.argmax(np.where(alive, scores, -np.inf), axis=1)
        words = np.bincount(ids[known], weights=weight[known], minlength=len(centroids))
        small = np.flatnonzero(alive & (words < cfg.min_voice_words))
        if alive.sum() <= 1 or len(small) == 0:
            break
        alive[small[np.argmin(words[small])]] = False
    if alive.sum() <= 1:
        log.info("speakers: only one voice found; one speaker")
        return zeros
    remap = np.cumsum(alive) - 1  # surviving voices renumbered 0..m-1
    ids = np.array(_fill_undecided([int(remap[v]) if ok else None for v, ok in zip(ids, known)]), dtype=int)
    ids = smooth_flips(ids, items, cfg)
    ids = snap_to_pauses(ids, items, cfg)
    return ids


def _gain(mono: np.ndarray, items: list[_Item], target_dbfs: float = -30.0, rate: int | None = None) -> float:
    """The gain that raises quiet speech to the level the encoder was trained on (never lowers it),
    measured on the words only so long silences don't count."""
    rate = _rate(rate)
    total, count = 0.0, 0
    for it in items:
        part = np.asarray(mono[int(it.start * rate): int(it.end * rate)], dtype=np.float64)
        total += float(np.dot(part, part))
        count += len(part)
    if count == 0 or total == 0:
        return 1.0
    rms_db = 10 * np.log10(total / count)
    return float(max(1.0, 10 ** ((target_dbfs - rms_db) / 20)))


def _cluster(emb: np.ndarray, k: int, max_windows: int) -> np.ndarray:
    """k voice centres (unit vectors): agglomerative clustering (cosine, average linkage), refined by
    a few rounds of spherical k-means over all windows."""
    # scipy's linkage rather than scikit-learn's AgglomerativeClustering: the same clustering,
    # without scikit-learn's 0.9 s of imports in every process.
    from scipy.cluster.hierarchy import cut_tree, linkage

    if k <= 1:
        c = emb.mean(axis=0, keepdims=True)
        return c / np.linalg.norm(c, axis=1, keepdims=True)
    step = int(np.ceil(len(emb) / max_windows))
    sample = emb[::step]
    labels = cut_tree(linkage(sample, method="average", metric="cosine"), n_clusters=k).ravel()
    centroids = np.stack([sample[labels == c].mean(axis=0) for c in range(k)])
    for _ in range(10):
        centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
        labels = np.argmax(emb @ centroids.T, axis=1)
        new = np.stack([emb[labels == c].mean(axis=0) if (labels == c).any() else centroids[c] for c in range(k)])
        if np.allclose(new / np.linalg.norm(new, axis=1, keepdims=True), centroids):
            break
        centroids = new
    return centroids / np.linalg.norm(centroids, axis=1, keepdims=True)


def merge_same_voices(centroids: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """Voice centres with any pair more alike than `threshold` (None: the shipped
    same_voice_similarity) merged, most alike first: one person whom clustering split in two because
    there were fewer voices than expected."""
    threshold = DiarizeSettings().same_voice_similarity if threshold is None else threshold
    centroids = centroids / np.linalg.norm(centroids, axis=1, keepdims=True)
    while len(centroids) > 1:
        sims = centroids @ centroids.T
        np.fill_diagonal(sims, -1)
        i, j = np.unravel_index(np.argmax(sims), sims.shape)
        if sims[i, j] < threshold:
            break
        merged = centroids[i] + centroids[j]
        centroids = np.vstack([np.delete(centroids, [i, j], axis=0), merged / np.linalg.norm(merged)])
    return centroids


def smooth_flips(ids: np.ndarray, items: list[_Item], cfg: DiarizeSettings | None = None) -> np.ndarray:
    """A run of ≤ cfg.max_flip_words between two runs of one other speaker joins them, unless pauses of
    cfg.isolated_pause_s set it apart on both sides (then it is probably a real "Yes." or "Right.")."""
    cfg = cfg or DiarizeSettings()
    max_words, isolated_pause_s = cfg.max_flip_words, cfg.isolated_pause_s
    ids = ids.copy()
    runs = _runs(ids)
    for r in range(1, len(runs) - 1):
        a, b = runs[r]
        if b - a > max_words or ids[runs[r - 1][0]] != ids[runs[r + 1][0]]:
            continue
        before = items[a].start - items[a - 1].end
        after = items[b].start - items[b - 1].end
        if before >= isolated_pause_s and after >= isolated_pause_s:
            continue
        ids[a:b] = ids[runs[r - 1][0]]
    return ids


def snap_to_pauses(ids: np.ndarray, items: list[_Item], cfg: DiarizeSettings | None = None) -> np.ndarray:
    """Move each speaker change by up to cfg.snap_words words to the longest pause near it (when that
    pause is longer by more than cfg.snap_min_gain_s)."""
    cfg = cfg or DiarizeSettings()
    max_shift, min_gain_s = cfg.snap_words, cfg.snap_min_gain_s
    ids = ids.copy()
    runs = _runs(ids)
    for r in range(len(runs) - 1):
        (a, b), (_, c) = runs[r], runs[r + 1]
        lo, hi = max(a + 1, b - max_shift), min(c - 1, b + max_shift)
        if lo >= hi:
            continue
        gaps = {j: items[j].start - items[j - 1].end for j in range(lo, hi + 1)}
        best = max(gaps, key=lambda j: (gaps[j], j == b))
        if best != b and gaps[best] > gaps[b] + min_gain_s:
            left, right = ids[a], ids[b]
            ids[a:best] = left
            ids[best:c] = right
            runs[r], runs[r + 1] = (runs[r][0], best), (best, c)
    return ids


def _runs(ids: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index ranges of consecutive equal ids."""
    runs, start = [], 0
    for k in range(1, len(ids) + 1):
        if k == len(ids) or ids[k] != ids[start]:
            runs.append((start, k))
            start = k
    return runs
