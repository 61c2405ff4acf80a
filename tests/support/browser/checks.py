"""One notebook, end to end: a copy with its parameters injected, run all in JupyterLab, the steps, screenshots."""
from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from typing import Mapping

from .lab import LabBrowser
from .steps import NotebookCheck
from .tools import BrowserCheckError


def prepare_notebook(source: Path, folder: Path, *, output_dir: Path, profile: str = "smoke",
                     parameters: Mapping[str, object] | None = None) -> Path:
    """Copy ``source`` into ``folder`` with ``PROFILE``/``OUTPUT_DIR`` (and ``parameters``) injected.

    Uses papermill's own injection (``prepare_only``), so the copy is what ``papermill -p ...``
    would run: an ``injected-parameters`` cell right after the ``parameters`` cell.

    Returns:
        The path of the copy (same file name as ``source``).
    """
    import papermill

    folder.mkdir(parents=True, exist_ok=True)
    target = folder / source.name
    params = {"PROFILE": profile, "OUTPUT_DIR": str(output_dir), **dict(parameters or {})}
    papermill.execute_notebook(str(source), str(target), parameters=params, prepare_only=True,
                               kernel_name="python3", progress_bar=False, log_output=False)
    return target


def check_notebook(browser: LabBrowser, source: Path, check: NotebookCheck, *, out_dir: Path,
                   record_dir: Path) -> dict:
    """Prepare, open, run and interact with one notebook as ``check`` says; raise on the first failure.

    Args:
        browser: the open :class:`LabBrowser`.
        source: the notebook in the repository (``notebooks/NN_name.ipynb``).
        check: its :class:`NotebookCheck`.
        out_dir: screenshots and the executed copy go here: ``<name>.png`` (the page after the last step,
            scrolled to its widget; without steps, to the end), ``<name>_step<k>.png`` (the widget's output
            after step k), ``<name>.ipynb`` (as executed in the browser), ``<name>_FAILED.png`` on failure.
        record_dir: the notebook's ``OUTPUT_DIR`` (its JSON and figures).

    Returns:
        A summary: seconds for run-all and each step, what each step checked, files written.
    """
    name = source.stem
    root = browser.server.root_dir
    copy = prepare_notebook(source, root, output_dir=record_dir, parameters=check.parameters)
    tic = time.monotonic()
    session = browser.open(copy.relative_to(root).as_posix())
    summary: dict = {"notebook": name, "steps": [], "screenshots": []}
    try:
        summary["open_seconds"] = round(time.monotonic() - tic, 1)
        summary["run_all_seconds"] = round(session.run_all(check.run_timeout), 1)
        errors = session.errors(check.error_text)
        if errors:
            raise BrowserCheckError(f"{name}: errors after 'run all':\n" + "\n".join(errors))
        if check.record:
            rec_path = record_dir / f"{name}.json"
            if not rec_path.is_file():
                raise BrowserCheckError(f"{name}: ran in the browser but recorded no {rec_path}")
            profile = json.loads(rec_path.read_text()).get("profile")
            if profile != "smoke":
                raise BrowserCheckError(f"{name}: recorded profile {profile!r}, expected 'smoke' (injection failed?)")
        text = " | ".join(session.outputs_text())
        for pattern in check.output_text:
            if not re.search(pattern, text):
                raise BrowserCheckError(f"{name}: no output matches {pattern!r}")
        for k, step in enumerate(check.steps, start=1):
            result = session.apply(step, error_text=check.error_text)
            shot = out_dir / f"{name}_step{k}.png"
            session.control(step.description, step.nth)[1].screenshot(path=str(shot), animations="disabled")
            summary["steps"].append({"step": result.step, "seconds": round(result.seconds, 1),
                                     "checks": result.checks, "screenshot": str(shot)})
            summary["screenshots"].append(str(shot))
        last = check.steps[-1] if check.steps else None
        shots = session.screenshot(out_dir / f"{name}.png", around=last.description if last else None,
                                   nth=last.nth if last else None)
        summary["screenshots"] = [str(shots[0])] + summary["screenshots"]
        session.save()
        shutil.copy(copy, out_dir / f"{name}.ipynb")
    except BrowserCheckError:
        try:
            session.page.screenshot(path=str(out_dir / f"{name}_FAILED.png"))
        except Exception:  # the screenshot is a diagnostic only
            pass
        raise
    finally:
        session.close()
    summary["seconds"] = round(time.monotonic() - tic, 1)
    summary["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    return summary
