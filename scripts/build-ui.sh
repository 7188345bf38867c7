#!/usr/bin/env bash
# Build the admin UI (admin-ui/, Vite) into src/countersign/static/admin, which `countersign serve`
# serves at /admin and the Python package ships.
#
#   scripts/build-ui.sh             always build
#   scripts/build-ui.sh --if-stale  only when the build is missing or older than the UI's sources
#                                   (what `make serve` runs)
#
# Installs Node from Debian when absent and runs `npm ci` when node_modules is missing or older
# than package-lock.json.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

OUT=src/countersign/static/admin
UI=admin-ui
log() { printf '==> %s\n' "$*" >&2; }

stale() {
  [ -f "$OUT/index.html" ] || return 0
  [ -n "$(find "$UI/src" "$UI/public" "$UI/index.html" "$UI/vite.config.ts" "$UI/package-lock.json" \
    -newer "$OUT/index.html" -print -quit 2>/dev/null)" ]
}

if [ "${1:-}" = "--if-stale" ] && ! stale; then
  exit 0
fi

scripts/ensure-ui-tools.sh node
if [ ! -d "$UI/node_modules" ] || [ "$UI/package-lock.json" -nt "$UI/node_modules/.package-lock.json" ]; then
  log "npm ci (admin-ui)"
  (cd "$UI" && npm ci --no-audit --no-fund)
fi
log "building the admin UI into $OUT"
(cd "$UI" && npm run --silent build)
