#!/usr/bin/env bash
# Install torc into .venv, lint, and run the whole test suite (what CI runs). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/ruff check .
# A real single-node Slurm for tests/slurm (as root on Debian, as in CI); without it those tests skip.
if [ "$(id -u)" = 0 ] && [ -f /etc/debian_version ] && command -v apt-get >/dev/null && [ -z "${TORC_TEST_NO_SLURM:-}" ]; then
  bash scripts/slurm-up.sh --with-dbd || echo "warning: Slurm could not be started; the Slurm tests will be skipped" >&2
  bash scripts/sshd-up.sh || echo "warning: the test sshd could not be started; the SSH tests in tests/remote will be skipped" >&2
  bash scripts/chromium-up.sh || echo "warning: Chromium could not be installed; the browser tests in tests/dashboard will be skipped" >&2
  TORC_TEST_POSTGRES_URL=$(bash scripts/postgres-up.sh) && export TORC_TEST_POSTGRES_URL || echo "warning: PostgreSQL could not be started; the postgres cases in tests/api, tests/storage and tests/integration will be skipped" >&2
fi
set +e
.venv/bin/python -m pytest -p no:cacheprovider "$@"
rc=$?
set -e
[ $rc -eq 5 ] && { echo "no tests were collected" >&2; exit 1; }
exit $rc
