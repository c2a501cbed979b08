"""The `storypipe` command (see CONTRACT.md for what each subcommand promises)."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from storypipe.core import timefmt
from storypipe.core.store import REPORT_HTML, Store
from storypipe.core.settings import ConfigError, Settings, default_root, load_settings

app = typer.Typer(
    name="storypipe",
    help="From recorded community interviews to transcripts, quotes and stories ready to share.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
log = logging.getLogger("storypipe")

SAMPLE_DIR = Path(__file__).parent.parent / "sample"
DEMO_MARKER = ".storypipe-demo"

RootOption = Annotated[
    Optional[Path],
    typer.Option(
        "--root",
        envvar="STORYPIPE_ROOT",
        help="Folder holding audio/, transcripts/, staging/ and reports/ (default: the source checkout when run from one, else the current folder).",
        show_default=False,
    ),
]


class ProgressHandler(logging.Handler):
    """Shows the latest message beside the progress bar, counts finished recordings, and follows the
    position in the audio being transcribed (with the time still to go)."""

    def __init__(self, progress: Progress, task_id, total_files: int):
        super().__init__(logging.INFO)
        self.progress, self.task_id, self.total_files, self.done = progress, task_id, total_files, 0
        self.audio_task = None

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "done", False):
            self.done += 1
        self.progress.update(
            self.task_id, completed=self.done,
            description=f"[{self.done}/{self.total_files}] {record.getMessage()[:60]}",
        )
        position, total = getattr(record, "position_s", None), getattr(record, "total_s", None)
        if position is not None and total:
            if self.audio_task is None:
                self.audio_task = self.progress.add_task("", total=total)
            self.progress.update(
                self.audio_task, total=total, completed=position,
                description=f"    {getattr(record, 'story', '')}: {timefmt.duration(position)} of {timefmt.duration(total)}",
            )
        elif self.audio_task is not None and getattr(record, "done", False):
            self.progress.remove_task(self.audio_task)
            self.audio_task = None


def _setup_logging(verbose: bool) -> None:
    if not verbose:
        # Prefect's own chatter (temporary server, run names) stays out of a volunteer's way.
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    log.setLevel(logging.INFO)
    if not any(isinstance(h, RichHandler) for h in log.handlers):
        log.addHandler(RichHandler(console=console, show_path=False, markup=False, rich_tracebacks=False))
    log.propagate = False


def _resolve_root(root: Path | None) -> Path:
    return (root or default_root()).expanduser().resolve()


def _settings_or_exit(root: Path) -> Settings:
    try:
        return load_settings(root)
    except ConfigError as e:  # names the file or variable: an unknown key, not TOML
        console.print(f"[red]Configuration error:[/red] {e}")
        raise typer.Exit(2) from None
    except ValidationError as e:
        console.print(f"[red]Configuration error[/red] (the shipped pipeline.toml, {root}/storypipe.toml or STORYPIPE_*):\n{e}")
        raise typer.Exit(2) from None
    except Exception as e:  # anything else the settings could not be read for
        console.print(f"[red]Configuration error:[/red] {e}")
        raise typer.Exit(2) from None


def _check_model(settings: Settings) -> None:
    """Fail early, before any file moves, when the configured model cannot be found."""
    from storypipe.tasks.transcribe.engine_faster import resolve_ct2_model
    from storypipe.tasks.transcribe.whisper_model import ModelNotFoundError, resolve_checkpoint

    try:
        if settings.transcribe.engine == "faster-whisper":
            resolve_ct2_model(settings.transcribe.model)
        else:
            resolve_checkpoint(settings.transcribe.model, settings.transcribe.model_cache_dir())
    except ModelNotFoundError as e:
        console.print(f"[red]Model not found:[/red] {e}")
        raise typer.Exit(2) from None


@contextlib.contextmanager
def _prefect(root: Path, settings: Settings):
    """Prefect pointed at the root's own server (started on demand), or exit 2 when it cannot start."""
    from storypipe.app import prefect_server

    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(prefect_server.connect(root, settings))
        except prefect_server.ServerError as e:
            console.print(f"[red]Prefect could not start:[/red] {e}")
            raise typer.Exit(2) from None
        yield


class Stopped(Exception):
    """SIGTERM or Ctrl-C arrived while a run was working."""


STOPPED = ("[yellow]Stopped.[/yellow] Nothing is lost: the next `storypipe run` or `watch` finishes what "
           "this run had started.")
GOODBYE = ("Stopped watching. Goodbye! Anything left half done is picked up by the next "
           "`storypipe run` or `storypipe watch`.")


def stoppable(work, stop_code: int | None = None, goodbye: str = STOPPED):
    """Run `work` in a worker thread so that a service manager's SIGTERM (or Ctrl-C) ends the process
    at once, instead of after the story being transcribed (Prefect would wait for its task threads).
    Nothing is lost by stopping: every file is written whole or not at all, a story records each
    stage it finished, the kernel releases the locks, and the next run takes the claims back."""
    result: dict = {}

    def target() -> None:
        try:
            result["value"] = work()
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            result["error"] = e

    def on_term(signum, frame) -> None:
        raise Stopped

    # The thread carries this one's context: Prefect's settings (the server to use) live in it.
    thread = threading.Thread(target=contextvars.copy_context().run, args=(target,), name="storypipe-run", daemon=True)
    in_main = threading.current_thread() is threading.main_thread()
    before = signal.signal(signal.SIGTERM, on_term) if in_main else None
    try:
        thread.start()
        while thread.is_alive():
            thread.join(0.2)
    except (Stopped, KeyboardInterrupt) as e:
        console.print(goodbye)
        console.file.flush()
        logging.shutdown()
        # os._exit: an ordinary exit would wait for Prefect's task threads, i.e. for the transcription.
        os._exit(stop_code if stop_code is not None else 130 if isinstance(e, KeyboardInterrupt) else 143)
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, before)
    if "error" in result:
        raise result["error"]
    return result["value"]


def _warm_up(settings: Settings, at_once: bool) -> None:
    """Load the models in the background while Prefect connects and the recording is ingested: at
    once when stories are waiting to be finished, otherwise once this run has claimed a recording."""
    from storypipe.tasks.common import claims
    from storypipe.tasks.common.nlp import load_nlp
    from storypipe.tasks.transcribe import warm_up

    def load() -> None:
        if not at_once:
            claims.TOOK_WORK.wait()
        try:
            warm_up(settings)
            load_nlp(settings.extract.spacy_model)
        except Exception:  # noqa: BLE001 - the stage itself will load again and report the problem
            pass

    threading.Thread(target=load, name="warm-up", daemon=True).start()


def run_pipeline(root: Path, verbose: bool = False, watching: bool = False) -> int:
    """Process the inbox of a root with a progress display and a summary; returns the exit status.
    A stop (SIGTERM, Ctrl-C) ends the process at once: 143/130, or 0 with the goodbye when `watching`."""
    _setup_logging(verbose)
    settings = _settings_or_exit(root)
    _check_model(settings)
    store = Store(root).ensure()

    from storypipe.flows.inbox import run_inbox
    from storypipe.flows.progress import unfinished_stories
    from storypipe.tasks import ingest
    from storypipe.tasks.common import claims

    claims.recover_claims(store, settings)
    unfinished = unfinished_stories(store)
    todo = len(ingest.list_inbox(store, settings)) + len(unfinished)
    if todo == 0:
        console.print(f"Nothing to do: {store.inbox} is empty and every story is finished.")
    else:
        with Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
            TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(), console=console, transient=True,
        ) as progress:
            handler = ProgressHandler(progress, progress.add_task("Starting…", total=todo), todo)
            log.addHandler(handler)
            _warm_up(settings, at_once=bool(unfinished))
            try:
                with _prefect(root, settings):
                    outcomes = stoppable(lambda: run_inbox(str(root), settings),
                                         *((0, GOODBYE) if watching else ()))
            finally:
                log.removeHandler(handler)
        if outcomes:
            _print_summary(store, outcomes)
        else:
            console.print("Nothing left to do: another storypipe run took the recordings in the inbox.")
        if any(o.result in ("quarantined", "failed") for o in outcomes):
            return 1
    return 0


def _print_summary(store: Store, outcomes) -> None:
    from storypipe.app import status

    rows = {r["story_id"]: r for r in status.story_rows(store)}
    table = Table(title="What happened", show_lines=False)
    for col in ("story", "duration", "state", "quotes", "problems"):
        table.add_column(col)
    for o in outcomes:
        row = rows.get(o.story_id or "", {})
        problems = o.reason if o.result in ("quarantined", "failed") else "; ".join(row.get("problems", []))
        state = row.get("state", o.result) if o.result != "quarantined" else "[red]quarantined[/red]"
        if o.result in ("duplicate", "skipped"):
            state = f"{state} ({o.result}: {o.reason})" if o.result == "skipped" else f"{state} (duplicate)"
        table.add_row(
            o.story_id or o.file,
            timefmt.duration(row.get("duration_s")),
            state,
            str(row.get("quotes_candidate", "")) if row else "",
            problems or "",
        )
    console.print(table)
    console.print(f"Transcripts and quotes: {store.transcripts}   Staged stories: {store.staging}")
    if any(o.result == "quarantined" for o in outcomes):
        console.print(f"Quarantined files and the reasons are in {store.quarantine}")


@app.command()
def run(
    root: RootOption = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also show Prefect's own messages.")] = False,
) -> None:
    """Process every recording now in audio/inbox/, then exit (1 if any file was quarantined)."""
    raise typer.Exit(run_pipeline(_resolve_root(root), verbose))


@app.command()
def watch(
    root: RootOption = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also show Prefect's own messages.")] = False,
) -> None:
    """Stay up and process recordings as they arrive in audio/inbox/, once copied (Ctrl-C to stop)."""
    root = _resolve_root(root)
    _setup_logging(verbose)  # before anything imports Prefect, which sets up its logging once
    settings = _settings_or_exit(root)
    _check_model(settings)
    store = Store(root).ensure()
    inbox, ignore = store.inbox, settings.ingest.ignore_suffixes
    from storypipe.app.watch import recordings_in, watch_inbox
    from storypipe.flows.progress import unfinished_stories
    from storypipe.tasks.common import claims

    def process() -> int:
        try:
            return run_pipeline(root, verbose, watching=True)
        except typer.Exit as e:  # a configuration or model problem, already explained on screen
            return e.exit_code

    console.print(f"Watching {inbox} for new recordings.", soft_wrap=True)
    console.print(f"Each is processed once it has not changed for {settings.watch.settle_s:g} s. "
                  "Press Ctrl-C to stop.")
    claims.recover_claims(store, settings)  # a stopped run's files go back to the inbox: the first batch
    stop = threading.Event()

    def interrupt(signum, frame) -> None:
        # Prefect swallows a KeyboardInterrupt that lands just after a flow's own code has finished;
        # the stop event then still ends the watch when that run returns.
        stop.set()
        raise KeyboardInterrupt

    # Ctrl-C, and a service manager's stop (SIGTERM), end the watch the same way.
    before = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    from storypipe.app import prefect_server

    try:
        with prefect_server.lease(root, settings):  # the root's Prefect server stays up while watching
            if unfinished_stories(store) and not recordings_in(inbox, ignore):
                process()  # stories a stopped run left are finished now, not at the next arrival
            watch_inbox(inbox, process, settings.watch, stop=stop, ignore_suffixes=ignore)
    except KeyboardInterrupt:
        pass
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
    console.print(GOODBYE)


@app.command("status")
def status_cmd(
    root: RootOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """One row per story: id, source file, duration, state, quotes candidate/approved."""
    from storypipe.app import status

    from storypipe.app import prefect_server

    store = Store(_resolve_root(root))
    summary = status.root_summary(store)
    ui = prefect_server.ui_address(store.root)
    summary["prefect_ui"] = ui
    if as_json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
        return
    table = Table(title=f"Stories in {summary['root']}")
    for col in ("story", "source", "duration", "state", "quotes (candidate/approved)", "notes"):
        table.add_column(col)
    for r in summary["stories"]:
        failed = r["failure"]
        table.add_row(
            r["story_id"], r["source"], timefmt.duration(r["duration_s"]),
            f"[red]failed at {failed['stage']}[/red]" if failed else r["state"],
            f"{r['quotes_candidate']}/{r['quotes_approved']}", "; ".join(r["problems"]),
        )
    console.print(table)
    for r in summary["stories"]:
        if r["failure"]:
            console.print(f"[red]failed[/red] {r['story_id']}: {r['failure']['reason']}\n"
                          f"    when fixed: storypipe retry {r['story_id']}")
    for q in summary["quarantined"]:
        console.print(f"[red]quarantined[/red] {q['file']}: {q['reason']}")
    for name in summary["waiting_sidecars"]:
        console.print(f"[yellow]waiting[/yellow] {name}: its recording has not arrived in the inbox yet")
    if ui:
        console.print(f"Prefect UI (runs, logs and artifacts): {ui}")


@app.command("search")
def search_cmd(
    query: Annotated[str, typer.Argument(help='What to look for, in your own words, e.g. "being listened to".')],
    root: RootOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
    limit: Annotated[Optional[int], typer.Option("--limit", help="How many passages to show at most "
                                                 "(default: [search] limit).")] = None,
) -> None:
    """Passages across every story that mean QUERY, best first: the story, who spoke, when, and what they said."""
    from storypipe.tasks import search
    from storypipe.tasks.common.meaning import MeaningModelError

    store = Store(_resolve_root(root))
    settings = _settings_or_exit(store.root)
    notes = Console(stderr=True)  # stdout carries only the results (the JSON with --json)
    for handler in logging.getLogger("storypipe").handlers:  # so do the log lines ("… is searchable")
        if isinstance(handler, RichHandler):
            handler.console = notes

    def indexing(story_ids: list[str]) -> None:
        n = len(story_ids)
        notes.print(f"Making {n} stor{'y' if n == 1 else 'ies'} searchable first (new or changed since the last "
                    "search); this takes a few seconds for each…", soft_wrap=True)

    try:
        found = search.search(query, store, settings, limit, on_indexing=indexing)
    except search.SearchError as e:
        notes.print(f"[red]{e}[/red]", soft_wrap=True)
        raise typer.Exit(2) from None
    except MeaningModelError as e:
        notes.print(f"[red]Search needs the sentence-meaning model:[/red] {e}", soft_wrap=True)
        raise typer.Exit(2) from None
    if as_json:
        print(json.dumps(found.json(), indent=2, ensure_ascii=False))
        return
    searched = f"{found.stories} stor{'y' if found.stories == 1 else 'ies'}"
    if not found.stories:
        console.print("No story is searchable yet: stories become searchable once `storypipe run` has found "
                      "their quotes.", soft_wrap=True)
    elif not found.hits:
        console.print(f'Nothing in {searched} means "{found.query}" closely enough. Try other words.',
                      soft_wrap=True, markup=False)
    else:
        console.print(f'{len(found.hits)} passage{"" if len(found.hits) == 1 else "s"} that mean "{found.query}", '
                      f"best first (searched {searched}):\n", soft_wrap=True, markup=False)
        for i, hit in enumerate(found.hits, 1):
            console.print(f"{i:>2}. {hit.title} · {hit.who or 'unknown speaker'} · {hit.time}   "
                          f"({hit.story_id}, score {hit.score:.2f})", soft_wrap=True, markup=False, style="bold")
            console.print(f'    "{hit.text}"\n', soft_wrap=True, markup=False)
        console.print("To listen from that moment: `storypipe review`, then Search.", soft_wrap=True)
    if found.withheld:
        console.print(f"{found.withheld} stor{'y is' if found.withheld == 1 else 'ies are'} never searched: the "
                      "storyteller did not consent to a transcript.", soft_wrap=True)
    if found.waiting:
        console.print(f"{found.waiting} stor{'y is' if found.waiting == 1 else 'ies are'} not searchable yet: "
                      f"the pipeline has not found {'its' if found.waiting == 1 else 'their'} quotes "
                      "(`storypipe run`, or `storypipe status`).", soft_wrap=True)


@app.command()
def retry(
    story_ids: Annotated[list[str], typer.Argument(help="Failed stories to run again (see `storypipe status`).")],
    root: RootOption = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also show Prefect's own messages.")] = False,
) -> None:
    """Run failed stories again, each from the stage where it failed (1 if one fails again)."""
    from storypipe.app import status

    root = _resolve_root(root)
    _setup_logging(verbose)
    settings = _settings_or_exit(root)
    store = Store(root)
    problems = [p for p in (status.retry_problem(store, s) for s in story_ids) if p]
    if problems:
        for problem in problems:
            console.print(f"[red]Cannot retry:[/red] {problem}")
        raise typer.Exit(2)
    _check_model(settings)
    from storypipe.flows.inbox import retry_stories

    with _prefect(root, settings):
        outcomes = stoppable(lambda: retry_stories(str(root), story_ids))
    _print_summary(store, outcomes)
    raise typer.Exit(1 if any(o.result == "failed" for o in outcomes) else 0)


@app.command()
def review(
    root: RootOption = None,
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8765,
    host: Annotated[str, typer.Option("--host", help="Address to listen on. Anything but 127.0.0.1 needs the "
                                                     "access link printed at start.")] = "127.0.0.1",
) -> None:
    """Open the review app: listen to each story, correct its transcript, decide on quotes (Ctrl-C to stop)."""
    import secrets
    import socket

    import uvicorn

    from storypipe.app.web.app import LOCAL_HOSTS, create_app

    store = Store(_resolve_root(root)).ensure()
    local = host in ("127.0.0.1", "localhost", "::1")
    token = None if local else secrets.token_urlsafe(18)
    shown = socket.gethostname() if host in ("0.0.0.0", "::") else host
    url = f"http://{shown}:{port}/" + ("" if local else f"?token={token}")
    # The Host names the app answers (any other gets 400, against DNS rebinding): the loopback names
    # always, and the address it was told to listen on. A wildcard bind (0.0.0.0, ::) answers on
    # every address and name of the machine (LAN and VPN addresses that change, its .local and
    # full names), which can't be listed reliably here, so it allows any Host: there every request
    # needs the access token anyway, and a rebinding page can't have it (the link is only shared
    # with the team, and the cookie is sent only to the name it was set for).
    allowed = ["*"] if host in ("0.0.0.0", "::") else [*LOCAL_HOSTS, host]
    console.print(f"Review app for {store.root}: open [bold]{url}[/bold]  (Ctrl-C to stop)")
    if not local:
        console.print("[yellow]Reachable from other machines: share the link above only with your team.[/yellow]")
    try:
        uvicorn.run(create_app(store.root, token, allowed_hosts=allowed), host=host, port=port, log_level="warning")
    except KeyboardInterrupt:  # pragma: no cover - uvicorn handles Ctrl-C itself
        pass


@app.command()
def server(
    root: RootOption = None,
    stop_it: Annotated[bool, typer.Option("--stop", help="Stop the root's Prefect server and exit.")] = False,
) -> None:
    """Run storypipe's own Prefect server for this root in the foreground and print the UI address (Ctrl-C to stop).
    Other commands start it on demand, or reuse this one."""
    from storypipe.app import prefect_server

    root = _resolve_root(root)
    settings = _settings_or_exit(root)
    if stop_it:
        stopped = prefect_server.stop(root, settings)
        console.print(f"Stopped the Prefect server at {stopped.url}/" if stopped else "No Prefect server was running.")
        return
    team = prefect_server.team_api_url()
    if team:
        console.print(f"PREFECT_API_URL is set: storypipe uses your team's Prefect server, {team}")
        raise typer.Exit(2)
    folder = prefect_server.state_folder(root, settings)
    with prefect_server.lease(root, settings):
        if prefect_server.running(root, settings) is None:
            console.print(f"Starting the Prefect server for {root} (its data: {folder})…")
        try:  # in the foreground (this terminal, Ctrl-C), never idle
            info, proc = prefect_server.ensure_started(root, settings, detach=False, idle_s=0)
        except prefect_server.ServerError as e:
            console.print(f"[red]Prefect could not start:[/red] {e}")
            raise typer.Exit(2) from None
        if proc is None:
            console.print("Another storypipe command started this root's Prefect server; it stays up while this runs.")
        console.print(f"Prefect UI: [bold]{info.url}/[/bold]  (only this computer can open it; Ctrl-C to stop)")
        console.print(f"Its database and log are in {folder}")
        try:
            while proc.poll() is None if proc else prefect_server.running(root, settings):
                time.sleep(1)
        except KeyboardInterrupt:
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=30)
    console.print("Prefect server stopped.")


@app.command("clips")
def clips_cmd(
    root: RootOption = None,
    batch: Annotated[Optional[str], typer.Option("--batch", help="Name of the new batch (default: today's date).")] = None,
) -> None:
    """Cut a clip for every approved quote not yet in a batch, from stories whose consent allows clips."""
    from storypipe.tasks import clips

    store = Store(_resolve_root(root))
    settings = _settings_or_exit(store.root)
    try:
        made, notes = clips.make_clips(store, settings, batch)
    except ValueError as e:
        console.print(f"[red]{e}[/red]")
        raise typer.Exit(2) from None
    for note in notes:
        console.print(f"[yellow]{note}[/yellow]")
    if made is None:
        console.print("Nothing to cut: no approved quotes from stories that consent to clips are waiting.")
        raise typer.Exit(1)
    folder = store.batch_dir(made.batch)
    console.print(f"Cut {len(made.clips)} clips into {folder}")
    for c in made.clips:
        console.print(f"  {c.file} ({c.duration_s:.1f} s): {c.youtube.title}")
    console.print(f"Next: check them, then `storypipe publish {made.batch}` (a dry run) or add --youtube.")


@app.command()
def publish(
    batch: Annotated[str, typer.Argument(help="The batch folder name under audio/clips/.")],
    root: RootOption = None,
    youtube: Annotated[bool, typer.Option("--youtube", help="Really upload (needs [publish] client_secrets).")] = False,
) -> None:
    """Publish a clip batch. Without --youtube: a dry run that writes the exact requests it would send."""
    from storypipe.tasks import publish as pub

    store = Store(_resolve_root(root))
    settings = _settings_or_exit(store.root)
    try:
        result = pub.publish_batch(store, batch, settings, youtube=youtube)
    except pub.PublishError as e:
        console.print(f"[red]{e}[/red]")
        raise typer.Exit(2) from None
    for message in result.messages:
        console.print(message)
    if not youtube:
        console.print(f"Dry run: nothing was sent. The requests are in {result.requests_file}")
        return
    console.print(f"Uploaded {result.sent}, skipped {result.skipped}, failed {result.failed}.")
    if result.resume_hint:
        console.print(f"[yellow]{result.resume_hint}[/yellow]")
    if not result.ok:
        raise typer.Exit(1)


def _decide(root: Path | None, story_id: str, quote_ids: list[str], status: str, themes: list[str] | None = None) -> None:
    from storypipe.app import review
    from storypipe.tasks.common.themes import theme_ids

    store = Store(_resolve_root(root))
    try:
        if themes:  # checked first, so a mistyped theme leaves the quotes as they were
            known = theme_ids(store.root, _settings_or_exit(store.root).extract.themes_file)
            review.check_themes(themes, known)
        quotes = review.decide(store, story_id, quote_ids, status)
        for qid in quote_ids if themes else []:
            now = next(q for q in quotes.quotes if q.id == qid).themes
            quotes = review.set_themes(store, story_id, qid, [*now, *themes], known)
    except review.ReviewError as e:
        console.print(f"[red]{e}[/red]")
        raise typer.Exit(2) from None
    word = {"approved": "Approved", "rejected": "Rejected"}[status]
    for q in quotes.quotes:
        if q.id in quote_ids:
            console.print(f"{word} {q.id}: {q.text[:80]}" + (f" (themes: {', '.join(q.themes)})" if themes else ""))


@app.command()
def approve(
    story_id: Annotated[str, typer.Argument(help="The story, as `storypipe status` shows it.")],
    quote_ids: Annotated[list[str], typer.Argument(help="One or more quote ids from quotes.json.")],
    root: RootOption = None,
    theme: Annotated[
        Optional[list[str]],
        typer.Option("--theme", help="Also give the quotes this theme (a codebook id; repeat for more)."),
    ] = None,
) -> None:
    """Approve quotes (the same decision as in the review app); exit 2 for an unknown story, quote or theme."""
    _decide(root, story_id, quote_ids, "approved", theme)


@app.command()
def reject(
    story_id: Annotated[str, typer.Argument(help="The story, as `storypipe status` shows it.")],
    quote_ids: Annotated[list[str], typer.Argument(help="One or more quote ids from quotes.json.")],
    root: RootOption = None,
) -> None:
    """Reject quotes (the same decision as in the review app); exit 2 for an unknown story or quote."""
    _decide(root, story_id, quote_ids, "rejected")


@app.command("speaker")
def speaker_cmd(
    story_id: Annotated[str, typer.Argument(help="The story, as `storypipe status` shows it.")],
    segment: Annotated[Optional[int], typer.Option("--segment", help="The segment to change: its id in "
                                                   "transcript.json (`--show` lists them).")] = None,
    to: Annotated[Optional[str], typer.Option("--to", help="Who said it: storyteller, interviewer, a name given "
                                              "in the review app, or 'speaker 3' (default: the other speaker).")] = None,
    from_word: Annotated[Optional[int], typer.Option("--from-word", help="Give only the words from this word "
                                                     "(0 is the first) to the end of the segment.")] = None,
    split_at: Annotated[Optional[int], typer.Option("--split-at", help="Split the segment in two before this "
                                                    "word; the speaker stays.")] = None,
    show: Annotated[bool, typer.Option("--show", help="List the segments (with --segment: its numbered words); "
                                       "change nothing.")] = False,
    root: RootOption = None,
) -> None:
    """Fix who spoke: give a segment (or its words from a word on) to another speaker, or split it at a word.
    The quotes are derived again at once, keeping every decision; exit 2 for an unknown story, segment,
    word or speaker."""
    from storypipe.app import review

    store = Store(_resolve_root(root))

    def refuse(message: str) -> None:
        console.print(f"[red]{message}[/red]", soft_wrap=True)
        raise typer.Exit(2)

    if from_word is not None and split_at is not None:
        refuse("Use --from-word or --split-at, not both.")
    if split_at is not None and to is not None:
        refuse("A split keeps the speaker, so --to does not go with --split-at (use --from-word to give the words "
               "from a word on to someone else).")
    try:
        if show:
            _show_segments(store, story_id, segment)
            return
        if segment is None:
            refuse("Say which segment: --segment N (`storypipe speaker STORY_ID --show` lists them).")
        if split_at is not None:
            change = review.split_segment(store, story_id, segment, split_at)
        else:
            settings = _settings_or_exit(store.root)
            if from_word is None:
                change = review.give_segment(store, story_id, segment, to, settings)
            else:
                change = review.give_words_from(store, story_id, segment, from_word, to, settings)
    except review.ReviewError as e:
        refuse(str(e))
    console.print(change.said, soft_wrap=True, markup=False)
    if not change.changed:
        return
    t = change.transcript
    for sid in change.segments:
        seg = t.segments[sid]
        console.print(f"  {seg.id:>4}  {timefmt.duration(seg.start)}–{timefmt.duration(seg.end)}  "
                      f"{review.who(t, seg.speaker)}: {seg.text}", soft_wrap=True, markup=False)
    if change.quotes is not None:
        console.print(f"Quotes derived again from the corrected speakers: {len(change.quotes.quotes)}, every "
                      "decision kept.")
    for qid, note in change.notes.items():
        console.print(f"[yellow]Check quote {qid}:[/yellow] {note}", soft_wrap=True)
    if change.problem:
        console.print(f"[yellow]{change.problem}[/yellow]", soft_wrap=True)


def _show_segments(store: Store, story_id: str, segment: int | None) -> None:
    """`storypipe speaker --show`: the segments with their ids, or one segment's numbered words."""
    from storypipe.app import review

    review.story_dir(store, story_id)
    t = store.read_transcript(story_id, missing_ok=True)
    if t is None:
        raise review.NotFound(f"{story_id} is not transcribed yet.")
    if segment is None:
        for seg in t.segments:
            text = seg.text if len(seg.text) <= 70 else seg.text[:69] + "…"
            console.print(f"{seg.id:>4}  {timefmt.duration(seg.start):>7}  {review.who(t, seg.speaker)}: {text}",
                          soft_wrap=True, markup=False)
        return
    seg = next((s for s in t.segments if s.id == segment), None)
    if seg is None:
        raise review.NotFound(f"There is no segment {segment} in {story_id} (`--show` without --segment lists them).")
    console.print(f"Segment {seg.id}, {timefmt.duration(seg.start)}–{timefmt.duration(seg.end)}, "
                  f"{review.who(t, seg.speaker)}. Its words, numbered for --from-word and --split-at:", markup=False)
    console.print("  ".join(f"[{i}] {w.word.strip()}" for i, w in enumerate(seg.words)) or "(no timed words)",
                  soft_wrap=True, markup=False)


@app.command("report")
def report_cmd(
    root: RootOption = None,
    stories: Annotated[
        Optional[list[str]],
        typer.Option("--stories", help="Only these stories (ids from `storypipe status`), comma-separated or repeated."),
    ] = None,
    title: Annotated[Optional[str], typer.Option("--title", help="The report's title (default: [report] title).")] = None,
    pdf: Annotated[bool, typer.Option("--pdf", help="Also write report.pdf (weasyprint).")] = False,
    render: Annotated[
        Optional[Path],
        typer.Option("--render", help="Make report.html (and the PDF) again from an edited report.md; nothing else.",
                     exists=True, dir_okay=False),
    ] = None,
) -> None:
    """Draft the findings report across stories in reports/<date>/: report.md to edit, report.html, charts."""
    from storypipe.core.jsonio import BadFileError
    from storypipe.tasks import report

    store = Store(_resolve_root(root))
    try:
        if render is not None:
            for path in report.render_files(render, pdf=pdf):
                console.print(f"Wrote {path}")
            return
        settings = _settings_or_exit(store.root)
        wanted = [s.strip() for item in stories or [] for s in item.split(",") if s.strip()] or None
        written = report.write_report(store, settings, wanted=wanted, title=title, pdf=pdf)
    except (report.ReportError, BadFileError) as e:
        console.print(f"[red]No report:[/red] {e}")
        raise typer.Exit(2) from None
    if written.kept_edits:
        console.print(f"[yellow]report.md had been edited: your version is kept as {written.kept_edits}[/yellow]")
    console.print(f"Report of {written.stories} stor{'y' if written.stories == 1 else 'ies'} in {written.folder}")
    for note in written.notes:
        console.print(f"  {note}")
    for path in written.files:
        console.print(f"  {path.relative_to(written.folder)}")
    console.print(f"Edit report.md, then `storypipe report --render {written.folder / 'report.md'}` to update the HTML.")


@app.command()
def demo(
    root: Annotated[
        Optional[Path], typer.Option("--root", help="Where to create the demo root (default: ./storypipe-demo).")
    ] = None,
) -> None:
    """Create a fresh demo root with the bundled sample interview, run the whole pipeline, say where to look."""
    root = (root or Path.cwd() / "storypipe-demo").expanduser().resolve()
    if root.exists() and any(root.iterdir()) and not (root / DEMO_MARKER).exists():
        console.print(f"[red]{root} exists and is not a demo folder; refusing to replace it.[/red] Use --root.")
        raise typer.Exit(2)
    if (root / DEMO_MARKER).exists():
        from storypipe.app import prefect_server

        prefect_server.stop(root)  # its database is about to be replaced with the folder
    shutil.rmtree(root, ignore_errors=True)
    store = Store(root).ensure()
    (root / DEMO_MARKER).write_text("Created by `storypipe demo`; safe to delete.\n")
    for name in ("interview.mp3", "interview.yaml"):
        shutil.copy2(SAMPLE_DIR / name, store.inbox / name)
    console.print(f"Demo root: {root} (the sample interview is in its inbox)")
    code = run_pipeline(root)
    from storypipe.app import status

    for row in status.story_rows(store):
        sid = row["story_id"]
        console.print(f"\n[bold]{sid}[/bold] ({row['state']})")
        console.print(f"  transcript: {store.text_path(sid, 'txt')}")
        console.print(f"  quotes:     {store.quotes_path(sid)}")
        if (store.staging / sid).exists():
            console.print(f"  staged:     {store.staging / sid}")
    from storypipe.tasks import report

    written = report.write_report(store, load_settings(root))
    console.print(f"\nA first findings report: {written.folder / REPORT_HTML}")
    console.print(f"  No quotes are approved yet: try `storypipe review --root {root}`, approve some, then "
                  f"`storypipe report --root {root}`.")
    from storypipe.app import prefect_server

    ui = prefect_server.ui_address(root)
    if ui:
        console.print(f"\nThe runs in Prefect's UI: {ui} (this computer only; it stops by itself after "
                      f"{load_settings(root).prefect.server_idle_s / 60:g} idle minutes, or now with "
                      f"`storypipe server --stop --root {root}`)")
    raise typer.Exit(code)


if __name__ == "__main__":  # pragma: no cover
    app()
