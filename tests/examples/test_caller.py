"""The example caller (examples/caller/) against a real running Countersign, the whole loop.

Countersign runs as a deployment does (tests/operations/stack.py: `countersign serve`, a
`countersign worker`, PostgreSQL, Redis, OIDC tokens); the example runs as its own process under
uvicorn, configured by its environment as its README says. Then, only through the example:

- a change request is submitted twice with the same revision (one Countersign request, the same
  answer: the Idempotency-Key), and the approvers' inboxes list their tasks only with their own
  tokens (no token: 401 from the example, someone else's token: not their task);
- two approvers decide through the example's inbox proxy, and the example learns the outcome
  from verified webhooks alone (every delivery answered 2xx, none left pending);
- a tampered body, a wrong secret, missing headers and a stale timestamp are refused (401) and
  change nothing; a correctly signed redelivery of an event already applied changes nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from tests.fixtures.server import LiveServer, free_port
from tests.operations.stack import ROOT, Stack

pytestmark = pytest.mark.slow

CALLER = "registry"
EXAMPLE_DIR = ROOT / "examples" / "caller"
DEADLINE_SECONDS = 30.0
POLICY = {
    "policy_key": "registry.change_request",
    "name": "Change request approval",
    "artifact_type": "registry.change_request",
    "forbid_self_approval": True,
    "stages": [
        {
            "stage_order": 1,
            "name": "District officers",
            "mode": "any-n",
            "mode_value": 1,
            "rules": [
                {"rule_type": "user", "rule_value": {"user_id": "alice"}},
                {"rule_type": "user", "rule_value": {"user_id": "bob"}},
            ],
        },
        {
            "stage_order": 2,
            "name": "Director",
            "mode": "all",
            "rules": [{"rule_type": "user", "rule_value": {"user_id": "carol"}}],
        },
    ],
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Loop:
    """The running stack, the caller's secret and the example caller process."""

    def __init__(self, stack: Stack, secret: str, example: LiveServer) -> None:
        self.stack = stack
        self.secret = secret
        self.example = example
        self.admin = stack.issuer.token("ops", roles=["AWE_ADMIN"])


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    directory: Path = tmp_path_factory.mktemp("example-caller")
    with Stack.start(directory, apis=1, workers=1) as stack:
        api = stack.apis[0].base_url
        admin = stack.issuer.token("ops", roles=["AWE_ADMIN"])
        with httpx.Client(base_url=api, headers=bearer(admin), timeout=30) as client:
            secret = client.post(f"/v1/admin/callers/{CALLER}/secrets", json={})
            assert secret.status_code == 201, secret.text
            created = client.post("/v1/policies", json=POLICY)
            assert created.status_code == 201, created.text
            activated = client.post(
                f"/v1/policies/{POLICY['policy_key']}/versions/1/activate"
            )
            assert activated.status_code == 200, activated.text
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CALLER_")}
        env.update(
            {
                "COUNTERSIGN_URL": api,
                "CALLER_WEBHOOK_SECRET": secret.json()["secret"],
                "CALLER_PUBLIC_URL": f"http://127.0.0.1:{port}",
                "CALLER_TOKEN": stack.issuer.token("registry-svc", azp=CALLER),
            }
        )
        log_path = directory / "example-caller.log"
        log_file = log_path.open("wb")
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "example_caller:app",
                "--app-dir",
                str(EXAMPLE_DIR),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-access-log",
            ],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        example = LiveServer(process, f"http://127.0.0.1:{port}", log_path, log_file)
        try:
            wait_until_up(example)
            yield Loop(stack, secret.json()["secret"], example)
        finally:
            example.stop()


def wait_until_up(example: LiveServer) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        if example.process.poll() is not None:
            raise AssertionError(f"the example caller exited:\n{example.log()}")
        try:
            if httpx.get(f"{example.base_url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"the example caller did not start:\n{example.log()}")
        time.sleep(0.1)


def wait_for_status(
    client: httpx.Client, artifact_id: str, status: str
) -> dict[str, Any]:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        seen: dict[str, Any] = client.get(f"/change-requests/{artifact_id}").json()
        if seen["status"] == status:
            return seen
        if time.monotonic() > deadline:
            raise AssertionError(
                f"status {seen} is not {status} within {DEADLINE_SECONDS}s"
            )
        time.sleep(0.1)


def signed(
    secret: str, body: dict[str, Any], *, at: datetime | None = None
) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body, separators=(",", ":")).encode()
    moment = at or datetime.now(UTC)
    event_id = str(body["event_id"])
    return raw, {
        "content-type": "application/json",
        "webhook-id": event_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": Webhook(secret).sign(event_id, moment, raw),
    }


def test_the_whole_loop_through_the_example_caller(loop: Loop) -> None:
    issuer = loop.stack.issuer
    tokens = {name: issuer.token(name) for name in ("alice", "bob", "carol")}
    with httpx.Client(base_url=loop.example.base_url, timeout=30) as example:
        change = {
            "artifact_id": "cr-42",
            "revision": 1,
            "context": {"amount": 500},
            "requester": "frank",
        }
        first = example.post("/change-requests", json=change)
        assert first.status_code == 201, first.text + loop.example.log()
        again = example.post("/change-requests", json=change)
        assert (again.status_code, again.content) == (201, first.content)
        request_id = first.json()["request_id"]

        assert example.get("/inbox").status_code == 401
        carol_now = example.get("/inbox", headers=bearer(tokens["carol"])).json()
        assert carol_now["items"] == []  # stage 2 has not started
        alice_inbox = example.get("/inbox", headers=bearer(tokens["alice"]))
        assert alice_inbox.status_code == 200, alice_inbox.text
        (task,) = [
            t for t in alice_inbox.json()["items"] if t["request_id"] == request_id
        ]
        # bob may not decide alice's task with his own token.
        forbidden = example.post(
            f"/inbox/{task['id']}/decision",
            json={"action": "approve"},
            headers=bearer(tokens["bob"]),
        )
        assert forbidden.status_code in (403, 404), forbidden.text
        decided = example.post(
            f"/inbox/{task['id']}/decision",
            json={"action": "approve", "comment": "Looks right"},
            headers=bearer(tokens["alice"]),
        )
        assert decided.status_code == 201, decided.text

        (task,) = example.get("/inbox", headers=bearer(tokens["carol"])).json()["items"]
        decided = example.post(
            f"/inbox/{task['id']}/decision",
            json={"action": "approve"},
            headers=bearer(tokens["carol"]),
        )
        assert decided.status_code == 201, decided.text
        assert decided.json()["request_status"] == "approved"

        seen = wait_for_status(example, "cr-42", "approved")
        assert seen["request_id"] == request_id
        assert seen["events"] == [
            "request_created",
            "stage_started",
            "stage_completed",
            "stage_started",
            "stage_completed",
            "request_approved",
        ]

        # Countersign's side: every delivery answered 2xx by the example.
        with httpx.Client(
            base_url=loop.stack.apis[0].base_url, headers=bearer(loop.admin)
        ) as cs:
            deliveries = cs.get(
                "/v1/admin/deliveries", params={"request_id": request_id}
            ).json()
            assert len(deliveries) == len(seen["events"])
            assert {d["status"] for d in deliveries} == {"delivered"}
            events = cs.get(f"/v1/requests/{request_id}/events").json()
        approved_event = events[-1]
        assert approved_event["event_type"] == "request_approved"

        # Forged and tampered webhooks are refused and change nothing.
        forged = {
            "event_id": str(uuid.uuid4()),
            "event_type": "request_rejected",
            "request_id": request_id,
            "artifact_type": POLICY["artifact_type"],
            "artifact_id": "cr-42",
            "status": "rejected",
            "stage_order": 2,
            "actor": "mallory",
            "sequence": 99,
            "occurred_at": datetime.now(UTC).isoformat(),
            "data": {},
        }
        raw, headers = signed(loop.secret, {**forged, "status": "approved"})
        tampered = raw.replace(b'"status":"approved"', b'"status":"rejected"')
        assert tampered != raw
        attempts = {
            "tampered body": (tampered, headers),
            "wrong secret": signed("whsec_" + "A" * 43 + "=", forged),
            "no signature": (raw, {"content-type": "application/json"}),
            "stale timestamp": signed(
                loop.secret, forged, at=datetime.now(UTC) - timedelta(minutes=10)
            ),
        }
        for name, (body, attempt_headers) in attempts.items():
            refused = example.post(
                "/webhooks/countersign", content=body, headers=attempt_headers
            )
            assert refused.status_code == 401, (name, refused.status_code, refused.text)
        assert example.get("/healthz").json()["refused_webhooks"] == len(attempts)

        # A genuine redelivery (same event id, correctly signed) is acknowledged and not re-applied.
        redelivery = {
            "event_id": approved_event["id"],
            "event_type": "request_approved",
            "request_id": request_id,
            "artifact_type": POLICY["artifact_type"],
            "artifact_id": "cr-42",
            "status": "approved",
            "sequence": approved_event["sequence"],
        }
        body, redelivery_headers = signed(loop.secret, redelivery)
        acknowledged = example.post(
            "/webhooks/countersign", content=body, headers=redelivery_headers
        )
        assert acknowledged.status_code == 204
        after = example.get("/change-requests/cr-42").json()
        assert after == seen
