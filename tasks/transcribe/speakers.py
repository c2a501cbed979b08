"""Speakers: who said each word, so a quote is never a mix of two people.

Every word of the transcript gets a speaker, and a segment is split wherever the speaker changes
between two of its words. Two ways to tell the voices apart, chosen per recording:

- **Split stereo** (one voice per channel, e.g. two lapel mics into a stereo recorder): each word goes
  to the channel that is louder over its span. Exact and cheap, so it is used whenever two speakers
  are expected and the channels really carry different voices (`is_split_stereo`).
- **Mono** (or stereo whose channels carry the same mix): offline diarization into exactly
  `n_speakers` voices (the sidecar's `speakers:`, else `speakers.default_count`, 2): only
  `speakers: 1` makes a monologue, and no similarity constant ever merges two voices into one.
  1. The words are grouped into speech runs between pauses (a pause: a gap that is long *for this
     recording*, by its rank among the recording's gaps); long runs are cut into sub-runs.
  2. Resemblyzer's bundled voice encoder embeds short windows inside each run (partial
     utterances of the words' own sound, silence cut out, never across a pause; a run shorter than
     a window is embedded whole), and each word pools the windows that cover it.
  3. The windows, each averaged with its neighbours over a few seconds (a voice changes slowly, the
     words every window), are clustered (k-means) into the expected number of voices.
  4. A Viterbi pass over the words re-segments the recording: each word scores each voice by a
     linear discriminant fitted to this recording's own windows (so "how alike is alike" is
     measured here, not fixed), and a change of speaker has a cost that is lower after a long
     pause (by its rank), a sentence end and a question, so each turn stays whole. Voices are
     re-estimated from the words they got and the pass repeated.
  Steps 3-4 start from several context lengths; the result whose voices are most clearly apart
  (mean margin over its spread) is kept. If keeping turns whole ever leaves a voice without words,
  turns are made cheaper to change until it is heard.

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
    text: str = ""  # the word (or the wordless segment's text): a "?" at its end is a turn-taking cue


def _items(segments: list[Segment]) -> list[_Item]:
    items = []
    for i, seg in enumerate(segments):
        if seg.words:
            items += [_Item(i, j, w.start, max(w.end, w.start), 1, w.word) for j, w in enumerate(seg.words)]
        else:
            items.append(_Item(i, None, seg.start, max(seg.end, seg.start), len(seg.text.split()), seg.text))
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


# Mel frames per second: resemblyzer's 10 ms hop (hparams.mel_window_step), as _mel computes them.
MEL_FPS = 100


def embed_windows(windows: list[np.ndarray], batch: int = 64) -> np.ndarray:
    """L2-normalised voice embeddings of mel windows of any length (resemblyzer's partial
    utterances; a pause-to-pause run shorter than a window is embedded whole).

    Windows are batched by length (longest first) and packed, so the LSTM reads each one to its own
    end and no padding reaches the embedding."""
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence

    encoder = voice_encoder()
    out = np.zeros((len(windows), encoder.linear.out_features), dtype=np.float32)
    order = sorted(range(len(windows)), key=lambda j: -len(windows[j]))
    with torch.inference_mode():
        for i in range(0, len(order), batch):
            idx = order[i: i + batch]
            lengths = [max(1, len(windows[j])) for j in idx]
            x = np.zeros((len(idx), lengths[0], windows[idx[0]].shape[1]), dtype=np.float32)
            for row, j in enumerate(idx):
                x[row, : len(windows[j])] = windows[j]
            packed = pack_padded_sequence(torch.from_numpy(x), torch.tensor(lengths), batch_first=True)
            _, (hidden, _) = encoder.lstm(packed)
            out[idx] = encoder.relu(encoder.linear(hidden[-1])).numpy()
    norm = np.linalg.norm(out, axis=1, keepdims=True)
    return np.divide(out, norm, out=np.zeros_like(out), where=norm > 0)


@dataclass
class _Evidence:
    """The voice-encoder view of a recording: windows inside speech runs, and which words they cover."""

    runs: list[tuple[int, int]]  # [first, end) item ranges between pauses (long runs cut into sub-runs)
    emb: np.ndarray  # (windows, dim) unit vectors
    window_run: np.ndarray  # (windows,) the run each window lies in
    seconds: np.ndarray  # (windows,) how much speech each window holds (shorter than window_s in a short run)
    cover: list[np.ndarray]  # per item: the windows covering it


def diarize(
    items: list[_Item], mono: np.ndarray, n_speakers: int, cfg: DiarizeSettings | None = None,
    rate: int | None = None,
) -> np.ndarray:
    """A voice id (0..n_speakers-1) per item. Every one of the n voices gets words whenever there
    are at least n items: how many people speak is the sidecar's to say, never a guess from here.

    Windows inside the speech runs between pauses are embedded (resemblyzer partials, pooled per
    word), clustered to n voices, and then a Viterbi pass over the words, with evidence measured
    against this recording's own spread, keeps each turn whole and lets turns change where people
    take them (see the module's docstring).
    """
    cfg = cfg or DiarizeSettings()
    k = min(n_speakers, len(items))
    if k < n_speakers:
        log.info("speakers: only %d word(s) in the recording, fewer than the %d voices expected", len(items),
                 n_speakers)
    if k <= 1:
        return np.zeros(len(items), dtype=int)
    mel = _mel(mono, rate=rate)
    mel *= np.float32(_gain(mono, items, rate=rate) ** 2)  # power: the square of the level gain (in place)
    ev = _evidence(items, mel, cfg)
    del mel
    switch = switch_costs(items, cfg)
    weight = np.array([max(it.end - it.start, 1.0 / MEL_FPS) for it in items]) / cfg.window_s
    best = None
    for context_s in cfg.contexts_s:  # several starts; the one whose voices end up furthest apart wins
        width = max(1, round(context_s / cfg.hop_s))
        centres = _cluster(_in_context(ev.emb, width), ev.emb, k, cfg.restarts)
        ids, scores, centres = refine(ev, centres, switch, weight, cfg.refine_rounds)
        found = (separation(ev, ids, centres), context_s, ids, scores)
        log.debug("speakers: starting from %.1f s of context, the voices are %.2f apart", context_s, found[0])
        if best is None or found[0] > best[0]:
            best = found
    separated, _, ids, scores = best
    ids = every_voice_heard(ids, scores, switch, ev.runs)
    log.info("speakers: %d voices told apart by their sound (separation %.1f), %d changes of speaker", k,
             separated, int(np.sum(ids[1:] != ids[:-1])))
    return ids


def refine(ev: _Evidence, centres: np.ndarray, switch: np.ndarray, weight: np.ndarray,
           rounds: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Viterbi over the items, voice centres again from the words each voice got, and again, until
    nothing changes (at most `rounds` times). Returns the labels, their scores and the centres."""
    k = len(centres)
    ids = None
    for _ in range(rounds):
        scores = item_scores(ev, ev.emb @ centres.T, k, weight, ids)
        new = viterbi(scores, switch)
        if ids is not None and np.array_equal(new, ids):
            break
        ids = new
        centres = _recentre(ev, ids, centres)
    return ids, scores, centres


def separation(ev: _Evidence, ids: np.ndarray, centres: np.ndarray) -> float:
    """How clearly the windows belong to the voices they were given: the mean margin (similarity to
    their own voice less the nearest other) over its spread, within this recording."""
    k = len(centres)
    votes = np.zeros((len(ev.emb), k))
    for j, windows in enumerate(ev.cover):
        votes[windows, ids[j]] += 1
    own = np.argmax(votes, axis=1)
    sims = ev.emb @ centres.T
    mine = sims[np.arange(len(sims)), own]
    sims[np.arange(len(sims)), own] = -np.inf
    margin = mine - sims.max(axis=1)
    spread = float(margin.std())
    return float(margin.mean()) / spread if spread > 0 else 0.0


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v)
    return v / n if n > 0 else v


def speech_runs(items: list[_Item], cfg: DiarizeSettings | None = None) -> list[tuple[int, int]]:
    """[first, end) ranges of items between pauses, then cut until none is longer than cfg.max_run_s.

    A pause is a gap between words longer than cfg.run_break_rank of this recording's gaps: fast and
    slow talkers each get the breaths that are long for them. A long run is cut at its longest gap
    (at its middle word when it has none), so a turn change without a pause can still be found."""
    cfg = cfg or DiarizeSettings()
    ranks = gap_ranks(items)
    cuts = [0] + [j for j in range(1, len(items)) if ranks[j] > cfg.run_break_rank] + [len(items)]
    out: list[tuple[int, int]] = []
    todo = list(zip(cuts, cuts[1:]))[::-1]
    while todo:
        a, b = todo.pop()
        if b - a < 2 or items[b - 1].end - items[a].start <= cfg.max_run_s:
            out.append((a, b))
            continue
        gaps = np.array([items[j].start - items[j - 1].end for j in range(a + 1, b)])
        j = a + 1 + (int(np.argmax(gaps)) if gaps.max() > 0 else (b - a) // 2 - 1)
        todo += [(j, b), (a, j)]
    return out


def gap_ranks(items: list[_Item]) -> np.ndarray:
    """Per item, the share of this recording's gaps between words that are shorter than the gap
    before it (0 for the first item, and for words that touch or overlap the one before)."""
    # to the millisecond, as the times are kept: equal gaps must rank equal, not by float noise
    gaps = np.round(np.array([0.0] + [items[j].start - items[j - 1].end for j in range(1, len(items))]), 3)
    inner = np.sort(gaps[1:])
    if len(inner) == 0:
        return np.zeros(len(items))
    ranks = np.searchsorted(inner, gaps, side="left") / len(inner)
    ranks[gaps <= 0] = 0.0
    ranks[0] = 0.0
    return ranks


def _evidence(items: list[_Item], mel: np.ndarray, cfg: DiarizeSettings) -> _Evidence:
    """Windows of cfg.window_s every cfg.hop_s inside each speech run (only the words' frames, pauses
    cut out), never across a run's edge; a run shorter than a window is one window."""
    total = len(mel)
    pad = int(cfg.word_pad_s * MEL_FPS)
    width, hop = max(1, int(cfg.window_s * MEL_FPS)), max(1, int(cfg.hop_s * MEL_FPS))
    spans = [(min(int(it.start * MEL_FPS), total - 1), min(max(int(np.ceil(it.end * MEL_FPS)), int(it.start * MEL_FPS) + 1), total))
             for it in items]
    runs = speech_runs(items, cfg)
    windows: list[np.ndarray] = []
    window_run: list[int] = []
    cover: list[list[int]] = [[] for _ in items]
    for r, (a, b) in enumerate(runs):
        frames = np.unique(np.concatenate([np.arange(max(0, s - pad), min(total, e + pad)) for s, e in spans[a:b]]))
        starts = list(range(0, max(1, len(frames) - width + 1), hop))
        if starts[-1] + width < len(frames):
            starts.append(len(frames) - width)
        first = len(windows)
        for s in starts:
            windows.append(mel[frames[s: s + width]])
            window_run.append(r)
        for j in range(a, b):  # the windows that hold any of the item's own frames
            lo, hi = np.searchsorted(frames, spans[j][0]), np.searchsorted(frames, spans[j][1])
            cover[j] = [first + w for w, s in enumerate(starts) if s < max(hi, lo + 1) and s + width > lo]
            if not cover[j]:
                cover[j] = [first + int(np.argmin([abs(s + width / 2 - lo) for s in starts]))]
    return _Evidence(runs, embed_windows(windows), np.array(window_run),
                     np.array([len(w) / MEL_FPS for w in windows]), [np.array(c) for c in cover])


def _in_context(emb: np.ndarray, width: int) -> np.ndarray:
    """Each window's embedding averaged with its neighbours in time (`width` windows, centred),
    less the recording's mean. What a voice sounds like changes slowly, what is being said changes
    every window: averaged over a few seconds, the voices stand out from the words (in near-alike
    voices the words otherwise pull the clusters apart more than the voices do)."""
    x = emb - emb.mean(axis=0)
    half = width // 2
    padded = np.concatenate([np.repeat(x[:1], half, axis=0), x, np.repeat(x[-1:], width - 1 - half, axis=0)])
    sums = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(padded, axis=0)])
    return (sums[width:] - sums[:-width]) / width


def _cluster(features: np.ndarray, emb: np.ndarray, k: int, restarts: int) -> np.ndarray:
    """k voice centres (unit vectors in the encoder's space): k-means on `features` (one row per
    window), the best of `restarts` seeded starts (k-means++, fixed seed: the same recording always
    gives the same answer), each centre the mean of its windows' embeddings. None is left empty."""
    rng = np.random.default_rng(0)
    n = len(features)
    if n <= k:
        return np.stack([_unit(emb[i % n]) for i in range(k)])
    best, best_inertia = None, np.inf
    for _ in range(restarts):
        seeds = [int(rng.integers(n))]
        for _ in range(1, k):
            dist = np.min(((features[:, None, :] - features[seeds][None]) ** 2).sum(axis=2), axis=1)
            seeds.append(int(rng.choice(n, p=dist / dist.sum())) if dist.sum() > 0 else int(rng.integers(n)))
        centres = features[seeds].copy()
        for _ in range(n):
            dist = ((features[:, None, :] - centres[None]) ** 2).sum(axis=2)
            labels = np.argmin(dist, axis=1)
            for c in range(k):  # an emptied cluster restarts from the window furthest from its centre
                if not (labels == c).any():
                    labels[int(np.argmax(dist[np.arange(n), labels]))] = c
            new = np.stack([features[labels == c].mean(axis=0) for c in range(k)])
            if np.allclose(new, centres):
                break
            centres = new
        inertia = float(((features - centres[labels]) ** 2).sum())
        if inertia < best_inertia:
            best, best_inertia = labels, inertia
    return np.stack([_unit(emb[best == c].mean(axis=0)) for c in range(k)])


def item_scores(ev: _Evidence, features: np.ndarray, k: int, weight: np.ndarray,
                ids: np.ndarray | None = None) -> np.ndarray:
    """Per item and voice, a log-likelihood: how much likelier the windows covering it are under
    each of the k voices, measured against this recording's own spread.

    `features` (windows, dims) starts with the windows' similarities to the k voice centres. Each
    voice is modelled as a Gaussian over the features with one covariance shared by all voices
    (linear discriminant analysis), fitted to the windows of each voice (by the current labels, or
    the nearest centre at first). So the scores adapt to how far apart the voices are in this
    recording, not to a constant. Each item's score is the mean over its windows, times its length
    in windows (`weight`): a long word is more evidence than a short one.
    """
    labels = np.argmax(features[:, :k], axis=1)
    if ids is not None:
        votes = np.zeros((len(features), k))
        for j, windows in enumerate(ev.cover):
            votes[windows, ids[j]] += 1
        labels = np.where(votes.sum(axis=1) > 0, np.argmax(votes, axis=1), labels)
    means = np.stack([features[labels == v].mean(axis=0) if (labels == v).any() else features.mean(axis=0)
                      for v in range(k)])
    resid = features - means[labels]
    if len(resid) < 2:  # one window: nothing to tell the voices apart by
        return np.zeros((len(ev.cover), k))
    precision = np.linalg.pinv(np.atleast_2d(np.cov(resid, rowvar=False)))
    diff = features[:, None, :] - means[None, :, :]  # (windows, voices, dims)
    ll = -0.5 * np.einsum("wvd,de,wve->wv", diff, precision, diff)
    ll -= ll.max(axis=1, keepdims=True)
    ll *= (ev.seconds / ev.seconds.max())[:, None]  # a window cut short by a pause says less
    return np.stack([ll[c].mean(axis=0) for c in ev.cover]) * weight[:, None]


def switch_costs(items: list[_Item], cfg: DiarizeSettings | None = None) -> np.ndarray:
    """Per item, what it costs (in the scores' units) for the speaker to change just before it.

    Cheaper after a long pause (by the gap's rank among this recording's gaps), after a sentence
    ends, and more so after a question: that is where people hand the turn over."""
    cfg = cfg or DiarizeSettings()
    ranks = gap_ranks(items)
    ends = np.array([0.0] + [float(items[j - 1].text.rstrip().endswith((".", "!", "?"))) for j in range(1, len(items))])
    asks = np.array([0.0] + [float(items[j - 1].text.rstrip().endswith("?")) for j in range(1, len(items))])
    cost = cfg.switch_cost - cfg.pause_bonus * ranks - cfg.sentence_bonus * ends - cfg.question_bonus * asks
    return np.maximum(cost, 0.0)


def viterbi(scores: np.ndarray, switch: np.ndarray) -> np.ndarray:
    """The most likely voice per item: scores (items, voices) summed, minus switch[j] whenever the
    voice changes just before item j."""
    n, k = scores.shape
    change = 1.0 - np.eye(k)  # [from, to]: 1 where the voice changes
    back = np.zeros((n, k), dtype=int)
    total = scores[0].copy()
    for j in range(1, n):
        moves = total[:, None] - switch[j] * change
        back[j] = np.argmax(moves, axis=0)  # ties keep the voice: it comes first only when it is "from"
        total = moves[back[j], np.arange(k)] + scores[j]
    path = np.zeros(n, dtype=int)
    path[-1] = int(np.argmax(total))
    for j in range(n - 1, 0, -1):
        path[j - 1] = back[j, path[j]]
    return path


def _recentre(ev: _Evidence, ids: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Voice centres again from the windows of the words each voice now has (a voice with none keeps its centre)."""
    k = len(centres)
    votes = np.zeros((len(ev.emb), k))
    for j, windows in enumerate(ev.cover):
        votes[windows, ids[j]] += 1
    labels = np.argmax(votes, axis=1)
    out = centres.copy()
    for v in range(k):
        mine = (labels == v) & (votes.sum(axis=1) > 0)
        if mine.any():
            out[v] = _unit(ev.emb[mine].sum(axis=0))
    return out


def every_voice_heard(ids: np.ndarray, scores: np.ndarray, switch: np.ndarray, runs: list[tuple[int, int]]) -> np.ndarray:
    """The labels with every expected voice present. When keeping turns whole swallowed a voice,
    turns are made cheaper to change until it is heard; failing that (the voices sound the same to
    the encoder), it gets the speech run that fits it best, taken from a voice that has others."""
    k = scores.shape[1]
    cost = switch.copy()
    if len(set(ids.tolist())) < k:
        log.info("speakers: one voice had no words left after keeping turns whole; letting turns change more easily")
    while len(set(ids.tolist())) < k and cost.max() > np.finfo(float).eps * switch.max():
        cost /= 2  # halved until the voice is heard, or the costs are nothing at all
        ids = viterbi(scores, cost)
    ids = ids.copy()
    for v in range(k):
        if (ids == v).any():
            continue
        runs_of = {u: sum(1 for a, _ in runs if ids[a] == u) for u in range(k)}
        fits = [(float((scores[a:b, v] - scores[np.arange(a, b), ids[a:b]]).sum()), a, b) for a, b in runs
                if runs_of[int(ids[a])] > 1 and (ids[a:b] == ids[a]).all()]
        if not fits:  # every run holds a change: give the voice the item that fits it best
            j = int(np.argmax(scores[:, v] - scores[np.arange(len(ids)), ids]))
            ids[j] = v
            continue
        _, a, b = max(fits)
        ids[a:b] = v
        log.info("speakers: two voices sound alike here; the speech most like the second voice was given to it")
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
