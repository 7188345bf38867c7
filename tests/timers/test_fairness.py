"""Timer sweeps are fair: the most overdue first, and a few broken requests never starve the rest.

A "broken" request here is a real one whose row was corrupted (its next stage has a status no
code knows), so handling its SLA breach raises every time, as a bug or a bad row would. The sweep
is driven through the worker's own `run_timers` on the API's runtime (no worker process needed),
with a small batch so that three broken requests would fill it.
"""

from __future__ import annotations

import uuid

from fastapi import FastAPI
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from countersign.models import ApprovalRequest, RequestStage
from countersign.timers import service as timer_service
from countersign.worker.jobs import run_timers
from tests.fixtures.flows import Flow, stage
from tests.fixtures.worker import SharedClock

HOUR = 3600.0


async def five_requests(flow: Flow, service_clock: SharedClock) -> list[str]:
    """Five requests a minute apart, each with a 1 h SLA on stage 1 (`auto_approve`)."""
    await flow.publish(
        [stage(1, ["alice"], sla_hours=1, on_breach="auto_approve"), stage(2, ["bob"])]
    )
    ids = []
    for index in range(5):
        ids.append((await flow.start(artifact_id=f"a-{index}"))["request_id"])
        service_clock.advance(60)
    return ids


async def test_the_most_overdue_request_is_swept_first(
    flow: Flow, service_clock: SharedClock, session: AsyncSession
) -> None:
    ids = await five_requests(flow, service_clock)
    service_clock.advance(2 * HOUR)

    due = await timer_service.due_request_ids(session)
    await session.commit()

    assert [str(i) for i in due] == ids
    assert [
        str(i) for i in await timer_service.due_request_ids(session, limit=2)
    ] == ids[:2]


async def test_broken_requests_are_backed_off_and_never_starve_the_others(
    flow: Flow, service_clock: SharedClock, session: AsyncSession, hooks_app: FastAPI
) -> None:
    ids = await five_requests(flow, service_clock)
    broken, healthy = ids[:3], ids[3:]  # the broken ones are the most overdue
    await session.execute(
        update(RequestStage)
        .where(
            RequestStage.request_id.in_([uuid.UUID(i) for i in broken]),
            RequestStage.stage_order == 2,
        )
        .values(status="corrupt")
    )
    await session.commit()
    service_clock.advance(2 * HOUR)
    runtime = hooks_app.state.runtime

    first = await run_timers(runtime, limit=3)  # takes the three broken ones: all fail
    second = await run_timers(runtime, limit=3)  # they are backed off: the others' turn

    assert first["sla_breaches"] == 0
    assert second["sla_breaches"] == 2
    for request_id in healthy:
        assert await flow.stage_status(request_id) == {1: "approved", 2: "active"}
    rows = (
        await session.execute(
            select(ApprovalRequest).where(
                ApprovalRequest.id.in_([uuid.UUID(i) for i in ids])
            )
        )
    ).scalars()
    failures = {str(r.id): r.timer_failures for r in rows}
    await session.commit()
    assert failures == {**dict.fromkeys(broken, 1), **dict.fromkeys(healthy, None)}

    # Backed off 30 s, then tried again (and backed off longer) when that has passed.
    assert await run_timers(runtime, limit=3) == first | {"sla_breaches": 0}
    service_clock.advance(31)
    await run_timers(runtime, limit=3)
    again = (
        await session.execute(
            select(ApprovalRequest.timer_failures).where(
                ApprovalRequest.id == uuid.UUID(broken[0])
            )
        )
    ).scalar_one()
    await session.commit()
    assert again == 2
