"""The bare baseline: FastAPI + asyncpg, one INSERT per POST (the machine's "HTTP call that writes
a row"), served by uvicorn exactly as `countersign serve` serves the service (one process, same
`uvicorn.run` arguments, so the same event loop and HTTP parser).

    python bench/baseline.py --port 8100 --database-url postgresql://root@127.0.0.1:5432/db

- `POST /items`: the JSON body (the driver sends the same 1 KB context the service gets) goes into
  one row, `INSERT ... RETURNING id, created_at`; 201 `{"id", "created_at"}`.
- `GET /items?limit=25`: the newest 25 rows by an index on `created_at` (a bare keyset page, the
  read baseline for the inbox figure).
- `GET /health`: 200 once the pool is open.

The pool has the service's size (`COUNTERSIGN_DB_POOL_SIZE` + `COUNTERSIGN_DB_MAX_OVERFLOW`).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

SCHEMA = """
CREATE TABLE IF NOT EXISTS bench_items (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    body jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ix_bench_items_created_at ON bench_items (created_at DESC, id DESC);
"""


def build_app(database_url: str, pool_min: int, pool_max: int) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(
            database_url, min_size=pool_min, max_size=pool_max
        )
        async with pool.acquire() as connection:
            await connection.execute(SCHEMA)
        app.state.pool = pool
        try:
            yield
        finally:
            await pool.close()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/items", status_code=201)
    async def create(request: Request) -> Response:
        body = await request.body()
        json.loads(body)  # parsed once, as any endpoint would validate its input
        async with request.app.state.pool.acquire() as connection:
            row = await connection.fetchrow(
                "INSERT INTO bench_items (body) VALUES ($1::jsonb) RETURNING id, created_at",
                body.decode(),
            )
        return JSONResponse(
            {"id": str(row["id"]), "created_at": row["created_at"].isoformat()},
            status_code=201,
        )

    @app.get("/items")
    async def page(request: Request, limit: int = 25) -> Response:
        async with request.app.state.pool.acquire() as connection:
            rows = await connection.fetch(
                "SELECT id, body::text AS body, created_at FROM bench_items "
                "ORDER BY created_at DESC, id DESC LIMIT $1",
                limit + 1,
            )
        items: list[dict[str, Any]] = [
            {
                "id": str(row["id"]),
                "body": json.loads(row["body"]),
                "created_at": row["created_at"].isoformat(),
            }
            for row in rows[:limit]
        ]
        return JSONResponse({"items": items, "has_more": len(rows) > limit})

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "UP"}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--database-url", required=True)
    arguments = parser.parse_args()
    pool_size = int(os.environ.get("COUNTERSIGN_DB_POOL_SIZE", "10"))
    overflow = int(os.environ.get("COUNTERSIGN_DB_MAX_OVERFLOW", "20"))
    app = build_app(
        arguments.database_url.replace("postgresql+asyncpg://", "postgresql://"),
        pool_size,
        pool_size + overflow,
    )
    # The same call as `countersign serve` (src/countersign/cli.py), log level as the bench sets it.
    uvicorn.run(
        app,
        host=arguments.host,
        port=arguments.port,
        log_level=os.environ.get("COUNTERSIGN_LOG_LEVEL", "warning").lower(),
        access_log=False,
        log_config=None,
    )


if __name__ == "__main__":
    main()
