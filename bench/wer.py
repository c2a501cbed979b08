"""Word error rate of each engine, bare and with storypipe's treatment, on real and demo speech.

    .venv/bin/python bench/wer.py            # prints a markdown table, writes bench/wer.md

For each engine (openai-whisper, faster-whisper; the configured model, tiny.en, beam 5 as in
config/pipeline.toml) and each recording:
- bare: `engine.transcribe(whole file, clips=[(0, duration)], language="en")` — the engine alone on the
  whole recording, with the pipeline's decoding settings (word timestamps on, no prompt conditioning)
- storypipe: `storypipe.tasks.transcribe.transcribe_speech` — VAD (speech only), batches, non-speech filter

Recordings (../shared/audio, see ../shared/README.md; benchmarks may read it, tests may not):
- read/*.wav (LibriVox) and read/jfk.flac, each against the .txt beside it; plus the total over them
- meeting/ami-es2004-1min.wav (4 speakers, overlapping) against the four per-speaker AMI transcripts
  concatenated. Their interleaving is unknown, so WER there is pessimistic; the bag-of-words error
  (1 - multiset overlap / reference words, order-free, insertions not counted) is reported beside it
- storypipe/sample/interview.mp3 (synthetic espeak-ng demo) against interview.txt, speaker labels removed

Nothing is timed here (see bench/speed.py); decoding happens in this process, nothing is downloaded.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    AMI_NORMALISATION,
    ENGINES,
    HERE,
    MEETING,
    NORMALISATION,
    PROJECT,
    SAMPLE,
    bag_error,
    errors,
    interview_reference,
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

MODES = ("bare", "storypipe")


def recordings() -> list[dict]:
    out = [
        {"name": a.name, "path": a, "ref": normalise(r.read_text()), "kind": "read"}
        for a, r in read_clips()
    ]
    out.append({"name": MEETING.name + " (AMI, 4 speakers)", "path": MEETING,
                "ref": normalise(meeting_reference(), ami=True), "kind": "meeting"})
    out.append({"name": "sample/interview.mp3 (espeak-ng demo)", "path": SAMPLE / "interview.mp3",
                "ref": normalise(interview_reference()), "kind": "demo"})
    return out


def transcribe_all(recs: list[dict], engines: tuple[str, ...]):
    """Fill rec["hyp"][(engine, mode)] with normalised text and rec["raw"] with the engine's text."""
    from storypipe.core.settings import load_settings
    from storypipe.tasks.transcribe.engines import get_engine
    from storypipe.tasks.transcribe import transcribe_speech

    base = load_settings()
    for rec in recs:
        rec["audio"] = load_speech(rec["path"])
        rec["hyp"], rec["raw"], rec["seconds"] = {}, {}, {}
    for name in engines:
        tcfg = base.transcribe.model_copy(update={"engine": name})
        settings = base.model_copy(update={"transcribe": tcfg})
        engine = get_engine(tcfg)
        for rec in recs:
            mono = rec["audio"]
            for mode in MODES:
                started = time.perf_counter()
                if mode == "bare":
                    segments = engine.transcribe(mono, [(0.0, round(len(mono) / 16000, 3))], "en").segments
                else:
                    segments = transcribe_speech(engine, mono, settings, "en", rec["path"].stem)[0]
                rec["seconds"][name, mode] = time.perf_counter() - started
                text = " ".join(s.text for s in segments)
                rec["raw"][name, mode] = text
                rec["hyp"][name, mode] = normalise(text)
                s = score(rec["ref"], rec["hyp"][name, mode])
                log(f"{name:15} {mode:9} {rec['name']:45} WER {pct(s.wer):>8}  ({rec['seconds'][name, mode]:.1f} s)")
    return base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=ENGINES, action="append", help="only this engine (repeatable)")
    parser.add_argument("--out", type=Path, default=HERE / "wer.md")
    args = parser.parse_args()
    engines = tuple(args.engine or ENGINES)
    header_info = machine()
    recs = recordings()
    settings = transcribe_all(recs, engines)
    cols = [(e, m) for e in engines for m in MODES]

    header = ["recording", "ref. words"] + [f"{e} {m}" for e, m in cols]
    rows = []
    for rec in recs:
        cells = []
        for c in cols:
            s = score(rec["ref"], rec["hyp"][c])
            cells.append(f"{pct(s.wer)} ({s.sub}/{s.dele}/{s.ins})")
        rows.append([rec["name"], str(len(rec["ref"].split()))] + cells)
        if rec["kind"] == "meeting":
            rows.append(["↳ same, bag-of-words error (hyp. words)", ""] + [
                f"{pct(bag_error(rec['ref'], rec['hyp'][c]))} ({len(rec['hyp'][c].split())})" for c in cols
            ])
    read = [r for r in recs if r["kind"] == "read"]
    totals = [total([score(r["ref"], r["hyp"][c]) for r in read]) for c in cols]
    rows.append([f"**total, {len(read)} read clips**", str(totals[0].ref_words)]
                + [f"**{pct(t.wer)}** ({t.sub}/{t.dele}/{t.ins})" for t in totals])
    tbl = table(header, rows)

    t = settings.transcribe
    notes = f"""\
WER = (substitutions + deletions + insertions) / reference words, per file; in brackets S/D/I.
"total" is corpus-level: errors summed over the read clips ÷ their reference words summed.

- Model {t.model}, beam {t.beam_size}, condition_on_previous_text {t.condition_on_previous_text},
  word_timestamps {t.word_timestamps}, language "en" (config/pipeline.toml); openai-whisper fp32 on the
  CPU, faster-whisper int8 (tasks/engine_faster.py).
- **bare** = the engine alone on the whole file (`engine.transcribe(audio, clips=[(0, duration)])`);
  **storypipe** = `storypipe.tasks.transcribe.transcribe_speech`: Silero VAD (threshold {t.vad.threshold}, pauses
  < {t.vad.bridge_s} s bridged), speech packed into batches of ≤ {t.batch_s:.0f} s, non-speech filter.
  Audio decoded as the pipeline does (ffmpeg → 16 kHz, channels averaged).
- Normalisation, reference and hypothesis alike: {NORMALISATION}.
- Meeting (AMI ES2004, 60 s, four people, overlapping speech): the reference is the four headset
  transcripts concatenated A, B, C, D, because the word order across speakers is unknown (no word
  times); WER against it is therefore pessimistic (words out of order count twice). The
  **bag-of-words error** = 1 − (multiset overlap of hypothesis and reference words) / (reference
  words) ignores order; it does not count insertions, so the hypothesis length is shown beside it.
  {AMI_NORMALISATION}. Whisper transcribes mainly the dominant speaker of overlapping speech.
- The LibriVox 0920 reference says "a more a amiable" (as read); it is kept verbatim.
- The demo interview is synthetic (espeak-ng), so it measures little beyond "nothing is lost".
  A hyphenated word written solid by the engine ("coproduction" for "co-production") counts as a
  substitution plus a deletion under this normalisation. Each error is listed below the hypotheses.
"""
    details = ["<details><summary>Hypotheses (raw engine text)</summary>\n"]
    for rec in recs:
        details.append(f"\n**{rec['name']}** — reference (normalised): {rec['ref']}\n")
        for c in cols:
            details.append(f"- {c[0]} {c[1]}: {rec['raw'][c].strip()}")
            if rec["kind"] != "meeting" and (errs := errors(rec["ref"], rec["hyp"][c])):
                details.append(f"  - errors: {'; '.join(errs)}")
    details.append("\n</details>\n")

    print("\n" + tbl + "\n")
    args.out.write_text(
        f"# Word error rate: bare engines vs storypipe's transcription\n\n"
        f"Generated by `bench/wer.py` ({header_info}).\n\n{tbl}\n\n{notes}\n" + "\n".join(details)
    )
    log(f"wrote {args.out.relative_to(PROJECT) if args.out.is_relative_to(PROJECT) else args.out}")


if __name__ == "__main__":
    main()
