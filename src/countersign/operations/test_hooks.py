"""Test hooks (`COUNTERSIGN_TEST_HOOKS=true` only; never in production, 404 otherwise)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from countersign.identity.dependencies import AdminDep
from countersign.kit import clock
from countersign.kit.problem import problem_responses
from countersign.wiring import Runtime
from countersign.worker.jobs import run_due_locally

router = APIRouter(prefix="/_test", tags=["test-hooks"])


class ClockIn(BaseModel):
    advance_seconds: float = Field(ge=0)


class ClockOut(BaseModel):
    now: str
    offset_seconds: float


class TickOut(BaseModel):
    ran: dict[str, int]


@router.post("/clock", response_model=ClockOut, responses=problem_responses(403))
async def advance_clock(body: ClockIn, principal: AdminDep) -> ClockOut:
    """Move the service clock forward (an offset; the clock keeps running from there)."""
    moved = clock.advance(body.advance_seconds)
    return ClockOut(now=clock.rfc3339(moved), offset_seconds=clock.offset_seconds())


@router.post("/tick", response_model=TickOut, responses=problem_responses(403))
async def tick(request: Request, principal: AdminDep) -> TickOut:
    """Run every due timer and outbox delivery now, synchronously."""
    runtime: Runtime = request.app.state.runtime
    return TickOut(ran=await run_due_locally(runtime))
