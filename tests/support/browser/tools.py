"""What the browser tests need and where they write: the system Chromium, the Python packages, the output folder,
and the error every check raises."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]  # tests/support/browser/tools.py -> the repository
CHROMIUM_ENV = "SHORTCUT_NB_CHROMIUM"
OUT_ENV = "SHORTCUT_NB_BROWSER_OUT"
DEFAULT_CHROMIUM = "/usr/bin/chromium"

# Chromium must not try to reach any host: only the loopback JupyterLab exists for it.
CHROMIUM_ARGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
)

# Text that means something failed even though no exception reached the kernel's iopub stream.


class BrowserCheckError(AssertionError):
    """A browser check failed: the message says which notebook, step and expectation."""



def chromium_path() -> str:
    """The Chromium executable: ``$SHORTCUT_NB_CHROMIUM``, else Debian's ``/usr/bin/chromium``, else on PATH."""
    env = os.environ.get(CHROMIUM_ENV)
    if env:
        return env
    if os.path.exists(DEFAULT_CHROMIUM):
        return DEFAULT_CHROMIUM
    return shutil.which("chromium") or shutil.which("chromium-browser") or DEFAULT_CHROMIUM


def missing_browser_tools() -> list[str]:
    """What the browser tests need and cannot find (empty when all is there), each with how to get it."""
    missing = []
    chromium = chromium_path()
    if not (os.path.isfile(chromium) and os.access(chromium, os.X_OK)):
        missing.append(f"Chromium at {chromium} (run `bash ci/install_browser.sh`, or set ${CHROMIUM_ENV})")
    for module, package in (("jupyterlab", "jupyterlab"), ("playwright.sync_api", "playwright"),
                            ("ipywidgets", "ipywidgets"), ("jupyterlab_widgets", "jupyterlab_widgets"),
                            ("papermill", "papermill")):
        try:
            __import__(module)
        except ImportError:
            missing.append(f"Python package {package} (pip install -e '.[browser]')")
    return missing


def browser_output_dir() -> Path:
    """Where screenshots go: ``$SHORTCUT_NB_BROWSER_OUT``, else ``runs/browser/`` in the repository."""
    out = Path(os.environ.get(OUT_ENV) or REPO / "runs" / "browser")
    out.mkdir(parents=True, exist_ok=True)
    return out
