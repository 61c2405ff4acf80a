"""Drive the notebooks' widgets in a real JupyterLab with headless Chromium (for ``tests/test_browser.py``).

The machinery is generic: a notebook's browser check is a :class:`NotebookCheck`, a small declarative
entry of steps (:class:`Set`, :class:`Nudge`, :class:`Press`) that move a control found by its
``description``, each with expectations (:class:`TextMatches`, :class:`TextChanged`,
:class:`ImageChanged`, :class:`Shows`) on what the widget renders afterwards. :func:`check_notebook`
copies the notebook with its parameters injected (papermill ``--prepare-only``, ``PROFILE="smoke"``),
opens the copy in JupyterLab, runs all cells, checks that no cell or widget callback raised,
performs the steps, and writes screenshots.

Pieces:

* :class:`LabServer` starts ``jupyter lab`` on 127.0.0.1 with a random token and throw-away Jupyter
  config/settings/workspace folders (no news, no update checks, notebook windowing off so every
  cell stays in the DOM).
* :class:`LabBrowser` launches the system Chromium through Playwright (``executable_path``; no browser
  download), blocks every request that is not to the loopback server, and opens JupyterLab once;
  notebooks are then opened and closed through JupyterLab's own commands (``window.jupyterapp``).
* :class:`NotebookSession` is one open notebook: run all cells, wait for the kernel, read outputs,
  find controls, apply steps, screenshot.

Errors are collected twice: from the cells' outputs (the notebook model) and from the kernel's iopub
stream (``error`` messages and tracebacks on stderr), which also catches exceptions raised in widget
callbacks (JupyterLab shows those only in its log console). Text in any output matching one of
:data:`ERROR_TEXT` (e.g. a widget's "could not draw this view: ...") fails the check as well.

Modules: :mod:`.steps` (the entries), :mod:`.tools` (Chromium, packages, output folder, the error type),
:mod:`.server`, :mod:`.dom` (the page-side helpers), :mod:`.lab`, :mod:`.session`, :mod:`.checks`.
"""
from __future__ import annotations

from .checks import check_notebook, prepare_notebook
from .lab import LabBrowser
from .server import LabServer
from .session import NotebookSession, StepResult
from .steps import (
    ERROR_TEXT,
    Expectation,
    ImageChanged,
    NotebookCheck,
    Nudge,
    Press,
    Set,
    Shows,
    Step,
    TextChanged,
    TextMatches,
)
from .tools import BrowserCheckError, browser_output_dir, chromium_path, missing_browser_tools

__all__ = ["BrowserCheckError", "ERROR_TEXT", "Expectation", "ImageChanged", "LabBrowser", "LabServer",
           "NotebookCheck", "NotebookSession", "Nudge", "Press", "Set", "Shows", "Step", "StepResult", "TextChanged",
           "TextMatches", "browser_output_dir", "check_notebook", "chromium_path", "missing_browser_tools",
           "prepare_notebook"]
