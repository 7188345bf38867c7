#!/usr/bin/env bash
# Make sure the admin UI's tools exist: Node >= 20.19 with npm (`node`), and Debian's Chromium for
# the end-to-end tests (`chromium`). Installs Debian packages when a tool is missing (sudo when
# not root); changes nothing on a machine that has them.
#
#   scripts/ensure-ui-tools.sh node chromium
set -euo pipefail

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'ensure-ui-tools: error: %s\n' "$*" >&2; exit 1; }

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
apt_updated=0
apt_install() {
  command -v apt-get >/dev/null || die "$* missing and no apt-get here: install it by hand"
  if [ $apt_updated = 0 ]; then
    $SUDO apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

for tool in "$@"; do
  case "$tool" in
    node)
      if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        log "installing Node.js and npm from Debian packages"
        apt_install nodejs npm
      fi
      # Vite 8 needs Node 20.19+; Debian bookworm's own nodejs is 18, so say so plainly.
      node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' \
        || die "Node $(node --version) is too old for the admin UI: it needs 20.19 or newer"
      ;;
    chromium)
      if [ ! -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ]; then
        log "installing Debian's chromium for the end-to-end tests"
        apt_install chromium fonts-dejavu-core
      fi
      ;;
    *) die "unknown tool: $tool" ;;
  esac
done
