#!/usr/bin/env bash
# Quick start, command 2: install everything (idempotent) and run the whole test suite on the CPU.
# Extra arguments go to pytest, e.g. `bash scripts/run_tests.sh -k convert`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec "${MSRN_VENV:-.venv}/bin/python" -m pytest tests "$@"
