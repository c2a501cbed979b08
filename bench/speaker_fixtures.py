"""Synthetic two-voice interviews with known turn timings, for speaker-labelling tests and benchmarks.

Why synthetic: the speaker stage needs recordings where we know exactly who spoke when, in mono and
in "one voice per channel" stereo, without shipping a real person's voice. Each turn of a script is
spoken by espeak-ng in its speaker's voice, turns are joined with short pauses, and we keep the
sample span of every turn as ground truth. Nothing here touches the network.

Used by `tests/unit/transcribe/test_speakers.py` (short scripts, fake word timings) and `bench/speakers.py`:
`PAIR_CASES`, 24 voice pairs speaking excerpts of the written interviews in bench/interviews (tune/test
by the interview's number, fixed before tuning), some with room sound (`Room`: pink or brown noise
at a stated SNR, optional reverb); `TIMBRE_CASES`, one espeak timbre twice (shown, not a target); and
`real_recordings()`, two-person splices of real speech in bench/audio (see its ATTRIBUTION.md).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from storypipe.core.models import Segment, Word

SAMPLE_RATE = 16000
ESPEAK = shutil.which("espeak-ng") or shutil.which("espeak")

# Pauses before each turn, cycled by turn index (deterministic, no randomness), seconds.
PAUSES_S: tuple[float, ...] = (0.7, 0.45, 0.85, 0.3, 0.6, 0.5)


@dataclass(frozen=True)
class Turn:
    speaker: str  # "storyteller" or "interviewer"
    text: str
    start: float  # seconds of voiced audio (leading/trailing silence of the synthesis trimmed)
    end: float


@dataclass
class Interview:
    mono: np.ndarray  # (samples,) float32, 16 kHz: the two voices mixed
    stereo: np.ndarray  # (samples, 2) float32, 16 kHz: each voice on its own channel (+ bleed)
    turns: list[Turn]
    channel_of: dict[str, int]  # speaker -> channel index in `stereo`

    @property
    def duration(self) -> float:
        return len(self.mono) / SAMPLE_RATE

    def speaker_at(self, t: float) -> str:
        """Ground truth: the turn containing time t, else the nearest turn."""
        best = min(self.turns, key=lambda turn: 0.0 if turn.start <= t <= turn.end else min(
            abs(t - turn.start), abs(t - turn.end)))
        return best.speaker


def synthesize(text: str, voice: str, words_per_minute: int = 160, pitch: int | None = None) -> np.ndarray:
    """One utterance from espeak-ng as 16 kHz float32 (espeak writes 22.05 kHz; resampled here)."""
    if ESPEAK is None:
        raise RuntimeError("espeak-ng is not installed")
    with tempfile.TemporaryDirectory(prefix="speaker-fixture-") as tmp:
        out = Path(tmp) / "turn.wav"
        cmd = [ESPEAK, "-v", voice, "-s", str(words_per_minute), "-w", str(out)]
        if pitch is not None:
            cmd += ["-p", str(pitch)]
        subprocess.run([*cmd, "--", text], check=True, capture_output=True)
        with wave.open(str(out), "rb") as w:
            rate = w.getframerate()
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
    if rate != SAMPLE_RATE:
        g = np.gcd(rate, SAMPLE_RATE)
        pcm = resample_poly(pcm, SAMPLE_RATE // g, rate // g).astype(np.float32)
    return pcm


PROBE = "When we started the peer support group, my lived experience counted for something at last."


def sound_of(voice: str, pitch: int | None = None, words_per_minute: int = 150) -> bytes:
    """espeak-ng's samples for one probe sentence: two voices that give the same bytes are one voice."""
    return synthesize(PROBE, voice, words_per_minute, pitch).tobytes()


def dropped_variant(voice: str) -> bool:
    """True when espeak-ng ignores the "+variant" of this voice and speaks its plain language voice
    (it does for "en-gb+<variant>" in 1.51): the name then says a voice that is not heard."""
    language, plus, _ = voice.partition("+")
    return bool(plus) and sound_of(voice) == sound_of(language)


def _trim(pcm: np.ndarray, threshold: float = 0.01) -> np.ndarray:
    loud = np.flatnonzero(np.abs(pcm) > threshold)
    return pcm[loud[0]: loud[-1] + 1] if len(loud) else pcm


def build_interview(
    script: list[tuple[str, str]],
    voices: dict[str, str],
    words_per_minute: dict[str, int] | None = None,
    pitch: dict[str, int] | None = None,
    bleed_db: float = -25.0,
    noise_db: float | None = -60.0,
    pauses: tuple[float, ...] = PAUSES_S,
    channel_of: dict[str, int] | None = None,
    lead_in: float = 0.4,
    seed: int = 0,
    room: Room | None = None,
) -> Interview:
    """Speak a script of (speaker, text) turns; mono mix + one-voice-per-channel stereo + turn spans.

    `bleed_db` is how loud each voice is on the other speaker's channel (a lapel mic hears the other
    person a little); `noise_db` adds a constant white-noise floor (dBFS RMS) to every channel.
    `room` adds a room: each voice through a short reverberant tail, then coloured noise at the
    room's signal-to-noise ratio (against the speech level of that channel) on every channel.
    """
    wpm = words_per_minute or {}
    pitches = pitch or {}
    channel_of = channel_of or {"interviewer": 0, "storyteller": 1}
    pieces: list[tuple[str, np.ndarray, int]] = []
    t = int(lead_in * SAMPLE_RATE)
    for i, (speaker, text) in enumerate(script):
        if i:
            t += int(pauses[i % len(pauses)] * SAMPLE_RATE)
        pcm = _trim(synthesize(text, voices[speaker], wpm.get(speaker, 160), pitches.get(speaker)))
        if room is not None and room.rt60_s > 0:
            pcm = reverberate(pcm, room.rt60_s, seed + i)
        pcm = pcm / (np.sqrt(np.mean(pcm**2)) + 1e-9) * 0.08  # both voices at about -22 dBFS RMS
        pieces.append((speaker, pcm, t))
        t += len(pcm)
    total = t + int(0.6 * SAMPLE_RATE)
    stereo = np.zeros((total, 2), dtype=np.float32)
    mono = np.zeros(total, dtype=np.float32)
    bleed = 10 ** (bleed_db / 20)
    turns = []
    for (speaker, pcm, start), (_, text) in zip(pieces, script):
        ch = channel_of[speaker]
        stereo[start: start + len(pcm), ch] += pcm
        stereo[start: start + len(pcm), 1 - ch] += pcm * bleed
        mono[start: start + len(pcm)] += pcm
        turns.append(Turn(speaker, text, start / SAMPLE_RATE, (start + len(pcm)) / SAMPLE_RATE))
    if noise_db is not None:
        rng = np.random.default_rng(seed)
        level = 10 ** (noise_db / 20)
        stereo += (rng.standard_normal(stereo.shape) * level).astype(np.float32)
        mono += (rng.standard_normal(mono.shape) * level).astype(np.float32)
    if room is not None:
        rng = np.random.default_rng(seed + 1)
        speech = np.concatenate([np.arange(int(tn.start * SAMPLE_RATE), int(tn.end * SAMPLE_RATE)) for tn in turns])
        for x in (mono, stereo[:, 0], stereo[:, 1]):
            level = np.sqrt(np.mean(x[speech] ** 2)) * 10 ** (-room.snr_db / 20)
            x += (coloured_noise(len(x), room.noise, rng) * level).astype(np.float32)
    return Interview(mono=mono, stereo=stereo, turns=turns, channel_of=channel_of)


@dataclass(frozen=True)
class Room:
    """Room sound added to a synthetic interview: coloured noise at a signal-to-noise ratio, and
    an optional reverberant tail (RT60, seconds; 0 for none)."""

    noise: str  # "pink" (1/f: fan, traffic hum) or "brown" (1/f², rumble)
    snr_db: float
    rt60_s: float = 0.0

    def describe(self) -> str:
        tail = f", reverb RT60 {self.rt60_s:.1f} s" if self.rt60_s else ""
        return f"{self.noise} noise at {self.snr_db:.0f} dB SNR{tail}"


def coloured_noise(n: int, colour: str, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise with a 1/f (pink) or 1/f² (brown) power spectrum, shaped in the frequency domain."""
    power = {"white": 0.0, "pink": 1.0, "brown": 2.0}[colour]
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    spectrum *= 1.0 / np.maximum(f, 20.0) ** (power / 2)  # below 20 Hz held flat: no DC drift
    x = np.fft.irfft(spectrum, n)
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def reverberate(pcm: np.ndarray, rt60_s: float, seed: int) -> np.ndarray:
    """The voice in a room: convolved with exponentially decaying noise (RT60 = 60 dB of decay),
    the direct sound first."""
    from scipy.signal import fftconvolve

    rng = np.random.default_rng(seed)
    n = int(rt60_s * SAMPLE_RATE)
    tail = rng.standard_normal(n) * np.exp(-6.9 * np.arange(n) / n) * 0.3
    tail[0] = 1.0
    return fftconvolve(pcm, tail)[: len(pcm) + n].astype(np.float32)


def turn_words(turn: Turn) -> list[Word]:
    """Words spread over a turn's voiced span in proportion to their length (no recogniser needed)."""
    tokens = turn.text.split()
    weights = np.array([len(re.sub(r"\W", "", tok)) + 2 for tok in tokens], dtype=float)
    edges = turn.start + np.concatenate([[0], np.cumsum(weights)]) / weights.sum() * (turn.end - turn.start)
    return [
        Word(word=" " + tok, start=round(float(a), 3), end=round(float(a + (b - a) * 0.85), 3), probability=0.9)
        for tok, a, b in zip(tokens, edges[:-1], edges[1:])
    ]


def fake_segments(interview: Interview, words_per_segment: int = 9) -> list[Segment]:
    """Recogniser-like segments of a fixed number of words that ignore turns (so some mix speakers)."""
    words = [w for turn in interview.turns for w in turn_words(turn)]
    segments = []
    for i in range(0, len(words), words_per_segment):
        chunk = words[i: i + words_per_segment]
        segments.append(Segment(
            id=len(segments), start=chunk[0].start, end=chunk[-1].end,
            text="".join(w.word for w in chunk).strip(), avg_logprob=-0.2, no_speech_prob=0.01,
            compression_ratio=1.3, words=chunk,
        ))
    return segments


# --- scripts -------------------------------------------------------------------------------------

SCRIPT_SHORT: list[tuple[str, str]] = [
    ("interviewer", "Thank you for coming in today. Can you tell me how you first got involved?"),
    ("storyteller", ("Well, it started when the housing office closed our local drop in centre. "
                    "A few of us from the estate decided we could not just sit back and watch.")),
    ("interviewer", "What did you do first?"),
    ("storyteller", ("We booked the community hall every Tuesday evening and put leaflets through "
                    "every door. At the first meeting only six people came, but they all brought a friend.")),
    ("interviewer", "And how did that feel?"),
    ("storyteller", ("Honestly, it felt like the first time anyone had listened to us in years. "
                    "People said they felt less alone, and that mattered more than anything.")),
]

SCRIPTS: dict[str, list[tuple[str, str]]] = {
    "housing": SCRIPT_SHORT + [
        ("interviewer", "Mm hmm. Did the council respond?"),
        ("storyteller", ("Eventually they did. We invited the housing officer to one of our evenings and she "
                        "stayed for two hours. She heard about the damp, the broken lifts and the rubbish.")),
        ("interviewer", "Right."),
        ("storyteller", ("After that they fixed the lifts within a month. It was a small thing, but it showed "
                        "people that speaking up together can change things.")),
        ("interviewer", "What would you say to someone thinking of starting a group like yours?"),
        ("storyteller", ("I would say start small, be patient, and make sure there is always a cup of tea. "
                        "People come for the tea and stay because they are heard.")),
        ("interviewer", "Thank you so much for sharing that."),
        ("storyteller", "Thank you for asking me."),
    ],
    "health": [
        ("interviewer", "Could you start by telling me a little about yourself?"),
        ("storyteller", ("I am a mother of three and I have lived with a long term illness for about ten years. "
                        "For most of that time I felt like a list of symptoms rather than a person.")),
        ("interviewer", "What changed that for you?"),
        ("storyteller", ("A nurse at the surgery asked me to join a patient group. At first I said no, because "
                        "I did not think my opinion would count for anything.")),
        ("interviewer", "But you went?"),
        ("storyteller", ("I went, yes. There were doctors and managers around the table, and they actually asked "
                        "us what the waiting room felt like, what the letters sounded like to us.")),
        ("interviewer", "Can you give an example?"),
        ("storyteller", ("The appointment letters were full of jargon. We rewrote them in plain language, and "
                        "the number of missed appointments went down that year.")),
        ("interviewer", "That is a real difference."),
        ("storyteller", ("It is. And for me personally, I started to feel confident again. I realised my "
                        "experience is a kind of expertise.")),
        ("interviewer", "Is there anything you would still like to change?"),
        ("storyteller", ("I would like the group to reach younger people and carers. Their voices are missing, "
                        "and they have the most to lose when services are cut.")),
    ],
    "youth": [
        ("interviewer", "So, how old were you when you joined the youth panel?"),
        ("storyteller", "I was sixteen. My friend dragged me along because there was free pizza."),
        ("interviewer", "Ha. And what kept you there?"),
        ("storyteller", ("The adults actually wrote down what we said. We told them the bus route to the "
                        "college was useless after six, and a year later there was a new evening bus.")),
        ("interviewer", "Did you expect that?"),
        ("storyteller", ("No, not at all. Usually when you complain, nothing happens. This time it did, and "
                        "my mum still talks about it.")),
        ("interviewer", "What skills did you pick up?"),
        ("storyteller", ("Public speaking mostly. The first time I presented to the council I was shaking. "
                        "Now I help train the new members, and I tell them it is fine to be nervous.")),
        ("interviewer", "Who else should be on the panel?"),
        ("storyteller", ("Young people who are not in school or work. They are the hardest to reach, but "
                        "their ideas are often the best ones, because they see what is really broken.")),
        ("interviewer", "And what is next for you?"),
        ("storyteller", ("I start a youth work course in September. I want to be the adult who writes "
                        "things down and actually follows them up.")),
        ("interviewer", "Great, thank you."),
        ("storyteller", "No problem, thanks for having me."),
    ],
}

# --- the measured set (bench/speakers.py): voice pairs over the independent interviews -------------

PROJECT = Path(__file__).resolve().parent.parent
INTERVIEWS = PROJECT / "bench" / "interviews"
REAL_AUDIO = PROJECT / "bench" / "audio"  # copies of ../shared/audio clips, see its ATTRIBUTION.md
JFK = PROJECT / "tests" / "data" / "jfk.flac"
STAGE_DIRECTION = re.compile(r"\s*\([a-z ]+\)")  # "(laughs)": not words, never spoken
# Turn gaps closer than PAUSES_S (people who answer quickly), for some pairs.
TIGHT_PAUSES_S: tuple[float, ...] = (0.25, 0.15, 0.4, 0.2, 0.3, 0.12)


@dataclass(frozen=True)
class Voice:
    """An espeak-ng voice: "<language>[+<variant>]", speed (words per minute) and pitch (0-99, 50 default)."""

    voice: str
    wpm: int = 155
    pitch: int | None = None

    def describe(self) -> str:
        return self.voice + (f" -p {self.pitch}" if self.pitch is not None else "") + f" -s {self.wpm}"


@dataclass(frozen=True)
class PairCase:
    """One synthetic two-person interview: an excerpt of a written interview, two voices, a kind."""

    script: str  # stem of a bench/interviews/*.txt file; its number decides the split
    interviewer: Voice
    storyteller: Voice
    kind: str  # "female/male", "two male", "two female", "one voice, pitch apart"...
    room: Room | None = None  # the pair is also measured with this room sound
    tight: bool = False  # quick turn-taking (TIGHT_PAUSES_S) instead of PAUSES_S
    full: bool = False  # the whole interview rather than an excerpt

    @property
    def split(self) -> str:
        return split_of(self.script)

    @property
    def name(self) -> str:
        return f"{self.interviewer.voice}/{self.storyteller.voice}" + (" (whole interview)" if self.full else "")

    def build(self, room: Room | None = None, bleed_db: float = -20.0) -> Interview:
        turns = load_script(self.script)
        if not self.full:
            turns = excerpt(turns)
        voices = {"interviewer": self.interviewer, "storyteller": self.storyteller}
        return build_interview(
            turns, {k: v.voice for k, v in voices.items()}, {k: v.wpm for k, v in voices.items()},
            {k: v.pitch for k, v in voices.items() if v.pitch is not None}, bleed_db=bleed_db,
            noise_db=-65.0, pauses=TIGHT_PAUSES_S if self.tight else PAUSES_S, room=room,
            seed=sum(map(ord, self.script)))


def split_of(script: str) -> str:
    """The split fixed before any tuning (bench/interviews/README.md): odd numbers tune, even test."""
    return "tune" if int(script.split("-")[1]) % 2 else "test"


def load_script(stem: str) -> list[tuple[str, str]]:
    """(speaker, text) turns of a written interview, stage directions left out."""
    turns = []
    for line in (INTERVIEWS / f"{stem}.txt").read_text("utf-8").splitlines():
        speaker, sep, text = line.partition(":")
        if sep and speaker.strip() in ("interviewer", "storyteller"):
            text = STAGE_DIRECTION.sub("", text).strip()
            if text:
                turns.append((speaker.strip(), text))
    return turns


def excerpt(turns: list[tuple[str, str]], head_words: int = 150, tail_words: int = 50,
            turn_words: int = 70) -> list[tuple[str, str]]:
    """The opening turns (recording small talk, the first question and answers) up to head_words,
    and the closing turns (thanks, goodbye) from tail_words before the end, each turn cut to its
    first whole sentences within turn_words: about 90 s of speech, short and long turns kept."""
    def shorten(turn):
        sentences = re.split(r"(?<=[.?!])\s+", turn[1])
        kept = sentences[:1]
        for sentence in sentences[1:]:
            if len(" ".join(kept + [sentence]).split()) > turn_words:
                break
            kept.append(sentence)
        return turn[0], " ".join(kept)

    turns = [shorten(t) for t in turns]

    def upto(seq, limit):
        out, n = [], 0
        for turn in seq:
            if n >= limit:
                break
            out.append(turn)
            n += len(turn[1].split())
        return out

    head = upto(turns, head_words)
    tail = upto(reversed(turns[len(head):]), tail_words)[::-1]
    return head + tail


_P, _B = "pink", "brown"
# 24 distinct pairs, one per written interview (and one whole interview); the interview's number
# decides tune or test. They cover female/male, two men, two women, female/male brought close in pitch
# with -p (the median F0 of each, measured, in the kind), and the odd synthetic timbres (klatt,
# croak). Speeds differ a little, as people's do. Eight also with room sound.
PAIR_CASES: list[PairCase] = [
    # tune
    PairCase("wa-01-youth-panel-middlesbrough", Voice("en-us+m3", 165), Voice("en+f2", 150), "female/male"),
    PairCase("wa-03-peer-research-glasgow", Voice("en-gb-x-rp+m2", 160, 85), Voice("en+f2", 150, 20),
             "female/male, close in pitch (151/156 Hz)", room=Room(_P, 20.0)),
    PairCase("wa-05-release-day-leeds", Voice("en+f3", 160), Voice("en+f4", 150), "two female", tight=True),
    PairCase("wa-07-pantry-burnley", Voice("en+m7", 160, 75), Voice("en-029+f1", 150, 25),
             "female/male, close in pitch (139/145 Hz)"),
    PairCase("wb-01-short-breaks-small-heath", Voice("en+klatt", 160), Voice("en-us+m1", 150), "two male",
             room=Room(_B, 15.0, 0.3)),
    PairCase("wb-03-peer-research-belfast", Voice("en-gb-scotland+m4", 165), Voice("en-gb-x-gbclan+m3", 155), "two male"),
    PairCase("wb-05-access-group-port-talbot", Voice("en-029+f1", 160), Voice("en-us-nyc+f5", 150), "two female",
             tight=True),
    PairCase("wb-07-gp-access-walsall", Voice("en-us+Alex", 160), Voice("en+Andy", 155), "two male",
             room=Room(_P, 10.0)),
    PairCase("wc-01-bristol-maternity-letters", Voice("en+m1", 160), Voice("en+m3", 150), "two male, close in pitch"),
    PairCase("wc-03-plymouth-care-leavers-housing", Voice("en-us+m6", 160, 85), Voice("en-us+f2", 150, 15),
             "female/male, close in pitch (150/150 Hz)", tight=True),
    PairCase("wc-05-teign-valley-carers", Voice("en-gb-x-gbcwmd+m5", 160), Voice("en-us+m6", 150), "two male",
             room=Room(_B, 10.0, 0.4)),
    PairCase("wc-07-whitechapel-rollabouts", Voice("en-us+Annie", 160), Voice("en-gb-x-rp+f3", 150), "two female"),
    # test
    PairCase("wa-02-dementia-carers-galloway", Voice("en+m3", 165), Voice("en-us+f4", 150), "female/male"),
    PairCase("wa-02-dementia-carers-galloway", Voice("en-us+m1", 160), Voice("en+m6", 150), "two male", full=True),
    PairCase("wa-04-welcome-guide-sunderland", Voice("en-us+m1", 160, 80), Voice("en-us+f4", 150, 15),
             "female/male, close in pitch (131/132 Hz)", room=Room(_P, 20.0)),
    PairCase("wa-06-buses-dingwall", Voice("en-us+f3", 160), Voice("en+f5", 150), "two female", tight=True),
    PairCase("wa-08-ward-nights-newcastle", Voice("en+klatt", 160, 80), Voice("en+f5", 150, 5),
             "female/male, close in pitch (140/140 Hz)"),
    PairCase("wb-02-brothers-table-cardiff", Voice("en+klatt2", 160), Voice("en-us+m3", 150), "two male",
             room=Room(_B, 15.0, 0.3)),
    PairCase("wb-04-youth-housing-stoke", Voice("en-us+m8", 165), Voice("en-gb-scotland+m2", 155), "two male"),
    PairCase("wb-06-women-leaving-prison-derry", Voice("en-us+f1", 160), Voice("en-029+f2", 150), "two female",
             tight=True),
    PairCase("wb-08-welcome-course-newport", Voice("en+Denis", 160), Voice("en-us+Mike", 155), "two male",
             room=Room(_P, 10.0)),
    PairCase("wc-02-deptford-probation-panel", Voice("en+m2", 160), Voice("en+m6", 150), "two male, close in pitch"),
    PairCase("wc-04-brighton-recovery-college", Voice("en+Denis", 160, 85), Voice("en-us-nyc+f2", 150, 15),
             "female/male, close in pitch (145/151 Hz)", tight=True),
    PairCase("wc-06-southampton-peer-research", Voice("en-us+m4", 160), Voice("en+croak", 150), "two male",
             room=Room(_B, 10.0, 0.4)),
    PairCase("wc-08-reading-commissioning-panel", Voice("en-us-nyc+f2", 160), Voice("en-gb-x-rp+f4", 150),
             "two female"),
]


# One timbre twice: one espeak variant at two pitches, or in two accents. The voice encoder hears
# these as one voice (their centres are as alike as one voice reading two texts, 0.95-0.98), as
# it would one person speaking higher: measured and shown apart, not a target (an interview of one
# person is declared with `speakers: 1`).
TIMBRE_CASES: list[PairCase] = [
    PairCase("wa-03-peer-research-glasgow", Voice("en-gb-x-rp+m2", 160), Voice("en-us+m2", 150, 40),
             "one variant (m2), two accents and pitches"),
    PairCase("wa-07-pantry-burnley", Voice("en-us+m7", 160, 40), Voice("en-us+m7", 150, 60), "one voice, pitch 40/60"),
    PairCase("wc-03-plymouth-care-leavers-housing", Voice("en-us+f2", 160, 45), Voice("en-us+f2", 150, 60),
             "one voice, pitch 45/60", tight=True),
    PairCase("wa-04-welcome-guide-sunderland", Voice("en-gb-x-gbclan+m3", 160), Voice("en+m3", 150),
             "one variant (m3), two accents"),
    PairCase("wa-08-ward-nights-newcastle", Voice("en+m7", 160, 40), Voice("en+m7", 150, 60), "one voice, pitch 40/60"),
    PairCase("wc-04-brighton-recovery-college", Voice("en+f2", 160, 40), Voice("en+f2", 150, 60),
             "one voice, pitch 40/60", tight=True),
]


# --- real speech: two people spliced from the recordings in bench/audio --------------------------


@dataclass
class Recording:
    """Real speech with who spoke when: `spans` (start, end, speaker), and `speaker_at` for scoring."""

    name: str
    split: str
    mono: np.ndarray
    spans: list[tuple[float, float, str]]
    natural: bool = False  # a real conversation (score only where one person speaks), not a splice

    @property
    def duration(self) -> float:
        return len(self.mono) / SAMPLE_RATE

    def speaker_at(self, t: float) -> str | None:
        """Splices: the piece holding t, else the nearest. Natural: the one speaker active at t, else None."""
        active = [s for a, b, s in self.spans if a <= t <= b]
        if self.natural:
            return active[0] if len(set(active)) == 1 else None
        if active:
            return active[0]
        return min(self.spans, key=lambda sp: min(abs(t - sp[0]), abs(t - sp[1])))[2]


def _load(path: Path) -> np.ndarray:
    from storypipe.tasks.common.audio import decode_pcm16

    return decode_pcm16(path, SAMPLE_RATE, 1).astype(np.float32) / 32768.0


def read_rttm(path: Path) -> list[tuple[float, float, str]]:
    out = []
    for line in path.read_text().splitlines():
        f = line.split()
        if f and f[0] == "SPEAKER":
            out.append((float(f[3]), float(f[3]) + float(f[4]), f[7]))
    return out


def ami_solo(speaker: str, lo: float = 0.0, hi: float = 60.0, min_s: float = 0.8) -> list[np.ndarray]:
    """Pieces of the AMI minute where `speaker` alone talks (per the RTTM), within [lo, hi) seconds."""
    ref = read_rttm(REAL_AUDIO / "ami-es2004-1min.rttm")
    audio = _load(REAL_AUDIO / "ami-es2004-1min.flac")
    frame = 0.01
    n = int(60 / frame)
    own = np.zeros(n, bool)
    other = np.zeros(n, bool)
    for a, b, s in ref:
        (own if s == speaker else other)[int(a / frame): int(b / frame)] = True
    solo = own & ~other
    solo[: int(lo / frame)] = False
    solo[int(hi / frame):] = False
    pieces, k = [], 0
    while k < n:
        if solo[k]:
            j = k
            while j < n and solo[j]:
                j += 1
            if (j - k) * frame >= min_s:
                pieces += pieces_at_pauses(audio[int(k * frame * SAMPLE_RATE): int(j * frame * SAMPLE_RATE)])
            k = j
        else:
            k += 1
    return pieces


def pieces_at_pauses(x: np.ndarray, max_s: float = 6.0, min_s: float = 0.6) -> list[np.ndarray]:
    """A stretch of one voice cut into turns of at most max_s seconds, each cut at the quietest
    30 ms frame near the middle (so words stay whole)."""
    if len(x) <= max_s * SAMPLE_RATE:
        return [x] if len(x) >= min_s * SAMPLE_RATE else []
    frame = 480
    db = 10 * np.log10(np.mean(x[: len(x) // frame * frame].reshape(-1, frame) ** 2, axis=1) + 1e-12)
    middle = len(db) // 2
    reach = len(db) // 4
    cut = (middle - reach + int(np.argmin(db[middle - reach: middle + reach]))) * frame
    return pieces_at_pauses(x[:cut], max_s, min_s) + pieces_at_pauses(x[cut:], max_s, min_s)


def jfk_pieces() -> list[np.ndarray]:
    """J.F. Kennedy's 11 s cut at his four pauses (times from tests/data/jfk.words.tsv)."""
    audio = _load(JFK)
    return [audio[int(a * SAMPLE_RATE): int(b * SAMPLE_RATE)] for a, b in
            ((0.25, 2.25), (3.2, 4.4), (5.3, 7.65), (8.1, 10.7))]


def librivox_pieces() -> list[np.ndarray]:
    return [_load(p) for p in sorted(REAL_AUDIO.glob("librivox-sense-*.flac"))]


def splice(name: str, split: str, a: tuple[str, list[np.ndarray]], b: tuple[str, list[np.ndarray]],
           gap_s: float = 0.6) -> Recording:
    """Two people taking turns: pieces of a and b alternated (the longer list's rest at the end),
    each at the same speech level, with gap_s of silence between turns."""
    gap = np.zeros(int(gap_s * SAMPLE_RATE), np.float32)
    parts, spans, t = [], [], 0
    for k in range(max(len(a[1]), len(b[1]))):
        for who, pieces in (a, b):
            if k < len(pieces):
                piece = pieces[k] / (np.sqrt(np.mean(pieces[k] ** 2)) + 1e-9) * 0.05
                parts += [piece.astype(np.float32), gap]
                spans.append((t / SAMPLE_RATE, (t + len(piece)) / SAMPLE_RATE, who))
                t += len(piece) + len(gap)
    return Recording(name, split, np.concatenate(parts), spans)


def telephone(x: np.ndarray, seed: int = 3) -> np.ndarray:
    """A phone line: 300-3400 Hz, 8 kHz sampling, 8-bit mu-law, a faint hiss; back at 16 kHz."""
    from scipy.signal import butter, sosfilt

    band = sosfilt(butter(6, [300, 3400], btype="band", fs=SAMPLE_RATE, output="sos"), x)
    narrow = resample_poly(band, 1, 2)
    mu = 255.0
    peak = np.max(np.abs(narrow)) + 1e-9
    y = np.sign(narrow) * np.log1p(mu * np.abs(narrow / peak)) / np.log1p(mu)
    y = np.round(y * 127) / 127
    narrow = np.sign(y) * np.expm1(np.abs(y) * np.log1p(mu)) / mu * peak
    narrow += np.random.default_rng(seed).standard_normal(len(narrow)) * 1e-3
    return resample_poly(narrow, 2, 1).astype(np.float32)[: len(x)]


def real_recordings() -> list[Recording]:
    """The real two-person recordings, tune and test. Real speech is scarce: the tune split reuses no
    pair of the test split, but some voices are in both (stated in bench/speakers.md)."""
    ami = REAL_AUDIO / "ami-es2004-1min.flac"
    reader, kennedy = librivox_pieces(), jfk_pieces()
    fee013_early = ami_solo("FEE013", 7.4, 29.8)
    out = [
        splice("AMI FEE013 + J.F. Kennedy (spliced)", "tune", ("FEE013", fee013_early), ("JFK", kennedy)),
        splice("LibriVox reader + J.F. Kennedy (spliced)", "test", ("JFK", kennedy), ("reader", reader)),
    ]
    phone = splice("LibriVox reader + J.F. Kennedy, phone line (spliced)", "test", ("JFK", kennedy), ("reader", reader))
    phone.mono = telephone(phone.mono)
    out.append(phone)
    out.append(splice("AMI FEE013 + MEO015 (spliced)", "test", ("FEE013", fee013_early),
                      ("MEO015", ami_solo("MEO015", 44.4, 60.0))))
    out.append(splice("LibriVox reader + AMI FEE016 (spliced)", "test", ("reader", reader),
                      ("FEE016", ami_solo("FEE016", 29.7, 44.5))))
    start, end = 29.7, 60.0  # the meeting's last 30 s: FEE016 then MEO015 (MEE014 says "yeah" once)
    audio = _load(ami)[int(start * SAMPLE_RATE): int(end * SAMPLE_RATE)]
    spans = [(max(a, start) - start, min(b, end) - start, s) for a, b, s in read_rttm(ami.with_suffix(".rttm"))
             if b > start and a < end]
    out.append(Recording("AMI meeting, last 30 s (FEE016, MEO015; natural turns)", "test", audio, spans, natural=True))
    return out
