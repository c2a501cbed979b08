"""How well do storypipe's candidate quotes, themes and name-hiding match what a workshop would pick?

The eight interview scripts in bench/quotes/ (written for this, with filler, hesitations, chatter and
quotable-sounding interviewer lines) are spoken by espeak-ng in two voices, run through the real
pipeline (`storypipe run`: Whisper, speaker labels, extraction), and compared with their gold
annotation:

- recall@10: share of gold quotes found among a story's 10 best candidates. A candidate finds a gold
  quote when it covers at least 60% of the gold quote's words, in order, and at least 40% of the
  candidate is the gold quote: a reviewer trims a sentence or two with the review app's word-by-word
  handles, but a long candidate with the quote lost inside it does not count.
- theme precision / recall, micro-averaged: on each found quote (the candidate's themes against the
  gold quote's), and on the gold quotes' own text (the tagger alone, whatever the ranking did).
- interviewer share: candidates among the top 10 that contain any interviewer speech (from the known
  turn timings), and the share of candidate seconds that are interviewer speech.
- names: share of spoken name mentions hidden by `anonymise`, with no help from the sidecar and with
  the names listed in it.
- who spoke: share of the transcript's words labelled with the person speaking at the word's middle
  (from the known turn timings); lowest and mean over the mono interviews.

The `test` and `holdout` splits are held back: tune on `--split tune`; run the others only to report
(`holdout` was written after all tuning, by a writer who saw nothing else).
The synthesised audio and the pipeline's output are cached in bench/.cache/quotes (delete to redo).

    .venv/bin/python bench/quotes_eval.py --split tune
    .venv/bin/python bench/quotes_eval.py --split test --write bench/quotes.md
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import wave
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.speaker_fixtures import SAMPLE_RATE, build_interview  # noqa: E402
from storypipe.core.store import Store  # noqa: E402
from storypipe.core.models import Metadata, Quote, Segment, Transcript, Word  # noqa: E402
from storypipe.core.settings import load_settings  # noqa: E402
from storypipe.tasks.common.anonymise import anonymise, letters  # noqa: E402
from storypipe.tasks.extract import extract  # noqa: E402
from storypipe.tasks.common.nlp import load_nlp  # noqa: E402
from storypipe.tasks.common.themes import PROJECT_THEMES, tagger_for  # noqa: E402

DATA = REPO / "bench" / "quotes"
CACHE = REPO / "bench" / ".cache" / "quotes"
# The independent set of issue 16 (bench/interviews/README.md): `--data bench/interviews`. Its split
# is in the file name (odd numbers tune, even numbers test), fixed before any tuning.
INTERVIEWS = REPO / "bench" / "interviews"


def use_data(folder: Path) -> None:
    """Evaluate another folder of interviews; its audio and pipeline output are cached apart."""
    global DATA, CACHE
    DATA = folder.resolve()
    CACHE = REPO / "bench" / ".cache" / ("quotes" if DATA == REPO / "bench" / "quotes" else f"quotes-{DATA.name}-v2")


# "(laughs)", "(pause)" in a script: not words, never spoken into the audio.
STAGE_DIRECTION = re.compile(r"\s*\([a-z ]+\)")


def split_of(txt: Path, ann: dict) -> str:
    return ann.get("split") or ("tune" if int(txt.name.split("-")[1]) % 2 else "test")
VOICES = {"interviewer": "en-us+m3", "storyteller": "en-us+f2"}  # as the demo sample (bench/quotes)
# bench/interviews (issue 16): twelve voice pairs (interviewer, storyteller, with espeak pitch),
# mixed and same gender, some close in pitch. The interviews of a split take them in turn, so each
# split hears all twelve; every second one is split stereo (one voice per channel) and every third
# has a noisy room.
# espeak-ng drops the variant of "en-gb+<variant>" and speaks plain en-gb (a male voice), so those are
# written "en-gb" here: the same sound, named for what it is. Until 2026-12-03 the first pair was
# "en-gb+m3" with "en-gb+f2", which is en-gb twice: one voice speaking both parts, which no speaker
# labelling can tell apart. It is now en-gb with en+m3 (the same British base voice with the m3
# variant: two men close in pitch, 100 and 103 Hz median). tests/unit/extract/test_eval_interviews.py
# checks that every pair is two different sounds.
VOICE_PAIRS = [
    (("en-gb", 50), ("en+m3", 50)), (("en-us+f4", 55), ("en-gb-scotland+m1", 40)),
    (("en-gb", 45), ("en-gb-x-rp+m5", 55)), (("en-us+f2", 60), ("en-gb", 50)),
    (("en-gb-x-gbclan+m2", 50), ("en-us+m4", 45)), (("en-gb", 50), ("en-029+m3", 50)),
    (("en-us-nyc+m6", 40), ("en-gb-x-gbcwmd+f1", 55)), (("en-gb-x-rp+f4", 65), ("en-gb", 60)),
    (("en-us+m7", 35), ("en-gb", 40)), (("en-gb-scotland+f2", 50), ("en-us+m1", 50)),
    (("en-gb-x-gbcwmd+m4", 45), ("en-gb-x-rp+m3", 50)), (("en-029+f3", 55), ("en-us+f1", 55)),
]
NOISY_ROOM_DBFS = -38.0  # about 16 dB below the voices (build_interview puts them near -22 dBFS)
WPM = 150
TOP = 10
COVER, PURITY = 0.6, 0.4


@dataclass
class Gold:
    name: str
    split: str
    turns: list[tuple[str, str]]
    quotes: list[dict]
    names: list[dict]
    pseudonym: str


@dataclass
class Result:
    name: str
    gold: int = 0
    found: int = 0
    theme_tp: int = 0
    theme_fp: int = 0
    theme_fn: int = 0
    tagged_gold: int = 0  # found quotes tagged with at least one of their workshop themes
    gold_text_tp: int = 0
    gold_text_fp: int = 0
    gold_text_fn: int = 0
    candidates: int = 0
    with_interviewer: int = 0
    interviewer_s: float = 0.0
    candidate_s: float = 0.0
    name_mentions: int = 0
    hidden_plain: int = 0
    hidden_sidecar: int = 0
    speaker_words: int = 0  # the transcript's words, each scored by who spoke at its middle
    speaker_right: int = 0
    recording: str = ""  # the voices, and mono or split stereo
    missed: list[str] = field(default_factory=list)
    wrong_themes: list[str] = field(default_factory=list)
    unfound_names: list[str] = field(default_factory=list)


def blind_report(settings) -> str:
    """The theme tagger alone on bench/quotes/blind-quotes.yaml: quotes written after all tuning by a
    writer who saw nothing else (no audio: themes only)."""
    data = yaml.safe_load((DATA / "blind-quotes.yaml").read_text("utf-8"))
    nlp = load_nlp(settings.extract.spacy_model)
    tagger = tagger_for(nlp, PROJECT_THEMES)
    counts = {k: [0, 0, 0] for k in ("tagged", "suggested")}  # right, extra, missed
    untagged_hits = {"tagged": 0, "suggested": 0}
    none = 0
    for q in data["quotes"]:
        matches = tagger.match(nlp(q["text"]))
        want = set(q["themes"])
        none += not want
        for kind, got in (("tagged", {m.theme for m in matches if m.tagged}), ("suggested", {m.theme for m in matches})):
            counts[kind][0] += len(got & want)
            counts[kind][1] += len(got - want)
            counts[kind][2] += len(want - got)
            untagged_hits[kind] += bool(got) and not want
    lines = [f"## Theme tagger on {len(data['quotes'])} blind quotes ({none} with no theme)", "",
             "| themes | precision | recall | right | extra | missed | no-theme quotes given a theme |", "|---|---|---|---|---|---|---|"]
    for kind, (right, extra, missed) in counts.items():
        lines.append(f"| {kind} | {ratio(right, right + extra)} | {ratio(right, right + missed)} | {right} | {extra} | {missed} | "
                     f"{untagged_hits[kind]} of {none} |")
    return "\n".join(lines) + "\n"


def load_gold(split: str) -> list[Gold]:
    out = []
    for txt in sorted(DATA.glob("*.txt")):
        ann = yaml.safe_load(txt.with_suffix(".yaml").read_text("utf-8"))
        if split != "all" and split_of(txt, ann) != split:
            continue
        turns = []
        for line in txt.read_text("utf-8").splitlines():
            if line.strip() and not line.startswith("#"):
                speaker, _, text = line.partition(":")
                turns.append((speaker.strip(), STAGE_DIRECTION.sub("", text).strip()))
        out.append(Gold(txt.stem, split_of(txt, ann), turns, ann["quotes"], ann.get("names", []),
                        ann.get("storyteller_pseudonym", "")))
    return out


def prepare(golds: list[Gold]) -> Path:
    """Synthesise what is missing and run the real pipeline on it once; returns the storypipe root."""
    root = CACHE / "root"
    todo = [g for g in golds if not (CACHE / f"{g.name}.turns.json").exists()]
    for g in todo:
        voices, pitch, stereo, noise = recording_of(g)
        print(f"synthesising {g.name}: {voices}, {'split stereo' if stereo else 'mono'}"
              f"{', noisy room' if noise else ''}", file=sys.stderr)
        interview = build_interview(g.turns, voices, words_per_minute={"interviewer": WPM, "storyteller": WPM},
                                    pitch=pitch, **({"noise_db": NOISY_ROOM_DBFS} if noise else {}))
        inbox = root / "audio" / "inbox"
        inbox.mkdir(parents=True, exist_ok=True)
        audio = interview.stereo if stereo else interview.mono
        pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
        with wave.open(str(inbox / f"{g.name}.wav"), "wb") as w:
            w.setnchannels(2 if stereo else 1), w.setsampwidth(2), w.setframerate(SAMPLE_RATE)
            w.writeframes(pcm.tobytes())
        (inbox / f"{g.name}.yaml").write_text(
            yaml.safe_dump({"title": g.name, "storyteller": g.pseudonym,
                            "consent": {"transcript": True, "clips": True, "full_story": False, "anonymise": True}}),
            "utf-8")
        (CACHE / f"{g.name}.turns.json").write_text(
            json.dumps([{"speaker": t.speaker, "start": t.start, "end": t.end} for t in interview.turns]))
    if todo:
        exe = shutil.which("storypipe", path=str(REPO / ".venv" / "bin")) or "storypipe"
        env = {**os.environ, "STORYPIPE_ROOT": str(root)}
        print(f"running storypipe on {len(todo)} interviews", file=sys.stderr)
        subprocess.run([exe, "run", "--root", str(root)], check=False, env=env)
    return root


def recording_of(g: Gold) -> tuple[dict[str, str], dict[str, int], bool, bool]:
    """Voices, pitches, split stereo or not, noisy room or not, for one interview."""
    if DATA != INTERVIEWS:
        return VOICES, {}, False, False
    names = [x.name for x in load_gold(g.split)]
    k = names.index(g.name)
    (iv, ip), (sv, sp) = VOICE_PAIRS[k % len(VOICE_PAIRS)]
    return {"interviewer": iv, "storyteller": sv}, {"interviewer": ip, "storyteller": sp}, k % 2 == 1, k % 3 == 2


def transcript_of(root: Path, name: str) -> Transcript:
    store = Store(root)
    for story in store.stories():
        if story.source.filename == f"{name}.wav":
            return store.read_transcript(story.story_id)
    raise SystemExit(f"{name}: no transcript in {root}; delete {CACHE} and run again")


@functools.cache
def _normaliser():
    from whisper.normalizers import EnglishTextNormalizer

    return EnglishTextNormalizer()


def words(text: str) -> list[str]:
    """Whisper's own English normalisation ("seventy three" and "73" meet), then words."""
    return _normaliser()(text).split()


def overlap(gold: str, candidate: str) -> tuple[float, float]:
    g, c = words(gold), words(candidate)
    matched = sum(b.size for b in SequenceMatcher(None, g, c, autojunk=False).get_matching_blocks())
    return matched / max(1, len(g)), matched / max(1, len(c))


# --text: the script itself as a transcript (exact words and speakers, even timing), to tune the
# ranking in seconds without the recogniser's errors; the audio run stays the measurement.
WORD_S, TURN_GAP_S = 0.4, 0.6


def text_transcript(g: Gold) -> tuple[Transcript, list[dict]]:
    """The script as a word-timed transcript and its turn timings."""
    segments, turns, t = [], [], 0.0
    for i, (speaker, text) in enumerate(g.turns):
        tokens = text.split()
        if not tokens:
            continue
        words = [Word(word=(" " if k else "") + tok, start=round(t + k * WORD_S, 3),
                      end=round(t + (k + 1) * WORD_S - 0.05, 3), probability=0.9) for k, tok in enumerate(tokens)]
        end = words[-1].end
        segments.append(Segment(id=i, start=words[0].start, end=end, text=text, speaker=speaker,
                                avg_logprob=-0.2, no_speech_prob=0.01, words=words))
        turns.append({"speaker": speaker, "start": words[0].start, "end": end})
        t = end + TURN_GAP_S
    return Transcript(story_id=g.name, language="en", duration_s=t, engine="script", model="none",
                      segments=segments), turns


def audio_turns(g: Gold) -> list[dict]:
    return json.loads((CACHE / f"{g.name}.turns.json").read_text())


def evaluate(g: Gold, transcript: Transcript, turns: list[dict], settings, tagger, nlp) -> Result:
    r = Result(g.name, gold=len(g.quotes))
    quotes, _, _ = extract(transcript, settings.extract, PROJECT_THEMES)
    top: list[Quote] = quotes[:TOP]
    for gq in g.quotes:
        best = max(top, key=lambda q: min(*overlap(gq["text"], q.text)), default=None)
        if best is not None:
            cover, purity = overlap(gq["text"], best.text)
        if best is None or cover < COVER or purity < PURITY:
            r.missed.append(gq["text"][:70])
        else:
            r.found += 1
            pred, want = set(best.themes), set(gq["themes"])
            r.theme_tp += len(pred & want)
            r.theme_fp += len(pred - want)
            r.theme_fn += len(want - pred)
            r.tagged_gold += bool(pred & want)
        pred = set(tagger.tag(nlp(gq["text"])))
        want = set(gq["themes"])
        r.gold_text_tp += len(pred & want)
        r.gold_text_fp += len(pred - want)
        r.gold_text_fn += len(want - pred)
        if pred != want:
            r.wrong_themes.append(f"{gq['text'][:50]}... gold {sorted(want)} got {sorted(pred)}")
    interviewer = [(t["start"], t["end"]) for t in turns if t["speaker"] == "interviewer"]
    for q in top:
        inside = sum(max(0.0, min(q.end, b) - max(q.start, a)) for a, b in interviewer)
        r.candidates += 1
        r.candidate_s += q.end - q.start
        r.interviewer_s += inside
        r.with_interviewer += inside > 0.3
    for w, said_by in ((w, s.speaker) for s in transcript.segments for w in s.words):
        r.speaker_words += 1
        r.speaker_right += said_by == speaker_at(turns, (w.start + w.end) / 2)
    # Names: each spoken mention, hidden or not.
    targets = sorted({letters(n["text"]) for n in g.names}, key=len, reverse=True)
    plain = anonymise(transcript, Metadata(storyteller=g.pseudonym), settings)
    helped = anonymise(transcript, Metadata(storyteller=g.pseudonym, names=[n["text"] for n in g.names]), settings)
    original = letters(" ".join(w.word for w in transcript.words()))
    for target in targets:
        mentions = original.count(target)
        r.name_mentions += mentions
        left_plain = letters(" ".join(w.word for w in plain.transcript.words())).count(target)
        left_helped = letters(" ".join(w.word for w in helped.transcript.words())).count(target)
        r.hidden_plain += max(0, mentions - left_plain)
        r.hidden_sidecar += max(0, mentions - left_helped)
        if left_plain:
            r.unfound_names.append(target)
    return r


def speaker_at(turns: list[dict], t: float) -> str:
    """Who was speaking at t: the turn holding it, else the nearest turn (a word's middle can fall in
    the pause just before or after its turn)."""
    return min(turns, key=lambda u: 0.0 if u["start"] <= t <= u["end"] else min(abs(t - u["start"]), abs(t - u["end"])))["speaker"]


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "n/a"


def report(results: list[Result], split: str) -> str:
    s = {k: sum(getattr(r, k) for r in results) for k in Result.__dataclass_fields__
         if isinstance(getattr(results[0], k), (int, float))}
    lines = [
        f"## Split `{split}` ({len(results)} interviews, {s['gold']} gold quotes)",
        "",
        "| interview | recording | gold | found in top 10 | theme P / R (found) | theme P / R (gold text) | candidates with interviewer speech | names hidden (no sidecar / sidecar) | who-spoke word accuracy |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.name} | {r.recording} | {r.gold} | {r.found} | {ratio(r.theme_tp, r.theme_tp + r.theme_fp)} / "
            f"{ratio(r.theme_tp, r.theme_tp + r.theme_fn)} | {ratio(r.gold_text_tp, r.gold_text_tp + r.gold_text_fp)} / "
            f"{ratio(r.gold_text_tp, r.gold_text_tp + r.gold_text_fn)} | {r.with_interviewer} of {r.candidates} | "
            f"{r.hidden_plain} / {r.hidden_sidecar} of {r.name_mentions} | {ratio(r.speaker_right, r.speaker_words)} |"
        )
    lines += [
        "",
        f"- **recall@10: {ratio(s['found'], s['gold'])}** ({s['found']} of {s['gold']})",
        f"- **theme precision {ratio(s['theme_tp'], s['theme_tp'] + s['theme_fp'])}**, recall "
        f"{ratio(s['theme_tp'], s['theme_tp'] + s['theme_fn'])} (found quotes; "
        f"{s['theme_tp']} right, {s['theme_fp']} extra, {s['theme_fn']} missed)",
        f"- **found quotes tagged with a workshop theme: {ratio(s['tagged_gold'], s['found'])}** "
        f"({s['tagged_gold']} of {s['found']}; at least one of the themes the workshop gave it)",
        f"- theme precision {ratio(s['gold_text_tp'], s['gold_text_tp'] + s['gold_text_fp'])}, recall "
        f"{ratio(s['gold_text_tp'], s['gold_text_tp'] + s['gold_text_fn'])} (tagger on the gold quotes' text)",
        f"- **interviewer speech: {s['with_interviewer']} of {s['candidates']} candidates**; "
        f"{ratio(s['interviewer_s'], s['candidate_s'])} of candidate seconds",
        f"- names hidden: {ratio(s['hidden_plain'], s['name_mentions'])} of {s['name_mentions']} spoken mentions "
        f"with no sidecar help, {ratio(s['hidden_sidecar'], s['name_mentions'])} with the names in the sidecar",
    ]
    mono = [r for r in results if "mono" in r.recording and r.speaker_words]
    if mono:
        worst = min(mono, key=lambda r: r.speaker_right / r.speaker_words)
        lines.append(f"- who-spoke word accuracy, {len(mono)} mono interviews: lowest "
                     f"{ratio(worst.speaker_right, worst.speaker_words)} ({worst.name}), mean "
                     f"{sum(r.speaker_right / r.speaker_words for r in mono) / len(mono):.3f}")
    return "\n".join(lines + [""])


def finds(gold: str, candidate: str) -> bool:
    cover, purity = overlap(gold, candidate)
    return cover >= COVER and purity >= PURITY


def picks_report(golds: list[Gold], picks: dict[str, list[str]], split: str, settings) -> str:
    """A second reader's ten passages per interview (read from the scripts, never the annotations),
    scored by the same rule as the pipeline's top 10, beside the pipeline's on the same scripts: how
    far two people agree is the most the pipeline can be asked to agree with one of them."""
    lines = [f"## A second reader on split `{split}` (scripts, no audio)", "",
             "| interview | gold | second reader's 10 | storypipe's top 10 (script text) |", "|---|--:|--:|--:|"]
    totals = [0, 0, 0]
    stories = [0, 0]
    for g in golds:
        if g.name not in picks:
            raise SystemExit(f"{g.name}: no picks in the picks file")
        reader = sum(any(finds(q["text"], p) for p in picks[g.name][:TOP]) for q in g.quotes)
        top = extract(text_transcript(g)[0], settings.extract, PROJECT_THEMES)[0][:TOP]
        ours = sum(any(finds(q["text"], c.text) for c in top) for q in g.quotes)
        totals = [totals[0] + len(g.quotes), totals[1] + reader, totals[2] + ours]
        stories = [stories[0] + (reader >= 0.8 * len(g.quotes)), stories[1] + (ours >= 0.8 * len(g.quotes))]
        lines.append(f"| {g.name} | {len(g.quotes)} | {reader} | {ours} |")
    gold, reader, ours = totals
    lines += ["", f"- recall@10 of the workshop quotes: **second reader {ratio(reader, gold)}** ({reader} of {gold}), "
              f"storypipe {ratio(ours, gold)} ({ours} of {gold})",
              f"- stories at 0.8 or more: second reader {stories[0]} of {len(golds)}, storypipe {stories[1]} of {len(golds)}"]
    return "\n".join(lines + [""])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=["tune", "test", "final", "final2", "final3", "final4", "train", "blind", "all"], default="tune")
    ap.add_argument("--data", type=Path, default=DATA, help="the folder of interviews (default: bench/quotes; "
                    "the independent set of issue 16: bench/interviews)")
    ap.add_argument("--write", type=Path, help="append the Markdown result to this file")
    ap.add_argument("--only", help="only the interviews whose name holds this text")
    ap.add_argument("--text", action="store_true", help="the scripts as transcripts (no audio): quick, for tuning")
    ap.add_argument("--verbose", action="store_true", help="list missed quotes, theme errors and names")
    ap.add_argument("--picks", type=Path, help="a second reader's passages (YAML: interview -> list of 10), "
                    "scored like the pipeline's top 10 and beside it, on the scripts")
    args = ap.parse_args(argv)
    use_data(args.data)
    if args.picks:
        golds = [g for g in load_gold(args.split) if not args.only or args.only in g.name]
        text = picks_report(golds, yaml.safe_load(args.picks.read_text("utf-8")), args.split, load_settings())
        print(text)
        if args.write:
            with args.write.open("a", encoding="utf-8") as f:
                f.write(text + "\n")
        return 0
    if args.split == "blind":
        text = blind_report(load_settings())
        print(text)
        if args.write:
            with args.write.open("a", encoding="utf-8") as f:
                f.write(text + "\n")
        return 0
    golds = [g for g in load_gold(args.split) if not args.only or args.only in g.name]
    if args.text:
        settings = load_settings()
        pairs = [text_transcript(g) for g in golds]
    else:
        root = prepare(golds)
        settings = load_settings(root)
        pairs = [(transcript_of(root, g.name), audio_turns(g)) for g in golds]
    nlp = load_nlp(settings.extract.spacy_model)
    tagger = tagger_for(nlp, PROJECT_THEMES)
    results = [evaluate(g, transcript, turns, settings, tagger, nlp) for g, (transcript, turns) in zip(golds, pairs)]
    for g, r in zip(golds, results):
        voices, pitch, stereo, noise = recording_of(g)
        r.recording = "script" if args.text else (
            f"{voices['interviewer']} / {voices['storyteller']}, {'stereo' if stereo else 'mono'}{', noisy' if noise else ''}")
    text = report(results, args.split)
    print(text)
    if args.verbose:
        for r in results:
            for m in r.missed:
                print(f"  {r.name} missed: {m}")
            for w in r.wrong_themes:
                print(f"  {r.name} themes: {w}")
            if r.unfound_names:
                print(f"  {r.name} names not hidden without sidecar: {r.unfound_names}")
    if args.write:
        with args.write.open("a", encoding="utf-8") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
