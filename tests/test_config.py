"""Settings: the `COUNTERSIGN_*` variables of the contract, and how secrets are kept out of sight."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr, ValidationError

from countersign.config import DEV_SECRET_KEY, AuthMode, Environment, Settings

OIDC: dict[str, Any] = {
    "auth_mode": "oidc",
    "oidc_jwks_url": "https://idp.test/realms/registry/protocol/openid-connect/certs",
    "oidc_issuers": "https://idp.test/realms/registry",
    "oidc_audience": "countersign",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees only the COUNTERSIGN_* variables it sets itself."""
    for name in list(os.environ):
        if name.startswith("COUNTERSIGN_"):
            monkeypatch.delenv(name)


def fresh_key() -> str:
    return Fernet.generate_key().decode()


def test_defaults_are_the_embedded_dev_setup() -> None:
    settings = Settings()

    assert settings.database_url == "sqlite+aiosqlite:///./countersign.db"
    assert settings.is_sqlite
    assert settings.redis_url == ""
    assert settings.auth_mode is AuthMode.dev
    assert settings.role_admin == "AWE_ADMIN"
    assert settings.role_viewer == "AWE_VIEWER"
    assert settings.oidc_issuers == []
    assert settings.outbound_allow == []
    assert settings.test_hooks is False
    assert settings.directory_file is None


def test_reads_every_contract_variable_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key = fresh_key()
    env = {
        "COUNTERSIGN_ENV": "production",
        "COUNTERSIGN_DATABASE_URL": "postgresql+asyncpg://svc:pw@db:5432/countersign",
        "COUNTERSIGN_REDIS_URL": "redis://redis:6379/0",
        "COUNTERSIGN_AUTH_MODE": "oidc",
        "COUNTERSIGN_OIDC_ISSUERS": "https://idp.test/realms/a, https://idp.test/realms/b",
        "COUNTERSIGN_OIDC_JWKS_URL": "https://idp.test/certs",
        "COUNTERSIGN_OIDC_AUDIENCE": "countersign",
        "COUNTERSIGN_OIDC_CLIENT_ID": "countersign-api",
        "COUNTERSIGN_ROLE_ADMIN": "APPROVAL_ADMIN",
        "COUNTERSIGN_ROLE_VIEWER": "APPROVAL_VIEWER",
        "COUNTERSIGN_KEYCLOAK_URL": "https://idp.test",
        "COUNTERSIGN_KEYCLOAK_REALM": "registry",
        "COUNTERSIGN_KEYCLOAK_CLIENT_ID": "countersign-directory",
        "COUNTERSIGN_KEYCLOAK_CLIENT_SECRET": "kc-client-secret",
        "COUNTERSIGN_DIRECTORY_FILE": str(tmp_path / "directory.yaml"),
        "COUNTERSIGN_SECRET_KEY": key,
        "COUNTERSIGN_OUTBOUND_ALLOW": "https://registry.test,https://hooks.test/cb",
        "COUNTERSIGN_TEST_HOOKS": "true",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    settings = Settings()

    assert settings.env is Environment.production
    assert settings.database_url == "postgresql+asyncpg://svc:pw@db:5432/countersign"
    assert not settings.is_sqlite
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.auth_mode is AuthMode.oidc
    assert settings.oidc_issuers == [
        "https://idp.test/realms/a",
        "https://idp.test/realms/b",
    ]
    assert settings.issuers == settings.oidc_issuers
    assert settings.oidc_jwks_url == "https://idp.test/certs"
    assert settings.oidc_audience == "countersign"
    assert settings.oidc_client_id == "countersign-api"
    assert settings.role_admin == "APPROVAL_ADMIN"
    assert settings.role_viewer == "APPROVAL_VIEWER"
    assert settings.keycloak_url == "https://idp.test"
    assert settings.keycloak_realm == "registry"
    assert settings.keycloak_client_id == "countersign-directory"
    assert settings.keycloak_client_secret.get_secret_value() == "kc-client-secret"
    assert settings.directory_file == tmp_path / "directory.yaml"
    assert settings.secret_key.get_secret_value() == key
    assert settings.outbound_allow == ["https://registry.test", "https://hooks.test/cb"]
    assert settings.test_hooks is True


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ("https://a.test", ["https://a.test"]),
        ("https://a.test,https://b.test", ["https://a.test", "https://b.test"]),
        (" https://a.test , ,https://b.test, ", ["https://a.test", "https://b.test"]),
        ("", []),
    ],
)
def test_comma_separated_lists(
    monkeypatch: pytest.MonkeyPatch, raw: str, parsed: list[str]
) -> None:
    monkeypatch.setenv("COUNTERSIGN_OUTBOUND_ALLOW", raw)
    monkeypatch.setenv("COUNTERSIGN_OIDC_ISSUERS", raw)

    settings = Settings()

    assert settings.outbound_allow == parsed
    assert settings.oidc_issuers == parsed


def test_lists_may_also_be_given_as_lists() -> None:
    settings = Settings(outbound_allow=["https://a.test"], oidc_issuers=["x", "y"])

    assert settings.outbound_allow == ["https://a.test"]
    assert settings.oidc_issuers == ["x", "y"]


def test_secrets_are_secret_strings_never_shown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = fresh_key()
    monkeypatch.setenv("COUNTERSIGN_SECRET_KEY", key)
    monkeypatch.setenv("COUNTERSIGN_KEYCLOAK_CLIENT_SECRET", "kc-client-secret")

    settings = Settings()

    assert isinstance(settings.secret_key, SecretStr)
    assert isinstance(settings.keycloak_client_secret, SecretStr)
    for shown in (repr(settings), str(settings)):
        assert key not in shown
        assert "kc-client-secret" not in shown
    view = settings.public_view()
    assert "secret_key" not in view
    assert "keycloak_client_secret" not in view
    assert key not in repr(view)
    assert "kc-client-secret" not in repr(view)


def test_default_secret_key_is_never_shown_either() -> None:
    settings = Settings()

    assert DEV_SECRET_KEY not in repr(settings)
    assert DEV_SECRET_KEY not in repr(settings.public_view())


@pytest.mark.parametrize("secret_key", ["", DEV_SECRET_KEY])
def test_outside_dev_mode_an_empty_or_the_dev_secret_key_is_refused(
    secret_key: str,
) -> None:
    with pytest.raises(ValidationError, match="COUNTERSIGN_SECRET_KEY"):
        Settings(**OIDC, secret_key=secret_key)


def test_outside_dev_mode_the_secret_key_defaults_to_refused() -> None:
    with pytest.raises(ValidationError, match="COUNTERSIGN_SECRET_KEY"):
        Settings(**OIDC)


def test_outside_dev_mode_the_environment_secret_key_is_checked_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COUNTERSIGN_AUTH_MODE", "oidc")
    monkeypatch.setenv("COUNTERSIGN_OIDC_JWKS_URL", OIDC["oidc_jwks_url"])
    monkeypatch.setenv("COUNTERSIGN_OIDC_ISSUERS", OIDC["oidc_issuers"])
    monkeypatch.setenv("COUNTERSIGN_OIDC_AUDIENCE", OIDC["oidc_audience"])
    monkeypatch.setenv("COUNTERSIGN_SECRET_KEY", DEV_SECRET_KEY)

    with pytest.raises(ValidationError, match="COUNTERSIGN_SECRET_KEY"):
        Settings()


def test_outside_dev_mode_a_fresh_fernet_key_is_accepted() -> None:
    key = fresh_key()

    settings = Settings(**OIDC, secret_key=key)

    assert settings.auth_mode is AuthMode.oidc
    assert settings.secret_key.get_secret_value() == key
    # The key is usable as what it is for: encrypting caller secrets at rest.
    fernet = Fernet(settings.secret_key.get_secret_value().encode())
    assert fernet.decrypt(fernet.encrypt(b"webhook secret")) == b"webhook secret"


def test_the_dev_secret_key_is_a_working_fernet_key_in_dev_mode() -> None:
    settings = Settings()

    assert settings.secret_key.get_secret_value() == DEV_SECRET_KEY
    Fernet(settings.secret_key.get_secret_value().encode())


@pytest.mark.parametrize("missing", ["oidc_jwks_url", "oidc_issuers", "oidc_audience"])
def test_oidc_mode_needs_jwks_issuers_and_audience(missing: str) -> None:
    values: dict[str, Any] = {**OIDC, missing: ""}

    with pytest.raises(ValidationError, match=missing.upper()):
        Settings(**values, secret_key=fresh_key())


def test_public_view_redacts_the_database_password() -> None:
    settings = Settings(
        database_url="postgresql+asyncpg://countersign:s3cr3t-pw@db.internal:5432/cs",
        redis_url="redis://:redis-pw@redis.internal:6379/0",
    )

    view = settings.public_view()

    assert "s3cr3t-pw" not in repr(view)
    assert "redis-pw" not in repr(view)
    assert (
        view["database_url"]
        == "postgresql+asyncpg://countersign:***@db.internal:5432/cs"
    )
    assert view["redis_url"].endswith("@redis.internal:6379/0")


def test_public_view_keeps_urls_without_credentials() -> None:
    settings = Settings(database_url="sqlite+aiosqlite:///./countersign.db")

    view = settings.public_view()

    assert view["database_url"] == "sqlite+aiosqlite:///./countersign.db"
    assert view["redis_url"] == ""
    assert view["auth_mode"] == "dev"
    assert view["role_admin"] == "AWE_ADMIN"


def test_configuration_errors_do_not_repeat_the_secrets_they_were_given() -> None:
    # Missing OIDC settings with real secrets present: the error message ends up on stderr and
    # in logs, so it must name the problem without echoing the input.
    with pytest.raises(ValidationError) as raised:
        Settings(
            auth_mode="oidc",
            secret_key="TOP-SECRET-KEY-VALUE",
            keycloak_client_secret="TOP-SECRET-CLIENT-VALUE",
        )

    message = str(raised.value)
    assert "COUNTERSIGN_OIDC_JWKS_URL" in message
    assert "TOP-SECRET" not in message


@pytest.mark.parametrize(
    ("field", "url", "secret"),
    [
        ("database_url", "postgresql+asyncpg://cs:pw-one@db:5432/cs", "pw-one"),
        (
            "database_url",
            "postgresql+asyncpg://db:5432/cs?user=cs&password=pw-two",
            "pw-two",
        ),
        (
            "database_url",
            "postgresql+asyncpg://cs@db/cs?sslmode=verify-full&sslpassword=pw-three",
            "pw-three",
        ),
        ("redis_url", "redis://redis:6379/0?password=pw-four", "pw-four"),
        ("redis_url", "rediss://default:pw-five@redis:6380/0", "pw-five"),
        ("oidc_jwks_url", "https://idp/certs?access_token=pw-six", "pw-six"),
        ("keycloak_url", "https://ghp_pwseven@idp.internal", "ghp_pwseven"),
        ("oidc_jwks_url", "https://idp/certs?x-api-key=pw-eight", "pw-eight"),
    ],
)
def test_public_view_never_shows_a_credential_in_a_url(
    field: str, url: str, secret: str
) -> None:
    values: dict[str, Any] = {field: url}
    view = Settings(**values).public_view()

    assert secret not in repr(view)
    assert "***" in view[field]


def test_public_view_keeps_the_harmless_parts_of_a_url() -> None:
    view = Settings(
        database_url="postgresql+asyncpg://cs:pw@db:5432/cs?sslmode=require&password=x"
    ).public_view()

    assert view["database_url"] == (
        "postgresql+asyncpg://cs:***@db:5432/cs?sslmode=require&password=***"
    )


async def test_database_errors_never_carry_the_statement_parameters(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """hide_parameters on the engine, and the log filter for what the driver itself quotes."""
    import logging

    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from countersign.kit import logsafe

    logsafe.install(caplog.handler)
    engine = settings.engine()
    marker = "context-value-that-must-not-leak"
    try:
        async with engine.connect() as connection:
            with pytest.raises(DBAPIError) as raised:
                await connection.execute(
                    text("SELECT CAST(:value AS integer)"), {"value": marker}
                )
    finally:
        await engine.dispose()
    assert "parameters hidden" in str(raised.value)
    try:
        raise RuntimeError("wrapped") from raised.value
    except RuntimeError:
        logging.getLogger("countersign.test").exception("unexpected error")

    assert "unexpected error" in caplog.text
    assert "SELECT CAST" in caplog.text, "where it happened stays in the log"
    assert marker not in caplog.text
