#!/usr/bin/env bash
# Install torc into .venv, lint, and run the whole test suite (what CI runs). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/ruff check .
set +e
.venv/bin/python -m pytest -p no:cacheprovider "$@"
rc=$?
set -e
[ $rc -eq 5 ] && { echo "no tests were collected" >&2; exit 1; }
exit $rc
