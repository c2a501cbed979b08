"""The command line: usage and configuration errors exit 2 before anything moves; status reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from typer.testing import CliRunner

from storypipe.app.cli import DEMO_MARKER, app

runner = CliRunner()


def test_telemetry_is_off():
    # In a fresh interpreter without the variable (conftest.py sets it for the test session itself):
    # importing storypipe is what turns Prefect's analytics off, as Prefect itself reads its settings.
    script = ("import os; assert 'PREFECT_SERVER_ANALYTICS_ENABLED' not in os.environ; import storypipe; "
              "from prefect.settings import get_current_settings; "
              "print(os.environ['PREFECT_SERVER_ANALYTICS_ENABLED'], get_current_settings().server.analytics_enabled)")
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_SERVER_ANALYTICS_ENABLED"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["false", "False"]


def test_status_json_of_an_empty_root(tmp_path):
    result = runner.invoke(app, ["status", "--json", "--root", str(tmp_path)])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["stories"] == [] and data["quarantined"] == [] and data["root"] == str(tmp_path.resolve())


def test_root_comes_from_the_environment(tmp_path):
    result = runner.invoke(app, ["status", "--json"], env={"STORYPIPE_ROOT": str(tmp_path)})
    assert json.loads(result.stdout)["root"] == str(tmp_path.resolve())


def test_bad_configuration_exits_2_and_moves_nothing(tmp_path):
    (tmp_path / "audio" / "inbox").mkdir(parents=True)
    (tmp_path / "audio" / "inbox" / "a.wav").write_bytes(b"RIFF")
    result = runner.invoke(app, ["run", "--root", str(tmp_path)], env={"STORYPIPE_TRANSCRIBE__BEAM_SIZE": "many"})
    assert result.exit_code == 2
    assert "Configuration error" in result.output
    assert (tmp_path / "audio" / "inbox" / "a.wav").exists()


def test_broken_root_toml_exits_2(tmp_path):
    (tmp_path / "storypipe.toml").write_text("[transcribe\nmodel = ")
    result = runner.invoke(app, ["run", "--root", str(tmp_path)])
    assert result.exit_code == 2 and "Configuration error" in result.output


def test_missing_model_exits_2_with_what_to_do(tmp_path):
    (tmp_path / "audio" / "inbox").mkdir(parents=True)
    (tmp_path / "audio" / "inbox" / "a.wav").write_bytes(b"RIFF")
    result = runner.invoke(app, ["run", "--root", str(tmp_path)],
                           env={"STORYPIPE_TRANSCRIBE__MODEL": str(tmp_path / "no-such-model.pt")})
    assert result.exit_code == 2
    assert "Model not found" in result.output and "no-such-model.pt" in result.output
    assert (tmp_path / "audio" / "inbox" / "a.wav").exists()


def test_unknown_command_is_a_usage_error():
    assert runner.invoke(app, ["fly"]).exit_code == 2


def test_empty_inbox_has_nothing_to_do(tmp_path):
    result = runner.invoke(app, ["run", "--root", str(tmp_path)])
    assert result.exit_code == 0 and "Nothing to do" in result.output


def test_demo_never_replaces_a_folder_that_is_not_a_demo(tmp_path):
    (tmp_path / "precious.txt").write_text("field notes")
    result = runner.invoke(app, ["demo", "--root", str(tmp_path)])
    assert result.exit_code == 2
    assert (tmp_path / "precious.txt").read_text() == "field notes"
    assert not (tmp_path / DEMO_MARKER).exists()


def test_progress_follows_files_and_the_position_in_the_audio():
    import logging

    from rich.progress import Progress

    from storypipe.app.cli import ProgressHandler

    progress = Progress()
    handler = ProgressHandler(progress, progress.add_task("", total=2), 2)
    logger = logging.getLogger("storypipe.test-progress")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.info("transcribed up to 00:05:00", extra={"story": "s-1", "position_s": 300.0, "total_s": 1200.0})
    audio_task = progress.tasks[handler.audio_task]
    assert audio_task.completed == 300.0 and audio_task.total == 1200.0
    assert "5:00 of 20:00" in audio_task.description
    logger.info("s-1 is staged", extra={"story": "s-1", "done": True})
    assert progress.tasks[0].completed == 1 and handler.audio_task is None
    logger.removeHandler(handler)
