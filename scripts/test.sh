#!/usr/bin/env bash
# The whole gate, as CI runs it (`.ci/run` -> `make test` -> this script):
# venv -> services -> ruff check -> ruff format --check -> mypy -> pytest -> admin UI (npm test).
#
# Environment:
#   PYTEST_ARGS                 extra pytest arguments, word-split (e.g. PYTEST_ARGS='-k webhooks -x')
#   COUNTERSIGN_TEST_PG_URL     server the test fixtures create their per-worker databases on
#                               (default postgresql+asyncpg://root@127.0.0.1:5432, no database part)
#   COUNTERSIGN_TEST_REDIS_URL  Redis for worker/queue tests (default redis://127.0.0.1:6379)
#   COUNTERSIGN_SKIP_SERVICES   1 = don't install/start services (they are managed elsewhere)
# Arguments given to this script are passed to pytest after PYTEST_ARGS.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*" >&2; }

step "bootstrap .venv"
scripts/bootstrap.sh
BIN=${VENV:-.venv}/bin

export COUNTERSIGN_TEST_PG_URL=${COUNTERSIGN_TEST_PG_URL:-postgresql+asyncpg://root@127.0.0.1:5432}
export COUNTERSIGN_TEST_REDIS_URL=${COUNTERSIGN_TEST_REDIS_URL:-redis://127.0.0.1:6379}

step "services (PostgreSQL, Redis)"
scripts/ensure-services.sh

step "ruff check"
"$BIN/ruff" check src tests migrations scripts examples

step "ruff format --check"
"$BIN/ruff" format --check src tests migrations scripts examples

step "mypy"
"$BIN/mypy"

step "pytest"
read -r -a pytest_extra <<<"${PYTEST_ARGS:-}"
"$BIN/pytest" -n 2 --dist loadfile "${pytest_extra[@]}" "$@"

# --- admin UI ------------------------------------------------------------------------------------
# Its own `npm test`: typecheck, component tests, client drift check, build, end-to-end tests in
# Debian's Chromium against a real `countersign serve` (see admin-ui/README.md).
if [ -f admin-ui/package.json ]; then
  step "admin UI: tools (Node, Chromium)"
  scripts/ensure-ui-tools.sh node chromium
  step "admin UI: npm ci"
  (cd admin-ui && npm ci --no-audit --no-fund)
  step "admin UI: npm test"
  (cd admin-ui && VENV="$(cd "${VENV:-.venv}" && pwd)" npm test)
fi

step "all checks passed"
