#!/usr/bin/env bash
# Make sure the PostgreSQL and Redis that the tests use are installed, running and reachable.
#
# Meant for development machines and CI runners of the Debian kind (see DEVELOPMENT.md), not for
# production hosts: on a fresh PostgreSQL install it makes loopback logins trust-authenticated.
# Every step first checks whether it is needed, so on a machine whose services already run this
# script only probes them and changes nothing.
#
# Environment:
#   COUNTERSIGN_TEST_PG_URL     default postgresql+asyncpg://root@127.0.0.1:5432
#   COUNTERSIGN_TEST_REDIS_URL  default redis://127.0.0.1:6379
#   COUNTERSIGN_SKIP_SERVICES   1 = do nothing (services are managed elsewhere)
#   SERVICES_TIMEOUT            seconds to wait for each service to answer (default 60)
#   PG_CLUSTER                  Debian cluster name that pg_ctlcluster starts (default main)
#
# Hosts other than 127.0.0.1/localhost are treated as external: the script only waits for them.
set -euo pipefail

if [ "${COUNTERSIGN_SKIP_SERVICES:-0}" = 1 ]; then
  exit 0
fi

PG_URL=${COUNTERSIGN_TEST_PG_URL:-postgresql+asyncpg://root@127.0.0.1:5432}
REDIS_URL=${COUNTERSIGN_TEST_REDIS_URL:-redis://127.0.0.1:6379}
TIMEOUT=${SERVICES_TIMEOUT:-60}
PG_CLUSTER=${PG_CLUSTER:-main}

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'ensure-services: error: %s\n' "$*" >&2; exit 1; }

# --- privileges --------------------------------------------------------------------------------
if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
else
  SUDO=(sudo)
fi

as_root() {
  if [ ${#SUDO[@]} -gt 0 ] && ! command -v sudo >/dev/null 2>&1; then
    die "need root for: $* (not root and sudo is not installed)"
  fi
  "${SUDO[@]}" "$@"
}

# Run a command as the postgres OS user (peer authentication over the Unix socket works on a
# fresh Debian install even when TCP logins do not). cd / so psql does not warn about our cwd.
as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then
    if command -v runuser >/dev/null 2>&1; then
      (cd / && runuser -u postgres -- "$@")
    else
      (cd / && su postgres -s /bin/sh -c "$(printf '%q ' "$@")")
    fi
  else
    command -v sudo >/dev/null 2>&1 || die "need sudo to run as the postgres user: $*"
    (cd / && sudo -u postgres -- "$@")
  fi
}

# --- URL parsing (scheme://[user[:password]@]host[:port][/path]) ---------------------------------
parse_url() { # url default_port -> sets U_USER U_HOST U_PORT
  local rest creds hostport
  rest=${1#*://}
  rest=${rest%%/*}
  rest=${rest%%\?*}
  if [[ $rest == *@* ]]; then
    creds=${rest%@*}
    hostport=${rest##*@}
  else
    creds=""
    hostport=$rest
  fi
  U_USER=${creds%%:*}
  if [[ $hostport == *:* ]]; then
    U_HOST=${hostport%:*}
    U_PORT=${hostport##*:}
  else
    U_HOST=$hostport
    U_PORT=$2
  fi
  U_HOST=${U_HOST:-127.0.0.1}
}

is_local() { [ "$1" = 127.0.0.1 ] || [ "$1" = localhost ]; }

parse_url "$PG_URL" 5432
PG_HOST=$U_HOST PG_PORT=$U_PORT PG_ROLE=${U_USER:-root}
parse_url "$REDIS_URL" 6379
REDIS_HOST=$U_HOST REDIS_PORT=$U_PORT

# --- packages ----------------------------------------------------------------------------------
ensure_packages() {
  local missing=()
  if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! command -v psql >/dev/null 2>&1 \
    || ! command -v pg_isready >/dev/null 2>&1 || [ -z "$(ls -A /etc/postgresql 2>/dev/null)" ]; then
    missing+=(postgresql)
  fi
  if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    missing+=(redis-server)
  fi
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and apt-get is not available; install them yourself"
  log "installing Debian packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# --- waiting -----------------------------------------------------------------------------------
wait_for() { # description hint command...
  local what=$1 hint=$2 deadline=$((SECONDS + TIMEOUT))
  shift 2
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      die "$what did not answer within ${TIMEOUT}s ($hint; SERVICES_TIMEOUT raises the limit)"
    fi
    sleep 0.5
  done
}

pg_ready() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; }
redis_ready() { [ "$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; }
pg_login() { psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_ROLE" -d postgres -w -Atqc 'select 1' >/dev/null 2>&1; }

# --- PostgreSQL --------------------------------------------------------------------------------
# shellcheck disable=SC2012 # version directories are plain numbers
pg_version() { ls /etc/postgresql | sort -V | tail -n 1; }

start_postgres() {
  local version
  version=$(pg_version)
  log "starting PostgreSQL $version (cluster $PG_CLUSTER)"
  # pg_ctlcluster exits non-zero when the cluster is already starting; the wait below decides.
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" "$PG_CLUSTER" start || true
}

# A freshly installed cluster authenticates TCP logins with scram-sha-256; put trust lines for
# loopback on top of pg_hba.conf (first match wins) and reload. Only called when login failed.
trust_loopback() {
  local hba marker="# countersign scripts/ensure-services.sh: trust loopback (dev/CI only)"
  hba=$(as_postgres psql -p "$PG_PORT" -d postgres -Atqc 'SHOW hba_file') || die "cannot ask PostgreSQL for its hba_file"
  if as_root grep -qF "$marker" "$hba"; then
    return 0
  fi
  log "adding loopback trust lines to $hba"
  # Rewrite in place (cat >) so the file keeps its owner and mode.
  # shellcheck disable=SC2016 # $1/$2 expand in the inner shell
  as_root sh -c 'f=$1; m=$2; tmp=$(mktemp) && { printf "%s\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n" "$m"; cat "$f"; } >"$tmp" && cat "$tmp" >"$f" && rm -f "$tmp"' \
    sh "$hba" "$marker"
  as_postgres psql -p "$PG_PORT" -d postgres -Atqc 'SELECT pg_reload_conf()' >/dev/null
  sleep 0.5 # the postmaster reloads asynchronously
}

ensure_pg_role() {
  log "creating PostgreSQL role $PG_ROLE (superuser, login)"
  as_postgres psql -p "$PG_PORT" -d postgres -v ON_ERROR_STOP=1 -Atq <<SQL
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_ROLE') THEN
    CREATE ROLE "$PG_ROLE" LOGIN SUPERUSER;
  ELSE
    ALTER ROLE "$PG_ROLE" LOGIN SUPERUSER;
  END IF;
END
\$\$;
SQL
}

ensure_postgres() {
  if ! pg_ready; then
    start_postgres
    wait_for "PostgreSQL on $PG_HOST:$PG_PORT" "see /var/log/postgresql/postgresql-$(pg_version)-$PG_CLUSTER.log" pg_ready
  fi
  if pg_login; then
    return 0
  fi
  ensure_pg_role
  pg_login || trust_loopback
  pg_login || die "cannot log in as '$PG_ROLE' to $PG_HOST:$PG_PORT database postgres: $(psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_ROLE" -d postgres -w -Atqc 'select 1' 2>&1 | head -n 1)"
}

# --- Redis -------------------------------------------------------------------------------------
start_redis() {
  log "starting Redis on 127.0.0.1:$REDIS_PORT"
  as_root mkdir -p /var/lib/redis /var/log/redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
}

ensure_redis() {
  if ! redis_ready; then
    start_redis
    wait_for "Redis on $REDIS_HOST:$REDIS_PORT" "see /var/log/redis/ci.log" redis_ready
  fi
}

# --- main --------------------------------------------------------------------------------------
if is_local "$PG_HOST" || is_local "$REDIS_HOST"; then
  ensure_packages
fi

if is_local "$PG_HOST"; then
  ensure_postgres
else
  command -v pg_isready >/dev/null 2>&1 || die "pg_isready not found (Debian package postgresql-client)"
  wait_for "external PostgreSQL on $PG_HOST:$PG_PORT" "is it reachable from here?" pg_ready
fi

if is_local "$REDIS_HOST"; then
  ensure_redis
else
  command -v redis-cli >/dev/null 2>&1 || die "redis-cli not found (Debian package redis-tools)"
  wait_for "external Redis on $REDIS_HOST:$REDIS_PORT" "is it reachable from here?" redis_ready
fi

log "PostgreSQL $PG_HOST:$PG_PORT (role $PG_ROLE) and Redis $REDIS_HOST:$REDIS_PORT are ready"
