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
from storypipe.models import KeyphrasesFile, Story, Transcript
from storypipe.settings import Settings
from tasks import audio, formats

log = logging.getLogger("storypipe")


def hold_reason(story: Story) -> str | None:
    """Why a story may not be staged, in plain words; None when it may."""
    if not story.consent.full_story:
        return "not staged: the storyteller did not consent to publishing the full story"
    if story.consent.anonymise:
        # Redaction of names in text and audio arrives with the quotes issue; until then, hold it back.
        return "not staged: the story must be anonymised first, and automatic anonymisation is not available yet"
    return None


def story_metadata(story: Story, transcript: Transcript, keyphrases: KeyphrasesFile | None, settings: Settings) -> dict:
    """What the website needs about the story. Demographics stay on the machine."""
    meta = story.metadata
    return {
        "schema_version": story.schema_version,
        "story_id": story.story_id,
        "title": meta.title or story.story_id,
        "storyteller": meta.storyteller,
        "interviewer": meta.interviewer,
        "recorded_on": meta.recorded_on.isoformat() if meta.recorded_on else None,
        "language": transcript.language,
        "duration_s": story.source.duration_s,
        "sectors": meta.sectors,
        "roles": meta.roles,
        "project": settings.project.name,
        "keyphrases": [k.text for k in keyphrases.keyphrases[:10]] if keyphrases else [],
        "consent": story.consent.model_dump(),
        "transcript": {"engine": transcript.engine, "model": transcript.model},
    }


def export_mp3(original: Path, dest: Path, bitrate: str) -> Path:
    """The story's audio as mp3, at the original's own rate and channels (pydub over our ffmpeg)."""
    from pydub import AudioSegment

    audio.configure_pydub()
    info = audio.probe(original)
    pcm = audio.decode_pcm16(original, info.sample_rate, max(1, min(info.channels, 2)))
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
    kp_path = story_dir / "keyphrases.json"
    keyphrases = read_model(kp_path, KeyphrasesFile) if kp_path.exists() else None
    layout.staging.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(dir=layout.staging, prefix=f".{story_id}."))
    try:
        export_mp3(layout.original_dir(story_id) / story.source.filename, build / "story.mp3", settings.stage.mp3_bitrate)
        (build / "transcript.txt").write_text(formats.transcript_text(transcript, story.metadata.title, mark=False), "utf-8")
        (build / "transcript.vtt").write_text(formats.captions(transcript, "vtt"), "utf-8")
        write_json(build / "metadata.json", story_metadata(story, transcript, keyphrases, settings))
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
    log.info("%s is staged for upload in %s", story_id, target, extra={"story": story_id, "done": True})
    return target


# ---- Prefect wrapper ----
from prefect import task  # noqa: E402

from tasks.retry import transient_only  # noqa: E402


@task(name="stage", retry_condition_fn=transient_only)
def stage_task(root: str, story_id: str, settings: Settings) -> str | None:
    staged = stage_story(story_id, Layout(Path(root)), settings)
    return str(staged) if staged else None
