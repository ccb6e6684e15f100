#!/usr/bin/env bash
# Install the test dependencies on a fresh machine and run the whole test suite.
# This is the README's test command; .ci/run runs exactly this script.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

# Debian's Chromium for the browser tests (Playwright cannot download its own browser here).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = "0" ]; then
    echo "== installing Debian's chromium for the browser tests"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "Chromium is missing: run 'sudo apt-get install chromium' (Debian) and try again." >&2
    exit 2
  fi
fi

# CI runs every test: the browser tests are never skipped here (a local pytest run may skip them
# with HYPERINFLAM_SKIP_BROWSER=1; see tests/conftest.py).
if [ -n "${HYPERINFLAM_SKIP_BROWSER:-}" ]; then
  echo "== HYPERINFLAM_SKIP_BROWSER is ignored by this script: the browser tests run"
  unset HYPERINFLAM_SKIP_BROWSER
fi
# Nor the Spark half of the engine suite (HYPERINFLAM_SKIP_SPARK=1 skips it in a local run).
if [ -n "${HYPERINFLAM_SKIP_SPARK:-}" ]; then
  echo "== HYPERINFLAM_SKIP_SPARK is ignored by this script: the Spark tests run"
  unset HYPERINFLAM_SKIP_SPARK
fi

# The local PostgreSQL server for the OMOP-on-PostgreSQL tests (fails loudly if it is missing).
bash scripts/ensure-postgres.sh

echo "== creating $VENV and installing hyperinflam with its test dependencies"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e '.[test]'

# The whole suite on every core, at most 4 workers (each may start its own local Spark and
# Chromium), a test module per worker (--dist loadfile: module fixtures are built once). The
# schemathesis test runs after, in one process: its cases share one test id, which pytest-xdist
# would collapse into one. With arguments (a file, -k ...), pytest runs them in one process.
# HYPERINFLAM_TEST_WORKERS=N sets the number of workers (0: the whole suite in one process).
run_pytest() {
  "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
  local code=$?
  if [ "$code" -eq 5 ]; then
    echo "pytest collected no tests: failing." >&2
    return 1
  fi
  return "$code"
}
cores=$(nproc 2>/dev/null || echo 2)
workers="${HYPERINFLAM_TEST_WORKERS:-$(( cores < 4 ? cores : 4 ))}"
set +e
if [ "$#" -gt 0 ] || [ "$workers" -eq 0 ]; then
  echo "== running the test suite (one process)"
  run_pytest "$@"
  status=$?
else
  echo "== running the test suite ($workers workers; then the API schema test in one process)"
  run_pytest -n "$workers" --dist loadfile --ignore=tests/test_web_schema.py
  status=$?
  run_pytest tests/test_web_schema.py
  schema_status=$?
  [ "$status" -eq 0 ] && status=$schema_status
fi
set -e
exit "$status"
