"""What the image must be (issue 12, ADR 0035), read from the Dockerfile itself.

No Docker engine runs here; `test_image.py` runs the same build and start steps by hand.
"""

from __future__ import annotations

import re

import pytest

from tests.operations.dockerfile import ROOT, Dockerfile, parse

COMPILERS = re.compile(
    r"\b(build-essential|gcc|g\+\+|clang|cc|make|cmake|rustc|cargo|libc6-dev|python3?-dev)\b"
)


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return parse()


def test_three_stages_ui_build_runtime(dockerfile: Dockerfile) -> None:
    names = [stage.name for stage in dockerfile.stages]
    assert names == ["admin-ui", "build", "runtime"]
    assert dockerfile.stage("admin-ui").base.startswith("node:")
    assert dockerfile.final.base == dockerfile.stage("build").base
    assert re.fullmatch(r"python:3\.\d+-slim(-\w+)?", dockerfile.final.base)


def test_the_ui_stage_builds_the_admin_ui_from_the_lock_file(
    dockerfile: Dockerfile,
) -> None:
    ui = dockerfile.stage("admin-ui")
    runs = ui.run_text()
    assert "npm ci" in runs
    assert "npm run build" in runs
    copies = [c.arguments for c in ui.all("COPY")]
    assert copies[0] == "admin-ui/package.json admin-ui/package-lock.json ./"


def test_the_wheel_is_built_with_the_ui_inside(dockerfile: Dockerfile) -> None:
    build = dockerfile.stage("build")
    copies = [c.arguments for c in build.all("COPY")]
    assert any(
        c.startswith("--from=admin-ui ")
        and c.endswith(" ./src/countersign/static/admin")
        for c in copies
    ), copies
    runs = build.run_text()
    assert "pip wheel" in runs
    assert "countersign/static/admin/index.html" in runs  # checked in the built wheel
    ui_copy = next(i for i, c in enumerate(copies) if c.startswith("--from=admin-ui"))
    src_copy = copies.index("src ./src")
    assert src_copy < ui_copy, "the UI must land on top of the copied sources"


def test_the_final_stage_runs_as_a_non_root_user(dockerfile: Dockerfile) -> None:
    user = dockerfile.final.last("USER")
    assert user is not None, "no USER in the final stage"
    name = user.arguments.split(":")[0]
    assert name not in ("root", "0"), user.arguments
    if name.isdigit():
        assert int(name) >= 1000
    # Nothing runs as root after the switch.
    after = dockerfile.final.instructions[
        dockerfile.final.instructions.index(user) + 1 :
    ]
    assert not [i for i in after if i.keyword in ("RUN", "USER")], after


def test_the_final_stage_has_no_compilers(dockerfile: Dockerfile) -> None:
    final = dockerfile.final
    assert not COMPILERS.search(final.run_text()), final.run_text()
    for copy in final.all("COPY"):
        # Only the build stage's venv crosses over, never a stage with a toolchain wholesale.
        if copy.arguments.startswith("--from="):
            assert copy.arguments == "--from=build /opt/venv /opt/venv", copy.arguments
    assert "build-essential" in dockerfile.stage("build").run_text()


def test_the_entrypoint_is_countersign(dockerfile: Dockerfile) -> None:
    entrypoint = dockerfile.final.last("ENTRYPOINT")
    assert entrypoint is not None
    assert entrypoint.exec_form() == ["countersign"]
    command = dockerfile.final.last("CMD")
    assert command is not None
    assert command.exec_form()[0] == "serve"


def test_the_image_runs_in_production(dockerfile: Dockerfile) -> None:
    env = dockerfile.final.env()
    assert env["COUNTERSIGN_ENV"] == "production"
    assert env["COUNTERSIGN_LOG_JSON"] == "true"
    assert env["PATH"].startswith("/opt/venv/bin:")


def test_there_is_a_healthcheck(dockerfile: Dockerfile) -> None:
    healthcheck = dockerfile.final.last("HEALTHCHECK")
    assert healthcheck is not None
    assert healthcheck.arguments.upper() != "NONE"
    options, _, command = healthcheck.arguments.partition("CMD ")
    assert "--interval=" in options
    assert "--timeout=" in options
    assert "/v1/health/live" in command


def test_the_build_context_never_carries_a_local_ui_build() -> None:
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert "src/countersign/static/admin" in ignored
    assert "admin-ui/node_modules" in ignored
    assert ".venv" in ignored
