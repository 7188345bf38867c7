"""MkDocs hooks (mkdocs.yml `hooks:`): keep the site honest about the code and the repository.

- before the build: refuse it when a generated reference page (scripts/docs_reference.py) is
  stale, so the published configuration and API reference always match the code;
- pages whose source lives outside docs/ are added at build time, never copied by hand:
  `changelog.md` (CHANGELOG.md), `helm-chart.md` (helm/countersign/README.md), `example-caller.md`
  (examples/caller/README.md), and the ADR index
  `adr/index.md` (every docs/adr/NNNN-*.md with its title), so a new ADR is listed without an edit.
  Relative links in the included files are rewritten: into docs/ they point at the page, anything
  else in the repository becomes its path in code font (the site does not serve source files).
"""

from __future__ import annotations

import importlib.util
import posixpath
import re
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

INCLUDED = {
    "changelog.md": "CHANGELOG.md",
    "helm-chart.md": "helm/countersign/README.md",
    "example-caller.md": "examples/caller/README.md",
}

_LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)")


def _reference_module() -> Any:
    spec = importlib.util.spec_from_file_location(
        "docs_reference", ROOT / "scripts" / "docs_reference.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def on_pre_build(config: Any) -> None:
    stale = _reference_module().stale()
    if stale:
        names = ", ".join(str(path.relative_to(ROOT)) for path in stale)
        raise PluginError(
            f"generated reference pages are stale ({names}): run python scripts/docs_reference.py"
        )


def rewrite_links(text: str, source: str, page: str) -> str:
    """`text` of repository file `source`, published as docs page `page`, with its relative
    links pointing where they resolve on the site."""
    source_dir = posixpath.dirname(source)
    page_dir = posixpath.dirname(page)

    def replace(match: re.Match[str]) -> str:
        label, target = match.group(1), match.group(2)
        if re.match(r"^[a-z]+:|^#|^/", target):
            return match.group(0)
        path, _, anchor = target.partition("#")
        resolved = posixpath.normpath(posixpath.join(source_dir, path))
        if resolved.startswith("docs/") and (ROOT / resolved).is_file():
            relative = posixpath.relpath(resolved[len("docs/") :], page_dir or ".")
            return f"[{label}]({relative}{'#' + anchor if anchor else ''})"
        if label.strip("`") in (resolved, posixpath.basename(resolved)):
            return f"`{resolved}`"
        return f"{label} (`{resolved}`)"

    return _LINK.sub(replace, text)


def adr_index() -> str:
    lines = [
        "# Architecture decisions",
        "",
        "Every decision that shapes the code is recorded here (ADR 0001 says how). Numbers that",
        "are missing were reserved and not used. Newest last.",
        "",
        "| ADR | decision |",
        "|---|---|",
    ]
    for path in sorted((DOCS / "adr").glob("[0-9][0-9][0-9][0-9]-*.md")):
        title = path.stem
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("# "):
                title = line[2:].strip()
                break
        lines.append(f"| {path.stem[:4]} | [{title}]({path.name}) |")
    return "\n".join(lines) + "\n"


def on_files(files: Files, config: Any) -> Files:
    for page, source in INCLUDED.items():
        path = ROOT / source
        if not path.is_file():
            raise PluginError(f"{source} is missing (published as {page})")
        text = rewrite_links(path.read_text(encoding="utf-8"), source, page)
        files.append(File.generated(config, page, content=text))
    files.append(File.generated(config, "adr/index.md", content=adr_index()))
    return files
