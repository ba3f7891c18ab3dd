#!/usr/bin/env bash
# The test command: lint, type-check, then the test suite. Installs what it needs into .venv.
# Usage: bash scripts/test.sh [pytest args...]
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
ruff check tl_toolkit plugins tests bench
mypy
python -m pytest "$@"
