"""Serves the built admin UI (Vite output, base `/admin/`) at `/admin`.

- `/admin/assets/...`: the hashed bundles, cached for a year (their names change with their
  content); a missing one is a 404 problem, never `index.html` (a script tag must not get HTML).
- any other file at the top of the build (`favicon.svg`...): served, revalidated on every use.
- every other path under `/admin`, `/admin` and `/admin/` included: `index.html`, revalidated
  (`no-cache`), so deep links work on reload and a new deployment is picked up at once.
- no build (`index.html` missing): a small HTML page saying how to build it.

The directory is `COUNTERSIGN_ADMIN_UI_DIR`, by default `src/countersign/static/admin` (shipped in
the Python package, not committed). It is looked at on every request, so building the UI while
the service runs needs no restart.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.responses import FileResponse, HTMLResponse

from countersign.config import Settings
from countersign.errors import NotFound

PREFIX = "/admin"
DEFAULT_DIR = Path(__file__).resolve().parent.parent / "static" / "admin"

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
# The UI is never framed (clickjacking) and its files are never content-sniffed.
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY"}

NOT_BUILT = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Countersign admin UI is not built</title></head>
<body>
<main>
<h1>The admin UI is not built</h1>
<p>This service serves the admin UI from <code>{directory}</code>, which has no
<code>index.html</code>.</p>
<p>Build it from a checkout with <code>make serve</code> (it builds the UI when it is missing or
stale), or by hand: <code>cd admin-ui &amp;&amp; npm ci &amp;&amp; npm run build</code>.
Point <code>COUNTERSIGN_ADMIN_UI_DIR</code> at another build directory if you keep one elsewhere.</p>
<p>The API works without it: <a href="/v1/docs">/v1/docs</a>.</p>
</main>
</body>
</html>
"""


def ui_directory(settings: Settings) -> Path:
    return Path(settings.admin_ui_dir) if settings.admin_ui_dir else DEFAULT_DIR


def _inside(root: Path, relative: str) -> Path | None:
    """The file `relative` names under `root`, or None when it is not a file there (or escapes
    it: `..`, absolute parts and symlinks pointing out are refused)."""
    if not relative or "\x00" in relative:
        return None
    try:
        candidate = (root / relative).resolve()
        base = root.resolve()
    except (OSError, RuntimeError):
        return None
    if not candidate.is_relative_to(base) or not candidate.is_file():
        return None
    return candidate


def _file(path: Path, cache_control: str) -> FileResponse:
    return FileResponse(
        path, headers={"Cache-Control": cache_control, **SECURITY_HEADERS}
    )


def serve(settings: Settings, path: str) -> Response:
    root = ui_directory(settings)
    index = root / "index.html"
    if path.startswith("assets/"):
        asset = _inside(root, path)
        if asset is None:
            raise NotFound(f"no admin UI asset {path!r}")
        return _file(asset, IMMUTABLE)
    if not index.is_file():
        return HTMLResponse(
            NOT_BUILT.format(directory=_html_escape(str(root))),
            status_code=404,
            headers={"Cache-Control": REVALIDATE, **SECURITY_HEADERS},
        )
    top_level = _inside(root, path) if "/" not in path.strip("/") else None
    if top_level is not None and top_level != index.resolve():
        return _file(top_level, REVALIDATE)
    return _file(index, REVALIDATE)


def _html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def register(app: FastAPI, settings: Settings) -> None:
    """`GET /admin`, `GET /admin/` and `GET /admin/{anything}` (HEAD too), outside OpenAPI."""

    async def admin_ui(request: Request, path: str = "") -> Response:
        return serve(settings, path)

    for route in (PREFIX, PREFIX + "/{path:path}"):
        app.add_api_route(
            route,
            admin_ui,
            methods=["GET", "HEAD"],
            include_in_schema=False,
            name="admin_ui",
        )
