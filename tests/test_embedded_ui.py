"""The admin UI's service side on the embedded default: `countersign serve` on SQLite, dev auth,
the in-process worker, run as the installed console script (like `tests/test_embedded.py`).

One walk through what the UI does: read `/v1/config`, sign in through `POST /v1/dev/token`, load
the UI from `/admin`, author and publish a policy, replay a draft, follow a request to its end,
open its signed diagram link without a token and download its evidence.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.fixtures.server import wait_until_healthy
from tests.test_embedded import COUNTERSIGN, Server, child_env, free_port

pytestmark = pytest.mark.slow

KEY = "embedded.ui"
INDEX = "<!doctype html><title>Countersign admin</title><div id=root></div>"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    cwd = tmp_path_factory.mktemp("embedded-ui")
    build = tmp_path_factory.mktemp("admin-build")
    (build / "index.html").write_text(INDEX, encoding="utf-8")
    (build / "assets").mkdir()
    (build / "assets" / "app-1a2b.js").write_text("export {};", encoding="utf-8")
    port = free_port()
    log_path = cwd.parent / f"{cwd.name}.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [str(COUNTERSIGN), "serve", "--port", str(port)],
        cwd=cwd,
        env={**child_env(), "COUNTERSIGN_ADMIN_UI_DIR": str(build)},
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    running = Server(process, f"http://127.0.0.1:{port}", log_path, log_file)
    try:
        wait_until_healthy(running)
        yield running
    finally:
        running.stop()


def sign_in(client: httpx.Client, sub: str, *roles: str) -> dict[str, str]:
    response = client.post("/v1/dev/token", json={"sub": sub, "roles": list(roles)})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def policy(stage_two_user: str) -> dict[str, Any]:
    return {
        "policy_key": KEY,
        "name": "Embedded UI walk",
        "artifact_type": KEY,
        "stages": [
            {
                "stage_order": 1,
                "name": "Officers",
                "mode": "any-n",
                "mode_value": 1,
                "rules": [{"rule_type": "user", "rule_value": {"user_id": "olga"}}],
            },
            {
                "stage_order": 2,
                "name": "Director",
                "mode": "any-n",
                "mode_value": 1,
                "rules": [
                    {"rule_type": "user", "rule_value": {"user_id": stage_two_user}}
                ],
            },
        ],
    }


def test_the_ui_walk_on_sqlite(server: Server) -> None:
    with httpx.Client(base_url=server.base_url, timeout=10.0) as client:
        config = client.get("/v1/config").json()
        assert (config["auth_mode"], config["dev_tokens"], config["oidc"]) == (
            "dev",
            True,
            None,
        )
        assert config["database_url"].startswith("sqlite")

        page = client.get("/admin/requests/some-id")
        asset = client.get("/admin/assets/app-1a2b.js")
        assert (page.status_code, page.text) == (200, INDEX)
        assert asset.headers["cache-control"].endswith("immutable")

        admin = sign_in(client, "ada", config["role_admin"])
        caller = sign_in(client, "registry-svc")
        assert (
            client.post("/v1/policies", json=policy("dan"), headers=admin).status_code
            == 201
        )
        assert (
            client.post(
                f"/v1/policies/{KEY}/versions/1/activate", headers=admin
            ).status_code
            == 200
        )
        created = client.post(
            "/v1/requests",
            json={"artifact_type": KEY, "artifact_id": "e-1", "context": {}},
            headers=caller,
        )
        assert created.status_code == 201, created.text
        request_id = created.json()["request_id"]

        draft = client.put(f"/v1/policies/{KEY}", json=policy("dora"), headers=admin)
        assert draft.status_code == 201, draft.text
        replay = client.post(
            f"/v1/policies/{KEY}/versions/2/replay", json={"limit": 10}, headers=admin
        ).json()
        assert replay["compared_with"] == 1
        [change] = replay["changed"]
        assert change["differences"][0]["after"] == ["dora"]

        stuck = client.get("/v1/requests", params={"stuck": "true"}, headers=admin)
        assert (stuck.status_code, stuck.json()) == (200, [])

        for user in ("olga", "dan"):
            headers = sign_in(client, user)
            [task] = client.get("/v1/tasks", headers=headers).json()["items"]
            decided = client.post(
                f"/v1/tasks/{task['id']}/decision",
                json={"action": "approve"},
                headers=headers,
            )
            assert decided.status_code == 201, decided.text

        link = client.post(f"/v1/requests/{request_id}/diagram-link", headers=caller)
        assert link.status_code == 200, link.text
        parts = urlsplit(link.json()["url"])
        assert parts.netloc == urlsplit(server.base_url).netloc
        picture = httpx.get(link.json()["url"], timeout=10.0)
        assert picture.status_code == 200
        assert picture.headers["content-security-policy"] == "default-src 'none'"
        assert 'data-status="approved"' in picture.text

        evidence = client.get(f"/v1/requests/{request_id}/evidence", headers=caller)
        assert evidence.status_code == 200, evidence.text
        body = evidence.json()
        assert body["request"]["status"] == "approved"
        assert body["verification"]["valid"] is True
        assert [d["actor"] for d in body["decisions"]] == ["olga", "dan"]


def test_no_build_directory_is_a_page_not_an_error(tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "serve.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [str(COUNTERSIGN), "serve", "--port", str(port)],
        cwd=tmp_path,
        env={**child_env(), "COUNTERSIGN_ADMIN_UI_DIR": str(tmp_path / "nothing")},
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    running = Server(process, f"http://127.0.0.1:{port}", log_path, log_file)
    try:
        wait_until_healthy(running)
        response = httpx.get(f"{running.base_url}/admin", timeout=10.0)
    finally:
        running.stop()

    assert response.status_code == 404
    assert "The admin UI is not built" in response.text
