"""The package as `pip install .` (not editable) installs it: its settings and codebook ship inside it,
it puts no top-level `tasks` or `flows` into site-packages, and its demo finds the same quotes and
themes as this (editable) checkout does on the same transcript."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from storypipe.core.settings import load_settings
from storypipe.core.store import Store
from storypipe.tasks.extract import extract_story

pytestmark = pytest.mark.e2e
PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(dist), str(PROJECT)], check=True, capture_output=True, cwd=dist)
    (path,) = dist.glob("storypipe-*.whl")
    return path


@pytest.fixture(scope="module")
def venv(tmp_path_factory, wheel) -> Path:
    """A scratch venv with the wheel installed for real (pip, console script and all). Its
    dependencies are this venv's, reached through a .pth line: the .pth files in that folder (this
    checkout's editable finder among them) are not run from there, so only the wheel's storypipe is seen."""
    folder = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    site = Path(subprocess.run([str(folder / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "deps-from-the-project-venv.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(folder / "bin" / "python"), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True, capture_output=True)
    return folder


def test_the_wheel_ships_its_settings_and_puts_nothing_at_the_top_but_storypipe(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.startswith("storypipe-")}
    assert tops == {"storypipe"}
    for shipped in ("storypipe/config/pipeline.toml", "storypipe/config/themes.toml",
                    "storypipe/tasks/report/templates/report.md.j2", "storypipe/app/web/templates/story.html",
                    "storypipe/sample/interview.mp3", "storypipe/flows/inbox.py"):
        assert shipped in names


def test_the_installed_wheel_reads_the_same_settings(venv, tmp_path):
    dump = "import json, sys; from storypipe.core.settings import load_settings; " \
           "print(json.dumps(load_settings(__import__('pathlib').Path(sys.argv[1])).model_dump(mode='json')))"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORYPIPE_")}
    wheel_says = subprocess.run([str(venv / "bin" / "python"), "-c", dump, str(tmp_path)], check=True,
                                capture_output=True, text=True, env=env, cwd=tmp_path).stdout
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import storypipe; print(storypipe.__file__)"],
                           check=True, capture_output=True, text=True, cwd=tmp_path).stdout
    assert str(PROJECT) not in where  # the wheel's copy, not this checkout
    ours = json.loads(json.dumps(load_settings(tmp_path).model_dump(mode="json")))
    assert json.loads(wheel_says) == ours


def test_the_installed_demo_gives_the_same_quotes_and_themes(venv, tmp_path, prefect_api):
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORYPIPE_")}
    root = tmp_path / "demo"
    demo = subprocess.run([str(venv / "bin" / "storypipe"), "demo", "--root", str(root)], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=1800)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    store = Store(root)
    (story_id,) = store.story_ids()
    installed = store.read_quotes(story_id).quotes
    assert len(installed) >= 3 and any(q.themes for q in installed)
    # The same transcript, mined again by this checkout: the same quotes, scores and themes.
    again = Store(tmp_path / "again")
    shutil.copytree(store.story_dir(story_id), again.story_dir(story_id))
    again.quotes_path(story_id).unlink()
    extract_story(story_id, again, load_settings(again.root))
    ours = again.read_quotes(story_id).quotes
    assert [comparable(q) for q in installed] == [comparable(q) for q in ours]


def comparable(quote) -> tuple:
    d = quote.model_dump(mode="json")
    return d["text"], d["start"], d["end"], d["score"], d["themes"], json.dumps(d["why"], sort_keys=True)

