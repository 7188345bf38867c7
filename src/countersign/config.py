"""Settings: every `COUNTERSIGN_*` variable of the contract, in one place."""

from __future__ import annotations

import enum
import ipaddress
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

# The documented placeholder. It is a valid Fernet key so that dev mode works out of the box, and
# it is refused outside dev mode, because anyone can read it here.
DEV_SECRET_KEY = "Y291bnRlcnNpZ24tZGV2LW9ubHktc2VjcmV0LWtleSE="


class AuthMode(enum.StrEnum):
    dev = "dev"
    oidc = "oidc"


class Environment(enum.StrEnum):
    development = "development"
    testing = "testing"
    production = "production"


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


CsvList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="COUNTERSIGN_",
        env_file=None,
        extra="ignore",
        # A configuration error must not print the secrets it was given (stderr ends up in logs).
        hide_input_in_errors=True,
    )

    env: Environment = Environment.development
    database_url: str = "sqlite+aiosqlite:///./countersign.db"
    redis_url: str = ""
    auth_mode: AuthMode = AuthMode.dev
    # Where dev mode keeps its signing key and the sample directory file.
    data_dir: Path = Path("./countersign-data")

    oidc_issuers: CsvList = Field(default_factory=list)
    oidc_jwks_url: str = ""
    oidc_audience: str = ""
    oidc_client_id: str = ""
    role_admin: str = "AWE_ADMIN"
    role_viewer: str = "AWE_VIEWER"
    # The admin UI's public OIDC client (authorization code + PKCE) and the scopes it asks for;
    # published by `GET /v1/config` so one UI build serves every environment.
    ui_client_id: str = ""
    ui_scopes: str = "openid profile email"
    # Where `countersign serve` finds the built admin UI (default: the package's static/admin).
    admin_ui_dir: Path | None = None
    # How long one policy replay may keep starting new requests (http rules call real resolvers).
    replay_budget_seconds: float = Field(default=20.0, gt=0, le=300)
    # Lifetime of a signed diagram link (`POST /v1/requests/{id}/diagram-link`).
    diagram_link_seconds: int = Field(default=900, ge=1, le=7 * 24 * 3600)

    keycloak_url: str = ""
    keycloak_realm: str = ""
    keycloak_client_id: str = ""
    keycloak_client_secret: SecretStr = SecretStr("")
    # Timeout of each Keycloak call (service-account token and admin API reads), in seconds.
    keycloak_timeout_seconds: float = Field(default=5.0, gt=0)
    # Bound on all the Keycloak calls of one answer together (a rule's resolution walks pages,
    # composites and subgroups); the request being resolved is locked meanwhile.
    keycloak_budget_seconds: float = Field(default=15.0, gt=0)
    # How long the users resolved for one role/group rule are reused before the directory is
    # asked again (0 = every resolution asks). Only the Keycloak directory is cached.
    directory_cache_seconds: float = Field(default=60.0, ge=0)

    directory_file: Path | None = None
    secret_key: SecretStr = SecretStr(DEV_SECRET_KEY)
    outbound_allow: CsvList = Field(default_factory=list)
    # Client ids (`azp`) whose tokens act as that caller; empty = every azp (see identity/principal.py).
    caller_clients: CsvList = Field(default_factory=list)
    # Webhook attempts in flight at once to one destination (scheme, host, port), per process:
    # one slow receiver cannot take every worker slot and starve the other callers.
    webhook_max_per_host: int = Field(default=10, ge=1)
    test_hooks: bool = False

    # How long an unknown `kid` waits before the JWKS may be fetched again.
    jwks_refetch_interval_seconds: float = 30.0
    jwt_leeway_seconds: int = 30

    # Connections per process: API and worker processes each keep up to `db_pool_size` open and
    # burst to `db_pool_size + db_max_overflow`; size PostgreSQL's max_connections for all of them.
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=20, ge=0)

    # The embedded in-process worker: on by default without Redis. `false` for API processes whose
    # background work is done elsewhere (e.g. several API processes sharing one SQLite file).
    worker_in_process: bool | None = None

    # Request bodies above this many bytes are refused with 413 while they are read (ADR 0013).
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # `context` and `metadata` of a request, each, as compact JSON (they are copied into every
    # inbox item and webhook, so they are bounded well below the body limit).
    max_context_bytes: int = Field(default=65536, ge=2)

    log_level: str = "INFO"
    log_json: bool = False

    # The arq worker's own `/metrics` (`countersign worker`): 0 = not served, e.g. when it shares
    # PROMETHEUS_MULTIPROC_DIR with the API, whose `/metrics` then includes it (ADR 0038).
    worker_metrics_port: int = Field(default=0, ge=0, le=65535)
    worker_metrics_host: str = "0.0.0.0"

    @field_validator("oidc_issuers", "outbound_allow", "caller_clients", mode="before")
    @classmethod
    def _csv(cls, value: Any) -> Any:
        return _split_csv(value)

    @model_validator(mode="after")
    def _refuse_unsafe_secrets(self) -> Settings:
        if self.auth_mode is AuthMode.dev:
            return self
        key = self.secret_key.get_secret_value()
        if not key or key == DEV_SECRET_KEY:
            raise ValueError(
                "COUNTERSIGN_SECRET_KEY must be set to a fresh Fernet key outside dev mode "
                "(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
            )
        if not self.oidc_jwks_url or not self.oidc_issuers or not self.oidc_audience:
            raise ValueError(
                "COUNTERSIGN_AUTH_MODE=oidc needs COUNTERSIGN_OIDC_JWKS_URL, "
                "COUNTERSIGN_OIDC_ISSUERS and COUNTERSIGN_OIDC_AUDIENCE"
            )
        return self

    def production_refusals(self) -> list[str]:
        """Why this configuration must not start with `COUNTERSIGN_ENV=production`, one line each
        (empty: it may start). Development and testing are never refused here.

        Each guard closes a way for a development convenience to reach production by accident:
        self-issued admin tokens, the test hooks that move the clock, the published secret key,
        and outbound calls to loopback or over plain http (which dev mode allows for local work).
        """
        if self.env is not Environment.production:
            return []
        refusals: list[str] = []
        if self.auth_mode is AuthMode.dev:
            refusals.append(
                "COUNTERSIGN_AUTH_MODE=dev lets anyone mint admin tokens; set COUNTERSIGN_AUTH_MODE=oidc"
            )
        if self.test_hooks:
            refusals.append(
                "COUNTERSIGN_TEST_HOOKS=true mounts /v1/_test/* (clock, tick); unset it"
            )
        if os.environ.get("COUNTERSIGN_CLOCK_FILE"):
            refusals.append(
                "COUNTERSIGN_CLOCK_FILE moves the service clock (tests only); unset it"
            )
        key = self.secret_key.get_secret_value()
        if not key or key == DEV_SECRET_KEY:
            refusals.append(
                "COUNTERSIGN_SECRET_KEY is the published default or empty; set a fresh Fernet key"
            )
        for name, url in (
            ("COUNTERSIGN_OIDC_JWKS_URL", self.oidc_jwks_url),
            ("COUNTERSIGN_KEYCLOAK_URL", self.keycloak_url),
        ):
            problem = _outbound_url_problem(url)
            if problem:
                refusals.append(f"{name} {problem}")
        for entry in self.outbound_allow:
            if _covers_loopback(entry):
                refusals.append(
                    f"COUNTERSIGN_OUTBOUND_ALLOW entry {entry!r} lets rules and webhooks call "
                    "this host's own services (loopback); remove it"
                )
        return refusals

    def engine(self) -> AsyncEngine:
        """A new engine for this configuration (one per process)."""
        from countersign.db import create_engine

        return create_engine(
            self.database_url,
            pool_size=self.db_pool_size,
            max_overflow=self.db_max_overflow,
        )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def dev_issuer(self) -> str:
        return "countersign-dev"

    @property
    def issuers(self) -> list[str]:
        return (
            [self.dev_issuer] if self.auth_mode is AuthMode.dev else self.oidc_issuers
        )

    @property
    def audience(self) -> str:
        return self.oidc_audience or "countersign"

    @property
    def dev_tokens_enabled(self) -> bool:
        """`POST /v1/dev/token` is served: dev auth, and never in production (whatever else allows it)."""
        return self.auth_mode == AuthMode.dev and self.env != Environment.production

    def oidc_client(self) -> dict[str, Any] | None:
        """What the admin UI's OIDC client needs; None in dev mode.

        The issuer is the first of COUNTERSIGN_OIDC_ISSUERS (the one users sign in at); the
        others are only accepted on incoming tokens.
        """
        if self.auth_mode is not AuthMode.oidc:
            return None
        return {
            "issuer": self.oidc_issuers[0] if self.oidc_issuers else None,
            "client_id": self.ui_client_id or None,
            "scopes": self.ui_scopes,
        }

    def public_view(self) -> dict[str, Any]:
        """The non-secret effective configuration (`GET /v1/config`)."""
        data = self.model_dump(
            mode="json", exclude={"secret_key", "keycloak_client_secret"}
        )
        data["oidc"] = self.oidc_client()
        data["dev_tokens"] = self.dev_tokens_enabled
        # Any setting may be a URL with a credential in it (a DSN's password, `?password=` for
        # Redis or libpq, a token in a resolver URL): none is ever shown.
        redacted: dict[str, Any] = _redact_urls(data)
        return redacted


# Query parameters whose value is a credential: libpq's password/sslpassword, Redis' password,
# and whatever else is named like a secret (tokens, keys, signatures, auth).
_SECRET_PARAMETER = re.compile(
    r"pass|pwd|secret|token|key|auth|cred|sig|session", re.IGNORECASE
)
_PLAIN_USER = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def redact_url(url: str) -> str:
    """The URL without any credential it carries: the password of `user:pass@`, a bare
    `token@` userinfo, and the value of every secret-looking query parameter (`***`)."""
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user, has_password, _ = userinfo.partition(":")
        if has_password:
            userinfo = f"{user}:***" if _PLAIN_USER.match(user) else "***:***"
        elif not _PLAIN_USER.match(user) or parts.scheme in ("http", "https"):
            # `https://TOKEN@host`: a userinfo alone is how tokens ride in URLs.
            userinfo = "***"
        netloc = f"{userinfo}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [
                (name, "***" if _SECRET_PARAMETER.search(name) else value)
                for name, value in pairs
            ],
            safe="*",
        )
    if netloc == parts.netloc and query == parts.query:
        return url  # nothing to hide: the URL exactly as configured
    rebuilt = f"{parts.scheme}://{netloc}{parts.path}"
    rebuilt += f"?{query}" if query else ""
    return rebuilt + (f"#{parts.fragment}" if parts.fragment else "")


def _redact_urls(value: Any) -> Any:
    """Every URL anywhere in a JSON-ready value, redacted (lists and nested objects too)."""
    if isinstance(value, str):
        return redact_url(value)
    if isinstance(value, list):
        return [_redact_urls(item) for item in value]
    if isinstance(value, dict):
        return {key: _redact_urls(item) for key, item in value.items()}
    return value


def _is_loopback_host(host: str) -> bool:
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def _outbound_url_problem(url: str) -> str | None:
    """Why a URL the service calls with credentials or trusts for keys is unfit for production."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme != "https":
        return "must use https in production (tokens and client secrets travel over it)"
    if _is_loopback_host(parts.hostname or ""):
        return "points at loopback; production calls its identity provider by its real name"
    return None


def _covers_loopback(entry: str) -> bool:
    entry = entry.strip()
    if not entry:
        return False
    try:
        network = ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return _is_loopback_host(entry)
    loopbacks = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
    return any(
        network.version == lo.version and network.overlaps(lo) for lo in loopbacks
    )


@lru_cache
def get_settings() -> Settings:
    return Settings()
