#!/usr/bin/env bash
# Create .venv (if missing) and install the project with its dev extras.
#
# The install runs only when pyproject.toml is newer than the stamp file, or when the venv has
# no `countersign` entry point yet, so running this before every `make serve` / `make test`
# costs a few milliseconds. FORCE=1 reinstalls anyway.
#
# Environment:
#   PYTHON  interpreter that creates the venv (default: python3, which must be >= 3.11)
#   VENV    venv directory (default: .venv in the repository root)
#   FORCE   1 = reinstall even when the stamp is fresh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
STAMP="$VENV/.countersign-install.stamp"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bootstrap: error: %s\n' "$*" >&2; exit 1; }

venv_usable() {
  [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null
}

if ! venv_usable; then
  command -v "$PYTHON" >/dev/null 2>&1 || die "'$PYTHON' not found; install Python 3.11+ or set PYTHON=/path/to/python3.11"
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "$("$PYTHON" --version 2>&1) is too old: Countersign needs Python 3.11+ (set PYTHON=...)"
  if [ -e "$VENV" ]; then
    # A venv whose interpreter vanished (e.g. pyenv version removed) cannot be repaired in place.
    log "$VENV is not a usable Python 3.11+ venv; recreating it"
    rm -rf "$VENV"
  fi
  log "creating $VENV with $("$PYTHON" --version 2>&1)"
  "$PYTHON" -m venv "$VENV"
fi

if [ "${FORCE:-0}" = 1 ] || [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ] || [ ! -x "$VENV/bin/countersign" ]; then
  log "installing countersign with dev extras into $VENV"
  "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet -e '.[dev]'
  touch "$STAMP"
fi
