"""Inbox benchmark: one approver's task page at 20,000 and at 1,000,000 tasks.

The performance budget (DESIGN.md) says an approver's inbox page is one indexed keyset query on
(assignee, status, created_at, id): p99 under 10 ms, and under 2x slower at a million tasks than at
twenty thousand. This script checks exactly that, with the service's own code:

1. creates (drops first) the PostgreSQL database `countersign_bench` and migrates it with
   `countersign.migrate.upgrade`, so the indexes are the real ones;
2. loads tasks for ~2,000 assignees with COPY (asyncpg), one request (and stage row) per 5 tasks,
   first 20,000 tasks, then the rest up to 1,000,000; the first set is a uniform sample of the
   whole two-year timeline. 10 % of requests are still in review (open tasks); one busy approver
   (`user-0000`) is on 10 % of all requests, everyone else on ~0.25 %;
3. at each size runs `TaskRepository.page` (the inbox query of `GET /v1/tasks`) through a real
   `AsyncSession` on the service's engine, 200 times per case after a warm-up, for a typical
   approver and for the busy one: open tasks, open+claimed, and all statuses (the default
   `assignee=me` inbox), first page and a deep keyset (cursor) page 80 % down the list; and the
   same SQL server-side only (`EXPLAIN ANALYZE` execution time), and `TaskRepository.count`
   (the `total` of page-number paging);
4. prints p50/p99 per case and size, the 1M/20k ratios, and `EXPLAIN (ANALYZE, BUFFERS)` of each
   query for the busy approver at 1M.

Run: `.venv/bin/python bench/inbox.py` (PostgreSQL from `COUNTERSIGN_BENCH_PG_URL`, default
`postgresql+asyncpg://root@127.0.0.1:5432`). It takes a few minutes, mostly loading. `--keep`
leaves the database in place for poking at it with psql. Results: bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from countersign import migrate
from countersign.db import create_engine, create_sessionmaker
from countersign.models import Policy
from countersign.policies import service as policy_service
from countersign.policies.schemas import PolicyIn
from countersign.tasks.repository import TaskFilter, TaskRepository

DATABASE = "countersign_bench"
SMALL = 20_000
LARGE = 1_000_000
TASKS_PER_REQUEST = 5
ASSIGNEES = 2_000
ITERATIONS = 200
WARMUP = 20
PAGE_SIZE = 25
# Deep page: the keyset cursor 80 % of the way down the approver's list.
DEEP_FRACTION = 0.8
INDEX = "ix_tasks_assignee_status_created_at_id"
POLICY_KEY = "bench.inbox"
TIMELINE = timedelta(days=730)
START = datetime(2024, 1, 1, tzinfo=UTC)
CHUNK = 20_000  # requests per COPY round
# user-0000 is a busy approver (a district officer of the largest district): on 10 % of requests.
# Everyone else gets about 500 tasks of 1M; the busy one gets full pages at both sizes.
HEAVY = "user-0000"
HEAVY_SHARE = 0.10

REQUEST_COLUMNS = (
    "id policy_id policy_key policy_version artifact_type artifact_id source_service "
    "source_client requester context metadata status outcome_reason current_stage_order cycle "
    "completed_at last_sequence last_hash created_at updated_at"
).split()
STAGE_COLUMNS = (
    "id request_id policy_stage_id cycle stage_order name status mode mode_value on_empty "
    "resolution_attempts required_approvers started_at completed_at created_at updated_at"
).split()
TASK_COLUMNS = (
    "id request_id request_stage_id stage_order kind assignee required status "
    "completed_at decision_action artifact_type artifact_id policy_key created_at updated_at"
).split()


def server_url() -> str:
    return os.environ.get(
        "COUNTERSIGN_BENCH_PG_URL", "postgresql+asyncpg://root@127.0.0.1:5432"
    )


def plain_dsn(url: str, database: str) -> str:
    return (
        make_url(url)
        .set(drivername="postgresql", database=database)
        .render_as_string(hide_password=False)
    )


async def recreate_database() -> str:
    connection = await asyncpg.connect(plain_dsn(server_url(), "postgres"))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await connection.close()
    return (
        make_url(server_url())
        .set(database=DATABASE)
        .render_as_string(hide_password=False)
    )


async def drop_database() -> None:
    connection = await asyncpg.connect(plain_dsn(server_url(), "postgres"))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    finally:
        await connection.close()


async def create_policy(sessionmaker: async_sessionmaker[AsyncSession]) -> Policy:
    data = PolicyIn.model_validate(
        {
            "policy_key": POLICY_KEY,
            "name": "Inbox benchmark",
            "artifact_type": POLICY_KEY,
            "stages": [
                {
                    "stage_order": 1,
                    "name": "Reviewers",
                    "mode": "any-n",
                    "mode_value": 1,
                    "rules": [{"rule_type": "user", "rule_value": {"user_id": "x"}}],
                }
            ],
        }
    )
    async with sessionmaker() as session, session.begin():
        await policy_service.create_policy(session, data=data, actor="bench")
        return await policy_service.activate(
            session, policy_key=POLICY_KEY, version=1, actor="bench"
        )


@dataclass
class Rows:
    requests: list[tuple[Any, ...]]
    stages: list[tuple[Any, ...]]
    tasks: list[tuple[Any, ...]]


def generate(
    numbers: Iterator[int], total_requests: int, policy: Policy, seed: int
) -> Iterator[Rows]:
    """Requests `numbers` of a timeline of `total_requests`, in COPY-sized chunks.

    Request n is created at START + n/total of two years; 10 % of requests are still in review
    (5 open tasks), the others approved (1 completed, 4 skipped), as in a long-running service.
    """
    stage_id = policy.stages[0].id
    requests: list[tuple[Any, ...]] = []
    stages: list[tuple[Any, ...]] = []
    tasks: list[tuple[Any, ...]] = []
    for n in numbers:
        rng = random.Random(seed * 1_000_003 + n)
        created = START + TIMELINE * (n / total_requests)
        live = rng.random() < 0.10
        request_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        stage_row_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        artifact_id = f"CR-{n:07d}"
        context = json.dumps({"district": f"D{n % 97}", "amount": n % 5000})
        done = None if live else created + timedelta(hours=2)
        requests.append(
            (
                request_id, policy.id, POLICY_KEY, 1, POLICY_KEY, artifact_id,
                "registry-svc", "registry", f"clerk-{n % 50}", context, "{}",
                "in_review" if live else "approved", None, 1 if live else None, 1,
                done, 3, "0" * 64, created, done or created,
            )
        )  # fmt: skip
        stages.append(
            (
                stage_row_id, request_id, stage_id, 1, 1, "Reviewers",
                "active" if live else "approved", "any-n", 1, "block", 0, "[]",
                created, done, created, done or created,
            )
        )  # fmt: skip
        assignees = rng.sample(range(1, ASSIGNEES), TASKS_PER_REQUEST)
        if rng.random() < HEAVY_SHARE:
            assignees[rng.randrange(TASKS_PER_REQUEST)] = 0
        for slot, assignee in enumerate(assignees):
            if live:
                status, action, completed = "open", None, None
            elif slot == 0:
                status, action, completed = "completed", "approve", done
            else:
                status, action, completed = "skipped", None, done
            tasks.append(
                (
                    uuid.UUID(int=rng.getrandbits(128), version=4), request_id,
                    stage_row_id, 1, "approver", f"user-{assignee:04d}", False, status,
                    completed, action, POLICY_KEY, artifact_id, POLICY_KEY, created,
                    completed or created,
                )
            )  # fmt: skip
        if len(requests) >= CHUNK:
            yield Rows(requests, stages, tasks)
            requests, stages, tasks = [], [], []
    if requests:
        yield Rows(requests, stages, tasks)


async def load(url: str, chunks: Iterator[Rows]) -> int:
    connection = await asyncpg.connect(plain_dsn(url, DATABASE))
    loaded = 0
    try:
        for rows in chunks:
            async with connection.transaction():
                await connection.copy_records_to_table(
                    "approval_requests", records=rows.requests, columns=REQUEST_COLUMNS
                )
                await connection.copy_records_to_table(
                    "request_stages", records=rows.stages, columns=STAGE_COLUMNS
                )
                await connection.copy_records_to_table(
                    "tasks", records=rows.tasks, columns=TASK_COLUMNS
                )
            loaded += len(rows.tasks)
        await connection.execute("VACUUM ANALYZE approval_requests")
        await connection.execute("VACUUM ANALYZE request_stages")
        await connection.execute("VACUUM ANALYZE tasks")
        return int(await connection.fetchval("SELECT count(*) FROM tasks"))
    finally:
        await connection.close()


@dataclass(frozen=True)
class Case:
    name: str
    statuses: tuple[str, ...]
    deep: bool


CASES = [
    Case("open, first page", ("open",), deep=False),
    Case("open, deep cursor page", ("open",), deep=True),
    Case("open+claimed, first page", ("open", "claimed"), deep=False),
    Case("all statuses, first page", (), deep=False),
    Case("all statuses, deep cursor page", (), deep=True),
]


async def typical_approver(url: str) -> str:
    """The assignee (other than the busy one) with the median number of tasks."""
    connection = await asyncpg.connect(plain_dsn(url, DATABASE))
    try:
        rows = await connection.fetch(
            "SELECT assignee, count(*) AS n FROM tasks WHERE assignee <> $1 "
            "GROUP BY assignee ORDER BY n, assignee",
            HEAVY,
        )
    finally:
        await connection.close()
    return str(rows[len(rows) // 2]["assignee"])


async def cursor_for(
    sessionmaker: async_sessionmaker[AsyncSession], f: TaskFilter
) -> tuple[datetime, uuid.UUID] | None:
    """The keyset cursor DEEP_FRACTION of the way down the approver's list (None if empty)."""
    async with sessionmaker() as session:
        rows = await TaskRepository(session).page(
            f, offset=None, after=None, limit=10_000_000
        )
    if not rows:
        return None
    task = rows[min(int(len(rows) * DEEP_FRACTION), len(rows) - 1)][0]
    return task.created_at, task.id


async def measure_count(
    sessionmaker: async_sessionmaker[AsyncSession], f: TaskFilter
) -> tuple[float, float]:
    samples: list[float] = []
    for i in range(WARMUP + ITERATIONS):
        async with sessionmaker() as session:
            started = time.perf_counter()
            await TaskRepository(session).count(f)
            elapsed = time.perf_counter() - started
        if i >= WARMUP:
            samples.append(elapsed * 1000)
    return percentiles(samples)


@dataclass
class Timing:
    p50: float
    p99: float
    rows: int
    db_p50: float  # server-side execution time (EXPLAIN ANALYZE), ms
    db_p99: float


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[
        min(len(ordered) - 1, int(len(ordered) * 0.99))
    ]


async def captured_sql(
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    f: TaskFilter,
    after: tuple[datetime, uuid.UUID] | None,
) -> tuple[str, Any]:
    """Exactly the SQL and parameters `TaskRepository.page` sends to the driver."""
    captured: list[tuple[str, Any]] = []

    def capture(
        _conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any
    ) -> None:
        captured.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        async with sessionmaker() as session:
            await TaskRepository(session).page(
                f, offset=None, after=after, limit=PAGE_SIZE + 1
            )
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", capture)
    return captured[-1]


async def explain(engine: AsyncEngine, sql: str, parameters: Any, options: str) -> str:
    async with engine.connect() as connection:
        result = await connection.exec_driver_sql(
            f"EXPLAIN ({options}) {sql}", parameters
        )
        return "\n".join(str(row[0]) for row in result)


async def measure(
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    f: TaskFilter,
    after: tuple[datetime, uuid.UUID] | None,
) -> Timing:
    """End to end through the repository (checkout, BEGIN, query, ORM rows), and server-side."""
    samples: list[float] = []
    rows = 0
    for i in range(WARMUP + ITERATIONS):
        async with sessionmaker() as session:
            repository = TaskRepository(session)
            started = time.perf_counter()
            page = await repository.page(
                f, offset=None, after=after, limit=PAGE_SIZE + 1
            )
            elapsed = time.perf_counter() - started
        rows = len(page)
        if i >= WARMUP:
            samples.append(elapsed * 1000)
    sql, parameters = await captured_sql(engine, sessionmaker, f, after)
    db_samples = []
    for _ in range(ITERATIONS):
        plan = await explain(engine, sql, parameters, "ANALYZE, TIMING OFF")
        line = next(x for x in plan.splitlines() if x.startswith("Execution Time"))
        db_samples.append(float(line.split(":")[1].split()[0]))
    p50, p99 = percentiles(samples)
    db_p50, db_p99 = percentiles(db_samples)
    return Timing(p50=p50, p99=p99, rows=rows, db_p50=db_p50, db_p99=db_p99)


async def run_size(
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    approver: str,
    *,
    with_plans: bool,
) -> tuple[dict[str, Timing], dict[str, tuple[float, float]], dict[str, str]]:
    timings: dict[str, Timing] = {}
    counts: dict[str, tuple[float, float]] = {}
    plans: dict[str, str] = {}
    for case in CASES:
        f = TaskFilter(assignee=approver, statuses=case.statuses)
        after = await cursor_for(sessionmaker, f) if case.deep else None
        timings[case.name] = await measure(engine, sessionmaker, f, after)
        if not case.deep:
            counts[case.name] = await measure_count(sessionmaker, f)
        if with_plans:
            sql, parameters = await captured_sql(engine, sessionmaker, f, after)
            plans[case.name] = await explain(
                engine, sql, parameters, "ANALYZE, BUFFERS"
            )
    return timings, counts, plans


async def count_for(url: str, approver: str) -> tuple[int, int]:
    connection = await asyncpg.connect(plain_dsn(url, DATABASE))
    try:
        row = await connection.fetchrow(
            "SELECT count(*) AS total, count(*) FILTER (WHERE status = 'open') AS open "
            "FROM tasks WHERE assignee = $1",
            approver,
        )
    finally:
        await connection.close()
    assert row is not None
    return int(row["total"]), int(row["open"])


async def server_facts(url: str) -> dict[str, str]:
    connection = await asyncpg.connect(plain_dsn(url, DATABASE))
    try:
        facts = {
            "server_version": str(await connection.fetchval("SHOW server_version"))
        }
        for setting in ("shared_buffers", "work_mem", "effective_cache_size", "jit"):
            facts[setting] = str(await connection.fetchval(f"SHOW {setting}"))
        return facts
    finally:
        await connection.close()


def machine() -> str:
    cpu = platform.processor() or "unknown cpu"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = "?"
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            kib = int(handle.readline().split()[1])
            memory = f"{kib / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    load = ""
    try:
        load = ", load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} CPUs, {memory} RAM, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}{load}"
    )


def report(
    approver: str,
    sizes: dict[int, dict[str, Timing]],
    count_timings: dict[int, dict[str, tuple[float, float]]],
    counts: dict[int, tuple[int, int]],
) -> None:
    out = sys.stdout
    out.write(f"\napprover {approver}: ")
    out.write(
        ", ".join(
            f"at {size:,} tasks {total} tasks ({open_} open)"
            for size, (total, open_) in counts.items()
        )
        + "\n"
    )
    small, large = sizes[SMALL], sizes[LARGE]
    header = (
        f"{'case':32} {'20k p50':>8} {'20k p99':>8} {'1M p50':>8} {'1M p99':>8} "
        f"{'x p50':>6} {'x p99':>6} | {'db 20k p50/p99':>14} {'db 1M p50/p99':>14} "
        f"{'x db':>5} | rows\n"
    )
    out.write(header)
    out.write("-" * len(header) + "\n")
    for case in CASES:
        a, b = small[case.name], large[case.name]
        out.write(
            f"{case.name:32} {a.p50:8.2f} {a.p99:8.2f} {b.p50:8.2f} {b.p99:8.2f} "
            f"{b.p50 / a.p50:6.2f} {b.p99 / a.p99:6.2f} | "
            f"{a.db_p50:6.3f}/{a.db_p99:7.3f} {b.db_p50:6.3f}/{b.db_p99:7.3f} "
            f"{b.db_p50 / a.db_p50:5.2f} | {a.rows}/{b.rows}\n"
        )
    for name, (p50, p99) in count_timings[LARGE].items():
        s50, s99 = count_timings[SMALL][name]
        out.write(
            f"{'count: ' + name.split(',')[0]:32} {s50:8.2f} {s99:8.2f} {p50:8.2f} {p99:8.2f} "
            f"{p50 / s50:6.2f} {p99 / s99:6.2f}\n"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--keep", action="store_true", help="keep countersign_bench")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    total_requests = LARGE // TASKS_PER_REQUEST
    stride = LARGE // SMALL
    url = await recreate_database()
    # The migration runner starts its own event loop: give it a thread.
    await asyncio.to_thread(migrate.upgrade, url)
    engine = create_engine(url)
    sessionmaker = create_sessionmaker(engine)
    log = sys.stdout.write
    try:
        policy = await create_policy(sessionmaker)
        results: dict[str, dict[int, dict[str, Timing]]] = {}
        count_results: dict[str, dict[int, dict[str, tuple[float, float]]]] = {}
        counts: dict[str, dict[int, tuple[int, int]]] = {}
        plans: dict[str, str] = {}

        started = time.perf_counter()
        sample = iter(range(0, total_requests, stride))
        n = await load(url, generate(sample, total_requests, policy, args.seed))
        log(f"loaded {n:,} tasks in {time.perf_counter() - started:.1f}s\n")
        assert n == SMALL, n
        approvers = [await typical_approver(url), HEAVY]
        for approver in approvers:
            counts[approver] = {SMALL: await count_for(url, approver)}
            timings, count_timings, _ = await run_size(
                engine, sessionmaker, approver, with_plans=False
            )
            results[approver] = {SMALL: timings}
            count_results[approver] = {SMALL: count_timings}

        started = time.perf_counter()
        rest = (i for i in range(total_requests) if i % stride != 0)
        n = await load(url, generate(rest, total_requests, policy, args.seed))
        log(f"loaded up to {n:,} tasks in {time.perf_counter() - started:.1f}s\n")
        assert n == LARGE, n
        for approver in approvers:
            counts[approver][LARGE] = await count_for(url, approver)
            timings, count_timings, approver_plans = await run_size(
                engine, sessionmaker, approver, with_plans=approver == HEAVY
            )
            results[approver][LARGE] = timings
            count_results[approver][LARGE] = count_timings
            plans.update(approver_plans)

        log(f"\nmachine: {machine()}\n")
        log(f"postgresql: {json.dumps(await server_facts(url))}\n")
        log(
            f"{ITERATIONS} runs per case after {WARMUP} warm-up runs; page size {PAGE_SIZE} "
            "(fetches 26); milliseconds; end to end through TaskRepository.page on an "
            "AsyncSession, and db = server-side execution time (EXPLAIN ANALYZE)\n"
        )
        for approver in approvers:
            report(
                approver, results[approver], count_results[approver], counts[approver]
            )
        for name, plan in plans.items():
            log(f"\nEXPLAIN (ANALYZE, BUFFERS), {HEAVY} at 1M: {name}\n{plan}\n")
            if INDEX not in plan:
                log(f"!! the plan does not use {INDEX}\n")
    finally:
        await engine.dispose()
        if not args.keep:
            await drop_database()


if __name__ == "__main__":
    asyncio.run(main())
