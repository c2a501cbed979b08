"""Issue 7: the awkward-input matrix, end to end.

One inbox holds every awkward case at once and the real pipeline (`storypipe run`, real Whisper
tiny.en, real Prefect flow) runs over it a single time. Each file must end processed, failed with a
reason that says retrying will not help, quarantined with a reason naming its problem, or (a sidecar
without its recording) left waiting; the run goes on past every bad file and exits 1. Every byte
stream put in the inbox is afterwards found exactly once, unchanged, in originals, quarantine or the
inbox.

A second test makes the inbox read-only: the run must say so, naming the folder, and move nothing.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from storypipe.app.cli import app
from storypipe.core.jsonio import read_model
from storypipe.core.store import Store
from storypipe.core.models import Story, Transcript
from storypipe.flows import progress
from tests.support import audio_fixtures as af

pytestmark = pytest.mark.e2e

SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
FUNNY_NAME = "Ama's \"first\" interview – Zoë.wav"

# Each speech file is 2-4 s of espeak-ng, with a sentence tiny.en gets (nearly) right in that format.
SPEECH = {
    "six channels.wav": "We cooked dinner together every Friday.",
    "hi-res.wav": "We met every week in the library.",
    "phone call.wav": "I wanted someone to hear my story.",
    FUNNY_NAME: "I found people who listened to me.",
    "extra fields.wav": "Nobody had asked me about my life before.",
    "cut in half.mp3": "The group helped me find my voice again after a hard year.",
}

# file -> words its quarantine reason must contain
QUARANTINED = {
    "empty.wav": ["empty (0 bytes)"],
    "cut short.mp3": ["not an audio or video file", "damaged or cut short"],
    "notes.wav": ["not an audio or video file", "text"],
    "camera.mp4": ["no sound track"],
    "blip.wav": ["0.30 s", "at least 1 s"],
    "broken sidecar.wav": ["broken sidecar.yaml", "not valid YAML"],
}
NO_SPEECH = {"silence.wav", "tone.wav"}
PROCESSED = {*SPEECH}
WAITING = "still coming.yaml"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower()))


def arrived_long_ago(folder: Path) -> None:
    """Date the inbox files back, so the run takes them at once instead of waiting for them to settle."""
    then = time.time() - 60
    for path in files_under(folder):
        os.utime(path, (then, then))


def build_inbox(inbox: Path, sources: Path) -> None:
    # ingest rejects these
    af.empty_file(inbox, "empty.wav")
    real = af.speech(sources, "real.mp3", SPEECH["cut in half.mp3"])
    data = real.read_bytes()
    (inbox / "cut in half.mp3").write_bytes(data[: len(data) // 2])
    af.truncated(real, inbox, "cut short.mp3", keep_bytes=400)
    af.text_file(inbox, "notes.wav", "Meeting notes for Tuesday, not a recording.\n")
    af.video_only(inbox, "camera.mp4", duration=1.0)
    af.sine(inbox, "blip.wav", duration=0.3)
    # ingest accepts these, recognition finds nothing to write down
    af.silence(inbox, "silence.wav", duration=20, sample_rate=16000)
    af.sine(inbox, "tone.wav", duration=10, frequency=440, sample_rate=16000)
    # unusual but good audio
    af.speech_as(inbox, "six channels.wav", SPEECH["six channels.wav"], sample_rate=48000, channels=6)
    af.speech_as(inbox, "hi-res.wav", SPEECH["hi-res.wav"], sample_rate=96000, codec=["-c:a", "pcm_s24le"])
    af.speech_as(inbox, "phone call.wav", SPEECH["phone call.wav"], sample_rate=8000, codec=["-c:a", "pcm_mulaw"])
    af.speech(inbox, FUNNY_NAME, SPEECH[FUNNY_NAME])
    # sidecars: broken, with fields storypipe does not know, without their recording
    af.speech(inbox, "broken sidecar.wav", "This one has a broken sidecar file.")
    (inbox / "broken sidecar.yaml").write_text("title: [unclosed\nconsent: {clips: true\n", encoding="utf-8")
    af.speech(inbox, "extra fields.wav", SPEECH["extra fields.wav"])
    (inbox / "extra fields.yaml").write_text(
        "title: Extra fields\nstoryteller: R.\nproject_code: NW-7\nfavourite_colour: blue\n"
        "consent: {transcript: true, clips: false}\n",
        encoding="utf-8",
    )
    (inbox / WAITING).write_text("title: The recording is still on the way\n", encoding="utf-8")
    arrived_long_ago(inbox)


def test_awkward_inputs_end_to_end(tmp_path, tmp_path_factory, prefect_harness, clean_env):
    store = Store(tmp_path).ensure()
    build_inbox(store.inbox, tmp_path_factory.mktemp("sources"))
    put_in = {p.name: sha256(p) for p in files_under(store.inbox)}
    waiting_bytes = (store.inbox / WAITING).read_bytes()
    assert set(put_in) == {*QUARANTINED, *NO_SPEECH, *PROCESSED, "broken sidecar.yaml", "extra fields.yaml", WAITING}

    result = CliRunner().invoke(app, ["run", "--root", str(tmp_path)])

    assert result.exit_code == 1, result.output  # some files were quarantined, the run went on
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    summary = json.loads(CliRunner().invoke(app, ["status", "--json", "--root", str(tmp_path)]).stdout)
    rows = {r["source"]: r for r in summary["stories"]}
    reasons = {q["file"]: q["reason"] for q in summary["quarantined"]}

    # ---- nothing lost, nothing changed, nothing duplicated ----
    found = [
        p for p in files_under(store.originals) + files_under(store.quarantine) + files_under(store.inbox)
        if not p.name.endswith(".error.txt")
    ]
    assert Counter(sha256(p) for p in found) == Counter(put_in.values())
    assert {p.name for p in found} == set(put_in)

    # ---- quarantined, each with a reason naming its problem ----
    assert set(reasons) == set(QUARANTINED), reasons
    for name, needed in QUARANTINED.items():
        note = (store.quarantine / f"{name}.error.txt").read_text(encoding="utf-8")
        for word in needed:
            assert word in reasons[name], (name, reasons[name])
        assert name in note and reasons[name] in note and "Traceback" not in note
        assert sha256(store.quarantine / name) == put_in[name]
    assert sha256(store.quarantine / "broken sidecar.yaml") == put_in["broken sidecar.yaml"]  # with its recording
    flat = "".join(result.output.split())
    for name in QUARANTINED:
        assert "".join(name.split()) in flat, f"{name} is not named in the run's output"

    # ---- silence and a steady tone: failed, "no speech", not to be retried ----
    for name in NO_SPEECH:
        row = rows[name]
        story = read_model(store.story_dir(row["story_id"]) / "story.json", Story)
        assert row["state"] == "failed", row
        assert any("no speech found" in p for p in row["problems"]), row
        assert story.history[-1].retry is False  # trying again would find no speech either
        assert row["story_id"] not in progress.unfinished_stories(store)
        assert not (store.story_dir(row["story_id"]) / "transcript.json").exists()  # no invented words

    # ---- unusual but good audio: processed, with the words that were said ----
    for name, said in SPEECH.items():
        row = rows[name]
        story_id = row["story_id"]
        assert row["state"] == "extracted", row
        assert SLUG.match(story_id) and story_id.endswith("-" + put_in[name][:8]), story_id
        assert sha256(store.original_dir(story_id) / name) == put_in[name]
        transcript = read_model(store.story_dir(story_id) / "transcript.json", Transcript)
        heard = words(" ".join(s.text for s in transcript.segments))
        expected = words(said) if name != "cut in half.mp3" else words("The group helped me find my")
        assert len(heard & expected) >= len(expected) / 2, (name, heard, expected)
    sources = {name: read_model(store.story_dir(rows[name]["story_id"]) / "story.json", Story).source for name in SPEECH}
    assert (sources["six channels.wav"].channels, sources["six channels.wav"].sample_rate) == (6, 48000)
    assert sources["hi-res.wav"].sample_rate == 96000
    assert sources["phone call.wav"].sample_rate == 8000

    # the awkward file name: kept as it was, with a clean slug for an id
    assert rows[FUNNY_NAME]["story_id"].startswith("ama-s-first-interview-zoe-")
    assert sources[FUNNY_NAME].filename == FUNNY_NAME

    # the mp3 cut in half: what was there is used, and the team is told the rest is missing
    assert any("cut short" in p for p in rows["cut in half.mp3"]["problems"]), rows["cut in half.mp3"]

    # the sidecar with unknown fields: kept in story.json, and a warning says so
    extra = read_model(store.story_dir(rows["extra fields.wav"]["story_id"]) / "story.json", Story)
    assert extra.metadata.title == "Extra fields"
    assert extra.metadata.model_extra == {"project_code": "NW-7", "favourite_colour": "blue"}
    warning = [p for p in rows["extra fields.wav"]["problems"] if "does not know" in p]
    assert len(warning) == 1 and all(w in warning[0] for w in ("extra fields.yaml", "project_code", "favourite_colour"))
    assert sha256(store.original_dir(extra.story_id) / "extra fields.yaml") == put_in["extra fields.yaml"]

    # ---- the sidecar whose recording has not arrived: untouched, listed as waiting ----
    assert summary["waiting_sidecars"] == [WAITING]
    assert [p.name for p in store.inbox.iterdir()] == [WAITING]  # nothing else left behind, not even hidden
    assert (store.inbox / WAITING).read_bytes() == waiting_bytes



# ---- a read-only inbox ----


@contextlib.contextmanager
def read_only(folder: Path, monkeypatch):
    """Make `folder` refuse changes for real: chmod 0o555 for a normal user; as root (who ignores
    permissions) the immutable attribute, which binds root too; failing both, a simulation in which
    every change inside the folder raises PermissionError, as the kernel would."""
    if os.geteuid() != 0:
        mode = folder.stat().st_mode
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(mode)
        return
    chattr = shutil.which("chattr")
    if chattr and subprocess.run([chattr, "+i", str(folder)], capture_output=True, check=False).returncode == 0:
        try:
            yield
        finally:
            subprocess.run([chattr, "-i", str(folder)], check=True)
        return
    with monkeypatch.context() as patch:
        simulate_read_only(folder, patch)
        yield


def simulate_read_only(folder: Path, patch: pytest.MonkeyPatch) -> None:
    """Every call that would add an entry to `folder` or take one out raises EACCES."""
    folder = folder.resolve()

    def inside(path) -> bool:
        return folder in Path(os.fsdecode(path)).resolve().parents

    def refuse(real, positions):
        def guarded(*args, **kwargs):
            for i in positions:
                if i < len(args) and inside(args[i]):
                    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(args[i]))
            return real(*args, **kwargs)

        return guarded

    # the positions of the arguments naming an entry that the call adds to or removes from a folder
    for name, positions in (("rename", (0, 1)), ("replace", (0, 1)), ("link", (1,)), ("symlink", (1,)),
                            ("unlink", (0,)), ("remove", (0,)), ("mkdir", (0,)), ("rmdir", (0,))):
        patch.setattr(os, name, refuse(getattr(os, name), positions))


def test_a_read_only_inbox_is_named_and_nothing_moves(tmp_path, prefect_harness, clean_env, monkeypatch):
    store = Store(tmp_path).ensure()
    recording = af.speech(store.inbox, "good.wav", "I found people who listened to me.")
    arrived_long_ago(store.inbox)
    before = {p.name: p.read_bytes() for p in store.inbox.iterdir()}

    with read_only(store.inbox, monkeypatch):
        with pytest.raises(PermissionError):  # the folder really refuses changes
            (store.inbox / ".probe").mkdir()
        result = CliRunner().invoke(app, ["run", "--root", str(tmp_path)])
        after = {p.name: p.read_bytes() for p in store.inbox.iterdir()}

    assert result.exit_code == 1, result.output
    flat = "".join(result.output.split())
    assert "".join(str(store.inbox).split()) in flat, result.output  # names the folder
    assert "Permissiondenied" in flat or "Operationnotpermitted" in flat, result.output  # and why
    assert "good.wav" in flat
    # Nothing moved: the recording is where it was, byte for byte, and nothing was made of it.
    assert after == before
    for folder in (store.originals, store.quarantine, store.transcripts):
        assert files_under(folder) == [], folder
    assert files_under(store.work) == []

    # Once the folder can be changed again, the next run processes the recording as usual.
    result = CliRunner().invoke(app, ["run", "--root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert not recording.exists()
    (story_dir,) = [p.parent for p in store.transcripts.glob("*/story.json")]
    assert read_model(story_dir / "story.json", Story).state == "extracted"
