#!/usr/bin/env bash
# One-step set-up on a fresh machine: Debian packages, a virtual environment at .venv with the locked dependencies,
# and sigpipe itself (editable). Safe to re-run: an existing .venv is brought up to the lock file.
set -euo pipefail
cd "$(dirname "$0")/.."

# poppler-utils: pdf2image's rasteriser (the second PDF backend and the fallback of pypdfium2).
if ! command -v pdftoppm >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "setup: installing poppler-utils" >&2
  $SUDO apt-get update -qq >/dev/null && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq poppler-utils >/dev/null
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
echo "setup: installing the locked dependencies into .venv (torch stack: a few minutes on a fresh machine)" >&2
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.lock
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .
echo "setup: done (.venv/bin/sigpipe)" >&2
