"""A deployment on one machine, for tests that need the real processes: PostgreSQL, Redis, N API
processes (`countersign serve --no-migrate`) and N workers (`countersign worker`), configured
through `COUNTERSIGN_*` variables like the chart configures them.

Production-like, as far as a loopback machine allows: OIDC auth with RS256 tokens verified against
a real JWKS endpoint (a loopback `JwksServer`, the tokens minted here as Keycloak would hand them
out), a fresh Fernet `COUNTERSIGN_SECRET_KEY`, JSON logs, Redis, no in-process worker, migrations
run once by `countersign migrate` before the APIs start, outbound calls allowed to 127.0.0.1 only
through `COUNTERSIGN_OUTBOUND_ALLOW` (the receivers are loopback). `COUNTERSIGN_ENV` is `testing`:
`production` refuses plain-http and loopback identity providers, which is all a test can run.

    with Stack.start(tmp_path, apis=2, workers=2) as stack:
        admin = stack.issuer.token("ops", roles=["AWE_ADMIN"])
        httpx.post(f"{stack.apis[0].base_url}/v1/policies", ...)
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import jwt
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.fixtures.database import drop_pg_database, fresh_pg_database
from tests.fixtures.server import LiveServer, free_port, spawn
from tests.fixtures.worker import RedisServer, WorkerProcess
from tests.identity.jwks_server import JwksServer

ROOT = Path(__file__).resolve().parents[2]
COUNTERSIGN = Path(sys.executable).with_name("countersign")
DIRECTORY_FILE = ROOT / "tests" / "fixtures" / "directory.yaml"
ISSUER = "http://127.0.0.1/realms/countersign"
AUDIENCE = "countersign"
CLIENT_ID = "countersign-api"


class Issuer:
    """An RSA key, its JWKS on a loopback endpoint, and RS256 tokens like Keycloak's."""

    def __init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = dict(RSAAlgorithm.to_jwk(self._key.public_key(), as_dict=True))
        jwk.update({"use": "sig", "alg": "RS256", "kid": "stack-1"})
        self.jwks = JwksServer({"keys": [jwk]})

    def start(self) -> Issuer:
        self.jwks.start()
        return self

    def stop(self) -> None:
        self.jwks.stop()

    def token(
        self,
        username: str,
        *,
        roles: list[str] | None = None,
        azp: str | None = None,
        ttl: int = 3600,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, username)),
            "preferred_username": username,
            "iat": now,
            "exp": now + ttl,
            "realm_access": {"roles": roles or []},
        }
        if azp is not None:
            claims["azp"] = azp
        return jwt.encode(
            claims, self._key, algorithm="RS256", headers={"kid": "stack-1"}
        )


@dataclass
class Stack:
    directory: Path
    database_name: str
    database_url: str
    redis: RedisServer
    issuer: Issuer
    secret_key: str = field(default_factory=lambda: Fernet.generate_key().decode())
    apis: list[LiveServer] = field(default_factory=list)
    workers: list[WorkerProcess] = field(default_factory=list)

    @classmethod
    def start(cls, directory: Path, *, apis: int, workers: int) -> Stack:
        name = f"cs_stack_{uuid.uuid4().hex[:10]}"
        stack = cls(
            directory=directory,
            database_name=name,
            database_url=fresh_pg_database(name),
            redis=RedisServer(free_port(), directory / "redis.log"),
            issuer=Issuer(),
        )
        try:
            stack.redis.start()
            stack.issuer.start()
            stack.migrate()
            for _ in range(apis):
                stack.start_api()
            for _ in range(workers):
                stack.start_worker()
        except BaseException:
            stack.stop()
            raise
        return stack

    def env(self, **overrides: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COUNTERSIGN_")}
        env.update(
            {
                "PYTHONPATH": str(ROOT / "src"),
                "COUNTERSIGN_ENV": "testing",
                "COUNTERSIGN_DATABASE_URL": self.database_url,
                "COUNTERSIGN_REDIS_URL": self.redis.url,
                "COUNTERSIGN_AUTH_MODE": "oidc",
                "COUNTERSIGN_OIDC_JWKS_URL": self.issuer.jwks.url,
                "COUNTERSIGN_OIDC_ISSUERS": ISSUER,
                "COUNTERSIGN_OIDC_AUDIENCE": AUDIENCE,
                "COUNTERSIGN_OIDC_CLIENT_ID": CLIENT_ID,
                "COUNTERSIGN_SECRET_KEY": self.secret_key,
                "COUNTERSIGN_DIRECTORY_FILE": str(DIRECTORY_FILE),
                "COUNTERSIGN_OUTBOUND_ALLOW": "127.0.0.1",
                "COUNTERSIGN_WORKER_IN_PROCESS": "false",
                "COUNTERSIGN_LOG_JSON": "true",
                "COUNTERSIGN_LOG_LEVEL": "INFO",
                "COUNTERSIGN_DATA_DIR": str(self.directory / "data"),
                # Several test sessions share one PostgreSQL: few connections per process.
                "COUNTERSIGN_DB_POOL_SIZE": "3",
                "COUNTERSIGN_DB_MAX_OVERFLOW": "5",
                "COUNTERSIGN_WORKER_MAX_JOBS": "8",
                "COUNTERSIGN_WORKER_SWEEP_SECONDS": "1",
            }
        )
        env.update(overrides)
        return env

    def migrate(self) -> None:
        result = subprocess.run(
            [str(COUNTERSIGN), "migrate"],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr

    def start_api(self) -> LiveServer:
        port = free_port()
        api = spawn(
            [
                str(COUNTERSIGN),
                *("serve", "--no-migrate", "--host", "127.0.0.1", "--port", str(port)),
            ],
            env=self.env(),
            log_path=self.directory / f"api-{len(self.apis) + 1}.log",
            port=port,
        )
        self.apis.append(api)
        return api

    def start_worker(self) -> WorkerProcess:
        """Start a worker; it is not waited for (the flows a test drives wait for its work, and
        the log format is not ours to parse here). `alive` says whether it still runs."""
        log_path = self.directory / f"worker-{len(self.workers) + 1}.log"
        log_file = log_path.open("wb")
        process = subprocess.Popen(
            [str(COUNTERSIGN), "worker"],
            env=self.env(),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        worker = WorkerProcess(process, log_path, log_file)
        self.workers.append(worker)
        return worker

    def _processes(self) -> list[LiveServer | WorkerProcess]:
        return [*self.apis, *self.workers]

    def dead(self) -> list[str]:
        """The processes that exited on their own (named by their log file)."""
        return [
            p.log_path.stem for p in self._processes() if p.process.poll() is not None
        ]

    def logs(self) -> str:
        """The tail of every process's log, for a failing assertion's message."""
        parts = []
        for process in self._processes():
            tail = "\n".join(process.log().splitlines()[-40:])
            parts.append(f"--- {process.log_path.stem} ---\n{tail}")
        return "\n".join(parts)

    def stop(self) -> None:
        for process in self._processes():
            process.stop()
        self.issuer.stop()
        self.redis.stop()
        drop_pg_database(self.database_name)

    def __enter__(self) -> Stack:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
