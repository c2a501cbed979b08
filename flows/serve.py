"""Serve the inbox flow on a schedule from this process, without a work pool or worker.

For teams with a Prefect server (PREFECT_API_URL set): the deployment and its runs show in the
server's UI, and this process runs them. `python -m storypipe.flows.serve --root DIR [--every MINUTES]`;
Ctrl-C stops it and pauses the schedule. See prefect.yaml for the work-pool way.
"""

from __future__ import annotations

import argparse
import os
from datetime import timedelta
from pathlib import Path

from storypipe.flows.inbox import process_inbox
from storypipe.core.settings import default_root

DEPLOYMENT_NAME = "storypipe-inbox"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m storypipe.flows.serve", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(os.environ.get("STORYPIPE_ROOT") or default_root()),
                        help="folder holding audio/, transcripts/, staging/ (default: $STORYPIPE_ROOT, else the "
                             "source checkout when run from one, else the current folder)")
    parser.add_argument("--every", type=float, default=10.0, help="minutes between runs (default: 10)")
    parser.add_argument("--name", default=DEPLOYMENT_NAME, help=f"deployment name (default: {DEPLOYMENT_NAME})")
    args = parser.parse_args(argv)
    root = args.root.expanduser().resolve()
    if not os.environ.get("PREFECT_API_URL"):
        print("PREFECT_API_URL is not set: the runs go to a temporary Prefect server that only this process "
              "sees. Set it to your team's server to follow them in its UI.")
    process_inbox.serve(
        name=args.name,
        interval=timedelta(minutes=args.every),
        parameters={"root": str(root)},
        description=f"Process the storypipe inbox of {root} every {args.every:g} minutes.",
        tags=["storypipe"],
        limit=1,  # one run at a time: a long recording never has two runs racing over the inbox
    )


if __name__ == "__main__":  # pragma: no cover
    main()
