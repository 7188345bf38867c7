"""`countersign serve` serves the built admin UI at `/admin` (UI.md: deep links work on reload).

The build here is a tiny fake Vite output written by the test (`index.html`, a hashed bundle, a
top-level icon), pointed at with `admin_ui_dir` (`COUNTERSIGN_ADMIN_UI_DIR`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from countersign.app import create_app
from countersign.config import Settings
from countersign.errors import NotFound
from countersign.operations import admin_ui

INDEX = '<!doctype html><html><head><script type="module" src="/admin/assets/index-abc123.js"></script></head><body><div id="root"></div></body></html>'
BUNDLE = "console.log('countersign admin');"


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("admin-build")
    (root / "assets").mkdir()
    (root / "index.html").write_text(INDEX, encoding="utf-8")
    (root / "assets" / "index-abc123.js").write_text(BUNDLE, encoding="utf-8")
    (root / "favicon.svg").write_text("<svg/>", encoding="utf-8")
    # A file next to the build that must never be reachable through it.
    (root.parent / "secret.txt").write_text("not for you", encoding="utf-8")
    return root


async def _app_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(settings, in_process_worker=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://countersign.test"
        ) as client:
            yield client


@pytest.fixture(scope="module")
async def ui(settings: Settings, build: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _app_client(
        settings.model_copy(update={"admin_ui_dir": build})
    ):
        yield client


@pytest.fixture(scope="module")
async def unbuilt(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[httpx.AsyncClient]:
    empty = tmp_path_factory.mktemp("no-build")
    async for client in _app_client(
        settings.model_copy(update={"admin_ui_dir": empty})
    ):
        yield client


def assert_index(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert response.text == INDEX
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-content-type-options"] == "nosniff"


class TestBuiltUi:
    @pytest.mark.parametrize("path", ["/admin", "/admin/"])
    async def test_the_root_is_index_html_without_a_redirect(
        self, ui: httpx.AsyncClient, path: str
    ) -> None:
        response = await ui.get(path)

        assert_index(response)
        assert not response.history

    @pytest.mark.parametrize(
        "path",
        [
            "/admin/policies",
            "/admin/policies/registry.change_request/versions/3",
            "/admin/requests?status=in_review&stuck=true",
            "/admin/tasks/",
            "/admin/assets",  # the directory itself is no asset: a route like any other
        ],
    )
    async def test_every_deep_link_is_index_html(
        self, ui: httpx.AsyncClient, path: str
    ) -> None:
        assert_index(await ui.get(path))

    async def test_hashed_assets_are_cached_for_a_year(
        self, ui: httpx.AsyncClient
    ) -> None:
        response = await ui.get("/admin/assets/index-abc123.js")

        assert response.status_code == 200
        assert response.text == BUNDLE
        assert "javascript" in response.headers["content-type"]
        assert (
            response.headers["cache-control"] == "public, max-age=31536000, immutable"
        )

    async def test_a_missing_asset_is_a_404_problem_not_the_page(
        self, ui: httpx.AsyncClient
    ) -> None:
        response = await ui.get("/admin/assets/index-old999.js")

        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "not_found"

    async def test_top_level_files_of_the_build_are_served(
        self, ui: httpx.AsyncClient
    ) -> None:
        response = await ui.get("/admin/favicon.svg")

        assert (response.status_code, response.text) == (200, "<svg/>")
        assert response.headers["cache-control"] == "no-cache"

    async def test_head_works_for_health_checks(self, ui: httpx.AsyncClient) -> None:
        response = await ui.head("/admin/")

        assert response.status_code == 200
        assert response.content == b""

    @pytest.mark.parametrize(
        "path",
        [
            "/admin/assets/../../secret.txt",
            "/admin/assets/%2e%2e/%2e%2e/secret.txt",
            "/admin/assets/..%2f..%2fsecret.txt",
            "/admin/..%2fsecret.txt",
        ],
    )
    async def test_nothing_outside_the_build_is_reachable(
        self, ui: httpx.AsyncClient, path: str
    ) -> None:
        response = await ui.get(path)

        assert "not for you" not in response.text
        assert response.status_code in (200, 404)

    async def test_the_api_and_its_awe_alias_are_untouched(
        self, ui: httpx.AsyncClient, admin_headers: dict[str, str]
    ) -> None:
        api = await ui.get("/v1/admin/deliveries", headers=admin_headers)
        awe = await ui.get("/v1/awe/admin/deliveries", headers=admin_headers)
        unknown = await ui.get("/v1/admin/nothing-here", headers=admin_headers)
        outside = await ui.get("/administrator")

        assert api.status_code == awe.status_code == 200
        assert api.headers["content-type"].startswith("application/json")
        for missing in (unknown, outside):
            assert missing.status_code == 404
            assert missing.headers["content-type"].startswith(
                "application/problem+json"
            )

    async def test_the_ui_is_not_in_the_openapi_document(
        self, ui: httpx.AsyncClient
    ) -> None:
        paths = (await ui.get("/v1/openapi.json")).json()["paths"]

        assert not [p for p in paths if p.startswith("/admin")]


class TestWithoutABuild:
    @pytest.mark.parametrize("path", ["/admin", "/admin/", "/admin/policies"])
    async def test_a_page_says_how_to_build_it(
        self, unbuilt: httpx.AsyncClient, path: str
    ) -> None:
        response = await unbuilt.get(path)

        assert response.status_code == 404
        assert response.headers["content-type"].startswith("text/html")
        assert "The admin UI is not built" in response.text
        assert "npm run build" in response.text


def test_the_default_directory_is_in_the_package() -> None:
    assert admin_ui.DEFAULT_DIR.parts[-3:] == ("countersign", "static", "admin")
    assert admin_ui.ui_directory(Settings(auth_mode="dev")) == admin_ui.DEFAULT_DIR


@pytest.mark.parametrize(
    "path", ["assets/../../secret.txt", "assets/../index.html/../../secret.txt"]
)
def test_paths_that_climb_out_of_the_build_are_refused(
    settings: Settings, build: Path, path: str
) -> None:
    # Straight to the handler: an HTTP client would normalise the dots away first.
    with pytest.raises(NotFound):
        admin_ui.serve(settings.model_copy(update={"admin_ui_dir": build}), path)


def test_a_climbing_page_path_gets_the_index(settings: Settings, build: Path) -> None:
    response = admin_ui.serve(
        settings.model_copy(update={"admin_ui_dir": build}), "../secret.txt"
    )

    assert Path(response.path).name == "index.html"  # type: ignore[attr-defined]
