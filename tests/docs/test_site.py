"""The documentation site builds with `mkdocs build --strict`, and its generated pages match the code.

- The configuration reference (docs/reference/configuration.md) lists every field of
  `countersign.config.Settings` and every `COUNTERSIGN_*` variable read elsewhere; the API reference
  (docs/reference/api.md, openapi.json) is the OpenAPI document of `countersign.app`. Both are
  regenerated here and compared with the committed files (`python scripts/docs_reference.py`
  rewrites them).
- `--strict` fails on any internal link or anchor that does not resolve, in every page, including
  the pages added at build time (changelog, Helm chart README, ADR index).
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from countersign.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
BUILD_DEADLINE_SECONDS = 180


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def reference() -> ModuleType:
    return _load("docs_reference", ROOT / "scripts" / "docs_reference.py")


def test_generated_reference_pages_match_the_code(reference: ModuleType) -> None:
    stale = [
        path.relative_to(ROOT).as_posix()
        for path, text in reference.render_all().items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]
    assert not stale, (
        f"stale generated docs {stale}: run `python scripts/docs_reference.py` and commit"
    )


def test_configuration_reference_names_every_setting() -> None:
    page = (DOCS / "reference" / "configuration.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `(COUNTERSIGN_[A-Z0-9_]+)`", page, re.MULTILINE))
    for name in Settings.model_fields:
        assert f"COUNTERSIGN_{name.upper()}" in listed
    # Every variable the code reads from the environment by name, wherever it is read.
    read = set()
    for path in (ROOT / "src" / "countersign").rglob("*.py"):
        read |= set(
            re.findall(
                r"""environ(?:\.get)?\s*[\[(]\s*["'](COUNTERSIGN_[A-Z0-9_]+)""",
                path.read_text(encoding="utf-8"),
            )
        )
    assert read <= listed, sorted(read - listed)


def test_every_top_level_page_is_in_the_navigation() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    in_nav: set[str] = set()

    def walk(entries: list[object]) -> None:
        for entry in entries:
            if isinstance(entry, dict):
                for value in entry.values():
                    if isinstance(value, list):
                        walk(value)
                    else:
                        in_nav.add(str(value))
            else:
                in_nav.add(str(entry))

    walk(config["nav"])
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.glob("*.md")}
    pages |= {p.relative_to(DOCS).as_posix() for p in (DOCS / "reference").glob("*.md")}
    assert pages <= in_nav, sorted(pages - in_nav)


def test_links_of_included_files_are_rewritten_for_the_site() -> None:
    hooks = _load("mkdocs_hooks", ROOT / "scripts" / "mkdocs_hooks.py")
    text = (
        "[ops](docs/operations.md#migrations) [values](helm/countersign/values.yaml) "
        "[web](https://example.org/x) [here](#top)"
    )
    assert hooks.rewrite_links(text, "CHANGELOG.md", "changelog.md") == (
        "[ops](operations.md#migrations) values (`helm/countersign/values.yaml`) "
        "[web](https://example.org/x) [here](#top)"
    )
    assert (
        hooks.rewrite_links(
            "[ops](../../docs/operations.md)",
            "helm/countersign/README.md",
            "helm-chart.md",
        )
        == "[ops](operations.md)"
    )


@pytest.mark.slow
def test_site_builds_strict(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(ROOT / "mkdocs.yml"),
            "--site-dir",
            str(tmp_path / "site"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=BUILD_DEADLINE_SECONDS,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for page in (
        "index.html",
        "quickstart/index.html",
        "reference/api/index.html",
        "reference/configuration/index.html",
        "reference/openapi.json",
        "changelog/index.html",
        "helm-chart/index.html",
        "adr/index.html",
        "runbooks/index.html",
        "example-caller/index.html",
    ):
        assert (tmp_path / "site" / page).is_file(), page
