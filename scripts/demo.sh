#!/usr/bin/env bash
# Quick start, command 1: install everything (idempotent), then run the demo on the bundled photos (CPU, minutes).
# Extra arguments go to scripts/demo.py (e.g. --fresh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec "${MSRN_VENV:-.venv}/bin/python" scripts/demo.py "$@"
