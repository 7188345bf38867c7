"""Production guards (COUNTERSIGN_ENV=production): a development convenience never starts there.

Each guard is run as an operator meets it: the installed `countersign serve` / `worker` in a
subprocess, which must exit at once with a one-line reason and no traceback. The image's own
command is run the same way, with the Dockerfile's environment, to check that the documented
`docker run` starts (no Docker engine runs here, so the command is run by hand).
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from cryptography.fernet import Fernet

from countersign.config import Environment, Settings
from tests.fixtures.server import wait_until_healthy
from tests.test_cli import COUNTERSIGN, OIDC_ENV, child_env, free_port, run_cli

ROOT = Path(__file__).resolve().parents[1]
FRESH_KEY = Fernet.generate_key().decode()
PRODUCTION = {
    **OIDC_ENV,
    "COUNTERSIGN_ENV": "production",
    "COUNTERSIGN_SECRET_KEY": FRESH_KEY,
}

GUARDS = {
    "dev auth": ({"COUNTERSIGN_AUTH_MODE": "dev"}, "COUNTERSIGN_AUTH_MODE=dev"),
    "test hooks": ({"COUNTERSIGN_TEST_HOOKS": "true"}, "COUNTERSIGN_TEST_HOOKS"),
    "test clock": ({"COUNTERSIGN_CLOCK_FILE": "/tmp/clock"}, "COUNTERSIGN_CLOCK_FILE"),
    "default secret key": (
        {"COUNTERSIGN_SECRET_KEY": "Y291bnRlcnNpZ24tZGV2LW9ubHktc2VjcmV0LWtleSE="},
        "COUNTERSIGN_SECRET_KEY",
    ),
    "plain-http JWKS": (
        {"COUNTERSIGN_OIDC_JWKS_URL": "http://idp.test/certs"},
        "COUNTERSIGN_OIDC_JWKS_URL must use https",
    ),
    "loopback JWKS": (
        {"COUNTERSIGN_OIDC_JWKS_URL": "https://127.0.0.1/certs"},
        "COUNTERSIGN_OIDC_JWKS_URL points at loopback",
    ),
    "plain-http Keycloak": (
        {"COUNTERSIGN_KEYCLOAK_URL": "http://keycloak:8080"},
        "COUNTERSIGN_KEYCLOAK_URL must use https",
    ),
    "loopback outbound allowed": (
        {"COUNTERSIGN_OUTBOUND_ALLOW": "10.0.0.0/8,127.0.0.0/8"},
        "COUNTERSIGN_OUTBOUND_ALLOW entry '127.0.0.0/8'",
    ),
    "localhost outbound allowed": (
        {"COUNTERSIGN_OUTBOUND_ALLOW": "localhost"},
        "COUNTERSIGN_OUTBOUND_ALLOW entry 'localhost'",
    ),
}


def one_line_refusal(result: subprocess.CompletedProcess[str], reason: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("countersign: "), lines[0]
    assert reason in lines[0]


@pytest.mark.parametrize("guard", list(GUARDS))
def test_serve_refuses_each_development_setting_in_production(
    tmp_path: Path, guard: str
) -> None:
    overrides, reason = GUARDS[guard]
    env = child_env(**(PRODUCTION | overrides))

    result = run_cli("serve", "--port", str(free_port()), cwd=tmp_path, env=env)

    one_line_refusal(result, reason)
    assert not (tmp_path / "countersign.db").exists(), "nothing may start"


def test_the_worker_refuses_too(tmp_path: Path) -> None:
    env = child_env(
        **PRODUCTION,
        COUNTERSIGN_TEST_HOOKS="true",
        COUNTERSIGN_REDIS_URL="redis://127.0.0.1:6379/0",
    )

    result = run_cli("worker", cwd=tmp_path, env=env)

    one_line_refusal(result, "COUNTERSIGN_TEST_HOOKS")


def test_every_refusal_is_listed_on_the_one_line(tmp_path: Path) -> None:
    env = child_env(
        **(
            PRODUCTION
            | {"COUNTERSIGN_AUTH_MODE": "dev", "COUNTERSIGN_TEST_HOOKS": "true"}
        )
    )

    result = run_cli("serve", "--port", str(free_port()), cwd=tmp_path, env=env)

    one_line_refusal(result, "COUNTERSIGN_AUTH_MODE=dev")
    assert "COUNTERSIGN_TEST_HOOKS" in result.stderr


@pytest.mark.parametrize("environment", ["development", "testing"])
def test_development_and_testing_keep_their_conveniences(environment: str) -> None:
    settings = Settings(
        env=Environment(environment),
        test_hooks=True,
        outbound_allow=["127.0.0.0/8"],
        oidc_jwks_url="http://127.0.0.1:9/certs",
    )

    assert settings.production_refusals() == []


def test_a_production_configuration_passes() -> None:
    settings = Settings(
        env=Environment.production,
        auth_mode="oidc",
        secret_key=FRESH_KEY,
        oidc_jwks_url="https://idp.test/certs",
        oidc_issuers=["https://idp.test"],
        oidc_audience="countersign",
        keycloak_url="https://idp.test",
        outbound_allow=["10.1.0.0/16", "resolver.internal"],
    )

    assert settings.production_refusals() == []


# --- the image and the chart --------------------------------------------------------------------


def dockerfile_env() -> dict[str, str]:
    """The runtime stage's ENV, with build arguments at their defaults."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    runtime = text[text.index("AS runtime") :]
    env: dict[str, str] = {}
    for block in re.findall(r"^ENV (.+?)(?<!\\)$", runtime, flags=re.M | re.S):
        for name, value in re.findall(r"(\w+)=(\S+)", block.replace("\\\n", " ")):
            env[name] = value
    return env


def dockerfile_command() -> list[str]:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (.+)$", text, re.M).group(1))  # type: ignore[union-attr]
    command = json.loads(re.search(r"^CMD (.+)$", text, re.M).group(1))  # type: ignore[union-attr]
    return [*entrypoint, *command]


def documented_run_env() -> dict[str, str]:
    """The `-e` settings of the Dockerfile's documented production `docker run`."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    block = text[
        text.index("#   docker run") : text.index(
            "countersign\n", text.index("#   docker run")
        )
    ]
    return dict(re.findall(r"-e (\w+)=(\S+)", block))


def test_the_image_and_the_chart_run_in_production() -> None:
    assert dockerfile_env()["COUNTERSIGN_ENV"] == "production"
    values = yaml.safe_load((ROOT / "helm/countersign/values.yaml").read_text())
    assert values["config"]["COUNTERSIGN_ENV"] == "production"
    assert values["config"]["COUNTERSIGN_AUTH_MODE"] == "oidc"


@dataclass(frozen=True)
class _ImageProcess:
    """The image's command as a `ServerProcess`, so the shared health wait can watch it."""

    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def test_the_documented_docker_run_starts(tmp_path: Path) -> None:
    """The image's command, with the image's environment and the documented `-e` settings."""
    port = free_port()
    env = child_env(**dockerfile_env())
    documented = documented_run_env()
    assert documented["COUNTERSIGN_AUTH_MODE"] == "oidc"
    documented["COUNTERSIGN_SECRET_KEY"] = (
        FRESH_KEY  # documented as $(... generate_key ...)
    )
    env.update(documented)
    # /data is the image's volume; here a temporary directory stands in for it.
    env["COUNTERSIGN_DATA_DIR"] = str(tmp_path)
    env["COUNTERSIGN_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path}/countersign.db"
    # The image copies migrations/ to /app/migrations; here they are in the repository.
    env["COUNTERSIGN_MIGRATIONS_DIR"] = str(ROOT / "migrations")
    command = [arg if arg != "8000" else str(port) for arg in dockerfile_command()]
    command[0] = str(COUNTERSIGN)
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    server = _ImageProcess(process, f"http://127.0.0.1:{port}", log_path)
    try:
        wait_until_healthy(server)
        config = httpx.get(f"http://127.0.0.1:{port}/v1/config", timeout=5).json()
        assert (config["env"], config["auth_mode"]) == ("production", "oidc")
        dev_token = httpx.post(
            f"http://127.0.0.1:{port}/v1/dev/token", json={"sub": "x"}, timeout=5
        )
        assert dev_token.status_code == 404
    finally:
        process.terminate()
        process.wait(timeout=30)
