#!/usr/bin/env bash
# The project's one test command (README): installs everything it needs, then lints,
# type-checks and runs the whole test suite. Safe to run again; reuses .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else return 1; fi; }

# System packages the tests drive for real: Chromium (report/UI tests), PostgreSQL 15 server,
# Tesseract (reading documents' MRZ; the OCR-B font ships inside the package), npm (axe-core).
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v tesseract >/dev/null 2>&1 || missing+=(tesseract-ocr)
command -v npm >/dev/null 2>&1 || missing+=(npm)  # axe-core for the accessibility checks
if ! command -v pg_config >/dev/null 2>&1 || [ ! -x "$(pg_config --bindir)/initdb" ]; then
  missing+=(postgresql)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing system packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq || true
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
    || echo "warning: could not install ${missing[*]}; tests needing them will fail"
fi

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# pip's exit status counts; only its noise about unreachable local mirrors is filtered
pip_install() { .venv/bin/python -m pip install -q "$@" 2> >(grep -v '^WARNING: Location' >&2); }
pip_install --upgrade pip
pip_install -e '.[test,milvus,scale]'
.venv/bin/python -c "import faceledger, dlib" # fail early if the install did not work
# axe-core (pinned in tests/api/axe/package-lock.json) for the browser tests' accessibility checks
if [ ! -d tests/api/axe/node_modules/axe-core ]; then
  npm ci --prefix tests/api/axe --no-audit --no-fund
fi

echo "== ruff"
.venv/bin/ruff check src tests benchmarks scripts
.venv/bin/ruff format --check src tests benchmarks scripts
echo "== mypy"
.venv/bin/mypy
echo "== pytest"; .venv/bin/python -m pytest -q "$@"
