"""The `countersign` command, run as a user runs it: the installed console script, in a subprocess."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import jwt
import pytest
from cryptography.fernet import Fernet

import countersign.models  # noqa: F401  (registers every table on Base.metadata)
from countersign import __version__
from countersign.config import Settings
from countersign.db import Base
from countersign.identity.dependencies import build_verifier

COUNTERSIGN = Path(sys.executable).with_name("countersign")
TIMEOUT_SECONDS = 60

OIDC_ENV = {
    "COUNTERSIGN_AUTH_MODE": "oidc",
    "COUNTERSIGN_OIDC_JWKS_URL": "https://idp.test/realms/registry/protocol/openid-connect/certs",
    "COUNTERSIGN_OIDC_ISSUERS": "https://idp.test/realms/registry",
    "COUNTERSIGN_OIDC_AUDIENCE": "countersign",
}


def child_env(**overrides: str) -> dict[str, str]:
    """The test process's environment without any COUNTERSIGN_* variable, plus `overrides`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COUNTERSIGN_")}
    env.update(overrides)
    return env


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(COUNTERSIGN), *args],
        cwd=cwd,
        env=env if env is not None else child_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_the_console_script_is_installed() -> None:
    assert COUNTERSIGN.is_file(), f"{COUNTERSIGN} missing; run `pip install -e .`"


def test_version_prints_the_package_version(tmp_path: Path) -> None:
    result = run_cli("version", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == __version__


def test_without_a_command_usage_is_printed_and_the_exit_status_is_non_zero(
    tmp_path: Path,
) -> None:
    result = run_cli(cwd=tmp_path)

    assert result.returncode != 0
    assert "usage: countersign" in result.stderr


async def test_token_prints_a_jwt_the_service_accepts(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"

    result = run_cli(
        "token",
        "--sub",
        "alice",
        "--role",
        "AWE_ADMIN",
        "--role",
        "X",
        "--azp",
        "registry",
        cwd=tmp_path,
        env=child_env(COUNTERSIGN_DATA_DIR=str(data_dir)),
    )

    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert token.count(".") == 2, "stdout must be the bare token"
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["preferred_username"] == "alice"
    assert claims["realm_access"]["roles"] == ["AWE_ADMIN", "X"]
    assert claims["azp"] == "registry"
    assert jwt.get_unverified_header(token)["alg"] == "RS256"

    verifier = build_verifier(Settings(data_dir=data_dir), None)
    principal = await verifier.verify(token)

    assert principal.id == "alice"
    assert principal.caller == "registry"
    assert principal.is_admin
    assert "X" in principal.roles


async def test_token_without_roles_or_azp_is_a_plain_principal(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"

    result = run_cli(
        "token",
        "--sub",
        "bob",
        cwd=tmp_path,
        env=child_env(COUNTERSIGN_DATA_DIR=str(data_dir)),
    )

    assert result.returncode == 0, result.stderr
    principal = await build_verifier(Settings(data_dir=data_dir), None).verify(
        result.stdout.strip()
    )
    assert principal.id == "bob"
    assert principal.caller == "bob"
    assert not principal.is_admin
    assert not principal.is_viewer


def test_token_refuses_to_mint_in_oidc_mode(tmp_path: Path) -> None:
    env = child_env(
        **OIDC_ENV,
        COUNTERSIGN_SECRET_KEY=Fernet.generate_key().decode(),
        COUNTERSIGN_DATA_DIR=str(tmp_path / "data"),
    )

    result = run_cli("token", "--sub", "alice", cwd=tmp_path, env=env)

    assert result.returncode != 0
    assert result.stdout == ""
    assert "dev-mode tokens only" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists(), "no dev signing key may be created"


def test_serve_in_oidc_mode_with_the_default_secret_key_refuses_to_start(
    tmp_path: Path,
) -> None:
    result = run_cli(
        "serve",
        "--port",
        str(free_port()),
        cwd=tmp_path,
        env=child_env(**OIDC_ENV),
    )

    assert result.returncode != 0
    assert "COUNTERSIGN_SECRET_KEY" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "countersign.db").exists()


def test_serve_in_dev_mode_refuses_a_network_address_without_the_explicit_flag(
    tmp_path: Path,
) -> None:
    result = run_cli(
        "serve", "--host", "0.0.0.0", "--port", str(free_port()), cwd=tmp_path
    )

    assert result.returncode != 0
    assert "--allow-dev-auth-on-network" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "countersign.db").exists(), "nothing may start"


def test_migrate_creates_the_schema_on_a_fresh_sqlite_file(tmp_path: Path) -> None:
    database = tmp_path / "fresh.db"

    result = run_cli(
        "migrate",
        cwd=tmp_path,
        env=child_env(COUNTERSIGN_DATABASE_URL=f"sqlite+aiosqlite:///{database}"),
    )

    assert result.returncode == 0, result.stderr
    with sqlite3.connect(database) as connection:
        tables = {
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
            )
        }
        (revisions,) = connection.execute(
            "SELECT count(*) FROM alembic_version"
        ).fetchone()
        (policies,) = connection.execute("SELECT count(*) FROM policies").fetchone()
    assert set(Base.metadata.tables) <= tables
    assert revisions == 1
    assert policies == 0, "`migrate` only migrates; seeding is `serve`'s job"
    assert not (tmp_path / "countersign.db").exists()


def test_migrate_uses_the_default_database_in_the_working_directory(
    tmp_path: Path,
) -> None:
    result = run_cli("migrate", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "countersign.db").is_file()


@pytest.mark.parametrize(
    "args",
    [
        ["token"],  # --sub is required
        ["serve", "--port", "not-a-number"],
    ],
)
def test_bad_arguments_exit_with_usage(tmp_path: Path, args: list[str]) -> None:
    result = run_cli(*args, cwd=tmp_path)

    assert result.returncode == 2
    assert "usage:" in result.stderr


def test_a_configuration_error_does_not_print_the_secrets(tmp_path: Path) -> None:
    env = child_env(
        COUNTERSIGN_AUTH_MODE="oidc",  # but no JWKS, issuers or audience
        COUNTERSIGN_SECRET_KEY="TOP-SECRET-KEY-VALUE",
        COUNTERSIGN_KEYCLOAK_CLIENT_SECRET="TOP-SECRET-CLIENT-VALUE",
    )

    result = run_cli("serve", "--port", str(free_port()), cwd=tmp_path, env=env)

    assert result.returncode != 0
    assert "COUNTERSIGN_OIDC_JWKS_URL" in result.stderr
    assert "TOP-SECRET" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
