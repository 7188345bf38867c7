# syntax=docker/dockerfile:1
#
# Countersign service image: `countersign serve` by default; the Helm chart runs the same image as
# `countersign worker` and `countersign migrate`. Three stages: Node builds the admin UI, Python
# builds the wheel with the UI inside and installs it into /opt/venv, and the runtime stage (slim
# Python, no compilers, non-root) gets only that venv and the migration scripts.
#
# tests/operations/test_image.py runs the same steps without Docker (the wheel with the UI, a fresh
# venv, production settings, PostgreSQL and Redis, the HEALTHCHECK) and checks this file's
# invariants (ADR 0035).
#
# The image runs with COUNTERSIGN_ENV=production: it refuses to start with dev auth, test hooks, the
# published secret key or loopback/plain-http outbound settings (docs/security.md). So it needs
# an identity provider and a key of its own; with SQLite in /data it is a complete single instance:
#
#   docker build -t countersign --build-arg GIT_COMMIT=$(git rev-parse HEAD) .
#   docker run -p 8000:8000 -v countersign-data:/data \
#     -e COUNTERSIGN_AUTH_MODE=oidc \
#     -e COUNTERSIGN_OIDC_ISSUERS=https://keycloak.example.org/realms/registry \
#     -e COUNTERSIGN_OIDC_JWKS_URL=https://keycloak.example.org/realms/registry/protocol/openid-connect/certs \
#     -e COUNTERSIGN_OIDC_AUDIENCE=countersign \
#     -e COUNTERSIGN_SECRET_KEY="$(python3 -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')" \
#     countersign
#
# Scaled out, add COUNTERSIGN_DATABASE_URL (PostgreSQL) and COUNTERSIGN_REDIS_URL and run
# `countersign worker` beside it (the Helm chart does; see docs/operations.md). To try the embedded
# dev mode in a container instead, say so explicitly:
#
#   docker run -p 8000:8000 -e COUNTERSIGN_ENV=development countersign \
#     serve --host 0.0.0.0 --port 8000 --allow-dev-auth-on-network

ARG PYTHON_IMAGE=python:3.11-slim
# Vite 8 needs Node 20.19 or newer.
ARG NODE_IMAGE=node:22-slim

# ---- admin-ui: the Vite build of admin-ui/ -----------------------------------------------------
FROM ${NODE_IMAGE} AS admin-ui

# Vite writes to ../src/countersign/static/admin (admin-ui/vite.config.ts), i.e. /build/src/...
WORKDIR /build/admin-ui
# Dependencies first, from the lock file alone, so that UI changes reuse this layer.
COPY admin-ui/package.json admin-ui/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY admin-ui/ ./
RUN npm run build \
    && test -f /build/src/countersign/static/admin/index.html

# ---- build: the wheel (with the UI inside) in a self-contained venv in /opt/venv ---------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# A compiler only for dependencies without a wheel for this platform; it stays in this stage.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src

# Dependencies first, from pyproject.toml alone, so that code changes reuse this layer.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

# (pyproject.toml is listed again so the README glob may match nothing without failing the COPY)
COPY pyproject.toml README.md* ./
COPY src ./src
# The built UI is package data (pyproject.toml: static/**/*): the wheel carries it, and the
# build fails here if it does not.
COPY --from=admin-ui /build/src/countersign/static/admin ./src/countersign/static/admin
RUN pip wheel --no-deps --wheel-dir /dist . \
    && python -c "import sys, zipfile; names = zipfile.ZipFile(sys.argv[1]).namelist(); sys.exit(0 if 'countersign/static/admin/index.html' in names else 'the wheel has no admin UI')" /dist/countersign-*.whl \
    && pip install --no-deps /dist/countersign-*.whl

# ---- runtime ------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ARG GIT_COMMIT=unknown
ARG BUILD_TIME=unknown

LABEL org.opencontainers.image.title="countersign" \
      org.opencontainers.image.description="Multi-stage approval engine service" \
      org.opencontainers.image.licenses="MPL-2.0" \
      org.opencontainers.image.revision="${GIT_COMMIT}" \
      org.opencontainers.image.created="${BUILD_TIME}"

RUN groupadd --system --gid 10001 countersign \
    && useradd --system --uid 10001 --gid countersign --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin countersign \
    && mkdir -p /data \
    && chown countersign:countersign /data

COPY --from=build /opt/venv /opt/venv

# Alembic scripts live outside the package; `countersign migrate` finds them through
# COUNTERSIGN_MIGRATIONS_DIR (src/countersign/migrate.py also looks in /app/migrations).
WORKDIR /app
COPY migrations ./migrations
COPY pyproject.toml alembic.ini* ./

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    COUNTERSIGN_GIT_COMMIT=${GIT_COMMIT} \
    COUNTERSIGN_BUILD_TIME=${BUILD_TIME} \
    COUNTERSIGN_ENV=production \
    COUNTERSIGN_LOG_JSON=true \
    COUNTERSIGN_MIGRATIONS_DIR=/app/migrations \
    COUNTERSIGN_DATA_DIR=/data \
    COUNTERSIGN_DATABASE_URL=sqlite+aiosqlite:////data/countersign.db

# Only the embedded mode writes here (SQLite file, dev signing key). Production keeps nothing on
# local disk, so the chart runs with a read-only root filesystem and an emptyDir at /data.
VOLUME ["/data"]

USER 10001:10001
EXPOSE 8000

# Liveness only (the process answers); readiness with dependency checks is /v1/health.
# Assumes the default port; change both when overriding CMD with another --port.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/v1/health/live', timeout=4)"]

ENTRYPOINT ["countersign"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
