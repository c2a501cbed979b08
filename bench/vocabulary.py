"""Does the engine write the project's own words right with the vocabulary, and invent none?

    .venv/bin/python bench/vocabulary.py --split tune              # every prompt variant, for tuning
    .venv/bin/python bench/vocabulary.py --split test --frozen     # once: none vs the shipped config
    .venv/bin/python bench/vocabulary.py --speed 3                 # transcription time, without and with

Each run writes its split's section of bench/vocabulary.md (the other split's section is kept).

What is measured, for each engine (tiny.en, the shipped decoding settings) and each variant of the
prompt (`none` = no vocabulary, as before issue 16), through the pipeline's own
`transcribe_speech` (VAD, batches, non-speech filter):
- **said**: synthetic speech that says the project's words (espeak-ng):
  - sentences written for this bench, one recording per voice (the sentences joined with pauses,
    so a recording spans several of Whisper's 30 s windows);
  - the storyteller turns of bench/interviews that say a project word, one recording per turn,
    the voices taken in turn, with that interview's names as the sidecar's names.
  Recall of each term where it is said: a term is right only when written as in the vocabulary
  (case aside): "co production" or "coproduction" for "co-production" is a miss. The co-produc*
  forms ("co-produce", "co-producing"…) are counted the same way, written with their hyphen.
- **not said**: speech without those words: the real recordings of ../shared/audio (LibriVox, JFK,
  the AMI meeting, the stereo clip mixed to mono) and storyteller turns that say none of them. Every
  term of the prompt written where the reference does not have it is an invented term (target 0),
  and so is the prompt's own wording ("Glossary") echoed.
- overall WER (bench/common.py's normalisation) on every set, with and without.

The split: sentences, voices and interviews of `tune` (odd-numbered interviews) were used to pick the
variant and the defaults; `test` (other sentences, other voices, even-numbered interviews) was run
once with the configuration frozen. Nothing is downloaded; ../shared is read, never written.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    ENGINES,
    HERE,
    MEETING,
    NORMALISATION,
    SHARED_AUDIO,
    bag_error,
    load_speech,
    log,
    machine,
    meeting_reference,
    normalise,
    pct,
    read_clips,
    score,
    table,
    total,
)

RATE = 16000
ESPEAK = shutil.which("espeak-ng") or shutil.which("espeak")
INTERVIEWS = HERE / "interviews"
OUT = HERE / "vocabulary.md"
STAGE_DIRECTION = re.compile(r"\s*\([a-z ]+\)")  # "(laughs)": not spoken
PAUSE_S = 0.9  # between the sentences of one recording
NOISE_DBFS = -60.0  # a faint noise floor, as a quiet room
LEVEL_RMS = 0.08  # every voice at about -22 dBFS RMS
SAID_TURNS = 8  # storyteller turns that say a project word, per split (one per interview first)
NOT_SAID_TURNS = 6  # storyteller turns without any project word, per split
NOT_SAID_WORDS = (40, 160)  # their length, words

SENTENCES = {
    "tune": [
        "Co-production means we design the service together.",
        "It was real co-production, not just a consultation.",
        "We did Community Reporting with peer support and lived experience at the heart of it.",
        "The peer researchers co-produced the questions with the council.",
        "Our Community Reporters recorded twenty stories last spring.",
        "After the sense-making workshop we picked the quotes together.",
        "People with lived experience sat on the panel as equals.",
        "Peer support groups met every Tuesday in the library.",
        "The funding ran out before the co-production work was finished.",
        "She trained as one of the Community Reporters and now trains others.",
        "We co-produced the report, every word of it.",
        "Sense-making is where the stories turn into findings about sharing power.",
    ],
    "test": [
        "Nobody had heard the word co-production before the first meeting.",
        "The council says it believes in co-production, but the money says otherwise.",
        "I became one of the peer researchers because of my own lived experience.",
        "Community Reporting gave me a microphone and a reason to use it.",
        "Two Community Reporters interviewed the bus drivers at the depot.",
        "We held a sense-making session in the church hall on a wet Saturday.",
        "The whole toolkit was co-produced with young carers.",
        "Peer support is what kept me going that winter.",
        "They called it co-production, and for once it actually was.",
        "Lived experience is not a box you tick on a form.",
        "The peer researchers wrote the questions themselves.",
        "Trust and co-learning were the themes that came up most.",
    ],
}
# espeak-ng voices (voice, pitch 0-99, words per minute): no voice of one split is in the other.
VOICES = {
    "tune": [("en-gb", 50, 150), ("en-us+m3", 50, 150), ("en-gb-scotland+m1", 40, 150)],
    "test": [("en-gb-x-rp+f4", 65, 160), ("en-us+m7", 35, 160), ("en-029+m3", 50, 160),
             ("en-gb-x-gbcwmd+f1", 55, 160)],
}

# Prompt variants tried on the tune split: overrides of [transcribe] (None: no vocabulary at all).
VARIANTS: dict[str, dict | None] = {
    "none": None,
    "config": {"vocabulary_codebook": "none"},
    "config+themes": {"vocabulary_codebook": "names"},
    "config+descriptors": {"vocabulary_codebook": "descriptors"},
    "sentence": {"vocabulary_prompt": "In this interview we talk about {terms}."},
}
FROZEN = "shipped"  # the shipped config as it is, for --frozen


# ---------------------------------------------------------------- audio


def synthesize(text: str, voice: str, pitch: int, wpm: int) -> np.ndarray:
    """One utterance from espeak-ng, 16 kHz float32, silence trimmed, at LEVEL_RMS."""
    from scipy.signal import resample_poly

    if ESPEAK is None:
        raise SystemExit("espeak-ng is not installed")
    with tempfile.TemporaryDirectory(prefix="vocab-bench-") as tmp:
        out = Path(tmp) / "u.wav"
        subprocess.run([ESPEAK, "-v", voice, "-p", str(pitch), "-s", str(wpm), "-w", str(out), "--", text],
                       check=True, capture_output=True)
        with wave.open(str(out), "rb") as w:
            rate = w.getframerate()
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
    g = np.gcd(rate, RATE)
    pcm = resample_poly(pcm, RATE // g, rate // g).astype(np.float32)
    loud = np.flatnonzero(np.abs(pcm) > 0.01)
    pcm = pcm[loud[0]: loud[-1] + 1] if len(loud) else pcm
    return pcm / (np.sqrt(np.mean(pcm ** 2)) + 1e-9) * LEVEL_RMS


def speak(texts: list[str], voice: tuple[str, int, int], seed: int) -> np.ndarray:
    """Texts one after the other in one voice, with pauses and a faint noise floor."""
    gap = np.zeros(int(PAUSE_S * RATE), dtype=np.float32)
    parts = [gap]
    for text in texts:
        parts += [synthesize(text, *voice), gap]
    mono = np.concatenate(parts)
    rng = np.random.default_rng(seed)
    return mono + (rng.standard_normal(len(mono)) * 10 ** (NOISE_DBFS / 20)).astype(np.float32)


# ---------------------------------------------------------------- the sets


@dataclass
class Recording:
    name: str
    kind: str  # "sentences", "turn", "turn (no project word)", "real, read", "real, meeting", …
    reference: str  # as written (terms are counted in it)
    names: list[str] = field(default_factory=list)  # the sidecar's names for it
    audio: np.ndarray | None = None
    ami: bool = False  # the AMI meeting: its own normalisation, bag-of-words error beside WER
    hyp: dict = field(default_factory=dict)  # (engine, variant) -> text
    seconds: dict = field(default_factory=dict)


def interview_stems(split: str) -> list[str]:
    """Odd numbers tune, even test; an interview whose yaml names its own split (the `final` set,
    bench/interviews/README.md) is in neither."""
    import yaml

    odd = split == "tune"
    return [p.stem for p in sorted(INTERVIEWS.glob("w*-*.txt"))
            if not yaml.safe_load(p.with_suffix(".yaml").read_text("utf-8")).get("split")
            and (int(p.stem.split("-")[1]) % 2 == 1) == odd]


def storyteller_turns(stem: str) -> list[str]:
    turns = []
    for line in (INTERVIEWS / f"{stem}.txt").read_text("utf-8").splitlines():
        speaker, sep, text = line.partition(":")
        if sep and speaker.strip() == "storyteller":
            text = STAGE_DIRECTION.sub("", text).strip()
            if text:
                turns.append(text)
    return turns


def interview_names(stem: str) -> list[str]:
    import yaml

    ann = yaml.safe_load((INTERVIEWS / f"{stem}.yaml").read_text("utf-8"))
    return [ann.get("storyteller_pseudonym") or ""] + [n["text"] for n in ann.get("names", [])]


def project_words(text: str, terms: list[str]) -> bool:
    low = term_text(text)
    return any(count(low, t) for t in terms) or bool(CO_PRODUC.search(low))


def build_sets(split: str, config_terms: list[str]) -> list[Recording]:
    """The recordings of a split, synthesised now (a few seconds of espeak-ng)."""
    voices = VOICES[split]
    recs = []
    for i, voice in enumerate(voices):
        recs.append(Recording(f"sentences, {voice[0]}", "sentences", " ".join(SENTENCES[split]),
                              audio=speak(SENTENCES[split], voice, seed=i)))
    said, not_said = [], []
    for stem in interview_stems(split):
        names = interview_names(stem)
        for n, turn in enumerate(storyteller_turns(stem)):
            if project_words(turn, config_terms):
                said.append((stem, n, turn, names))
            elif NOT_SAID_WORDS[0] <= len(turn.split()) <= NOT_SAID_WORDS[1] and not any(s[0] == stem for s in not_said):
                not_said.append((stem, n, turn, names))
    firsts = [s for i, s in enumerate(said) if all(o[0] != s[0] for o in said[:i])]
    said = (firsts + [s for s in said if s not in firsts])[:SAID_TURNS]
    said.sort(key=lambda s: (s[0], s[1]))
    for k, (stem, n, turn, names) in enumerate(said):
        voice = voices[k % len(voices)]
        recs.append(Recording(f"{stem} turn {n + 1}, {voice[0]}", "turn", turn, names,
                              audio=speak([turn], voice, seed=100 + k)))
    for k, (stem, n, turn, names) in enumerate(not_said[:NOT_SAID_TURNS]):
        voice = voices[(k + 1) % len(voices)]
        recs.append(Recording(f"{stem} turn {n + 1}, {voice[0]}", "turn (no project word)", turn, names,
                              audio=speak([turn], voice, seed=200 + k)))
    for audio_path, ref in read_clips():
        recs.append(Recording(audio_path.name, "real, read", ref.read_text(), audio=load_speech(audio_path)))
    recs.append(Recording(MEETING.name + " (AMI, 4 speakers)", "real, meeting", meeting_reference(),
                          audio=load_speech(MEETING), ami=True))
    stereo = SHARED_AUDIO / "stereo" / "stereo_diarization.wav"
    ref = " ".join(line.split(":", 1)[1] for line in stereo.with_suffix(".txt").read_text().splitlines() if ":" in line)
    recs.append(Recording(stereo.name + " (mixed to mono)", "real, two voices at once", ref, audio=load_speech(stereo)))
    return recs


# ---------------------------------------------------------------- counting terms

CO_PRODUC = re.compile(r"(?<![\w'-])co-produc\w*")


def term_text(text: str) -> str:
    """Lower case, quotes straightened, punctuation but hyphens and apostrophes gone: terms are
    looked for in this, so a hyphen must be written for a hyphenated term to count."""
    t = text.lower().replace("\u2019", "'").replace("\u2018", "'")
    return " ".join(re.sub(r"[^\w\s'-]|_", " ", t).split())


def count(low: str, term: str) -> int:
    return len(re.findall(r"(?<![\w'-])" + re.escape(term_text(term)) + r"(?![\w-])", low))


def co_produc_forms(low: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for m in CO_PRODUC.findall(low):
        out[m] = out.get(m, 0) + 1
    return out


# ---------------------------------------------------------------- running


def vocabulary_for(rec: Recording, cfg, book) -> tuple[str | None, list[str]]:
    """The prompt the pipeline would give for this recording under `cfg`, and its terms."""
    from storypipe.tasks.transcribe import vocabulary

    # The names as the pipeline reads a sidecar (sidecar_names: an initial such as "A." is no name).
    names = vocabulary.sidecar_names(_meta(rec.names))
    vocab = vocabulary.build_vocabulary(cfg, names, vocabulary.codebook_terms(book, cfg.vocabulary_codebook))
    return vocab.prompt, list(vocab.terms)


def run(recs: list[Recording], engines: tuple[str, ...], variants: dict[str, dict | None]):
    from storypipe.core.settings import load_settings
    from storypipe.tasks.common.themes import PROJECT_THEMES, load_codebook
    from storypipe.tasks.transcribe import transcribe_speech
    from storypipe.tasks.transcribe.engines import get_engine

    base = load_settings(Path(tempfile.mkdtemp(prefix="vocab-bench-root-")))
    book = load_codebook(PROJECT_THEMES)
    prompts: dict[tuple[str, str], tuple[str | None, list[str]]] = {}
    for name in engines:
        for variant, over in variants.items():
            tcfg = base.transcribe.model_copy(update={"engine": name, **(over or {})})
            settings = base.model_copy(update={"transcribe": tcfg})
            engine = get_engine(tcfg)
            started = time.perf_counter()
            for rec in recs:
                prompt, terms = (None, []) if over is None else vocabulary_for(rec, tcfg, book)
                prompts[rec.name, variant] = (prompt, terms)
                t0 = time.perf_counter()
                segments = transcribe_speech(engine, rec.audio, settings, "en", rec.name, prompt=prompt)[0]
                rec.seconds[name, variant] = time.perf_counter() - t0
                rec.hyp[name, variant] = " ".join(s.text for s in segments)
            log(f"{name:15} {variant:20} {time.perf_counter() - started:6.1f} s")
    return base, book, prompts


# ---------------------------------------------------------------- scoring


@dataclass
class Tally:
    said: int = 0
    right: int = 0

    def add(self, said: int, right: int) -> None:
        self.said += said
        self.right += right

    def recall(self) -> str:
        return f"{self.right}/{self.said} ({pct(self.right / self.said) if self.said else '–'})"


def measured_terms(base_cfg, book, rec: Recording) -> dict[str, str]:
    """term -> its source, for the terms measured on a recording: the shipped config's project words,
    the recording's names and the codebook's theme names (the same set for every variant)."""
    from storypipe.tasks.transcribe import vocabulary

    out: dict[str, str] = {}
    for source, terms in (("config", base_cfg.vocabulary), ("sidecar", vocabulary.sidecar_names(_meta(rec.names))),
                          ("codebook", vocabulary.codebook_terms(book, "names"))):
        for t in terms:
            if t.casefold() not in {k.casefold() for k in out}:  # "Lived experience" is the config's term too
                out[t] = source
    return out


def _meta(names: list[str]):
    from storypipe.core.models import Metadata

    return Metadata(names=[n for n in names if n])


def evaluate(recs, engines, variants, base, book, prompts) -> dict:
    cols = [(e, v) for e in engines for v in variants]
    res: dict = {c: {"terms": {}, "source": {}, "forms": Tally(), "invented": [], "echo": 0,
                     "wer": {}, "bag": {}} for c in cols}
    for c in cols:
        r = res[c]
        for rec in recs:
            ref_low, hyp_low = term_text(rec.reference), term_text(rec.hyp[c])
            measured = measured_terms(base.transcribe, book, rec)
            for term, source in measured.items():
                said = count(ref_low, term)
                if said:
                    got = min(said, count(hyp_low, term))
                    r["terms"].setdefault(term, Tally()).add(said, got)
                    r["source"].setdefault(source, Tally()).add(said, got)
            ref_forms, hyp_forms = co_produc_forms(ref_low), co_produc_forms(hyp_low)
            for form, n in ref_forms.items():
                r["forms"].add(n, min(n, hyp_forms.get(form, 0)))
            prompt, terms = prompts[rec.name, c[1]]
            for term in set(terms) | set(measured):
                extra = count(hyp_low, term) - count(ref_low, term)
                if extra > 0:
                    r["invented"].append((rec.name, term, extra))
            if prompt:  # the template's own words around the terms ("Glossary:"), each part as a phrase
                fixed = [term_text(part) for part in template_of(c[1], base).split("{terms}")]
                r["echo"] += sum(max(0, count(hyp_low, f) - count(ref_low, f)) for f in fixed if f)
            kind = rec.kind
            ref_n, hyp_n = normalise(rec.reference, ami=rec.ami), normalise(rec.hyp[c], ami=rec.ami)
            r["wer"].setdefault(kind, []).append(score(ref_n, hyp_n))
            if rec.ami:
                r["bag"][rec.name] = bag_error(ref_n, hyp_n)
    return res


def template_of(variant: str, base) -> str:
    over = VARIANTS.get(variant) or {}
    return over.get("vocabulary_prompt", base.transcribe.vocabulary_prompt)


def fmt_wer(scores) -> str:
    t = total(scores)
    return f"{pct(t.wer)} ({t.ref_words} words)"


def report(split: str, recs, engines, variants, base, book, prompts, res, started: float) -> str:
    cols = [(e, v) for e in engines for v in variants]
    head = [f"{e} · {v}" for e, v in cols]
    kinds = ["sentences", "turn", "turn (no project word)", "real, read", "real, meeting", "real, two voices at once"]
    rows = []
    for source, label in (("config", "project words (config), recall"), ("sidecar", "sidecar names, recall"),
                          ("codebook", "theme names (codebook), recall")):
        if any(source in res[c]["source"] for c in cols):
            rows.append([label] + [res[c]["source"].get(source, Tally()).recall() for c in cols])
    rows.append(["co-produc* forms, recall"] + [res[c]["forms"].recall() for c in cols])
    rows.append(["terms invented where not said (target 0)"] + [str(sum(n for *_, n in res[c]["invented"])) for c in cols])
    rows.append(["prompt wording echoed (target 0)"] + [str(res[c]["echo"]) for c in cols])
    for kind in kinds:
        rows.append([f"WER, {kind}"] + [fmt_wer(res[c]["wer"].get(kind, [])) for c in cols])
    for rec in recs:
        if rec.ami:
            rows.append([f"bag-of-words error, {rec.name}"] + [pct(res[c]["bag"][rec.name]) for c in cols])
    summary = table(["", *head], rows, ["---"] + ["--:"] * len(cols))

    term_rows = []
    terms = sorted({t for c in cols for t in res[c]["terms"]}, key=lambda t: -res[cols[0]]["terms"][t].said
                   if t in res[cols[0]]["terms"] else 0)
    for t in terms:
        term_rows.append([t] + [res[c]["terms"].get(t, Tally()).recall() for c in cols])
    per_term = table(["term (said)", *head], term_rows, ["---"] + ["--:"] * len(cols))

    invented = []
    for c in cols:
        for name, term, n in res[c]["invented"]:
            invented.append(f"- {c[0]} · {c[1]}: {term!r} ×{n} in {name}")
    misses = []
    for c in cols:
        if c[1] == "none":
            continue
        for rec in recs:
            low = term_text(rec.hyp[c])
            for form in co_produc_forms(term_text(rec.reference)):
                if count(low, form) < count(term_text(rec.reference), form):
                    misses.append(f"- {c[0]} · {c[1]}: {form!r} missed in {rec.name}")
    prompt_example = next((prompts[r.name, v][0] for r in recs for v in variants if r.kind == "sentences"
                           and prompts[r.name, v][0]), None)
    sets = "\n".join(f"- {kind}: {sum(1 for r in recs if r.kind == kind)} recordings, "
                     f"{sum(len(r.audio) for r in recs if r.kind == kind) / RATE / 60:.1f} min"
                     for kind in kinds)
    t = base.transcribe
    lines = [
        f"<!-- split:{split} -->",
        f"## Split `{split}`" + (" (measured once, configuration frozen)" if split == "test" else " (tuning)"),
        "",
        f"{machine()}; {time.perf_counter() - started:.0f} s for this run. Model {t.model}, beam {t.beam_size}, "
        f"word timestamps {t.word_timestamps}, condition_on_previous_text {t.condition_on_previous_text}; "
        "through `transcribe_speech` (VAD, batches, non-speech filter).",
        "",
        "Voices: " + ", ".join(f"{v} -p {p} -s {s}" for v, p, s in VOICES[split]) + ".",
        "",
        sets,
        "",
        "Variants: " + "; ".join(f"`{v}` = {'no vocabulary' if o is None else (o or 'the shipped [transcribe] settings')}"
                                 for v, o in variants.items()) + ".",
        "",
        f"The prompt of the sentence recordings, for example: `{prompt_example}`" if prompt_example else "",
        "",
        summary,
        "",
        "Recall per term where it is said (right / said):",
        "",
        per_term,
        "",
        "Invented terms:" if invented else "Invented terms: none.",
        *invented,
        "",
        ("co-produc* forms still missed:" if misses else "co-produc* forms missed: none.") if misses or True else "",
        *misses[:40],
        *([f"- … and {len(misses) - 40} more"] if len(misses) > 40 else []),
        "",
        f"WER normalisation: {NORMALISATION}.",
        f"<!-- /split:{split} -->",
    ]
    return "\n".join(lines)


def speed(engines: tuple[str, ...], rounds: int) -> str:
    """Transcription time of the ≈7-minute demo interview (storypipe/sample/interview.mp3 three times,
    as bench/speed.py), without and with the shipped vocabulary (its sidecar's names included), taking
    turns in one process: wall time and CPU time of `transcribe_speech`, the median of `rounds` each."""
    import statistics

    import yaml

    from common import SAMPLE
    from storypipe.core.models import Metadata, Story
    from storypipe.core.settings import load_settings
    from storypipe.tasks.transcribe import transcribe_speech, vocabulary
    from storypipe.tasks.transcribe.engines import get_engine

    base = load_settings(Path(tempfile.mkdtemp(prefix="vocab-bench-root-")))
    mono = np.tile(load_speech(SAMPLE / "interview.mp3"), 3)
    meta = Metadata.model_validate({k: v for k, v in yaml.safe_load((SAMPLE / "interview.yaml").read_text()).items()
                                    if k in Metadata.model_fields})
    story = Story.model_construct(story_id="demo", metadata=meta)
    rows = []
    for name in engines:
        settings = base.model_copy(update={"transcribe": base.transcribe.model_copy(update={"engine": name})})
        engine = get_engine(settings.transcribe)
        prompt = vocabulary.story_vocabulary(story, None, settings, "en").prompt
        transcribe_speech(engine, mono[: 30 * RATE], settings, "en", "warm-up", prompt=prompt)
        times: dict[str, list[tuple[float, float]]] = {"none": [], "shipped": []}
        for _ in range(rounds):
            for label, p in (("none", None), ("shipped", prompt)):
                wall, cpu = time.perf_counter(), time.process_time()
                transcribe_speech(engine, mono, settings, "en", "demo", prompt=p)
                times[label].append((time.perf_counter() - wall, time.process_time() - cpu))
                log(f"{name:15} {label:8} {times[label][-1][0]:6.1f} s wall, {times[label][-1][1]:6.1f} s CPU")
        med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in times.items()}
        rows.append([name, f"{med['none'][0]:.1f} s / {med['none'][1]:.1f} s",
                     f"{med['shipped'][0]:.1f} s / {med['shipped'][1]:.1f} s",
                     f"{med['shipped'][0] / med['none'][0]:.2f}× / {med['shipped'][1] / med['none'][1]:.2f}×"])
    return "\n".join([
        "<!-- split:speed -->", "## Speed", "",
        f"{machine()}. `transcribe_speech` on the demo interview three times ({len(mono) / RATE / 60:.1f} min), "
        f"none and shipped taking turns, median of {rounds} each (wall / CPU):", "",
        table(["engine", "no vocabulary", "shipped vocabulary", "with / without"], rows), "",
        "<!-- /split:speed -->"])


def update_section(path: Path, split: str, text: str) -> None:
    """Replace this split's section of the report (between its markers), keeping the rest."""
    old = path.read_text("utf-8") if path.is_file() else "# The project's own words: vocabulary for the engine\n"
    pattern = re.compile(rf"<!-- split:{split} -->.*?<!-- /split:{split} -->", re.S)
    new = pattern.sub(lambda m: text, old) if pattern.search(old) else old.rstrip() + "\n\n" + text + "\n"
    path.write_text(new, "utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("tune", "test"))
    parser.add_argument("--speed", type=int, metavar="ROUNDS", help="time the ≈7-min demo interview instead")
    parser.add_argument("--frozen", action="store_true", help="compare no vocabulary with the shipped settings only")
    parser.add_argument("--variant", action="append", choices=list(VARIANTS), help="only these variants (repeatable)")
    parser.add_argument("--engine", choices=ENGINES, action="append", help="only this engine (repeatable)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--dump", type=Path, help="also write every hypothesis to this JSON file")
    parser.add_argument("--limit", type=int, default=0, help="a quick look: only the first N recordings of each kind (no report written)")
    args = parser.parse_args()
    started = time.perf_counter()
    engines = tuple(args.engine or ENGINES)
    if args.speed:
        text = speed(engines, args.speed)
        print(text)
        update_section(args.out, "speed", text)
        return
    if not args.split:
        parser.error("--split or --speed is needed")
    if args.frozen:
        variants = {"none": None, FROZEN: {}}
    else:
        variants = {v: VARIANTS[v] for v in (args.variant or VARIANTS)}
        variants.setdefault("none", None)
        variants = {"none": None, **{k: v for k, v in variants.items() if k != "none"}}
    from storypipe.core.settings import load_settings

    recs = build_sets(args.split, load_settings().transcribe.vocabulary)
    log(f"{len(recs)} recordings, {sum(len(r.audio) for r in recs) / RATE / 60:.1f} min")
    if args.limit:
        recs = [r for kind in dict.fromkeys(r.kind for r in recs) for r in [x for x in recs if x.kind == kind][:args.limit]]
    base, book, prompts = run(recs, engines, variants)
    if args.dump:
        import json

        args.dump.write_text(json.dumps([{"name": r.name, "kind": r.kind, "reference": r.reference,
                                          "hyp": {f"{e} · {v}": h for (e, v), h in r.hyp.items()}} for r in recs],
                                        indent=1, ensure_ascii=False), "utf-8")
    res = evaluate(recs, engines, variants, base, book, prompts)
    text = report(args.split, recs, engines, variants, base, book, prompts, res, started)
    print(text)
    if not args.limit:
        update_section(args.out, args.split, text)


if __name__ == "__main__":
    main()
