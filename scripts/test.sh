#!/usr/bin/env bash
# The test command: lint, type-check, then the test suite. Installs what it needs into .venv.
# Usage: bash scripts/test.sh [pytest args...]
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
ruff check tl_toolkit plugins tests bench
mypy
# Two workers: much of the suite is single-threaded (process start-up, imports, data preparation).
python -m pytest -n 2 --dist loadfile "$@"
