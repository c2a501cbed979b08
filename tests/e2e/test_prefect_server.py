"""storypipe's own Prefect server (storypipe/app/prefect_server.py): started on demand by whichever
`storypipe` process comes first, found and reused by the others, replaced when its process is gone,
local only. Real processes, a real Prefect server, real Whisper on short recordings."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from storypipe.app import prefect_server
from storypipe.core.store import Store
from storypipe.core.settings import load_settings
from tests.support import audio_fixtures as af

pytestmark = pytest.mark.e2e

STORYPIPE = Path(sys.executable).parent / "storypipe"
# Six pairs: the first races to start the server, the fourth finds it killed; more pairs take
# `make test` past its time and add no new case.
PAIRS = 6
HOG = "import time\nwhile True:\n    pass\n"


def own_server_env() -> dict:
    """A machine without a team server: the commands must start and share the root's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORYPIPE_") and k != "PREFECT_API_URL"}
    env.update(STORYPIPE_RUN__SETTLE_S="0", COLUMNS="200")
    return env


def storypipe(*args: str, root: Path, **kw) -> subprocess.Popen:
    return subprocess.Popen([str(STORYPIPE), *args, "--root", str(root)], env=own_server_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, **kw)


def get(url: str, host: str | None = None) -> int:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:  # noqa: S310 - loopback
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def history(story_json: Path) -> list[str]:
    return [h["state"] for h in json.loads(story_json.read_text("utf-8"))["history"]]


@pytest.fixture(scope="module")
def shared_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("shared")
    # faster-whisper: these tests are about processes sharing a server, and 20 runs on busy cores
    # take a quarter less time with the quicker engine.
    (root / "storypipe.toml").write_text('[transcribe]\nengine = "faster-whisper"\n')
    yield root
    prefect_server.stop(root)


def test_pairs_of_runs_at_once_share_one_server_on_busy_cores(shared_root, tmp_path):
    """Pairs of `storypipe run` started together on one root while two other processes keep both
    cores busy: all exit 0, each story is transcribed exactly once, and one server serves them
    (the first pair races to start it; before the middle one its process is killed and must be replaced)."""
    root = shared_root
    store = Store(root).ensure()
    made = tmp_path / "made"
    recordings = [af.speech(made, f"pair {pair}.wav", f"Story number {pair}. The group listened to me.")
                  for pair in range(PAIRS)]
    before = sorted(sha(p) for p in recordings)
    hogs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(os.cpu_count() or 2)]
    servers = set()
    try:
        for pair, recording in enumerate(recordings):
            if pair == PAIRS // 2:
                stale = prefect_server.running(root)
                os.kill(stale.pid, signal.SIGKILL)  # a crash: server.json still names it
            shutil.copy2(recording, store.inbox / recording.name)
            runs = [storypipe("run", root=root), storypipe("run", root=root)]
            outputs = [r.communicate(timeout=900)[0] for r in runs]
            assert [r.returncode for r in runs] == [0, 0], (pair, outputs)
            servers.add(prefect_server.running(root).pid)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    stories = sorted(store.transcripts.glob("*/story.json"))
    assert len(stories) == PAIRS
    for story_json in stories:
        states = history(story_json)
        assert states.count("ingested") == 1 and states.count("transcribed") == 1, (story_json, states)
        assert states[-1] == "extracted"  # no sidecar: nothing is staged
    # No file taken twice or lost: the originals are the recordings, byte for byte; nothing left behind.
    assert sorted(sha(p) for p in store.originals.rglob("*") if p.is_file()) == before
    assert not any(store.inbox.iterdir()) and not any(store.quarantine.iterdir())
    assert len(servers) == 2  # the first one, and the one that replaced it after the crash
    info = prefect_server.running(root)
    assert info is not None and (root / ".storypipe" / "prefect" / "prefect.db").exists()
    # Prefect saw every recording as a run of its own.
    with urllib.request.urlopen(urllib.request.Request(  # noqa: S310
            info.api_url + "/flow_runs/count", data=b"{}", headers={"Content-Type": "application/json"})) as r:
        assert int(r.read()) >= PAIRS


def test_the_server_is_local_only(shared_root):
    info = prefect_server.ensure(shared_root, load_settings(shared_root))
    assert get(info.api_url + "/health") == 200
    assert get(f"http://localhost:{info.port}/api/health") == 200
    for path in ("/api/health", "/", "/api/flow_runs/filter"):
        assert get(info.url + path, host="evil.example") == 400, path  # a DNS-rebinding page
        assert get(info.url + path, host=f"evil.example:{info.port}") == 400, path
    # Bound to the loopback only: not reachable on the machine's other addresses.
    others = {a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)} - {"127.0.0.1"}
    for address in others:
        with socket.socket() as sock:
            sock.settimeout(2)
            assert sock.connect_ex((address, info.port)) != 0, address


def test_status_names_the_ui_and_server_runs_in_the_foreground(shared_root):
    root = shared_root
    prefect_server.stop(root)
    status = subprocess.run([str(STORYPIPE), "status", "--json", "--root", str(root)], env=own_server_env(),
                            capture_output=True, text=True)
    assert json.loads(status.stdout)["prefect_ui"] is None
    server = storypipe("server", root=root)
    try:
        lines = []
        deadline = time.monotonic() + 300
        while not any("Prefect UI:" in line for line in lines):
            assert server.poll() is None and time.monotonic() < deadline, "".join(lines)
            lines.append(server.stdout.readline())
        url = next(line for line in lines if "Prefect UI:" in line).split()[2]
        assert url.startswith("http://127.0.0.1:") and get(url + "api/health") == 200
        status = subprocess.run([str(STORYPIPE), "status", "--root", str(root)], env=own_server_env(),
                                capture_output=True, text=True)
        assert f"Prefect UI (runs, logs and artifacts): {url}" in " ".join(status.stdout.split())
        # A run meanwhile uses this server rather than starting one.
        pid = prefect_server.running(root).pid
        run = subprocess.run([str(STORYPIPE), "run", "--root", str(root)], env=own_server_env(),
                             capture_output=True, text=True, timeout=600)
        assert run.returncode == 0 and prefect_server.running(root).pid == pid, run.stdout
    finally:
        os.killpg(server.pid, signal.SIGINT)  # Ctrl-C
        code = server.wait(timeout=60)
    assert code == 0
    assert prefect_server.running(root) is None
    status = subprocess.run([str(STORYPIPE), "status", "--json", "--root", str(root)], env=own_server_env(),
                            capture_output=True, text=True)
    assert json.loads(status.stdout)["prefect_ui"] is None


def test_an_idle_server_started_on_demand_stops_by_itself(tmp_path):
    settings = load_settings(tmp_path)
    settings.prefect.server_idle_s = 1
    with prefect_server.lease(tmp_path, settings):
        info = prefect_server.ensure(tmp_path, settings)
        time.sleep(3 * prefect_server.WATCHDOG_S)
        assert prefect_server.running(tmp_path, settings) == info  # kept up while a command uses it
    deadline = time.monotonic() + 60
    while prefect_server._process_alive(info.pid):
        assert time.monotonic() < deadline, "the idle server never stopped"
        time.sleep(0.5)
    assert not (tmp_path / ".storypipe" / "prefect" / "server.json").exists()


def test_a_lease_inside_a_lease_keeps_the_outer_one(tmp_path):
    """`storypipe watch` holds a lease for its life and each of its runs another: a run ending must
    not let the server go idle under the watch."""
    settings = load_settings(tmp_path)
    clients = prefect_server.state_folder(tmp_path, settings) / "clients"
    with prefect_server.lease(tmp_path, settings):
        with prefect_server.lease(tmp_path, settings):
            assert len(list(clients.iterdir())) == 2
        assert [p.name.split("-")[0] for p in clients.iterdir()] == [str(os.getpid())]
    assert list(clients.iterdir()) == []
