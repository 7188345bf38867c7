"""`make bench`: Countersign against its bare baselines, measured side by side in one run.

    .venv/bin/python bench/run.py                 # 20 s per phase (about 6 minutes in all)
    .venv/bin/python bench/run.py --seconds 5     # a quick run (results JSON only, no docs)
    make bench BENCH_ARGS='--seconds 5 --skip two-process,memory'

Starts, on a fresh database: a private Redis, a loopback token issuer (https JWKS), the callback
receiver, `countersign serve` in production settings, `countersign worker`, the bare baseline app
(bench/baseline.py) and, for callbacks, the bare signed-POST loop (bench/signed_post.py). This
process is the driver: httpx, 16 concurrent clients, one phase at a time, each phase timed over
`--seconds` after `--warmup`. Writes bench/results/<date>.json and, for runs at the default
length (or with --record), the table in docs/performance.md. See bench/README.md and ADR 0034.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import datetime as dt
import json
import os
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import profiling
import yaml
from cryptography.fernet import Fernet
from idp import AUDIENCE, Issuer

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
BIN = Path(sys.executable).parent
PG = os.environ.get("COUNTERSIGN_BENCH_PG_URL", "postgresql://root@127.0.0.1:5432")
DATABASE = "countersign_bench_run"
DEFAULT_SECONDS = 20.0
CALLER_CLIENT = "registry"
CALLER = "registry-svc"
CLIENT_ID = "countersign"
# Stage sizes of the four policies: each stage resolves one group of this many approvers.
GROUP_SIZES = (5, 10, 15, 20)
INBOX_OPEN_TASKS = 20_000
CONTEXT_BYTES = 1024
TERMINAL_EVENTS = "request_approved,request_rejected"
PHASES = (
    "latency",
    "create",
    "inbox",
    "flow",
    "baseline",
    "callbacks",
    "two-process",
    "memory",
)

# Targets of issue 11, as (comparison, value): ratios unless the unit says otherwise.
TARGETS: dict[str, tuple[str, float]] = {
    "create": (">=", 0.60),
    "flow": (">=", 0.60),
    "create_p99": ("<=", 1.5),
    "decision_p99": ("<=", 1.5),
    "inbox": (">=", 0.80),
    "callback_latency": ("<=", 25.0),  # milliseconds, absolute
    "callbacks": (">=", 0.80),
}


def log(message: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def host_address() -> str:
    """This machine's own non-loopback IPv4 address (production refuses loopback URLs)."""
    candidates: list[str] = []
    for probe in ("10.255.255.255", "8.8.8.8"):  # a UDP connect sends no packet
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                sock.connect((probe, 9))
                candidates.append(str(sock.getsockname()[0]))
            except OSError:
                pass
    try:
        hostname = subprocess.run(
            ["hostname", "-I"], capture_output=True, text=True, check=False
        )
        candidates += hostname.stdout.split()
    except OSError:
        pass
    for address in candidates:
        if "." in address and not address.startswith("127."):
            return address
    raise SystemExit(
        "bench: no non-loopback IPv4 address; production settings refuse loopback "
        "JWKS and callback URLs. Pass --address with an address of this machine."
    )


# --- processes ------------------------------------------------------------------------------


@dataclasses.dataclass
class Child:
    """A subprocess of the run, its log file, and what /proc says about it."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @classmethod
    def start(
        cls, name: str, args: list[str], env: dict[str, str], workdir: Path
    ) -> Child:
        log_path = workdir / f"{name}.log"
        with log_path.open("ab") as log_file:
            process = subprocess.Popen(
                args,
                env=env,
                cwd=workdir,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return cls(name, process, log_path)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def cpu_seconds(self) -> float:
        try:
            fields = (
                Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1]
            )
        except OSError:
            return 0.0
        parts = fields.split()
        return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")

    def tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


async def wait_http(url: str, child: Child, *, deadline: float = 90.0) -> None:
    until = time.monotonic() + deadline
    async with httpx.AsyncClient(timeout=2.0) as client:
        while True:
            if not child.alive:
                raise SystemExit(f"bench: {child.name} exited:\n{child.tail()}")
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > until:
                raise SystemExit(
                    f"bench: {child.name} did not answer {url}:\n{child.tail()}"
                )
            await asyncio.sleep(0.1)


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    values = [
        int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    ]
    idle = values[3] + values[4]
    return float(sum(values) - idle), float(sum(values))


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


# --- data -------------------------------------------------------------------------------------


def group_members(stage: str, size: int) -> list[str]:
    return [f"{stage}-{size:02d}-{n:02d}" for n in range(size)]


def directory_document() -> dict[str, Any]:
    users = []
    groups = [{"path": "/bench"}, {"path": "/bench/review"}, {"path": "/bench/signoff"}]
    for size in GROUP_SIZES:
        for stage in ("review", "signoff"):
            path = f"/bench/{stage}/g{size:02d}"
            groups.append({"path": path})
            for username in group_members(stage, size):
                users.append(
                    {
                        "username": username,
                        "email": f"{username}@bench.example",
                        "name": username,
                        "enabled": True,
                        "roles": [],
                        "groups": [path],
                    }
                )
    return {
        "users": users,
        "roles": [{"name": "AWE_ADMIN"}, {"name": "AWE_VIEWER"}],
        "groups": groups,
        "clients": [CALLER_CLIENT],
    }


def policy_document(size: int) -> dict[str, Any]:
    def stage(order: int, name: str, group: str) -> dict[str, Any]:
        return {
            "stage_order": order,
            "name": name,
            "mode": "any-n",
            "mode_value": 1,
            "sla_hours": 72,
            "on_breach": "notify",
            "rules": [
                {
                    "rule_type": "group",
                    "rule_value": {"group": f"/bench/{group}/g{size:02d}"},
                    "kind": "approver",
                }
            ],
        }

    return {
        "policy_key": f"bench.g{size:02d}",
        "name": f"Bench, {size} approvers per stage",
        "artifact_type": f"bench.g{size:02d}",
        "forbid_self_approval": True,
        "stages": [stage(1, "Review", "review"), stage(2, "Sign-off", "signoff")],
    }


def contexts(count: int, rng: random.Random) -> list[dict[str, Any]]:
    """Request contexts of about CONTEXT_BYTES as compact JSON: a case file, not padding only."""
    words = (
        "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod".split()
    )
    out = []
    for n in range(count):
        context: dict[str, Any] = {
            "district": f"D{rng.randint(1, 40)}",
            "amount": rng.randint(10, 50_000),
            "currency": "EUR",
            "applicant": {
                "id": f"APP-{rng.randint(10**6, 10**7)}",
                "name": f"Applicant {n}",
                "household_size": rng.randint(1, 9),
            },
            "programme": rng.choice(["cash", "food", "housing", "health"]),
            "flags": rng.sample(["urgent", "duplicate-check", "manual", "appeal"], 2),
            "notes": "",
        }
        size = len(json.dumps(context, separators=(",", ":")))
        filler = []
        while size + sum(len(w) + 1 for w in filler) < CONTEXT_BYTES:
            filler.append(rng.choice(words))
        context["notes"] = " ".join(filler)[: max(0, CONTEXT_BYTES - size)]
        out.append(context)
    return out


# --- measuring --------------------------------------------------------------------------------


@dataclasses.dataclass
class Call:
    label: str
    ended: float
    seconds: float
    ok: bool


class Recorder:
    """Every HTTP call of a phase, and every completed unit of work (a flow, a create)."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.units: list[float] = []
        # HTTP calls each completed unit took (a flow: 4, or 5 with an abstention).
        self.unit_calls: list[tuple[float, int]] = []
        self.errors: dict[str, int] = {}

    async def call(
        self,
        label: str,
        send: Awaitable[httpx.Response],
        expect: tuple[int, ...] = (200, 201),
    ) -> httpx.Response:
        started = time.monotonic()
        response = await send
        ended = time.monotonic()
        ok = response.status_code in expect
        self.calls.append(Call(label, ended, ended - started, ok))
        if not ok:
            key = f"{label} {response.status_code}"
            self.errors[key] = self.errors.get(key, 0) + 1
            if self.errors[key] <= 3:
                log(f"unexpected {key}: {response.text[:300]}")
        return response


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


@dataclasses.dataclass
class Windows:
    """The timed slices of one measurement (several when measurements are interleaved)."""

    spans: list[tuple[float, float]] = dataclasses.field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(end - start for start, end in self.spans)

    def has(self, moment: float) -> bool:
        return any(start <= moment < end for start, end in self.spans)


def summarise(recorder: Recorder, window: Windows) -> dict[str, Any]:
    """Per label: calls/s and latency percentiles (ms) of the calls that ended in the window."""
    labels: dict[str, list[Call]] = {}
    for call in recorder.calls:
        if window.has(call.ended):
            labels.setdefault(call.label, []).append(call)
    out: dict[str, Any] = {}
    total = 0
    for label, calls in sorted(labels.items()):
        latencies = [c.seconds * 1000 for c in calls if c.ok]
        total += len(calls)
        out[label] = {
            "calls": len(calls),
            "failed": sum(not c.ok for c in calls),
            "per_second": len(calls) / window.seconds,
            "p50_ms": percentile(latencies, 0.50),
            "p90_ms": percentile(latencies, 0.90),
            "p99_ms": percentile(latencies, 0.99),
        }
    units = sum(window.has(u) for u in recorder.units)
    unit_calls = [n for t, n in recorder.unit_calls if window.has(t)]
    return {
        "seconds": window.seconds,
        "calls": total,
        "calls_per_second": total / window.seconds,
        "units": units,
        "units_per_second": units / window.seconds,
        "calls_per_unit": statistics.fmean(unit_calls) if unit_calls else None,
        "by_call": out,
        "errors": dict(recorder.errors),
    }


Operation = Callable[[int, Recorder], Awaitable[None]]


async def drive(
    operation: Operation,
    recorder: Recorder,
    windows: Windows,
    *,
    concurrency: int,
    warmup: float,
    seconds: float,
) -> None:
    """`concurrency` loops of `operation` for warmup + seconds; the timed part joins `windows`.

    Calls still in flight at the end are awaited (not counted), so slices never overlap."""
    started = time.monotonic()
    end = started + warmup + seconds
    windows.spans.append((started + warmup, end))

    async def loop(worker: int) -> None:
        while time.monotonic() < end:
            await operation(worker, recorder)

    await asyncio.gather(*(loop(n) for n in range(concurrency)))


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


# --- the run ----------------------------------------------------------------------------------


class Bench:
    def __init__(self, options: argparse.Namespace) -> None:
        self.options = options
        self.seconds: float = options.seconds
        self.warmup: float = options.warmup
        self.concurrency: int = options.concurrency
        self.rng = random.Random(options.seed)
        self.address: str = options.address or host_address()
        self.workdir = Path(tempfile.mkdtemp(prefix="countersign-bench-"))
        self.children: list[Child] = []
        self.results: dict[str, Any] = {}
        self.contexts = contexts(256, self.rng)
        self.secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        self.issuer = Issuer(self.address, self.workdir)
        self.fernet_key = Fernet.generate_key().decode()
        self.api_requests = 0  # requests the driver sent to the first API process
        self.sequence = 0
        self.worker: Child | None = None
        self.memory: list[dict[str, Any]] = []

    # -- setup --

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COUNTERSIGN_")}
        env.update(
            COUNTERSIGN_ENV="production",
            COUNTERSIGN_AUTH_MODE="oidc",
            COUNTERSIGN_OIDC_JWKS_URL=self.issuer.jwks_url,
            COUNTERSIGN_OIDC_ISSUERS=self.issuer.issuer,
            COUNTERSIGN_OIDC_AUDIENCE=AUDIENCE,
            COUNTERSIGN_OIDC_CLIENT_ID=CLIENT_ID,
            COUNTERSIGN_SECRET_KEY=self.fernet_key,
            COUNTERSIGN_DATABASE_URL=self.database_url,
            COUNTERSIGN_REDIS_URL=self.redis_url,
            COUNTERSIGN_DIRECTORY_FILE=str(self.workdir / "directory.yaml"),
            COUNTERSIGN_OUTBOUND_ALLOW=f"{self.address}/32",
            COUNTERSIGN_CALLER_CLIENTS=CALLER_CLIENT,
            COUNTERSIGN_DATA_DIR=str(self.workdir / "data"),
            COUNTERSIGN_LOG_LEVEL="WARNING",
            SSL_CERT_FILE=str(self.issuer.cert_file),
            # The code under test is this checkout's, not whatever the shared venv's editable
            # install points at (another worktree's, or main's while it moves).
            PYTHONPATH=str(ROOT / "src"),
            BENCH_WEBHOOK_SECRET=self.secret,
        )
        return env

    def spawn(self, name: str, args: list[str]) -> Child:
        child = Child.start(name, args, self.env(), self.workdir)
        self.children.append(child)
        return child

    async def fresh_database(self) -> None:
        connection = await asyncpg.connect(f"{PG}/postgres")
        try:
            await connection.execute(
                f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'
            )
            await connection.execute(f'CREATE DATABASE "{DATABASE}"')
        finally:
            await connection.close()
        self.database_url = (
            f"{PG.replace('postgresql://', 'postgresql+asyncpg://')}/{DATABASE}"
        )

    async def sql(self, query: str) -> Any:
        connection = await asyncpg.connect(f"{PG}/{DATABASE}")
        try:
            return await connection.fetchval(query)
        finally:
            await connection.close()

    async def start_api(self, name: str, *, migrate: bool) -> tuple[Child, str]:
        port = free_port()
        args = [str(BIN / "countersign"), "serve", "--port", str(port)]
        if not migrate:
            args.append("--no-migrate")
        child = self.spawn(name, args)
        base = f"http://127.0.0.1:{port}"
        await wait_http(f"{base}/v1/health", child)
        return child, base

    async def start_worker(self) -> None:
        self.worker = self.spawn("worker", [str(BIN / "countersign"), "worker"])
        await asyncio.sleep(0.5)
        if not self.worker.alive:
            raise SystemExit(f"bench: the worker exited:\n{self.worker.tail()}")

    def stop_worker(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.children.remove(self.worker)
            self.worker = None

    @staticmethod
    def check_code_under_test() -> None:
        """Refuse to measure a `countersign` package other than this checkout's src/."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("COUNTERSIGN_")}
        env["PYTHONPATH"] = str(ROOT / "src")
        found = subprocess.run(
            [sys.executable, "-c", "import countersign; print(countersign.__file__)"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if not Path(found).resolve().is_relative_to(ROOT / "src"):
            raise SystemExit(
                f"bench: the service would run {found}, not {ROOT / 'src'}"
            )

    async def setup(self) -> None:
        self.check_code_under_test()
        if not self.options.no_services:
            await run_process(
                [str(ROOT / "scripts/ensure-services.sh")], dict(os.environ)
            )
        await self.fresh_database()
        redis_port = free_port()
        self.redis_url = f"redis://127.0.0.1:{redis_port}/0"
        (self.workdir / "directory.yaml").write_text(
            yaml.safe_dump(directory_document())
        )
        self.issuer.start()
        redis_server = shutil.which("redis-server")
        if redis_server is None:
            raise SystemExit("bench: redis-server is not installed (make services)")
        self.spawn(
            "redis",
            [
                redis_server,
                "--port",
                str(redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
        )
        receiver_port = free_port(self.address)
        self.receiver = self.spawn(
            "receiver",
            [
                sys.executable,
                str(BENCH / "receiver.py"),
                "--host",
                self.address,
                "--port",
                str(receiver_port),
            ],
        )
        self.receiver_base = f"http://{self.address}:{receiver_port}"
        self.callback_url = f"{self.receiver_base}/callback"
        await wait_http(f"{self.receiver_base}/stats", self.receiver)
        log(f"starting countersign serve (production settings) in {self.workdir}")
        self.api, self.base = await self.start_api("api", migrate=True)
        self.admin = self.bearer("bench-admin", roles=("AWE_ADMIN",))
        self.caller = self.bearer(CALLER, azp=CALLER_CLIENT)
        self.tokens: dict[str, dict[str, str]] = {}
        for size in GROUP_SIZES:
            for stage in ("review", "signoff"):
                for user in group_members(stage, size):
                    self.tokens[user] = self.bearer(user)
        async with httpx.AsyncClient(base_url=self.base, timeout=30) as client:
            for size in GROUP_SIZES:
                policy = policy_document(size)
                created = await client.post(
                    "/v1/policies", json=policy, headers=self.admin
                )
                assert created.status_code == 201, created.text
                activated = await client.post(
                    f"/v1/policies/{policy['policy_key']}/versions/1/activate",
                    headers=self.admin,
                )
                assert activated.status_code == 200, activated.text
            secret = await client.post(
                f"/v1/admin/callers/{CALLER_CLIENT}/secrets",
                json={"secret": self.secret},
                headers=self.admin,
            )
            assert secret.status_code == 201, secret.text
        port = free_port()
        self.baseline = self.spawn(
            "baseline",
            [
                sys.executable,
                str(BENCH / "baseline.py"),
                "--port",
                str(port),
                "--database-url",
                self.database_url,
            ],
        )
        self.baseline_base = f"http://127.0.0.1:{port}"
        await wait_http(f"{self.baseline_base}/health", self.baseline)

    def bearer(self, username: str, **kwargs: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.issuer.token(username, **kwargs)}"}

    def close(self) -> None:
        for child in reversed(self.children):
            child.stop()
        self.issuer.stop()
        if not self.options.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- what the service is asked --

    def client(self, base: str) -> httpx.AsyncClient:
        limits = httpx.Limits(
            max_connections=self.concurrency, max_keepalive_connections=self.concurrency
        )
        return httpx.AsyncClient(base_url=base, timeout=60, limits=limits)

    def create_body(self, size: int) -> dict[str, Any]:
        self.sequence += 1
        return {
            "policy_key": f"bench.g{size:02d}",
            "artifact_type": f"bench.g{size:02d}",
            "artifact_id": f"case-{self.sequence}",
            "context": self.contexts[self.sequence % len(self.contexts)],
            "callback_url": self.callback_url,
        }

    async def create(
        self, client: httpx.AsyncClient, recorder: Recorder
    ) -> tuple[int, dict[str, Any]]:
        size = self.rng.choice(GROUP_SIZES)
        response = await recorder.call(
            "create",
            client.post(
                "/v1/requests", json=self.create_body(size), headers=self.caller
            ),
            expect=(201,),
        )
        return size, response.json() if response.status_code == 201 else {}

    async def flow(
        self, client: httpx.AsyncClient, recorder: Recorder
    ) -> tuple[str, float] | None:
        """Create, (1 in 4: an abstention), approve, the next approver's inbox, final decision.

        Returns the request id and the moment the final decision was sent (None if a step failed).
        """
        size, created = await self.create(client, recorder)
        if not created:
            return None
        tasks = [t for t in created["tasks"] if t["status"] == "open"]
        if len(tasks) < 2:
            raise SystemExit(
                f"bench: expected {size} open tasks, got {created['tasks']}"
            )
        first, other = self.rng.sample(tasks, 2)
        abstains = self.rng.random() < 0.25
        if abstains:
            await recorder.call(
                "decision",
                client.post(
                    f"/v1/tasks/{other['id']}/decision",
                    json={"action": "abstain", "comment": "conflict of interest"},
                    headers=self.tokens[other["assignee"]],
                ),
                expect=(201,),
            )
        await recorder.call(
            "decision",
            client.post(
                f"/v1/tasks/{first['id']}/decision",
                json={"action": "approve", "comment": "checked"},
                headers=self.tokens[first["assignee"]],
            ),
            expect=(201,),
        )
        signer = self.rng.choice(group_members("signoff", size))
        inbox = await recorder.call(
            "fetch",
            client.get(
                "/v1/tasks",
                params={"request_id": created["request_id"], "status": "open"},
                headers=self.tokens[signer],
            ),
        )
        items = inbox.json().get("items", []) if inbox.status_code == 200 else []
        if not items:
            return None
        action = "approve" if self.rng.random() < 0.75 else "reject"
        final_sent = time.monotonic()
        final = await recorder.call(
            "decision",
            client.post(
                f"/v1/tasks/{items[0]['id']}/decision",
                json={"action": action, "comment": "final"},
                headers=self.tokens[signer],
            ),
            expect=(201,),
        )
        if final.status_code == 201:
            expected = "approved" if action == "approve" else "rejected"
            if final.json()["request_status"] != expected:
                raise SystemExit(f"bench: final decision left {final.json()}")
            done = time.monotonic()
            recorder.units.append(done)
            recorder.unit_calls.append((done, 5 if abstains else 4))
            return created["request_id"], final_sent
        return None

    # -- phases --

    def cpu_snapshot(self) -> dict[str, float]:
        snapshot = {c.name: c.cpu_seconds() for c in self.children}
        snapshot["driver"] = time.process_time()
        busy, total = machine_cpu()
        snapshot["machine_busy"], snapshot["machine_total"] = busy, total
        return snapshot

    @staticmethod
    def cpu_used(
        before: dict[str, float], after: dict[str, float], seconds: float
    ) -> dict[str, Any]:
        used = {
            name: round((after[name] - before.get(name, 0.0)) / seconds, 3)
            for name in after
            if not name.startswith("machine_")
        }
        total = after["machine_total"] - before.get("machine_total", 0.0)
        used["machine_busy_fraction"] = (
            round((after["machine_busy"] - before.get("machine_busy", 0.0)) / total, 3)
            if total
            else 0.0
        )
        return {"cores_by_process": used, "load_average": load_average()}

    async def interleaved(self, measurements: dict[str, Operation]) -> None:
        """Each measurement for `--seconds` in all, in `--slices` slices taken in turn.

        Baseline and service slices alternate, so a change in the machine's load (it is shared)
        falls on both sides of each ratio. Every slice starts with `--warmup` untimed, so the
        16 clients are in their steady state (calls in flight) when the timed part begins.
        """
        slices = max(1, self.options.slices)
        per_slice = self.seconds / slices
        recorders = {name: Recorder() for name in measurements}
        windows = {name: Windows() for name in measurements}
        cpu: dict[str, dict[str, float]] = {name: {} for name in measurements}
        elapsed = dict.fromkeys(measurements, 0.0)
        log(
            f"interleaved phases {', '.join(measurements)}: {slices} slices of "
            f"{per_slice:g} s each after {self.warmup:g} s warm-up"
        )
        for _ in range(slices):
            for name, operation in measurements.items():
                before = self.cpu_snapshot()
                started = time.monotonic()
                await drive(
                    operation,
                    recorders[name],
                    windows[name],
                    concurrency=self.concurrency,
                    warmup=self.warmup,
                    seconds=per_slice,
                )
                after = self.cpu_snapshot()
                elapsed[name] += time.monotonic() - started
                for key, value in after.items():
                    cpu[name][key] = (
                        cpu[name].get(key, 0.0) + value - before.get(key, 0.0)
                    )
        for name in measurements:
            summary = summarise(recorders[name], windows[name])
            summary["cpu"] = self.cpu_used({}, cpu[name], elapsed[name])
            self.results[name] = summary
            self.count_requests(name, len(recorders[name].calls))
            log(
                f"  {name}: {summary['calls_per_second']:.1f} calls/s, "
                f"{summary['units_per_second']:.1f} units/s, "
                + ", ".join(
                    f"{label} p50 {v['p50_ms'] or 0:.1f} p99 {v['p99_ms'] or 0:.1f} ms"
                    for label, v in summary["by_call"].items()
                )
                + (f", errors {summary['errors']}" if summary["errors"] else "")
            )

    def count_requests(self, name: str, calls: int) -> None:
        """Requests the first API process served (for the memory figures)."""
        if name.startswith("baseline"):
            return
        self.api_requests += calls // 2 if name == "flow_two_processes" else calls

    def note_memory(self, label: str) -> None:
        self.memory.append(
            {
                "after": label,
                "api_requests": self.api_requests,
                "api_rss_mib": round(self.api.rss_mib(), 1),
                "baseline_rss_mib": round(self.baseline.rss_mib(), 1),
            }
        )

    async def phase_latency(self) -> None:
        """One flow at a time, worker running: final decision sent → terminal callback received."""
        await self.start_worker()
        log(f"phase latency: one flow at a time for {self.seconds:g} s")
        latencies: list[float] = []
        after_response: list[float] = []
        recorder = Recorder()
        async with (
            self.client(self.base) as client,
            httpx.AsyncClient(base_url=self.receiver_base, timeout=60) as receiver,
        ):
            deadline = time.monotonic() + self.warmup + self.seconds
            warm_until = time.monotonic() + self.warmup
            while time.monotonic() < deadline:
                done = await self.flow(client, recorder)
                responded = time.monotonic()
                if done is None:
                    continue
                waited = await receiver.get(
                    "/wait", params={"request_id": done[0], "types": TERMINAL_EVENTS}
                )
                if waited.status_code != 200:
                    log(f"  no terminal callback for {done[0]} within 30 s")
                    continue
                received = waited.json()["received_at"]
                request_id, final_sent = done
                if final_sent >= warm_until:
                    latencies.append((received - final_sent) * 1000)
                    after_response.append((received - responded) * 1000)
        self.api_requests += len(recorder.calls)
        self.results["latency"] = {
            "flows": len(latencies),
            "p50_ms": percentile(latencies, 0.5),
            "p90_ms": percentile(latencies, 0.9),
            "p99_ms": percentile(latencies, 0.99),
            "after_response_p50_ms": percentile(after_response, 0.5),
            "decision_p50_ms": percentile(
                [c.seconds * 1000 for c in recorder.calls if c.label == "decision"], 0.5
            ),
        }
        log(f"  {self.results['latency']}")
        self.stop_worker()

    async def load_open_tasks(self) -> int:
        """Creates (untimed) until INBOX_OPEN_TASKS tasks are open; returns the open count."""
        open_tasks = int(
            await self.sql("SELECT count(*) FROM tasks WHERE status = 'open'")
        )
        missing = INBOX_OPEN_TASKS - open_tasks
        if missing > 0:
            creates = int(missing / (sum(GROUP_SIZES) / len(GROUP_SIZES))) + 1
            log(f"loading {creates} more requests for {INBOX_OPEN_TASKS} open tasks")
            recorder = Recorder()
            counter = iter(range(creates))
            async with self.client(self.base) as client:

                async def loader() -> None:
                    for _ in counter:
                        await self.create(client, recorder)

                await asyncio.gather(*(loader() for _ in range(self.concurrency)))
            self.api_requests += len(recorder.calls)
            open_tasks = int(
                await self.sql("SELECT count(*) FROM tasks WHERE status = 'open'")
            )
        return open_tasks

    async def phase_throughput(self, skip: set[str]) -> None:
        """create, inbox, flow (and two processes) against the bare app, interleaved."""
        open_tasks = await self.load_open_tasks() if "inbox" not in skip else None
        readers = [u for size in GROUP_SIZES for u in group_members("review", size)]
        second: Child | None = None
        async with contextlib.AsyncExitStack() as stack:
            api = await stack.enter_async_context(self.client(self.base))
            bare = await stack.enter_async_context(self.client(self.baseline_base))

            async def insert(worker: int, recorder: Recorder) -> None:
                self.sequence += 1
                body = {
                    "artifact_id": f"case-{self.sequence}",
                    "context": self.contexts[self.sequence % len(self.contexts)],
                    "callback_url": self.callback_url,
                }
                await recorder.call(
                    "insert", bare.post("/items", json=body), expect=(201,)
                )
                recorder.units.append(time.monotonic())

            async def page(worker: int, recorder: Recorder) -> None:
                await recorder.call("page", bare.get("/items", params={"limit": 25}))
                recorder.units.append(time.monotonic())

            async def create(worker: int, recorder: Recorder) -> None:
                await self.create(api, recorder)
                recorder.units.append(time.monotonic())

            async def inbox(worker: int, recorder: Recorder) -> None:
                user = readers[(worker * 7 + len(recorder.calls)) % len(readers)]
                response = await recorder.call(
                    "inbox",
                    api.get(
                        "/v1/tasks",
                        params={"status": "open"},
                        headers=self.tokens[user],
                    ),
                )
                if response.status_code == 200 and len(response.json()["items"]) != 25:
                    raise SystemExit(f"bench: {user}'s inbox page is not full")
                recorder.units.append(time.monotonic())

            async def flow(worker: int, recorder: Recorder) -> None:
                await self.flow(api, recorder)

            measurements: dict[str, Operation] = {
                "baseline": insert,
                "create": create,
                "flow": flow,
            }
            if "inbox" not in skip:
                measurements["baseline_read"] = page
                measurements["inbox"] = inbox
            if "two-process" not in skip:
                second, second_base = await self.start_api("api2", migrate=False)
                other = await stack.enter_async_context(self.client(second_base))
                clients = (api, other)

                async def two(worker: int, recorder: Recorder) -> None:
                    await self.flow(clients[worker % 2], recorder)

                measurements["flow_two_processes"] = two
            try:
                await self.interleaved(measurements)
            finally:
                if second is not None:
                    second.stop()
                    self.children.remove(second)
        if open_tasks is not None:
            self.results["inbox"]["open_tasks"] = open_tasks

    async def phase_callbacks(self) -> None:
        """Backlog drained by one worker, then the bare signed-POST loop, into the same receiver."""
        pending = int(
            await self.sql(
                "SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'"
            )
        )
        async with httpx.AsyncClient(
            base_url=self.receiver_base, timeout=30
        ) as receiver:
            await receiver.post("/reset")
            log(
                f"phase callbacks: one worker drains {pending} pending deliveries for {self.seconds:g} s"
            )
            before = self.cpu_snapshot()
            await self.start_worker()
            first = None
            give_up = time.monotonic() + 60
            while first is None and time.monotonic() < give_up:
                first = (await receiver.get("/stats")).json()["first"]
                await asyncio.sleep(0.05)
            if first is None:
                raise SystemExit(
                    f"bench: no delivery arrived:\n{self.worker.tail() if self.worker else ''}"
                )
            start = first + self.warmup
            await asyncio.sleep(max(0.0, start + self.seconds - time.monotonic()))
            stats = (
                await receiver.get(
                    "/stats", params={"since": start, "until": start + self.seconds}
                )
            ).json()
            left = int(
                await self.sql(
                    "SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'"
                )
            )
            cpu = self.cpu_used(before, self.cpu_snapshot(), self.seconds + self.warmup)
            self.stop_worker()
            seconds = self.seconds
            if left == 0 and stats["last"] is not None:
                seconds = max(0.001, min(self.seconds, stats["last"] - start))
            worker = {
                "backlog": pending,
                "left_after_window": left,
                "delivered": stats["in_window"],
                "per_second": stats["in_window"] / seconds,
                "invalid_signatures": stats["invalid"],
                "cpu": cpu,
            }
            log(f"  worker: {worker['per_second']:.1f} callbacks/s")
            # The bare loop, with the worker's own bound on attempts in flight to one receiver.
            sample = await receiver.get("/sample", params={"type": "stage_started"})
            if sample.status_code != 200:
                raise SystemExit(
                    "bench: the receiver has no stage_started delivery to replay"
                )
            body_file = self.workdir / "delivery.json"
            body_file.write_bytes(sample.content)
            await receiver.post("/reset")
            bare: dict[str, Any] = {}
            for name, concurrency, seconds in (
                ("bare", self.options.webhook_concurrency, self.seconds),
                ("bare_single", 1, min(self.seconds, 5.0)),
            ):
                await receiver.post("/reset")
                started = time.monotonic()
                output = await run_process(
                    [
                        sys.executable,
                        str(BENCH / "signed_post.py"),
                        "--url",
                        self.callback_url,
                        "--body-file",
                        str(body_file),
                        "--concurrency",
                        str(concurrency),
                        "--seconds",
                        str(seconds),
                    ],
                    self.env(),
                )
                result = json.loads(output)
                stats = (await receiver.get("/stats", params={"since": started})).json()
                bare[name] = {
                    **result,
                    "concurrency": concurrency,
                    "received": stats["valid"],
                    "invalid_signatures": stats["invalid"],
                    "per_second": stats["valid"] / result["seconds"],
                    "p50_ms": result.get("p50_ms"),
                }
            log(
                f"  bare signed-POST loop: {bare['bare']['per_second']:.1f}/s, single POST p50 {bare['bare_single']['p50_ms']:.2f} ms"
            )
        self.results["callbacks"] = {"worker": worker, **bare}

    async def mixed(
        self,
        client: httpx.AsyncClient,
        recorder: Recorder,
        goal: int,
        readers: list[str],
    ) -> None:
        """Creates (3 in 10) and inbox pages until the API has served `goal` requests."""
        while self.api_requests + len(recorder.calls) < goal:
            if self.rng.random() < 0.3:
                await self.create(client, recorder)
            else:
                user = self.rng.choice(readers)
                await recorder.call(
                    "inbox",
                    client.get(
                        "/v1/tasks",
                        params={"status": "open"},
                        headers=self.tokens[user],
                    ),
                )

    async def phase_memory(self) -> None:
        """Mixed traffic (creates, inbox pages) until the API has served 10k (and 100k) requests."""
        goals = [10_000] + ([100_000] if self.options.memory_100k else [])
        readers = [u for size in GROUP_SIZES for u in group_members("review", size)]
        async with self.client(self.base) as client:
            for goal in goals:
                if self.api_requests < goal:
                    log(
                        f"memory: {goal - self.api_requests} more requests to reach {goal}"
                    )
                    recorder = Recorder()

                    await asyncio.gather(
                        *(
                            self.mixed(client, recorder, goal, readers)
                            for _ in range(self.concurrency)
                        )
                    )
                    self.api_requests += len(recorder.calls)
                self.note_memory(f"{goal} requests")

    async def run(self) -> None:
        skip = set(self.options.skip)
        await self.setup()
        self.note_memory("start")
        # The worker runs only in the callback phases: on two shared cores it would take CPU
        # from the API and the ratios would measure the co-tenancy (ADR 0034).
        if "latency" not in skip:
            await self.phase_latency()
        await self.phase_throughput(skip)
        self.note_memory("throughput phases")
        if "callbacks" not in skip:
            await self.phase_callbacks()
        if "memory" not in skip:
            await self.phase_memory()
        self.results["memory"] = self.memory
        if self.options.profile:
            await self.phase_profile()

    async def sample(self, name: str, child: Child) -> asyncio.subprocess.Process:
        """py-spy on `child` for `--seconds` (100 Hz, without pausing it); raw stacks to a file."""
        py_spy = profiling.py_spy()
        if py_spy is None:
            raise SystemExit("bench: --profile needs py-spy (BENCH_PY_SPY or on PATH)")
        return await asyncio.create_subprocess_exec(
            py_spy,
            "record",
            "--pid",
            str(child.process.pid),
            "--duration",
            str(int(self.seconds)),
            "--rate",
            "100",
            "--format",
            "raw",
            "--full-filenames",
            "--nonblocking",
            "--output",
            str(self.workdir / f"profile-{name}.txt"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )

    async def phase_profile(self) -> None:
        """After every figure: the API under the full flow, then the worker draining the outbox."""
        log(f"profile: the API under the full flow for {self.seconds:g} s (py-spy)")
        profiles: dict[str, Any] = {}
        async with self.client(self.base) as client:
            spy = await self.sample("api", self.api)

            async def flow(worker: int, recorder: Recorder) -> None:
                await self.flow(client, recorder)

            recorder, windows = Recorder(), Windows()
            await drive(
                flow,
                recorder,
                windows,
                concurrency=self.concurrency,
                warmup=0.0,
                seconds=self.seconds,
            )
            await spy.wait()
        profiles["api_flow"] = profiling.summarise(self.workdir / "profile-api.txt")
        pending = int(
            await self.sql(
                "SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'"
            )
        )
        if pending:
            log(
                f"profile: the worker draining {pending} deliveries for {self.seconds:g} s"
            )
            await self.start_worker()
            assert self.worker is not None
            await asyncio.sleep(3.0)  # past its imports and startup
            spy = await self.sample("worker", self.worker)
            await spy.wait()
            self.stop_worker()
            profiles["worker_drain"] = profiling.summarise(
                self.workdir / "profile-worker.txt"
            )
        self.results["profile"] = profiles
        for name, summary in profiles.items():
            layers = ", ".join(
                f"{k} {v:.0%}" for k, v in summary.get("by_layer", {}).items()
            )
            log(f"  {name}: {summary.get('samples', 0)} samples; {layers}")


# --- report -----------------------------------------------------------------------------------


def figures(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's table: every figure next to its in-run baseline, the ratio and the target."""
    rows: list[dict[str, Any]] = []
    bare = results["baseline"]
    bare_rate = bare["calls_per_second"]
    bare_p99 = bare["by_call"]["insert"]["p99_ms"]

    def row(
        key: str | None,
        figure: str,
        baseline: float | None,
        value: float | None,
        unit: str,
        baseline_text: str | None = None,
        value_text: str | None = None,
        value_for_ratio: float | None = None,
        ratio_is: str = "ratio",
    ) -> None:
        r = ratio(value_for_ratio if value_for_ratio is not None else value, baseline)
        target = TARGETS.get(key or "")
        met = None
        if target is not None:
            compared = value if key == "callback_latency" else r
            if compared is not None:
                met = (
                    compared >= target[1]
                    if target[0] == ">="
                    else compared <= target[1]
                )
        rows.append(
            {
                "key": key,
                "figure": figure,
                "unit": unit,
                "baseline": baseline,
                "countersign": value,
                "ratio": r,
                "baseline_text": baseline_text,
                "countersign_text": value_text,
                "target": f"{target[0]} {target[1]:g}{' ms' if key == 'callback_latency' else ''}"
                if target
                else None,
                "met": met,
            }
        )

    create = results["create"]
    row(
        "create",
        "create (two-stage policy, group rules of 5-20, callback URL), calls/s",
        bare_rate,
        create["calls_per_second"],
        "calls/s",
    )
    flow = results["flow"]
    calls_per_flow = flow["calls_per_unit"] or 0.0
    row(
        "flow",
        "full flow (create, approve, fetch next task, approve/reject; 1 in 4 with an "
        "abstention first), calls/s (= flows/s × calls per flow)",
        bare_rate,
        flow["calls_per_second"],
        "calls/s",
        value_text=f"{flow['calls_per_second']:.1f}/s ({flow['units_per_second']:.1f} flows/s × {calls_per_flow:.2f})",
    )
    row(
        "create_p99",
        "create p99",
        bare_p99,
        create["by_call"]["create"]["p99_ms"],
        "ms",
    )
    row(
        "decision_p99",
        "decision p99 (full-flow phase)",
        bare_p99,
        flow["by_call"]["decision"]["p99_ms"],
        "ms",
    )
    if "inbox" in results:
        inbox = results["inbox"]
        row(
            "inbox",
            f"inbox page (`/v1/tasks?status=open`, 25 items, {inbox['open_tasks']:,} open tasks), calls/s",
            bare_rate,
            inbox["calls_per_second"],
            "calls/s",
        )
        read = results["baseline_read"]
        row(
            None,
            "inbox page against the bare 25-row read (`GET /items?limit=25`), calls/s",
            read["calls_per_second"],
            inbox["calls_per_second"],
            "calls/s",
        )
        row(
            None,
            "inbox page p99 (DESIGN: < 10 ms uncontended; here at concurrency 16)",
            read["by_call"]["page"]["p99_ms"],
            inbox["by_call"]["inbox"]["p99_ms"],
            "ms",
        )
    if "callbacks" in results:
        callbacks = results["callbacks"]
        if "latency" in results:
            latency = results["latency"]
            row(
                "callback_latency",
                "final decision → callback received, p50 (one flow at a time)",
                callbacks["bare_single"]["p50_ms"],
                latency["p50_ms"],
                "ms",
            )
        row(
            "callbacks",
            "callbacks delivered per second, one worker",
            callbacks["bare"]["per_second"],
            callbacks["worker"]["per_second"],
            "callbacks/s",
        )
    if "flow_two_processes" in results:
        two = results["flow_two_processes"]
        row(
            None,
            "full flow, two API processes against one, calls/s",
            flow["calls_per_second"],
            two["calls_per_second"],
            "calls/s",
        )
    for point in results.get("memory", []):
        if point["after"].endswith("requests"):
            row(
                None,
                f"API memory (RSS) after {point['api_requests']:,} requests (baseline: the bare app's RSS)",
                point["baseline_rss_mib"],
                point["api_rss_mib"],
                "MiB",
            )
    return rows


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "ms":
        return f"{value:.1f} ms" if value >= 10 else f"{value:.2f} ms"
    if unit == "MiB":
        return f"{value:.0f} MiB"
    return f"{value:.1f}/s" if unit.endswith("/s") else f"{value:.1f} {unit}"


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| figure | baseline | countersign | ratio | target |",
        "|---|---:|---:|---:|---|",
    ]
    for r in rows:
        value = r["countersign_text"] or fmt(r["countersign"], r["unit"])
        if r["unit"] == "calls/s" and r["countersign_text"] is None:
            value = fmt(r["countersign"], r["unit"])
        target = r["target"] or ""
        if r["met"] is not None:
            target += " ✓" if r["met"] else " ✗"
        ratio_text = "n/a" if r["ratio"] is None else f"{r['ratio']:.2f}"
        lines.append(
            f"| {r['figure']} | {fmt(r['baseline'], r['unit'])} | {value} | {ratio_text} | {target} |"
        )
    return "\n".join(lines)


async def run_process(args: list[str], env: dict[str, str]) -> str:
    """Run a command to its end; its stdout (stderr passes through). Fails on a non-zero exit."""
    process = await asyncio.create_subprocess_exec(
        *args, env=env, stdout=asyncio.subprocess.PIPE
    )
    stdout, _ = await process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"bench: {args[0]} exited with {process.returncode}")
    return stdout.decode()


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()


START = "<!-- bench:latest:start -->"
END = "<!-- bench:latest:end -->"
HISTORY = "<!-- bench:history -->"

DOC_HEAD = """# Performance

Measured by `make bench` (bench/run.py; how it works: bench/README.md, ADR 0034). Every figure is
taken in the same run as its baseline and shown as a ratio to it, because on this shared 2-core
machine absolute numbers move with the load from other work; the ratios move far less. Targets are
issue 11's. The block between the markers is replaced by each recorded run; the history keeps one
line per run.

"""


def write_docs(report: dict[str, Any], rows: list[dict[str, Any]]) -> Path:
    path = ROOT / "docs" / "performance.md"
    text = (
        path.read_text()
        if path.exists()
        else DOC_HEAD + f"{START}\n{END}\n\n## History\n\n{HISTORY}\n"
    )
    machine = report["machine"]
    block = "\n".join(
        [
            START,
            f"## Latest run: {report['date']} (commit `{report['commit']}`{', uncommitted changes' if report['dirty'] else ''})",
            "",
            f"{report['options']['seconds']:g} s per figure (throughput figures in "
            f"{report['options']['slices']} interleaved slices, each after "
            f"{report['options']['warmup']:g} s warm-up), "
            f"concurrency {report['options']['concurrency']}, one API process (`countersign serve`, production "
            f"settings), worker stopped except in the callback phases. Machine: {machine['cpus']} CPUs, "
            f"load average {machine['load_before']:.2f} before the run, {machine['load_after']:.2f} after. "
            f"Raw results: `bench/results/{report['file']}`.",
            "",
            markdown_table(rows),
            "",
            END,
        ]
    )
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    text = head + block + tail
    key = {r["key"]: r for r in rows if r["key"]}
    summary = ", ".join(
        f"{name} {key[k]['ratio']:.2f}"
        if k != "callback_latency"
        else f"{name} {key[k]['countersign']:.0f} ms"
        for k, name in (
            ("create", "create"),
            ("flow", "flow"),
            ("create_p99", "create p99"),
            ("decision_p99", "decision p99"),
            ("inbox", "inbox"),
            ("callback_latency", "callback p50"),
            ("callbacks", "callbacks"),
        )
        if k in key and key[k]["ratio"] is not None
    )
    line = f"- {report['date']} `{report['commit']}`: {summary} (load {machine['load_before']:.1f})"
    text = text.replace(HISTORY, f"{HISTORY}\n{line}", 1)
    path.write_text(text)
    return path


async def main(options: argparse.Namespace) -> None:
    started = dt.datetime.now(dt.UTC)
    load_before = load_average()
    bench = Bench(options)
    try:
        await bench.run()
    finally:
        bench.close()
    if not options.keep:
        connection = await asyncpg.connect(f"{PG}/postgres")
        try:
            await connection.execute(
                f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'
            )
        finally:
            await connection.close()
    rows = figures(bench.results)
    name = started.strftime("%Y-%m-%dT%H%MZ")
    report = {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "file": f"{name}.json",
        # The service code measured: this checkout's src/ (check_code_under_test).
        "commit": git("rev-parse", "--short", "HEAD"),
        "checkout": str(ROOT),
        "dirty": bool(git("status", "--porcelain", "--", "src")),
        "options": {
            "seconds": options.seconds,
            "warmup": options.warmup,
            "concurrency": options.concurrency,
            "slices": options.slices,
            "skip": sorted(options.skip),
            "memory_100k": options.memory_100k,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "load_before": load_before,
            "load_after": load_average(),
            "python": sys.version.split()[0],
        },
        "figures": rows,
        "phases": bench.results,
    }
    # Recorded runs (default length, every phase, or --record) are kept in bench/results and
    # go into docs/performance.md; quick and partial runs go to bench/results/scratch (ignored).
    record = options.record or (options.seconds >= DEFAULT_SECONDS and not options.skip)
    results_dir = BENCH / "results" if record else BENCH / "results" / "scratch"
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / report["file"]).write_text(json.dumps(report, indent=2) + "\n")
    sys.stdout.write(markdown_table(rows) + "\n")
    log(f"wrote {(results_dir / report['file']).relative_to(ROOT)}")
    if record and not options.no_docs:
        log(f"wrote {write_docs(report, rows).relative_to(ROOT)}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=DEFAULT_SECONDS,
        help="timed length of each phase",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="untimed start of each phase (default: 2 s, 1 s under 10 s phases)",
    )
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--slices",
        type=int,
        default=2,
        help="interleave baseline and service phases in this many slices each",
    )
    parser.add_argument(
        "--webhook-concurrency",
        type=int,
        default=10,
        help="the bare signed-POST loop's POSTs in flight (default: the worker's per-host bound)",
    )
    parser.add_argument(
        "--skip",
        type=lambda s: [p for p in s.split(",") if p],
        default=[],
        help=f"comma-separated phases to leave out: {', '.join(p for p in PHASES if p not in ('create', 'flow', 'baseline'))}",
    )
    parser.add_argument(
        "--memory-100k",
        action="store_true",
        help="also measure API RSS after 100k requests (about 15 minutes more)",
    )
    parser.add_argument(
        "--record",
        action="store_true",
        help="write docs/performance.md even for a short or partial run",
    )
    parser.add_argument(
        "--no-docs", action="store_true", help="never write docs/performance.md"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="after the figures, sample the API (full flow) and the worker (drain) with py-spy",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the database and the work directory (logs)",
    )
    parser.add_argument(
        "--no-services",
        action="store_true",
        help="do not run scripts/ensure-services.sh",
    )
    parser.add_argument(
        "--address",
        help="this machine's non-loopback address for the issuer and the receiver",
    )
    parser.add_argument("--seed", type=int, default=11)
    options = parser.parse_args(argv)
    if options.warmup is None:
        options.warmup = 2.0 if options.seconds >= 10 else 1.0
    unknown = set(options.skip) - set(PHASES)
    if unknown or set(options.skip) & {"create", "flow", "baseline"}:
        parser.error(
            f"--skip: unknown or required phases {sorted(unknown | (set(options.skip) & {'create', 'flow', 'baseline'}))}"
        )
    return options


if __name__ == "__main__":
    arguments = parse_args()
    asyncio.run(main(arguments))
