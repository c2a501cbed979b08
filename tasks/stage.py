"""Stage: a full story package ready for upload, only where consent allows it.

staging/<story_id>/ holds story.mp3, transcript.txt, transcript.vtt, metadata.json and SHA256SUMS.
The package is built in a temporary folder and renamed into place, so it is never half there.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import time
from pathlib import Path

from storypipe.jsonio import read_model, write_json, write_model
from storypipe.layout import Layout
from storypipe.models import KeyphrasesFile, QuotesFile, Story, Transcript
from storypipe.settings import AnonymiseSettings, Settings
from tasks import audio, consent, formats
from tasks.anonymise import Anonymised, anonymise, hide_in_audio, redact_text

log = logging.getLogger("storypipe")


def hold_reason(story: Story) -> str | None:
    """Why a story may not be staged, in plain words; None when it may."""
    return consent.stage(story)


def story_metadata(
    story: Story,
    transcript: Transcript,
    keyphrases: KeyphrasesFile | None,
    quotes: QuotesFile | None,
    settings: Settings,
    anonymised: Anonymised | None = None,
) -> dict:
    """What the website needs about the story. Demographics stay on the machine; with anonymise,
    the interviewer's name is left out and names in the title and key phrases are hidden."""
    meta = story.metadata
    title = meta.title or story.story_id
    phrases = [k.text for k in keyphrases.keyphrases[:10]] if keyphrases else []
    if anonymised is not None:
        title, *phrases = redact_text([title, *phrases], meta, settings, anonymised)
    themes: list[str] = []
    for q in sorted(quotes.quotes if quotes else [], key=lambda q: (q.status != "approved", -q.score)):
        if q.status != "rejected":
            themes += [t for t in q.themes if t not in themes]
    return {
        "schema_version": story.schema_version,
        "story_id": story.story_id,
        "title": title,
        "storyteller": meta.storyteller,
        "interviewer": None if anonymised is not None else meta.interviewer,
        "anonymised": anonymised is not None,
        "recorded_on": meta.recorded_on.isoformat() if meta.recorded_on else None,
        "language": transcript.language,
        "duration_s": story.source.duration_s,
        "sectors": meta.sectors,
        "roles": meta.roles,
        "project": settings.project.name,
        "keyphrases": phrases,
        "themes": themes,
        "consent": story.consent.model_dump(),
        "transcript": {"engine": transcript.engine, "model": transcript.model},
    }


def export_mp3(
    original: Path, dest: Path, bitrate: str, hide: list[tuple[float, float]] = (), cfg: AnonymiseSettings | None = None
) -> Path:
    """The story's audio as mp3, at the original's own rate and channels (pydub over our ffmpeg),
    with the `hide` spans muted or bleeped (names, when the story is anonymised)."""
    from pydub import AudioSegment

    audio.configure_pydub()
    info = audio.probe(original)
    pcm = audio.decode_pcm16(original, info.sample_rate, max(1, min(info.channels, 2)))
    if hide:
        pcm = hide_in_audio(pcm, info.sample_rate, list(hide), cfg or AnonymiseSettings())
    channels = 1 if pcm.ndim == 1 else pcm.shape[1]
    segment = AudioSegment(pcm.tobytes(), frame_rate=info.sample_rate, sample_width=2, channels=channels)
    segment.export(dest, format="mp3", bitrate=bitrate)
    return dest


def sha256sums(folder: Path) -> str:
    """The `sha256sum -c` format, so anyone can check the upload arrived intact."""
    lines = []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.name != "SHA256SUMS"):
        lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}")
    return "\n".join(lines) + "\n"


def stage_story(story_id: str, layout: Layout, settings: Settings) -> Path | None:
    """Build staging/<story_id>/ when consent allows; otherwise record why it was held back."""
    story_dir = layout.story_dir(story_id)
    story = read_model(story_dir / "story.json", Story)
    reason = hold_reason(story)
    if reason:
        if reason not in story.problems:
            story.problems.append(reason)
            write_model(story_dir / "story.json", story)
        log.info("%s %s", story_id, reason, extra={"story": story_id, "done": True})
        return None

    started = time.monotonic()
    transcript = read_model(story_dir / "transcript.json", Transcript)
    kp_path, quotes_path = story_dir / "keyphrases.json", story_dir / "quotes.json"
    keyphrases = read_model(kp_path, KeyphrasesFile) if kp_path.exists() else None
    quotes = read_model(quotes_path, QuotesFile) if quotes_path.exists() else None
    anonymised = anonymise(transcript, story.metadata, settings) if consent.anonymise(story) else None
    text = anonymised.transcript if anonymised else transcript
    layout.staging.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(dir=layout.staging, prefix=f".{story_id}."))
    try:
        export_mp3(
            layout.original_dir(story_id) / story.source.filename, build / "story.mp3", settings.stage.mp3_bitrate,
            hide=anonymised.mute if anonymised else (), cfg=settings.anonymise,
        )
        metadata = story_metadata(story, transcript, keyphrases, quotes, settings, anonymised)
        (build / "transcript.txt").write_text(formats.transcript_text(text, metadata["title"], mark=False), "utf-8")
        (build / "transcript.vtt").write_text(formats.captions(text, "vtt"), "utf-8")
        write_json(build / "metadata.json", metadata)
        (build / "SHA256SUMS").write_text(sha256sums(build), "utf-8")
        target = layout.staging / story_id
        if target.exists():
            old = target.rename(layout.staging / f".{story_id}.old-{int(time.time())}")
            build.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            build.rename(target)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    story.problems = [p for p in story.problems if not p.startswith("not staged")]
    story.advance("staged", seconds=round(time.monotonic() - started, 3))
    write_model(story_dir / "story.json", story)
    hidden = f", with {len(anonymised.redactions)} names hidden" if anonymised else ""
    log.info("%s is staged for upload in %s%s", story_id, target, hidden, extra={"story": story_id, "done": True})
    return target


def unstage(story_id: str, layout: Layout) -> bool:
    """Remove a story's staged package (consent withdrawn or changed); True if there was one."""
    target = layout.staging / story_id
    if not target.exists():
        return False
    gone = target.rename(layout.staging / f".{story_id}.withdrawn-{int(time.time())}")
    shutil.rmtree(gone, ignore_errors=True)
    path = layout.story_dir(story_id) / "story.json"
    story = read_model(path, Story)
    if story.state == "staged":
        story.advance("extracted", note="staged package removed")
        write_model(path, story)
    return True


# ---- Prefect wrapper ----
from prefect import task  # noqa: E402

from tasks.retry import transient_only  # noqa: E402


@task(name="stage", retry_condition_fn=transient_only)
def stage_task(root: str, story_id: str, settings: Settings) -> str | None:
    staged = stage_story(story_id, Layout(Path(root)), settings)
    return str(staged) if staged else None
