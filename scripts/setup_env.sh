#!/usr/bin/env bash
# Create ./.venv (if missing) and install the plugin with its pinned stack. Idempotent: a re-run with unchanged
# requirements returns at once. Override the interpreter with PYTHON=python3.11, the venv folder with MSRN_VENV=path.
#
# Why the steps are split: PyPI's basicsr 1.4.2 is an sdist whose setup imports torch; under pip's build isolation it
# would install a second torch (minutes, GBs) just to build. Installing the pinned torch first and building basicsr
# with --no-build-isolation takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${MSRN_VENV:-.venv}"
TORCH_PINS=(torch==2.14.1 torchvision==0.29.1)

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV with ${PYTHON:-python3}"
  "${PYTHON:-python3}" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
stamp="$VENV/.msrn-basicsr-installed"
# Re-install when any packaging file changes (setup.py and the .pth ship the start-up hook).
want="$(cat setup.cfg pyproject.toml setup.py msrn_basicsr_hook.pth scripts/setup_env.sh | sha256sum | cut -c1-16)"
hook_ok='import sys; hooked = type(sys.meta_path[0]).__name__ == "BasicSRImportHook"; import msrn_plugin; assert hooked'
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
    && env -u MSRN_BASICSR_DISABLE_HOOK "$VENV/bin/python" -c "$hook_ok" 2>/dev/null; then
  echo "[setup] $VENV is up to date"
  exit 0
fi
echo "[setup] installing ${TORCH_PINS[*]} (about 1-2 minutes on a fresh machine)"
"${PIP[@]}" install -q "${TORCH_PINS[@]}" 'setuptools>=64' wheel
echo "[setup] installing basicsr==1.4.2 (built against the installed torch) and the plugin"
"${PIP[@]}" install -q --no-build-isolation basicsr==1.4.2 "${TORCH_PINS[@]}"
"${PIP[@]}" install -q --no-build-isolation -e '.[test]' "${TORCH_PINS[@]}"
echo "$want" > "$stamp"
echo "[setup] done: $("$VENV/bin/python" -c 'import msrn_plugin, torch, basicsr; print("torch", torch.__version__, "basicsr", basicsr.__version__, "msrn_plugin", msrn_plugin.__version__)')"
