"""storypipe: from recorded community interviews to transcripts, quotes and staged stories."""

import os

# This tool sends nothing anywhere on its own: Prefect's anonymous usage reporting stays off.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

__version__ = "0.1.0"
