#!/usr/bin/env bash
# Regenerate the admin UI's API client from the service's OpenAPI document (`make client`).
#
#   admin-ui/openapi.json        the document, dumped from the Python app (no server needed)
#   admin-ui/src/api/schema.d.ts openapi-typescript's types for openapi-fetch
#
# OUT_DIR=dir writes both into another folder instead (the drift check compares against it).
# Environment: VENV (default ../.venv from the repository root).
set -euo pipefail

UI_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROOT=$(cd "$UI_DIR/.." && pwd)
VENV=${VENV:-.venv}
case "$VENV" in /*) PY="$VENV/bin/python" ;; *) PY="$ROOT/$VENV/bin/python" ;; esac
OUT_DIR=${OUT_DIR:-$UI_DIR}

[ -x "$PY" ] || "$ROOT/scripts/bootstrap.sh"
[ -x "$UI_DIR/node_modules/.bin/openapi-typescript" ] || (cd "$UI_DIR" && npm ci --no-audit --no-fund)

mkdir -p "$OUT_DIR/src/api"
# A clean environment: the document must not depend on whoever runs this (test hooks, auth mode).
env -i PATH="$PATH" HOME="${HOME:-/tmp}" "$PY" "$UI_DIR/scripts/dump-openapi.py" >"$OUT_DIR/openapi.json.tmp"
mv "$OUT_DIR/openapi.json.tmp" "$OUT_DIR/openapi.json"
"$UI_DIR/node_modules/.bin/openapi-typescript" "$OUT_DIR/openapi.json" \
  -o "$OUT_DIR/src/api/schema.d.ts" --root-types --root-types-no-schema-prefix >/dev/null
echo "client generated: $OUT_DIR/openapi.json, $OUT_DIR/src/api/schema.d.ts" >&2
