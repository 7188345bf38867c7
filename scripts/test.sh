#!/usr/bin/env bash
# The whole gate, as CI runs it (`.ci/run` -> `make test` -> this script):
# venv -> services -> ruff check -> ruff format --check -> mypy -> pytest -> admin UI (when present).
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
"$BIN/ruff" check src tests migrations

step "ruff format --check"
"$BIN/ruff" format --check src tests migrations

step "mypy"
"$BIN/mypy"

step "pytest"
read -r -a pytest_extra <<<"${PYTEST_ARGS:-}"
"$BIN/pytest" -n 2 --dist loadfile "${pytest_extra[@]}" "$@"

# --- admin UI hook -------------------------------------------------------------------------------
# No-op until admin-ui/package.json exists; then its own `npm test` joins the gate automatically.
if [ -f admin-ui/package.json ]; then
  step "admin UI (npm)"
  (
    cd admin-ui
    if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
    npm test
  )
fi

step "all checks passed"
