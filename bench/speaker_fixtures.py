"""Synthetic two-voice interviews with known turn timings, for speaker-labelling tests and benchmarks.

Why synthetic: the speaker stage needs recordings where we know exactly who spoke when, in mono and
in "one voice per channel" stereo, without shipping a real person's voice. Each turn of a script is
spoken by espeak-ng in its speaker's voice, turns are joined with short pauses, and we keep the
sample span of every turn as ground truth. Nothing here touches the network.

Used by `tests/unit/transcribe/test_speakers.py` (short scripts, fake word timings) and `bench/speakers.py` (longer
scripts, real Whisper words).
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
) -> Interview:
    """Speak a script of (speaker, text) turns; mono mix + one-voice-per-channel stereo + turn spans.

    `bleed_db` is how loud each voice is on the other speaker's channel (a lapel mic hears the other
    person a little); `noise_db` adds a constant white-noise floor (dBFS RMS) to every channel.
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
    return Interview(mono=mono, stereo=stereo, turns=turns, channel_of=channel_of)


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

# (name, script, voices, words per minute, pitch): three voice pairs of increasing difficulty.
BENCH_CASES: list[tuple[str, str, dict[str, str], dict[str, int], dict[str, int]]] = [
    ("m3/f2 (male/female)", "housing", {"interviewer": "en-us+m3", "storyteller": "en-us+f2"},
     {"interviewer": 165, "storyteller": 150}, {}),
    ("m1/f4 (gb male/gb female)", "health", {"interviewer": "en+m1", "storyteller": "en+f4"},
     {"interviewer": 160, "storyteller": 145}, {}),
    ("m3/m7 (two male voices)", "youth", {"interviewer": "en-us+m3", "storyteller": "en+m7"},
     {"interviewer": 170, "storyteller": 155}, {"interviewer": 45, "storyteller": 60}),
]
