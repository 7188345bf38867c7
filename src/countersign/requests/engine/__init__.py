"""The request state machine. Every change of a request's, a stage's or a task's status goes
through here; the services around it (requests, tasks, timers) load, authorize and call it.

- `commands`: what services call: open a request, restart a cycle, cancel, decide, claim,
  reassign, and the timers' work (expiry, resolution retries, SLA breaches, reminders).
- `flow`: which stage group starts next, and how a request or a cycle closes.
- `stages`: one stage's life: resolve and start, skip, reject, settle on its votes, escalate.
- `resolution`: resolve, then lock: approvers that need an outside system are found before the
  command takes its lock (ADR 0027).
- `context`: the locked request and its pinned policy, the hash-chained timeline, new rows.

The rules themselves (tally, stage-group flow, separation of duties, status vocabulary) are pure
functions in `requests/domain.py`; this package applies them to rows.
"""

from countersign.requests.engine.commands import (
    RESOLVER_ACTOR,
    TTL_ACTOR,
    cancel,
    claim_task,
    decision_bar,
    open_request,
    reassign_task,
    record_decision,
    restart_cycle,
    run_due,
)
from countersign.requests.engine.context import (
    SYSTEM_ACTOR,
    Context,
    append_event,
    context_for,
    expiry_of,
    load_policy,
)
from countersign.requests.engine.resolution import Resolutions, run
from countersign.requests.engine.stages import REMINDER_ACTOR, SLA_ACTOR

__all__ = [
    "REMINDER_ACTOR",
    "RESOLVER_ACTOR",
    "SLA_ACTOR",
    "SYSTEM_ACTOR",
    "TTL_ACTOR",
    "Context",
    "Resolutions",
    "append_event",
    "cancel",
    "claim_task",
    "context_for",
    "decision_bar",
    "expiry_of",
    "load_policy",
    "open_request",
    "reassign_task",
    "record_decision",
    "restart_cycle",
    "run",
    "run_due",
]
