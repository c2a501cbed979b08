"""storypipe: from recorded community interviews to transcripts, quotes and staged stories."""

import os

# This tool sends nothing anywhere on its own: Prefect's anonymous usage reporting stays off.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
# torch and CTranslate2 each bring an OpenMP runtime; with the default busy-waiting their idle
# threads fight over the two cores, and faster-whisper called from Prefect's task threads ran 10-20x
# slower (bench/speed.md). Passive waiting removes that and costs openai-whisper nothing measurable.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
