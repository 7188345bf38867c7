"""An example caller service of Countersign: a registry that asks for approval of change requests.

It does the three things every caller does (docs/example-caller.md):

1. **Create** approval requests with its own service token and an `Idempotency-Key` derived from
   the artifact and its revision, so a retried call (a timeout, a redeploy mid-call) replays the
   first answer instead of creating a second request.
2. **Proxy an approver's inbox**: its UI calls `/inbox` with the *approver's* token, which is
   forwarded unchanged to Countersign's `/v1/tasks` and decision endpoints. Countersign decides
   who may see and decide what; the caller never decides on someone's behalf with its own token.
3. **Receive webhooks**, verified with the `standardwebhooks` library against the caller's
   signing secret (`whsec_...`), deduplicated on the event id (delivery is at least once), and
   applied in `sequence` order per request.

State is kept in memory to keep the example short; a real caller stores the request id next to
its artifact and the processed event ids in its database, in the same transaction as the change
the webhook causes.

Configuration (environment):

    COUNTERSIGN_URL          base URL of Countersign, e.g. https://countersign.example
    CALLER_WEBHOOK_SECRET    the caller's signing secret (POST /v1/admin/callers/{caller}/secrets)
    CALLER_PUBLIC_URL        where Countersign reaches this service (the callback URL's base)
    CALLER_TOKEN             a service token, or, to fetch one with client credentials:
    CALLER_TOKEN_URL, CALLER_CLIENT_ID, CALLER_CLIENT_SECRET   (Keycloak's token endpoint)
    CALLER_POLICY_KEY        default registry.change_request
    CALLER_ARTIFACT_TYPE     default registry.change_request

Run: `uvicorn example_caller:app --port 9000`.
"""

from __future__ import annotations

import asyncio
import os
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

import httpx
from fastapi import FastAPI, Header, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

# Hop-by-hop and transport headers are not forwarded back from Countersign's answers.
_PASSED_BACK = ("content-type", "x-next-cursor")


@dataclass
class Config:
    countersign_url: str
    webhook_secret: str
    public_url: str
    token: str = ""
    token_url: str = ""
    client_id: str = ""
    client_secret: str = ""
    policy_key: str = "registry.change_request"
    artifact_type: str = "registry.change_request"

    @classmethod
    def from_env(cls) -> Config:
        return cls(
            countersign_url=os.environ["COUNTERSIGN_URL"].rstrip("/"),
            webhook_secret=os.environ["CALLER_WEBHOOK_SECRET"],
            public_url=os.environ["CALLER_PUBLIC_URL"].rstrip("/"),
            token=os.environ.get("CALLER_TOKEN", ""),
            token_url=os.environ.get("CALLER_TOKEN_URL", ""),
            client_id=os.environ.get("CALLER_CLIENT_ID", ""),
            client_secret=os.environ.get("CALLER_CLIENT_SECRET", ""),
            policy_key=os.environ.get("CALLER_POLICY_KEY", "registry.change_request"),
            artifact_type=os.environ.get(
                "CALLER_ARTIFACT_TYPE", "registry.change_request"
            ),
        )


class ServiceToken:
    """The caller's own token: static, or a client-credentials grant renewed before it expires."""

    def __init__(self, config: Config, http: httpx.AsyncClient) -> None:
        self._config = config
        self._http = http
        self._token = config.token
        self._expires = float("inf") if config.token else 0.0
        self._lock = asyncio.Lock()

    async def get(self) -> str:
        async with self._lock:
            if time.time() < self._expires - 30:
                return self._token
            response = await self._http.post(
                self._config.token_url,
                data={"grant_type": "client_credentials"},
                auth=(self._config.client_id, self._config.client_secret),
            )
            response.raise_for_status()
            body = response.json()
            self._token = str(body["access_token"])
            self._expires = time.time() + float(body.get("expires_in", 60))
            return self._token


@dataclass
class ChangeRequest:
    artifact_id: str
    request_id: str
    status: str
    last_sequence: int = 0
    events: list[str] = field(default_factory=list)


@dataclass
class Store:
    by_artifact: dict[str, ChangeRequest] = field(default_factory=dict)
    by_request: dict[str, ChangeRequest] = field(default_factory=dict)
    seen_events: set[str] = field(default_factory=set)
    refused_webhooks: int = 0


class ChangeRequestIn(BaseModel):
    artifact_id: str = Field(min_length=1, max_length=200)
    # Bump it when the artifact changes: a new revision is a new approval, the same one a retry.
    revision: int = Field(default=1, ge=1)
    context: dict[str, Any] = Field(default_factory=dict)
    requester: str | None = None


class DecisionIn(BaseModel):
    action: str
    comment: str | None = None


def create_app(config: Config | None = None) -> FastAPI:
    settings = config or Config.from_env()
    store = Store()
    webhook = Webhook(settings.webhook_secret)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        async with httpx.AsyncClient(
            base_url=settings.countersign_url, timeout=10.0
        ) as http:
            app.state.http = http
            app.state.token = ServiceToken(settings, http)
            yield

    app = FastAPI(title="Example Countersign caller", lifespan=lifespan)
    app.state.store = store

    def passed_back(response: httpx.Response) -> Response:
        headers = {k: v for k, v in response.headers.items() if k in _PASSED_BACK}
        return Response(response.content, response.status_code, headers=headers)

    # --- 1. create, idempotently -------------------------------------------------------------

    @app.post("/change-requests", status_code=201)
    async def submit(body: ChangeRequestIn, request: Request) -> Response:
        http: httpx.AsyncClient = request.app.state.http
        token = await request.app.state.token.get()
        payload = {
            "policy_key": settings.policy_key,
            "artifact_type": settings.artifact_type,
            "artifact_id": body.artifact_id,
            "context": body.context,
            "callback_url": f"{settings.public_url}/webhooks/countersign",
        }
        if body.requester:
            payload["requester"] = body.requester
        headers = {
            "Authorization": f"Bearer {token}",
            # Same artifact + revision = same key: a retry gets the first answer, byte for byte.
            "Idempotency-Key": f"{body.artifact_id}:{body.revision}",
        }
        response: httpx.Response | None = None
        for attempt in range(3):
            try:
                response = await http.post(
                    "/v1/requests", json=payload, headers=headers
                )
            except httpx.TransportError:
                if attempt == 2:
                    raise
                await asyncio.sleep(0.5 * (attempt + 1))
                continue
            # 409 idempotency_in_flight: the first call is still running; ask again shortly.
            if (
                response.status_code == 409
                and _code(response) == "idempotency_in_flight"
            ):
                await asyncio.sleep(0.2)
                continue
            break
        assert response is not None
        if response.status_code == 201:
            created = response.json()
            record = store.by_request.get(created["request_id"])
            if record is None:
                record = ChangeRequest(
                    body.artifact_id, created["request_id"], created["status"]
                )
                store.by_request[record.request_id] = record
            store.by_artifact[body.artifact_id] = record
        return passed_back(response)

    @app.get("/change-requests/{artifact_id}")
    async def status(artifact_id: str) -> dict[str, Any]:
        record = store.by_artifact.get(artifact_id)
        if record is None:
            raise HTTPException(404, "unknown change request")
        return {
            "artifact_id": record.artifact_id,
            "request_id": record.request_id,
            "status": record.status,
            "events": record.events,
        }

    # --- 2. the approver's inbox, with the approver's token -----------------------------------

    def approver_token(authorization: str | None) -> dict[str, str]:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise HTTPException(
                401, "sign in: the inbox needs the approver's own token"
            )
        return {"Authorization": authorization}

    @app.get("/inbox")
    async def inbox(
        request: Request,
        authorization: Annotated[str | None, Header()] = None,
        status: str = "open",
        page: int = 1,
        page_size: int = 25,
    ) -> Response:
        http: httpx.AsyncClient = request.app.state.http
        response = await http.get(
            "/v1/tasks",
            params={
                "status": status,
                "artifact_type": settings.artifact_type,
                "page": page,
                "page_size": page_size,
            },
            headers=approver_token(authorization),
        )
        return passed_back(response)

    @app.post("/inbox/{task_id}/claim")
    async def claim(
        task_id: str,
        request: Request,
        authorization: Annotated[str | None, Header()] = None,
    ) -> Response:
        http: httpx.AsyncClient = request.app.state.http
        response = await http.post(
            f"/v1/tasks/{task_id}/claim", headers=approver_token(authorization)
        )
        return passed_back(response)

    @app.post("/inbox/{task_id}/decision")
    async def decide(
        task_id: str,
        body: DecisionIn,
        request: Request,
        authorization: Annotated[str | None, Header()] = None,
    ) -> Response:
        http: httpx.AsyncClient = request.app.state.http
        response = await http.post(
            f"/v1/tasks/{task_id}/decision",
            json=body.model_dump(),
            headers=approver_token(authorization),
        )
        return passed_back(response)

    # --- 3. webhooks ----------------------------------------------------------------------------

    @app.post("/webhooks/countersign")
    async def receive(request: Request) -> Response:
        raw = await request.body()
        try:
            # Checks the signature (any of the `v1,` ones: two during a secret rotation) and that
            # the timestamp is within 5 minutes, which stops replays of old deliveries.
            event: dict[str, Any] = webhook.verify(raw, dict(request.headers))
        except WebhookVerificationError:
            store.refused_webhooks += 1
            return JSONResponse({"detail": "invalid signature"}, status_code=401)
        event_id = str(event["event_id"])
        if event_id in store.seen_events:
            return Response(status_code=204)  # a redelivery: already applied
        record = store.by_request.get(str(event["request_id"]))
        if record is None:
            # Not created through this instance (or not stored yet): a real caller looks the
            # request up by id; here it is recorded from the webhook itself.
            record = ChangeRequest(
                str(event["artifact_id"]),
                str(event["request_id"]),
                str(event["status"]),
            )
            store.by_request[record.request_id] = record
            store.by_artifact.setdefault(record.artifact_id, record)
        store.seen_events.add(event_id)
        record.events.append(str(event["event_type"]))
        # Deliveries of one request arrive in sequence order; the check keeps a stale status
        # from overwriting a newer one all the same.
        if int(event["sequence"]) > record.last_sequence:
            record.last_sequence = int(event["sequence"])
            record.status = str(event["status"])
        return Response(status_code=204)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"ok": True, "refused_webhooks": store.refused_webhooks}

    return app


def _code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("code") if isinstance(body, dict) else None


def __getattr__(name: str) -> Any:
    # `uvicorn example_caller:app` builds the app from the environment on first use only, so the
    # module imports without configuration (tests build theirs with `create_app(Config(...))`).
    if name == "app":
        return create_app()
    raise AttributeError(name)
