#!/usr/bin/env bash
# Create .venv at the repository root and install torc into it (editable, with test tools).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
.venv/bin/python -m pip install -q -e '.[dev]' 2>&1 | grep -v "is ignored" || true
.venv/bin/torc-server --version >/dev/null
echo "torc installed: .venv/bin/torc, .venv/bin/torc-server"
