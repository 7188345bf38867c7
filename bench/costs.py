"""What one request costs PostgreSQL: rows, bytes and statements per command (docs/scaling.md).

    .venv/bin/python bench/costs.py [--flows 500] [--approvers 5] [--json out.json]

Not a throughput benchmark (bench/run.py is) and not part of the test suite. It builds a fresh
database `countersign_bench_costs` on the local PostgreSQL (`COUNTERSIGN_BENCH_PG_URL`, default
postgresql://root@127.0.0.1:5432) with the real migrations, runs the service's app in this process
(dev auth, no in-process worker; the commands go through the real routing, middleware, engine and
database), and measures each phase of a full flow for `--flows` requests:

1. create (two-stage policy: stage 1 any-1 of `--approvers` users, stage 2 one director;
   a ~300-byte context; a callback URL, so every deliverable event writes an outbox row);
2. the first decision (approve stage 1: the other tasks are skipped, stage 2 starts);
3. the final decision (approve stage 2: the request is approved);
4. the deliveries: the outbox drained by the worker's own code (`worker.jobs.run_due_locally`)
   to a loopback receiver that answers 200.

Per phase it reports, divided by the number of commands (or deliveries): rows added and bytes
added per table (`pg_total_relation_size`: heap, indexes and TOAST, so updated rows count their
dead versions until vacuum reclaims them; autovacuum is off for the database meanwhile), SQL
statements (SQLAlchemy's `before_cursor_execute` on the app's engine), and WAL bytes
(pg_walinspect: the records of the phase that touch this database's relations, with the commit
records of their transactions; other databases on the server are left out; full-page images after
a checkpoint are included, as they are in production), and the CPU time of the PostgreSQL backends serving the app's connections
(`/proc/<pid>/stat`, Linux; the machine's load makes it larger, not smaller). It also counts the statements of one inbox page (`GET /v1/tasks`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from sqlalchemy import event  # noqa: E402

from countersign import migrate  # noqa: E402
from countersign.app import create_app  # noqa: E402
from countersign.config import Settings  # noqa: E402
from countersign.worker import jobs  # noqa: E402

PG = os.environ.get("COUNTERSIGN_BENCH_PG_URL", "postgresql://root@127.0.0.1:5432")
DATABASE = "countersign_bench_costs"
TABLES = [
    "approval_requests",
    "request_stages",
    "tasks",
    "decisions",
    "events",
    "webhook_deliveries",
    "webhook_attempts",
    "idempotency_keys",
]
CALLER = "registry"
POLICY_KEY = "bench.costs"
CONTEXT = {
    "district": "D1",
    "amount": 125000,
    "beneficiary": {"id": "BEN-0001234567", "name": "A. Example", "household_size": 5},
    "change": {
        "field": "bank_account",
        "from": "XX00 0000 0000 0000",
        "to": "XX99 9999 9999 9999",
    },
    "reason": "Beneficiary changed banks; documents verified at the district office.",
}


class _Quiet(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None


@contextmanager
def receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/callback"
    finally:
        server.shutdown()
        server.server_close()


async def fresh_database() -> str:
    connection = await asyncpg.connect(f"{PG}/postgres")
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await connection.close()
    return f"{PG.replace('postgresql://', 'postgresql+asyncpg://')}/{DATABASE}"


class Snapshot:
    def __init__(
        self,
        rows: dict[str, int],
        sizes: dict[str, int],
        wal: str,
        cpu: dict[int, float],
    ) -> None:
        self.rows, self.sizes, self.wal, self.cpu = rows, sizes, wal, cpu


TICKS = os.sysconf("SC_CLK_TCK")


def backend_cpu_seconds(pid: int) -> float:
    """User + system CPU of one PostgreSQL backend process (Linux /proc; 0 when unreadable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # After the command name: state is field 3, utime 14 and stime 15 (1-based, man proc(5)).
    return (int(fields[11]) + int(fields[12])) / TICKS


async def snapshot(connection: asyncpg.Connection) -> Snapshot:
    rows: dict[str, int] = {}
    sizes: dict[str, int] = {}
    for table in TABLES:
        rows[table] = await connection.fetchval(f"SELECT count(*) FROM {table}")
        sizes[table] = await connection.fetchval(
            "SELECT pg_total_relation_size($1::regclass)", table
        )
    wal = await connection.fetchval("SELECT pg_current_wal_flush_lsn()::text")
    # The backends serving the app's pool (not this measuring connection).
    pids = await connection.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        DATABASE,
    )
    cpu = {row["pid"]: backend_cpu_seconds(row["pid"]) for row in pids}
    return Snapshot(rows, sizes, str(wal), cpu)


async def wal_of_this_database(
    connection: asyncpg.Connection, start: str, end: str
) -> int:
    """Bytes of WAL written for this database between two LSNs (pg_walinspect): the records
    that touch one of its relations, and every record of the transactions that wrote them
    (commits). Other databases on the same server, which the tests and the other benchmarks
    use at the same time, are left out."""
    oid = await connection.fetchval(
        "SELECT oid FROM pg_database WHERE datname = current_database()"
    )
    total = await connection.fetchval(
        """
        WITH records AS (
            SELECT xid, record_length, block_ref FROM pg_get_wal_records_info($1::text::pg_lsn, $2::text::pg_lsn)
        ), ours AS (
            SELECT DISTINCT xid FROM records
            WHERE block_ref LIKE '%/' || $3 || '/%' AND xid <> '0'
        )
        SELECT coalesce(sum(record_length), 0)::bigint FROM records
        WHERE block_ref LIKE '%/' || $3 || '/%' OR xid IN (SELECT xid FROM ours)
        """,
        start,
        end,
        str(oid),
    )
    return int(total)


def delta(before: Snapshot, after: Snapshot, per: int, wal: int) -> dict[str, Any]:
    rows = {
        t: round((after.rows[t] - before.rows[t]) / per, 2)
        for t in TABLES
        if after.rows[t] != before.rows[t]
    }
    sizes = {
        t: round((after.sizes[t] - before.sizes[t]) / per)
        for t in TABLES
        if after.sizes[t] != before.sizes[t]
    }
    return {
        "rows": rows,
        "bytes": sizes,
        "bytes_total": round(
            sum(after.sizes[t] - before.sizes[t] for t in TABLES) / per
        ),
        "wal_bytes": round(wal / per),
        # Milliseconds of PostgreSQL backend CPU per command (the app's connections only).
        "pg_cpu_ms": round(
            1000
            * sum(cpu - before.cpu.get(pid, 0.0) for pid, cpu in after.cpu.items())
            / per,
            3,
        ),
    }


class WalMeter:
    """Sums this database's WAL while a phase runs, reading it every half second: on a busy
    server the segments of a long phase are recycled before the phase ends."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection
        self.total = 0
        self.last = ""
        self._task: asyncio.Task[None] | None = None

    async def _flush_lsn(self) -> str:
        return str(
            await self.connection.fetchval("SELECT pg_current_wal_flush_lsn()::text")
        )

    async def _tick(self) -> None:
        now = await self._flush_lsn()
        self.total += await wal_of_this_database(self.connection, self.last, now)
        self.last = now

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            await self._tick()

    async def start(self) -> None:
        self.total = 0
        self.last = await self._flush_lsn()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> int:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._tick()
        return self.total


@contextlib.asynccontextmanager
async def measured_phase(
    connection: asyncpg.Connection, results: dict[str, Any], name: str, app: Any
) -> AsyncIterator[Phase]:
    """Snapshot, count statements and meter WAL around one phase; store its figures per command
    (`Phase.per`, set by the phase) under `results[name]`."""
    current = Phase()
    before = await snapshot(connection)
    meter = WalMeter(connection)
    await meter.start()
    with counting(app) as statements:
        yield current
    wal = await meter.stop()
    after = await snapshot(connection)
    results[name] = {
        **delta(before, after, current.per, wal),
        "statements": round(len(statements) / current.per, 2),
        **current.extra,
    }


@dataclass
class Phase:
    per: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


@contextmanager
def counting(app: Any) -> Iterator[list[str]]:
    seen: list[str] = []
    engine = app.state.engine.sync_engine

    def record(
        conn: Any, cursor: Any, statement: str, *args: Any, **kwargs: Any
    ) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def measure(flows: int, approvers: int) -> dict[str, Any]:
    url = await fresh_database()
    await asyncio.to_thread(migrate.upgrade, url)
    raw = await asyncpg.connect(f"{PG}/{DATABASE}")
    await raw.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
    for table in TABLES:
        await raw.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = off)")
    data_dir = Path(tempfile.mkdtemp(prefix="countersign-costs-"))
    settings = Settings(
        env="testing",
        database_url=url,
        auth_mode="dev",
        data_dir=data_dir,
        db_pool_size=5,
        db_max_overflow=5,
    )
    app = create_app(settings, in_process_worker=False)
    results: dict[str, Any] = {
        "flows": flows,
        "approvers_stage_1": approvers,
        "context_bytes": len(json.dumps(CONTEXT, separators=(",", ":"))),
    }
    async with app.router.lifespan_context(app):
        issuer = app.state.verifier.dev_issuer

        def bearer(sub: str, **kw: Any) -> dict[str, str]:
            return {
                "Authorization": f"Bearer {issuer.mint(sub, ttl_seconds=7200, **kw)}"
            }

        admin = bearer("ops", roles=["AWE_ADMIN"])
        caller = bearer("registry-svc", azp=CALLER)
        officers = [f"officer-{i}" for i in range(approvers)]
        tokens = {name: bearer(name) for name in [*officers, "director"]}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://countersign.bench", timeout=60
        ) as client:
            assert (
                await client.post(
                    f"/v1/admin/callers/{CALLER}/secrets", json={}, headers=admin
                )
            ).status_code == 201
            policy = {
                "policy_key": POLICY_KEY,
                "name": "Costs",
                "artifact_type": POLICY_KEY,
                "stages": [
                    {
                        "stage_order": 1,
                        "name": "Officers",
                        "mode": "any-n",
                        "mode_value": 1,
                        "rules": [
                            {"rule_type": "user", "rule_value": {"user_id": u}}
                            for u in officers
                        ],
                    },
                    {
                        "stage_order": 2,
                        "name": "Director",
                        "mode": "all",
                        "rules": [
                            {"rule_type": "user", "rule_value": {"user_id": "director"}}
                        ],
                    },
                ],
            }
            assert (
                await client.post("/v1/policies", json=policy, headers=admin)
            ).status_code == 201
            activated = await client.post(
                f"/v1/policies/{POLICY_KEY}/versions/1/activate", headers=admin
            )
            assert activated.status_code == 200, activated.text

            with receiver() as callback:
                # Warm-up (caches, prepared statements), not measured; its webhooks drained.
                for i in range(5):
                    await client.post(
                        "/v1/requests",
                        json={
                            "policy_key": POLICY_KEY,
                            "artifact_type": POLICY_KEY,
                            "artifact_id": f"warm-{i}",
                            "context": CONTEXT,
                            "callback_url": callback,
                        },
                        headers={**caller, "Idempotency-Key": str(uuid.uuid4())},
                    )
                await jobs.run_due_locally(app.state.runtime)

                first_tasks: list[dict[str, Any]] = []
                started = time.monotonic()
                async with measured_phase(raw, results, "create", app) as current:
                    current.per = flows
                    for i in range(flows):
                        response = await client.post(
                            "/v1/requests",
                            json={
                                "policy_key": POLICY_KEY,
                                "artifact_type": POLICY_KEY,
                                "artifact_id": f"cr-{i}",
                                "context": CONTEXT,
                                "callback_url": callback,
                            },
                            headers={**caller, "Idempotency-Key": str(uuid.uuid4())},
                        )
                        assert response.status_code == 201, response.text
                        first_tasks.append(response.json()["tasks"][0])
                    current.extra["seconds"] = round(time.monotonic() - started, 1)

                with counting(app) as statements:
                    page = await client.get(
                        "/v1/tasks",
                        params={"status": "open"},
                        headers=tokens[officers[0]],
                    )
                assert page.status_code == 200, page.text
                results["inbox_page_statements"] = len(statements)

                async def decide(task: dict[str, Any]) -> dict[str, Any]:
                    response = await client.post(
                        f"/v1/tasks/{task['id']}/decision",
                        json={"action": "approve", "comment": "checked"},
                        headers=tokens[task["assignee"]],
                    )
                    assert response.status_code == 201, response.text
                    decided: dict[str, Any] = response.json()
                    return decided

                async with measured_phase(
                    raw, results, "decision_stage_1", app
                ) as current:
                    current.per = flows
                    for task in first_tasks:
                        await decide(task)

                director_tasks: list[dict[str, Any]] = []
                cursor_page = 1
                while True:
                    listed = await client.get(
                        "/v1/tasks",
                        params={
                            "status": "open",
                            "page": cursor_page,
                            "page_size": 100,
                        },
                        headers=tokens["director"],
                    )
                    items = listed.json()["items"]
                    director_tasks += items
                    if len(items) < 100:
                        break
                    cursor_page += 1
                final_tasks = [
                    t for t in director_tasks if not t["artifact_id"].startswith("warm")
                ]
                async with measured_phase(
                    raw, results, "decision_final", app
                ) as current:
                    current.per = len(final_tasks)
                    for task in final_tasks:
                        result = await decide(task)
                        assert result["request_status"] == "approved"

                pending = await raw.fetchval(
                    "SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'"
                )
                async with measured_phase(raw, results, "deliveries", app) as current:
                    current.per = max(pending, 1)
                    done = 0
                    while done < pending:
                        ran = await jobs.run_due_locally(app.state.runtime)
                        if not ran.get("webhooks"):
                            break
                        done += ran["webhooks"]
                    current.extra.update(
                        count=pending, per_flow=round(pending / flows, 2)
                    )
                results["deliveries"]["delivered_total"] = await raw.fetchval(
                    "SELECT count(*) FROM webhook_deliveries WHERE status = 'delivered'"
                )
                body_bytes = await raw.fetchval(
                    "SELECT avg(octet_length(body))::int FROM webhook_deliveries"
                )
                results["delivery_body_bytes_avg"] = body_bytes
                event_payload = await raw.fetchval(
                    "SELECT avg(pg_column_size(e.*))::int FROM events e"
                )
                results["event_row_bytes_avg"] = event_payload
        totals: dict[str, int] = {}
        for table in TABLES:
            totals[table] = await raw.fetchval(
                "SELECT pg_total_relation_size($1::regclass)", table
            )
        results["table_bytes_per_flow_at_end"] = {
            t: round(v / (flows + 5)) for t, v in totals.items()
        }
        # Live data only: the tables rewritten without dead row versions (what a vacuumed table
        # keeps per flow; space freed by vacuum is reused by later rows).
        for table in TABLES:
            await raw.execute(f"VACUUM FULL {table}")
        compact: dict[str, int] = {}
        for table in TABLES:
            compact[table] = await raw.fetchval(
                "SELECT pg_total_relation_size($1::regclass)", table
            )
        results["table_bytes_per_flow_vacuumed"] = {
            t: round(v / (flows + 5)) for t, v in compact.items()
        }
    await raw.close()
    return results


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"flows: {results['flows']}, stage 1 approvers: {results['approvers_stage_1']}, "
        f"context: {results['context_bytes']} bytes",
        "",
        "| phase | statements | rows added (per command) | bytes added | WAL bytes | PostgreSQL CPU |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for phase in ("create", "decision_stage_1", "decision_final", "deliveries"):
        figures = results[phase]
        rows = ", ".join(f"{t} {n:g}" for t, n in figures["rows"].items()) or "-"
        lines.append(
            f"| {phase} | {figures['statements']:g} | {rows} | {figures['bytes_total']:,} | "
            f"{figures['wal_bytes']:,} | {figures['pg_cpu_ms']:g} ms |"
        )
    lines.append("")
    lines.append(f"inbox page: {results['inbox_page_statements']} statements")
    for name in ("table_bytes_per_flow_at_end", "table_bytes_per_flow_vacuumed"):
        sizes = results[name]
        lines.append(
            f"{name}: {sum(sizes.values()):,} ("
            + ", ".join(f"{t} {n:,}" for t, n in sizes.items())
            + ")"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=500)
    parser.add_argument("--approvers", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    results = asyncio.run(measure(args.flows, args.approvers))
    print(json.dumps(results, indent=2))  # noqa: T201
    print(markdown(results))  # noqa: T201
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
