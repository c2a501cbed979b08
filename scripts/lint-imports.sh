#!/usr/bin/env bash
# Checks the import layers of pyproject.toml ([tool.importlinter]) with import-linter.
#
# Why on the built wheel: import-linter reads a package from its folder, and in the editable install
# storypipe.tasks, storypipe.flows and storypipe.config live outside storypipe/ (pyproject's
# package-dir), so it would not see them. The wheel holds the package as it installs: one folder.
set -euo pipefail
cd "$(dirname "$0")/.."
project=$(pwd)
PY=${PY:-.venv/bin/python}
[[ $PY = /* ]] || PY="$project/$PY"  # absolute, not resolved: the venv's python is a symlink
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PY" -m pip wheel -q --no-deps --no-build-isolation --wheel-dir "$tmp/dist" . >/dev/null 2>&1 \
    || "$PY" -m pip wheel --no-deps --no-build-isolation --wheel-dir "$tmp/dist" .
"$PY" -m zipfile -e "$tmp"/dist/storypipe-*.whl "$tmp/site"
# From the scratch folder, so ./storypipe of the project cannot shadow the unpacked one.
cd "$tmp"
PYTHONPATH="$tmp/site" "$(dirname "$PY")/lint-imports" --config "$project/pyproject.toml"
