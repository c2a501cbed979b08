"""storypipe's own Prefect server: one per root, started on demand, shared by every storypipe process.

Without a server, every Prefect process starts a temporary one on a SQLite database shared through
`~/.prefect`. Two processes starting at once on a fresh machine miss Prefect's 20 s start-up limit.
Instead, the first storypipe command that needs Prefect starts this root's server and the others
find and reuse it:

- It listens on 127.0.0.1 only, and answers only requests addressed to 127.0.0.1 or localhost
  (Starlette's TrustedHostMiddleware: a DNS-rebinding page cannot read it through the browser).
- Its database, home and log live in `<root>/.storypipe/prefect/`, so two roots never share one.
- `server.json` there names its process and address. Starting is done under a file lock; a server
  whose process is gone (or that no longer answers as this root's) is replaced.
- Each command using it leaves a lease (`clients/<pid>-<n>`). A server started on demand stops by
  itself once no lease is alive for `prefect.server_idle_s`; `storypipe server` keeps it up.
- `PREFECT_API_URL` (or a Prefect profile that sets it) wins: a team's own server is used as it is.

The server process is `python -m storypipe.app.prefect_server ROOT PORT IDLE_S`: Prefect's own FastAPI
app under uvicorn, as `prefect server start` runs it, with the host check in front.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from storypipe.core.settings import Settings, load_settings

log = logging.getLogger("storypipe")

LOCAL_HOSTS = ["127.0.0.1", "localhost"]
QUIET_SERVICES = ("TRIGGERS", "FOREMAN", "PAUSE_EXPIRATIONS", "CANCELLATION_CLEANUP", "REPOSSESSOR",
                  "CLEANUP_RECONCILER", "DB_VACUUM")
IDENTITY_PATH = "/storypipe-server"  # answers {"root", "pid"}: which root's server this is
POLL_S = 0.2
WATCHDOG_S = 2.0
_LEASES = itertools.count()
_OURS: set[str] = set()  # API URLs of storypipe's own servers that this process pointed Prefect at


class ServerError(RuntimeError):
    """The root's Prefect server could not be started (the message says why, with its log)."""


@dataclass(frozen=True)
class ServerInfo:
    pid: int
    port: int
    root: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"


def state_folder(root: Path, settings: Settings) -> Path:
    return settings.run.state_folder(Path(root)) / "prefect"


def server_env(root: Path, settings: Settings, port: int) -> dict[str, str]:
    """The environment of the server process: everything of Prefect's kept in the root, nothing sent."""
    folder = state_folder(root, settings)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    origins = ",".join(f"http://{h}:{port}" for h in LOCAL_HOSTS)
    env.update(
        PREFECT_HOME=str(folder),
        PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{folder / 'prefect.db'}",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        PREFECT_SERVER_API_HOST="127.0.0.1",
        PREFECT_SERVER_API_PORT=str(port),
        PREFECT_UI_API_URL=f"http://127.0.0.1:{port}/api",
        PREFECT_UI_URL=f"http://127.0.0.1:{port}",
        PREFECT_SERVER_CORS_ALLOWED_ORIGINS=origins,
        PREFECT_LOGGING_SERVER_LEVEL="WARNING",
    )
    # Services for what storypipe does not use (automations, workers' heartbeats, pauses, cancelling,
    # concurrency leases) poll the database all day; off, an idle server costs half the CPU. The
    # scheduler stays, for flows/serve.py; run history, task runs, logs and events all work.
    for service in QUIET_SERVICES:
        env[f"PREFECT_SERVER_SERVICES_{service}_ENABLED"] = "false"
    return env


# ---------------------------------------------------------------- finding a running server


def _process_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (a killed child not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: kill(0) is all we can know
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _read_info(folder: Path) -> ServerInfo | None:
    try:
        data = json.loads((folder / "server.json").read_text("utf-8"))
        return ServerInfo(pid=int(data["pid"]), port=int(data["port"]), root=str(data["root"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _answers(info: ServerInfo, root: Path, timeout_s: float = 2.0) -> bool:
    """The server at info.url says it is this root's and is healthy (a pid or port can be reused)."""
    try:
        with urllib.request.urlopen(info.url + IDENTITY_PATH, timeout=timeout_s) as r:  # noqa: S310 - loopback only
            who = json.loads(r.read())
        with urllib.request.urlopen(info.api_url + "/health", timeout=timeout_s) as r:  # noqa: S310
            healthy = r.status == 200
    except (OSError, ValueError, urllib.error.URLError):
        return False
    return healthy and who.get("root") == str(root) and who.get("pid") == info.pid


def running(root: Path, settings: Settings | None = None) -> ServerInfo | None:
    """This root's server, when it is up and answering; None otherwise."""
    root = Path(root).resolve()
    settings = settings or load_settings(root)
    info = _read_info(state_folder(root, settings))
    if info is None or not _process_alive(info.pid) or not _answers(info, root):
        return None
    return info


def _team_from_env() -> str | None:
    """PREFECT_API_URL, unless it is one of our own servers that this process set it to."""
    url = os.environ.get("PREFECT_API_URL")
    return url if url and url not in _OURS else None


def ui_address(root: Path) -> str | None:
    """Where a team opens Prefect's UI for this root: its own server when up, or the team's server."""
    team = _team_from_env()
    if team:
        return team.removesuffix("/").removesuffix("/api") + "/"
    try:
        info = running(root)
    except Exception:  # noqa: BLE001 - a broken configuration is reported by the commands that need it
        return None
    return f"{info.url}/" if info else None


# ---------------------------------------------------------------- starting one


def _free_port(preferred: int, tries: int) -> int:
    for port in range(preferred, preferred + tries):
        with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))  # all taken: any free port
        return sock.getsockname()[1]


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text("utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _stop_pid(pid: int, timeout_s: float = 10.0) -> None:
    import signal

    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while _process_alive(pid) and time.monotonic() < deadline:
        time.sleep(POLL_S)
    if _process_alive(pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def start(root: Path, settings: Settings, *, detach: bool = True, idle_s: float | None = None) -> tuple[ServerInfo, subprocess.Popen]:
    """Start this root's server and wait until it answers. The caller holds the start lock.
    `detach`: its own session and no terminal, so it outlives the command that started it."""
    folder = state_folder(root, settings)
    folder.mkdir(parents=True, exist_ok=True)
    idle = settings.prefect.server_idle_s if idle_s is None else idle_s
    old = _read_info(folder)
    if old is not None and _process_alive(old.pid):
        _stop_pid(old.pid)  # alive but not answering as this root's server: replaced
    logfile = folder / "server.log"
    database = folder / "prefect.db"
    if not database.exists():
        _copy_template(settings, database, logfile)
    for attempt in range(3):  # another program may take the port between our check and uvicorn's bind
        port = _free_port(settings.prefect.server_port, settings.prefect.port_tries)
        with open(logfile, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "storypipe.app.prefect_server", str(root), str(port), str(idle)],
                env=server_env(root, settings, port),
                stdin=subprocess.DEVNULL,
                stdout=out if detach else None,
                stderr=subprocess.STDOUT if detach else None,
                start_new_session=detach,
                close_fds=True,
            )
        info = ServerInfo(pid=proc.pid, port=port, root=str(root))
        deadline = time.monotonic() + settings.prefect.server_start_timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            if _answers(info, root):
                return info, proc
            time.sleep(POLL_S)
        if proc.poll() is None:
            _stop_pid(proc.pid)
            raise ServerError(
                f"storypipe's Prefect server for {root} did not answer within "
                f"{settings.prefect.server_start_timeout_s:g} s (see {logfile}):\n{_log_tail(logfile)}"
            )
        log.debug("Prefect server attempt %d on port %d exited with %s", attempt + 1, port, proc.returncode)
    raise ServerError(f"storypipe's Prefect server for {root} could not start (see {logfile}):\n{_log_tail(logfile)}")


def _template(settings: Settings) -> Path:
    """An empty, migrated Prefect database for this Prefect version, kept in the machine's cache: a
    new root's server copies it instead of running Prefect's ~200 migrations again (7-30 s)."""
    import importlib.metadata

    version = importlib.metadata.version("prefect")
    return settings.run.machine_folder().parent / "prefect" / f"empty-{version}.db"


def _copy_template(settings: Settings, database: Path, logfile: Path) -> None:
    template = _template(settings)
    template.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(template) + ".lock"):
        if not template.exists():
            partial = template.with_suffix(f".{os.getpid()}.tmp")
            with open(logfile, "ab") as out:
                done = subprocess.run(
                    [sys.executable, "-m", "storypipe.app.prefect_server", "--migrate", str(partial)],
                    env=dict(os.environ, PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{partial}",
                             PREFECT_HOME=str(template.parent)),
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, check=False,
                )
            if done.returncode != 0 or not partial.exists():
                partial.unlink(missing_ok=True)
                return  # the server migrates its own database as it starts
            os.replace(partial, template)
    tmp = database.with_suffix(f".{os.getpid()}.tmp")
    shutil.copyfile(template, tmp)
    os.replace(tmp, database)


def _migrate(path: str) -> None:
    """Create an empty database at PREFECT_API_DATABASE_CONNECTION_URL with every block type registered."""
    import asyncio

    from prefect.server.database import provide_database_interface
    from prefect.server.models.block_registration import run_block_auto_registration

    async def go() -> None:
        db = provide_database_interface()
        await db.create_db()
        async with await db.session() as session:
            await run_block_auto_registration(session=session)
            await session.commit()

    asyncio.run(go())


def ensure(root: Path, settings: Settings) -> ServerInfo:
    """This root's server: the running one, or one started now (by exactly one process at a time)."""
    return ensure_started(root, settings)[0]


def ensure_started(root: Path, settings: Settings, *, detach: bool = True,
                   idle_s: float | None = None) -> tuple[ServerInfo, subprocess.Popen | None]:
    """`ensure`, also giving the process when this call started it (None when one was running)."""
    root = Path(root).resolve()
    info = running(root, settings)
    if info is not None:
        return info, None
    folder = state_folder(root, settings)
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder / "server.lock")):
        info = running(root, settings)  # another process may have started it while we waited
        if info is not None:
            return info, None
        log.info("Starting storypipe's Prefect server for %s", root)
        return start(root, settings, detach=detach, idle_s=idle_s)


def stop(root: Path, settings: Settings | None = None) -> ServerInfo | None:
    """Stop this root's server (returns what was stopped, or None when none was running)."""
    root = Path(root).resolve()
    settings = settings or load_settings(root)
    folder = state_folder(root, settings)
    info = _read_info(folder)
    alive = info is not None and _process_alive(info.pid)
    if alive:
        _stop_pid(info.pid)
    (folder / "server.json").unlink(missing_ok=True)
    return info if alive else None


# ---------------------------------------------------------------- using one


def _lease_dir(root: Path, settings: Settings) -> Path:
    return state_folder(root, settings) / "clients"


@contextlib.contextmanager
def lease(root: Path, settings: Settings) -> Iterator[None]:
    """Keep the root's server up while this process uses it (see the watchdog in `serve`)."""
    folder = _lease_dir(root, settings)
    folder.mkdir(parents=True, exist_ok=True)
    mine = folder / f"{os.getpid()}-{next(_LEASES)}"  # one per use: `watch` holds one, each run another
    mine.write_text(str(os.getpid()))
    try:
        yield
    finally:
        mine.unlink(missing_ok=True)


def team_api_url() -> str | None:
    """A Prefect server the team set up (PREFECT_API_URL, or a Prefect profile that sets it)."""
    team = _team_from_env()
    if team:
        return team
    from prefect.settings import get_current_settings

    return get_current_settings().api.url or None


@contextlib.contextmanager
def connect(root: Path, settings: Settings) -> Iterator[str]:
    """Point Prefect at the root's own server (started when needed) for the duration; yields the API
    URL. A team's own server (PREFECT_API_URL) is used as it is."""
    team = team_api_url()
    if team:
        yield team
        return
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    root = Path(root).resolve()
    before = {k: os.environ.get(k) for k in ("PREFECT_API_URL", "PREFECT_HOME")}
    with lease(root, settings):
        info = ensure(root, settings)
        home = state_folder(root, settings)
        _OURS.add(info.api_url)
        os.environ.update(PREFECT_API_URL=info.api_url, PREFECT_HOME=str(home))  # for child processes too
        try:
            with temporary_settings(updates={PREFECT_API_URL: info.api_url, PREFECT_HOME: home}):
                yield info.api_url
        finally:
            for key, value in before.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


# ---------------------------------------------------------------- the server process


def _identity_app(app, root: str):
    """Prefect's app behind the host check, with one extra route saying whose server this is."""
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.responses import JSONResponse

    guarded = TrustedHostMiddleware(app, allowed_hosts=LOCAL_HOSTS)
    who = JSONResponse({"root": root, "pid": os.getpid()})

    async def asgi(scope, receive, send):
        if scope["type"] == "http" and scope["path"] == IDENTITY_PATH:
            return await TrustedHostMiddleware(who, allowed_hosts=LOCAL_HOSTS)(scope, receive, send)
        return await guarded(scope, receive, send)

    return asgi


def _watchdog(server, folder: Path, idle_s: float) -> None:
    """Ends the server once no lease has been alive for idle_s, or when server.json names another."""
    last_used = time.monotonic()
    while not server.should_exit:
        time.sleep(WATCHDOG_S)
        info = _read_info(folder)
        if info is not None and info.pid != os.getpid():
            server.should_exit = True  # replaced by another server
            return
        alive = False
        for path in (folder / "clients").glob("*"):
            try:
                pid = int(path.name.split("-")[0])
            except ValueError:
                continue
            if _process_alive(pid):
                alive = True
            else:
                path.unlink(missing_ok=True)  # a command that died without cleaning up
        if alive:
            last_used = time.monotonic()
        elif idle_s and time.monotonic() - last_used > idle_s:
            server.should_exit = True


def serve(root: str, port: int, idle_s: float) -> None:
    """Run the server in this process until stopped (SIGTERM/Ctrl-C) or idle (see _watchdog)."""
    import uvicorn
    from prefect.server.api.server import create_app

    settings = load_settings(Path(root))
    folder = state_folder(Path(root), settings)
    config = uvicorn.Config(_identity_app(create_app(final=True), root), host="127.0.0.1", port=port,
                            log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    info = {"pid": os.getpid(), "port": port, "root": root, "started_at": time.time(),
            "ui": f"http://127.0.0.1:{port}"}
    tmp = folder / f".server.json.{os.getpid()}"
    tmp.write_text(json.dumps(info), "utf-8")
    os.replace(tmp, folder / "server.json")
    threading.Thread(target=_watchdog, args=(server, folder, idle_s), daemon=True).start()
    try:
        server.run()
    finally:
        current = _read_info(folder)
        if current is not None and current.pid == os.getpid():
            (folder / "server.json").unlink(missing_ok=True)


if __name__ == "__main__":
    if sys.argv[1] == "--migrate":
        _migrate(sys.argv[2])
    else:
        serve(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
