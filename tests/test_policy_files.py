"""`countersign policy apply -f` / `policy export`: policies kept as files, applied on every deploy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from countersign.bootstrap import sample_text
from countersign.policies.schemas import PolicyIn

COUNTERSIGN = str(Path(sys.executable).with_name("countersign"))


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COUNTERSIGN_")}
    return subprocess.run(
        [COUNTERSIGN, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_apply_is_idempotent_versions_changes_and_exports_what_was_applied(
    tmp_path: Path,
) -> None:
    assert run(tmp_path, "migrate").returncode == 0
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(sample_text("policy.yaml"), encoding="utf-8")

    first = run(tmp_path, "policy", "apply", "-f", str(policy_file))
    again = run(tmp_path, "policy", "apply", "-f", str(policy_file))

    assert first.returncode == 0, first.stderr
    assert first.stdout == "sample.change_request version 1 active (changed)\n"
    assert again.stdout == "sample.change_request version 1 active (unchanged)\n"

    changed = yaml.safe_load(sample_text("policy.yaml"))
    changed["stages"][0]["mode_value"] = 2
    changed["stages"][0]["rules"].append(
        {"rule_type": "user", "rule_value": {"user_id": "zoe"}}
    )
    policy_file.write_text(yaml.safe_dump(changed), encoding="utf-8")

    draft = run(tmp_path, "policy", "apply", "-f", str(policy_file), "--draft")
    assert draft.stdout == "sample.change_request version 2 draft (changed)\n", (
        draft.stderr
    )
    # The active version is still 1 until 2 is applied without --draft.
    exported_active = yaml.safe_load(
        run(tmp_path, "policy", "export", "sample.change_request").stdout
    )
    assert exported_active["stages"][0]["mode_value"] == 1

    published = run(tmp_path, "policy", "apply", "-f", str(policy_file))
    assert published.stdout == "sample.change_request version 2 active (changed)\n"
    exported = yaml.safe_load(
        run(tmp_path, "policy", "export", "sample.change_request").stdout
    )
    # What is exported is what was applied (defaults filled in), so it can be applied again as is.
    assert PolicyIn.model_validate(exported) == PolicyIn.model_validate(changed)


def test_invalid_and_unsafe_files_are_refused_and_store_nothing(tmp_path: Path) -> None:
    assert run(tmp_path, "migrate").returncode == 0
    unsafe = yaml.safe_load(sample_text("policy.yaml"))
    unsafe["stages"][1]["skip_if"] = {"method": ["abc", "upper"]}
    bad_file = tmp_path / "unsafe.yaml"
    bad_file.write_text(yaml.safe_dump(unsafe), encoding="utf-8")

    refused = run(tmp_path, "policy", "apply", "-f", str(bad_file))

    assert refused.returncode != 0
    assert "/stages/1/skip_if" in refused.stderr
    assert "Traceback" not in refused.stderr
    missing = run(tmp_path, "policy", "export", "sample.change_request")
    assert missing.returncode != 0
    assert "not found" in missing.stderr
