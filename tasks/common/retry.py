"""When a Prefect retry can help: not for bad input, which fails the same way every time."""

from __future__ import annotations

from storypipe.core.jsonio import BadFileError
from storypipe.tasks.common.audio import AudioError

PERMANENT = (AudioError, BadFileError, ValueError, KeyError, TypeError)


def transient_only(task, task_run, state) -> bool:
    """Prefect retry_condition_fn: retry I/O hiccups and the like, never bad input."""
    try:
        state.result()
    except PERMANENT:
        return False
    except Exception:
        return True
    return False
