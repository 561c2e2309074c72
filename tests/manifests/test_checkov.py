"""checkov finds nothing to fix in any rendered overlay; what it cannot apply is skipped in the manifest, with a reason.

checkov is a separate tool (its pins conflict with the project's): the test runs the executable named by
``WAKESERVE_CHECKOV``, else ``.venv-tools/bin/checkov`` (``make tools``), else ``checkov`` on PATH.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.manifests.rendering import KUSTOMIZATIONS, REPO, Rendered

pytestmark = pytest.mark.slow  # about 4 s per checkov run

OVERLAYS = sorted(name for name in KUSTOMIZATIONS if name.startswith("overlays/"))
# What checkov writes when a skip annotation gives no reason after "=".
NO_REASON = {"", "No comment provided"}


def find_checkov() -> str | None:
    configured = os.environ.get("WAKESERVE_CHECKOV")
    if configured:
        return configured
    tools = REPO / ".venv-tools" / "bin" / "checkov"
    if tools.is_file():
        return str(tools)
    return shutil.which("checkov")


@dataclass
class Report:
    """One checkov run: failures and skips as (check, resource[, reason]), and the resources it looked at."""

    failed: list[tuple[str, str]]
    skipped: list[tuple[str, str, str]]
    resources: set[str]
    passed: int


def run_checkov(executable: str, objects: list[dict[str, Any]], workdir: Path) -> Report:
    manifest = workdir / "rendered.yaml"
    manifest.write_text(yaml.safe_dump_all(objects, sort_keys=False))
    done = subprocess.run(
        [executable, "-f", str(manifest), "--framework", "kubernetes", "-o", "json", "--skip-download"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=workdir,
    )
    # 0: nothing failed, 1: something failed; anything else is checkov itself failing.
    assert done.returncode in (0, 1), f"checkov exited {done.returncode}:\n{done.stderr[-2000:]}"
    report = json.loads(done.stdout)
    results = report.get("results") or {}
    checked = [*(results.get("passed_checks") or []), *(results.get("failed_checks") or [])]
    assert not results.get("parsing_errors"), results.get("parsing_errors")
    return Report(
        failed=[(r["check_id"], r["resource"]) for r in results.get("failed_checks") or []],
        skipped=[
            (r["check_id"], r["resource"], str((r.get("check_result") or {}).get("suppress_comment") or "").strip())
            for r in results.get("skipped_checks") or []
        ],
        resources={r["resource"] for r in checked},
        passed=len(results.get("passed_checks") or []),
    )


def unexplained(report: Report) -> list[tuple[str, str]]:
    return [(check, resource) for check, resource, reason in report.skipped if reason in NO_REASON]


@pytest.fixture(scope="module")
def checkov() -> str:
    executable = find_checkov()
    if executable is None:
        pytest.skip(
            "checkov is not installed: run `make tools` (it creates .venv-tools with checkov), set "
            "WAKESERVE_CHECKOV to a checkov executable, or put checkov on PATH"
        )
    return executable


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_checkov_passes_every_overlay(
    rendered: dict[str, Rendered], checkov: str, overlay: str, tmp_path: Path
) -> None:
    r = rendered[overlay]
    report = run_checkov(checkov, r.objects, tmp_path)
    assert report.failed == []
    assert unexplained(report) == [], "a checkov skip needs its reason after '=' in the annotation"
    # checkov looked at every workload it knows (it does not read the InferenceServices, a CRD).
    deployments = {f"Deployment.{d['metadata']['namespace']}.{d['metadata']['name']}" for d in r.of_kind("Deployment")}
    assert deployments and deployments <= report.resources
    assert report.passed > 0


def test_checkov_reports_a_weakened_deployment_and_a_skip_without_reason(
    rendered: dict[str, Rendered], checkov: str, tmp_path: Path
) -> None:
    objects = copy.deepcopy(rendered["overlays/keda"].objects)
    [ingress] = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "wakeserve-ingress"]
    del ingress["spec"]["template"]["spec"]["automountServiceAccountToken"]
    annotations = ingress["metadata"]["annotations"]
    [digest] = [key for key, value in annotations.items() if value.startswith("CKV_K8S_43=")]
    annotations[digest] = "CKV_K8S_43"
    report = run_checkov(checkov, objects, tmp_path)
    assert ("CKV_K8S_38", "Deployment.wakeserve.wakeserve-ingress") in report.failed
    assert unexplained(report) == [("CKV_K8S_43", "Deployment.wakeserve.wakeserve-ingress")]
