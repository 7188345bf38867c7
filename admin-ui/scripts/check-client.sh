#!/usr/bin/env bash
# Fail when the committed API client differs from what the current service produces:
# someone changed the API without `make client` (or edited the generated file by hand).
set -euo pipefail

UI_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

OUT_DIR="$tmp" "$UI_DIR/scripts/generate-client.sh" 2>/dev/null
status=0
for f in openapi.json src/api/schema.d.ts; do
  if ! diff -u "$UI_DIR/$f" "$tmp/$f" >"$tmp/diff.txt"; then
    echo "client drift: admin-ui/$f is not what the service generates; run \`make client\` and commit" >&2
    head -40 "$tmp/diff.txt" >&2
    status=1
  fi
done
[ $status = 0 ] && echo "client drift check: ok"
exit $status
