#!/usr/bin/env bash
# The quickstart: digits 0-4 -> digits 5-9 transfer with a ResNet-18, offline, about a minute on CPU.
# Installs what it needs into .venv, then prints the transferred and scratch accuracies.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
tl run recipes/quickstart.yaml --overwrite "$@"
python - <<'PY'
import json
s = json.load(open("runs/quickstart/summary.json"))
print(f"transferred: accuracy {s['eval']['accuracy']:.4f}")
print(f"scratch:     accuracy {s['baselines']['scratch']['eval']['accuracy']:.4f}")
print(f"gain:        {s['transfer_gain']['scratch']['accuracy'] * 100:+.1f} pt  (report: runs/quickstart/report.md)")
PY
