"""Where the time of a story goes, stage by stage, in this process (no Prefect, no CLI start-up).

    .venv/bin/python bench/profile_stages.py                         # both engines, 7-min interview
    .venv/bin/python bench/profile_stages.py --engine faster-whisper --loops 1
    .venv/bin/python bench/profile_stages.py --no-bare               # skip the bare engine runs

For each engine, one after the other in the same process (the machine is shared: compare within a run):
1. the bare engine on the whole recording, with the pipeline's decoding settings (beam 5, best_of 5,
   word timestamps, no prompt conditioning, same threads), and its WER;
2. the stages as `storypipe run` carries them out — ingest (probe, decode, wav), transcribe (VAD,
   batches, compact, engine calls, word alignment, restore_times, filters, speaker labels, confidence),
   extract (spaCy, key phrases, quotes), stage (decode, loudness, mp3 encode, loudness of the mp3) —
   on a fresh temporary root, every interesting function wrapped in a timer (calls and seconds).

Model loads are timed separately (first call) so the engine figures compare like with like.
Audio: storypipe/sample/interview.mp3 looped `--loops` times (bench/speed.py's loop_interview).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import SAMPLE, duration_s, interview_reference, load_speech, log, machine, normalise, pct, score, table

TIMES: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])  # name -> [calls, wall s, CPU s of the process]
EXTRA: dict[str, int] = defaultdict(int)


def wrap(owner, attr: str, name: str | None = None):
    """Replace owner.attr by a timed copy (calls and seconds under `name`); returns an undo function."""
    original = getattr(owner, attr)
    label = name or f"{getattr(owner, '__name__', type(owner).__name__)}.{attr}"

    @functools.wraps(original)
    def timed(*args, **kwargs):
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            return original(*args, **kwargs)
        finally:
            TIMES[label][0] += 1
            TIMES[label][1] += time.perf_counter() - t0
            TIMES[label][2] += time.process_time() - c0

    setattr(owner, attr, timed)
    return lambda: setattr(owner, attr, original)


@contextlib.contextmanager
def timer(name: str):
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        yield
    finally:
        TIMES[name][0] += 1
        TIMES[name][1] += time.perf_counter() - t0
        TIMES[name][2] += time.process_time() - c0


@contextlib.contextmanager
def clocked(into: dict, name: str):
    """into[name] = [wall seconds, CPU seconds of this process] of the block."""
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        yield
    finally:
        into[name] = [time.perf_counter() - t0, time.process_time() - c0]


def instrument() -> None:
    """Timers on the functions inside the stages (module attributes, so every caller sees them)."""
    from storypipe.tasks.common import audio
    from storypipe.tasks.transcribe import engines, quality, speakers, vad
    from storypipe.tasks import extract, stage, transcribe
    import whisper
    import whisper.timing
    from faster_whisper.transcribe import WhisperModel

    whisper_transcribe_module = importlib.import_module("whisper.transcribe")
    for owner, attr, name in [
        (audio, "probe", "audio.probe (ffprobe)"),
        (audio, "decode_pcm16", "audio.decode_pcm16 (ffmpeg decode)"),
        (audio, "write_wav", "audio.write_wav"),
        (audio, "read_wav_float", "audio.read_wav_float"),
        (audio, "encode_mp3", "audio.encode_mp3 (ffmpeg encode)"),
        (vad, "speech_regions", "vad.speech_regions (Silero)"),
        (vad, "raw_speech_regions", "vad.raw_speech_regions (Silero)"),
        (vad, "pauses_within", "vad.pauses_within"),
        (vad, "batches", "vad.batches"),
        (vad, "compact", "vad.compact"),
        (vad, "restore_times", "vad.restore_times"),
        (quality, "drop_non_speech", "quality.drop_non_speech"),
        (quality, "flag_confidence", "quality.flag_confidence"),
        (quality, "language_warnings", "quality.language_warnings"),
        (transcribe, "label_speakers", "transcribe.label_speakers (all of it)"),
        (speakers, "_mel", "speakers._mel (librosa)"),
        (speakers, "embed_windows", "speakers.embed_windows (resemblyzer)"),
        (speakers, "_cluster", "speakers._cluster"),
        (speakers, "_gain", "speakers._gain"),
        (transcribe, "save_transcript", "transcribe.save_transcript (json, txt, srt, vtt)"),
        (extract, "extract", "extract.extract (spaCy, textrank, quotes)"),
        (stage, "measure_loudness", "stage.measure_loudness"),
        (stage, "apply_gain", "stage.apply_gain"),
        (stage, "write_zip", "stage.write_zip"),
        (whisper_transcribe_module, "add_word_timestamps", "openai-whisper: word alignment"),
        (whisper.model.Whisper, "decode", "openai-whisper: decode calls (one per window and temperature)"),
        (WhisperModel, "add_word_timestamps", "faster-whisper: word alignment"),
        (WhisperModel, "generate_with_fallback", "faster-whisper: decode calls (one per window)"),
        (WhisperModel, "encode", "faster-whisper: encoder"),
    ]:
        wrap(owner, attr, name)
    for engine in (engines.OpenAIWhisperEngine,):
        wrap(engine, "transcribe", "engine.transcribe (openai-whisper)")
    from storypipe.tasks.transcribe.engine_faster import FasterWhisperEngine

    wrap(FasterWhisperEngine, "transcribe", "engine.transcribe (faster-whisper)")

    # Temperature fallbacks: openai-whisper decodes again at a higher temperature when a window fails.
    original_decode = whisper.model.Whisper.decode

    def counting(self, mel, options=None, **kw):
        if options is not None and options.temperature > 0:
            EXTRA["openai-whisper: fallback decodes (temperature > 0)"] += 1
        return original_decode(self, mel, options, **kw)

    whisper.model.Whisper.decode = counting

    original_fallback = WhisperModel.generate_with_fallback

    def counting_fw(self, *a, **kw):
        result = original_fallback(self, *a, **kw)
        if result[2] > 0:
            EXTRA["faster-whisper: windows decoded at temperature > 0 (fallback)"] += 1
        return result

    WhisperModel.generate_with_fallback = counting_fw

    # torch's threads where the engine runs (importing silero_vad used to set them to 1 for the process).
    original_speech = transcribe.transcribe_speech

    def threads_noted(*a, **kw):
        import torch

        EXTRA[f"torch threads when transcribe_speech started: {torch.get_num_threads()}"] += 1
        return original_speech(*a, **kw)

    transcribe.transcribe_speech = threads_noted


def bare(engine_name: str, mono, settings) -> tuple[float, str]:
    """The engine alone on the whole recording, the pipeline's decoding settings."""
    cfg = settings.transcribe
    if engine_name == "openai-whisper":
        import whisper
        from storypipe.tasks.transcribe.whisper_model import load_whisper_model

        model = load_whisper_model(cfg.model, cfg.model_cache_dir(), cfg.device)
        t0, c0 = time.perf_counter(), time.process_time()
        result = whisper.transcribe(model, mono, language="en", beam_size=cfg.beam_size, best_of=cfg.beam_size,
                                    condition_on_previous_text=cfg.condition_on_previous_text,
                                    word_timestamps=cfg.word_timestamps, fp16=False, verbose=None)
        return [time.perf_counter() - t0, time.process_time() - c0], " ".join(s["text"] for s in result["segments"])
    from faster_whisper import WhisperModel
    from storypipe.tasks.transcribe.engine_faster import resolve_ct2_model

    model = WhisperModel(str(resolve_ct2_model(cfg.model)), device="cpu", compute_type="int8",
                         cpu_threads=os.cpu_count() or 0)
    t0, c0 = time.perf_counter(), time.process_time()
    segments, _ = model.transcribe(mono, language="en", beam_size=cfg.beam_size, best_of=cfg.beam_size,
                                   condition_on_previous_text=cfg.condition_on_previous_text,
                                   word_timestamps=cfg.word_timestamps, vad_filter=False)
    text = " ".join(s.text.strip() for s in segments)
    return [time.perf_counter() - t0, time.process_time() - c0], text


def pipeline(engine_name: str, audio_path: Path, env: dict[str, str]) -> tuple[dict, str, dict]:
    """ingest → transcribe → extract → stage on a fresh root; stage seconds and the transcript text."""
    from storypipe.core.store import Store
    from storypipe.core.settings import load_settings
    from storypipe.tasks.transcribe import engines, speakers, vad
    from storypipe.tasks import ingest, stage, transcribe
    from storypipe.tasks.extract import extract_story
    from storypipe.tasks.common.nlp import load_nlp

    stages = {}
    with tempfile.TemporaryDirectory(prefix="profile-root-") as root:
        store = Store(Path(root)).ensure()
        shutil.copy2(audio_path, store.inbox / audio_path.name)
        shutil.copy2(SAMPLE / "interview.yaml", store.inbox / (audio_path.stem + ".yaml"))
        os.environ.update(env, STORYPIPE_TRANSCRIBE__ENGINE=engine_name)
        settings = load_settings(store.root)
        # Model loads, timed on their own (in `storypipe run` they happen on the warm-up thread).
        with timer(f"load: engine ({engine_name})"):
            engines._ENGINES.clear()
            engines.get_engine(settings.transcribe)
        with timer("load: Silero VAD"):
            vad._silero()
        with timer("load: resemblyzer voice encoder"):
            speakers.voice_encoder()
        with timer("load: spaCy + pytextrank"):
            load_nlp(settings.extract.spacy_model)
        with clocked(stages, "ingest"):
            story, _ = ingest.ingest_recording(store.inbox / audio_path.name, store, settings)
        with clocked(stages, "transcribe"):
            transcript = transcribe.transcribe_story(story.story_id, store, settings)
        with clocked(stages, "extract"):
            quotes = extract_story(story.story_id, store, settings)
        with clocked(stages, "stage"):
            stage.stage_story(story.story_id, store, settings)
        text = " ".join(s.text for s in transcript.segments)
        info = {"segments": len(transcript.segments), "quotes": len(quotes.quotes),
                "speakers": sorted({s.speaker for s in transcript.segments if s.speaker}),
                "speech_s": round(sum(e - s for s, e in transcript.speech_regions), 1),
                "regions": len(transcript.speech_regions)}
    return stages, text, info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=("openai-whisper", "faster-whisper", "both"), default="both")
    parser.add_argument("--loops", type=int, default=3, help="times the demo interview is looped (3: 6:41)")
    parser.add_argument("--no-bare", action="store_true", help="skip the bare engine runs")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="settings for the pipeline run, e.g. STORYPIPE_TRANSCRIBE__BATCH_S=60 (repeatable)")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.env)

    from speed import loop_interview
    from storypipe.core.settings import load_settings

    instrument()
    engines = ("openai-whisper", "faster-whisper") if args.engine == "both" else (args.engine,)
    log(machine())
    out: dict = {"machine": machine(), "env": env, "runs": {}}
    with tempfile.TemporaryDirectory(prefix="profile-audio-") as tmp:
        audio_path = loop_interview(args.loops, Path(tmp) / f"interview-x{args.loops}.wav")
        dur = duration_s(audio_path)
        ref = normalise(" ".join([interview_reference()] * args.loops))
        mono = load_speech(audio_path)
        for engine in engines:
            os.environ.update(env, STORYPIPE_TRANSCRIBE__ENGINE=engine)
            settings = load_settings()
            run: dict = {}
            if not args.no_bare:
                log(f"bare {engine} …")
                wall, text = bare(engine, mono, settings)
                run["bare"] = {"wall": wall, "wer": score(ref, normalise(text)).wer}
                log(f"bare {engine}: {wall[0]:.1f} s (CPU {wall[1]:.1f} s), WER {pct(run['bare']['wer'])}")
            TIMES.clear()
            EXTRA.clear()
            log(f"pipeline {engine} …")
            stages, text, info = pipeline(engine, audio_path, env)
            run |= {"stages": stages, "wer": score(ref, normalise(text)).wer, "info": info,
                    "times": {k: list(v) for k, v in TIMES.items()}, "counts": dict(EXTRA)}
            out["runs"][engine] = run
            log(f"pipeline {engine}: {json.dumps(stages)}; WER {pct(run['wer'])}; {info}")
            report(engine, run, dur)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


def report(engine: str, run: dict, dur: float) -> None:
    stages, times = run["stages"], run["times"]
    total = sum(w for w, _ in stages.values())
    rows = []
    if "bare" in run:
        w, c = run["bare"]["wall"]
        rows.append([f"bare {engine}, whole file (same settings)", "1", f"{w:.1f}", f"{c:.1f}", "", pct(run["bare"]["wer"])])
    for name, (w, c) in stages.items():
        rows.append([f"**stage {name}**", "1", f"{w:.1f}", f"{c:.1f}", f"{100 * w / total:.0f} %",
                     pct(run["wer"]) if name == "transcribe" else ""])
    for name, (calls, w, c) in sorted(times.items(), key=lambda kv: -kv[1][1]):
        if w >= 0.05:
            rows.append([name, str(calls), f"{w:.2f}", f"{c:.2f}", f"{100 * w / total:.0f} %", ""])
    for name, n in run["counts"].items():
        rows.append([name, str(n), "", "", "", ""])
    ratio = ""
    if "bare" in run:
        (tw, tc), (bw, bc) = stages["transcribe"], run["bare"]["wall"]
        ratio = f", transcribe stage / bare = {tw / bw:.2f}× wall, {tc / bc:.2f}× CPU"
    print(f"\n### {engine} ({dur:.0f} s of audio; stages total {total:.1f} s{ratio})\n")
    print(table(["what", "calls", "wall s", "CPU s", "share of stages (wall)", "WER"], rows))
    print(f"\n{run['info']}\n", flush=True)


if __name__ == "__main__":
    main()
