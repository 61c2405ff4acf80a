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
"""
from __future__ import annotations

import io
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Mapping, Sequence, Union

REPO = Path(__file__).resolve().parent.parent
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
ERROR_TEXT = (
    r"Traceback \(most recent call last\)",
    r"could not draw",
    r"not precomputed",
    r"Error displaying widget",
    r"Failed to load model class",
    r"Model not found",
)

# Controls (their containers) whose own text is not "rendered output": removed before reading text.
CONTROL_SELECTOR = (
    ".widget-slider, .widget-dropdown, .widget-text, .widget-textarea, .widget-toggle-buttons, .widget-radio, "
    ".widget-checkbox, .widget-button, .widget-select, .widget-select-multiple, .widget-combobox, "
    ".widget-colorpicker, .widget-datepicker, .widget-play, .widget-upload, .widget-readout, .widget-hprogress, "
    ".widget-vprogress"
)


class BrowserCheckError(AssertionError):
    """A browser check failed: the message says which notebook, step and expectation."""


# --------------------------------------------------------------------------- declarative entries


@dataclass(frozen=True)
class TextMatches:
    """After the step, the rendered text (controls' own text left out) matches ``pattern`` (``re.search``).

    ``scope="widget"``: the output area of the cell holding the control; ``"notebook"``: all cell outputs.
    """

    pattern: str
    scope: Literal["widget", "notebook"] = "widget"


@dataclass(frozen=True)
class TextChanged:
    """After the step, the rendered text (controls' own text left out) differs from before it."""

    scope: Literal["widget", "notebook"] = "widget"


@dataclass(frozen=True)
class ImageChanged:
    """After the step, the images (``img``/``canvas``) in scope differ from before it in their pixels.

    Args:
        min_fraction: at least this fraction of one image's pixels must differ (or the number or size
            of the images changed).
    """

    min_fraction: float = 0.002
    scope: Literal["widget", "notebook"] = "widget"


@dataclass(frozen=True)
class Shows:
    """After the step, the moved control itself displays ``value`` (its readout, selected option or state)."""

    value: str


Expectation = Union[TextMatches, TextChanged, ImageChanged, Shows]


@dataclass(frozen=True)
class Set:
    """Give the control labelled ``description`` the value ``value`` the way a user does.

    Sliders: type into the editable readout and press Enter; dropdowns/selects: pick the option whose
    label is ``str(value)``; toggle and radio buttons: click the button/label ``str(value)``; text
    and number fields: type and press Enter; checkboxes: tick or untick (``bool(value)``).
    ``nth`` picks one when several controls share the description (0-based, in page order).
    """

    description: str
    value: object
    expect: tuple[Expectation, ...] = ()
    nth: int | None = None
    timeout: float = 90.0


@dataclass(frozen=True)
class Nudge:
    """Move the slider labelled ``description`` by ``steps`` with the arrow keys (negative: to the left)."""

    description: str
    steps: int
    expect: tuple[Expectation, ...] = ()
    nth: int | None = None
    timeout: float = 90.0


@dataclass(frozen=True)
class Press:
    """Click the button whose text is ``description``."""

    description: str
    expect: tuple[Expectation, ...] = ()
    nth: int | None = None
    timeout: float = 90.0


Step = Union[Set, Nudge, Press]


@dataclass(frozen=True)
class NotebookCheck:
    """What the browser test does with one notebook.

    Args:
        steps: widget interactions, in order (each with its expectations).
        no_widgets: for a notebook without widgets, why (then ``steps`` must be empty).
        output_text: regexes that the cells' outputs must contain after "run all" (e.g. a printed line).
        parameters: papermill parameters beyond ``PROFILE`` and ``OUTPUT_DIR``.
        record: the notebook must write ``OUTPUT_DIR/<name>.json`` with ``"profile": "smoke"``.
        error_text: regexes that must not appear in any output (default :data:`ERROR_TEXT`).
        run_timeout: seconds allowed for "run all cells".
    """

    steps: tuple[Step, ...] = ()
    no_widgets: str = ""
    output_text: tuple[str, ...] = ()
    parameters: Mapping[str, object] = field(default_factory=dict)
    record: bool = True
    error_text: tuple[str, ...] = ERROR_TEXT
    run_timeout: float = 240.0

    def __post_init__(self) -> None:
        if bool(self.steps) == bool(self.no_widgets):
            raise ValueError("a NotebookCheck needs either steps or a no_widgets reason (not both, not neither)")


# --------------------------------------------------------------------------- tools present?


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


# --------------------------------------------------------------------------- notebook copies


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


# --------------------------------------------------------------------------- the JupyterLab server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


class LabServer:
    """``jupyter lab`` on 127.0.0.1 with a random token, serving ``root_dir``; stop it with :meth:`stop`.

    Args:
        root_dir: the folder JupyterLab serves (notebook copies go here).
        env: extra environment for the server and its kernels (e.g. ``SHORTCUT_NB_RUNS``).
        log_path: where the server's log goes (default: inside a temporary folder).
        start_timeout: seconds to wait for the server to answer.
    """

    def __init__(self, root_dir: Path, *, env: Mapping[str, str] | None = None, log_path: Path | None = None,
                 start_timeout: float = 120.0) -> None:
        self.root_dir = Path(root_dir).resolve()
        self.root_dir.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.token = secrets.token_hex(24)
        self.url = f"http://127.0.0.1:{self.port}"
        self._home = Path(tempfile.mkdtemp(prefix="shortcut_nb_lab_"))
        self.log_path = Path(log_path) if log_path else self._home / "server.log"
        settings = self._home / "settings"
        # No news or update checks (no network), and no notebook windowing: every cell stays in the DOM.
        _write_json(settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings",
                    {"fetchNews": "false", "checkForUpdates": False})
        _write_json(settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings",
                    {"windowingMode": "none"})
        run_env = {**os.environ, **dict(env or {}),
                   "JUPYTER_CONFIG_DIR": str(self._home / "config"),
                   "JUPYTER_RUNTIME_DIR": str(self._home / "runtime"),
                   "JUPYTERLAB_SETTINGS_DIR": str(settings),
                   "JUPYTERLAB_WORKSPACES_DIR": str(self._home / "workspaces")}
        # The kernel must show figures inline as a user's JupyterLab does (the test session sets Agg).
        run_env.pop("MPLBACKEND", None)
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
               "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
               f"--ServerApp.root_dir={self.root_dir}", "--expose-app-in-browser", "--LabApp.news_url=",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, env=run_env, stdout=self._log, stderr=subprocess.STDOUT,
                                     cwd=self.root_dir)
        try:
            self._wait_ready(start_timeout)
        except Exception:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        request = urllib.request.Request(f"{self.url}/api/status", headers={"Authorization": f"token {self.token}"})
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrowserCheckError(f"jupyter lab exited with code {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(request, timeout=5) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise BrowserCheckError(f"jupyter lab did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def lab_url(self, path: str = "lab") -> str:
        return f"{self.url}/{path}?token={self.token}"

    def log_size(self) -> int:
        self._log.flush()
        return self.log_path.stat().st_size

    def log_since(self, offset: int) -> str:
        """The server's log (its kernels' stderr included) from byte ``offset`` on."""
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the server (its kernels with it) and remove its temporary Jupyter folders."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()
        shutil.rmtree(self._home, ignore_errors=True)

    def __enter__(self) -> "LabServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


# --------------------------------------------------------------------------- the browser


_JS_HELPERS = r"""
() => {
  if (window.__bt) return true;
  const CONTROL = %(control)s;
  const norm = (s) => (s || "").replace(/[\u200b\s]+/g, " ").trim();
  const bt = {
    nb: null,
    iopub: [],
    current() { return bt.nb; },
    kernel() { const s = bt.nb && bt.nb.sessionContext.session; return s ? s.kernel : null; },
    status() { const k = bt.kernel(); return k ? k.status : "none"; },
    codeCells() { return [...bt.nb.content.widgets].filter(c => c.model.type === "code"); },
    runState() {
      const cells = bt.codeCells().filter(c => c.model.sharedModel.getSource().trim() !== "");
      const errors = cells.filter(c => [...Array(c.model.outputs.length).keys()]
        .some(i => c.model.outputs.get(i).type === "error")).length;
      const pending = cells.findIndex(c => c.model.executionCount === null || c.model.executionCount === undefined);
      return { status: bt.status(), total: cells.length,
               done: cells.filter(c => c.model.executionCount !== null && c.model.executionCount !== undefined).length,
               errors, pending, pendingSource: pending >= 0 ? cells[pending].model.sharedModel.getSource().slice(0, 120) : "" };
    },
    cellErrors() {
      const out = [];
      bt.codeCells().forEach((c, k) => {
        for (let i = 0; i < c.model.outputs.length; i++) {
          const o = c.model.outputs.get(i).toJSON();
          if (o.output_type === "error") out.push({ cell: k, ename: o.ename, evalue: o.evalue,
            source: c.model.sharedModel.getSource().slice(0, 120) });
        }
      });
      return out;
    },
    outputAreas() { return [...bt.nb.node.querySelectorAll(".jp-Cell-outputArea")]; },
    textOf(root) {
      const clone = root.cloneNode(true);
      clone.querySelectorAll(CONTROL).forEach(e => e.remove());
      clone.querySelectorAll(".jp-OutputArea-prompt, .jp-OutputArea-promptOverlay").forEach(e => e.remove());
      return norm(clone.textContent);
    },
    outputsText() { return bt.outputAreas().map(a => bt.textOf(a)); },
    descriptionOf(el) {
      if (el.matches("button.widget-button")) return norm(el.textContent);
      const cb = el.querySelector(":scope > .widget-label-basic > span");
      if (el.matches(".widget-checkbox") && cb) return norm(cb.textContent);
      const lab = el.querySelector(":scope > label.widget-label");
      return lab ? norm(lab.textContent) : null;
    },
    controls() {
      const sel = "button.widget-button, .widget-inline-hbox, .widget-toggle-buttons, .widget-radio, .widget-slider";
      return [...bt.nb.node.querySelectorAll(sel)].filter(el => el.matches(CONTROL.replace(/, \.widget-readout/, "")))
        .map(el => ({ el, description: bt.descriptionOf(el) })).filter(c => c.description);
    },
    mark(description, nth, tag) {
      document.querySelectorAll("[data-bt]").forEach(e => e.removeAttribute("data-bt"));
      const all = bt.controls();
      const hits = all.filter(c => c.description === description);
      const result = { count: hits.length, available: [...new Set(all.map(c => c.description))] };
      if (hits.length === 0 || (nth === null && hits.length > 1) || (nth !== null && nth >= hits.length)) return result;
      const el = hits[nth === null ? 0 : nth].el;
      el.setAttribute("data-bt", tag);
      const area = el.closest(".jp-Cell-outputArea");
      if (area) area.setAttribute("data-bt", tag + "-scope");
      result.kind = ["widget-button", "widget-dropdown", "widget-select-multiple", "widget-select", "widget-slider",
        "widget-toggle-buttons", "widget-radio", "widget-checkbox", "widget-text", "widget-textarea"]
        .find(k => el.classList.contains(k)) || "unknown";
      return result;
    },
    shown(el) {
      if (el.matches(".widget-slider")) return norm(el.querySelector(".widget-readout").textContent);
      const s = el.querySelector("select");
      if (s) return [...s.selectedOptions].map(o => norm(o.textContent)).join(", ");
      const active = el.querySelector(".widget-toggle-button.mod-active");
      if (active) return norm(active.textContent);
      const radio = el.querySelector("input[type=radio]:checked");
      if (radio) return norm(radio.parentElement.textContent);
      const box = el.querySelector("input[type=checkbox]");
      if (box) return String(box.checked);
      const input = el.querySelector("input, textarea");
      return input ? input.value : norm(el.textContent);
    },
  };
  window.__bt = bt;
  return true;
}
""" % {"control": json.dumps(CONTROL_SELECTOR)}


class LabBrowser:
    """Headless Chromium (system build, driven by Playwright) with JupyterLab open.

    Args:
        server: the running :class:`LabServer`.
        profile_dir: a fresh, empty folder for Chromium's user data.
        viewport: the page size (screenshots have this size).
    """

    def __init__(self, server: LabServer, *, profile_dir: Path, viewport: tuple[int, int] = (1400, 1800)) -> None:
        from playwright.sync_api import sync_playwright

        self.server = server
        self.blocked: list[str] = []
        self.console_errors: list[str] = []
        self._pw = sync_playwright().start()
        try:
            self.context = self._pw.chromium.launch_persistent_context(
                str(profile_dir), executable_path=chromium_path(), headless=True, args=list(CHROMIUM_ARGS),
                viewport={"width": viewport[0], "height": viewport[1]}, chromium_sandbox=False)
        except Exception:
            self._pw.stop()
            raise
        self.context.route("**/*", self._only_loopback)
        self.page = self.context.pages[0] if self.context.pages else self.context.new_page()
        self.page.on("console", lambda m: self.console_errors.append(m.text[:300]) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.console_errors.append(f"page error: {e}"[:300]))
        self.page.goto(server.lab_url("lab"), wait_until="domcontentloaded", timeout=120_000)
        self.page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell", timeout=120_000)
        self.page.evaluate("async () => { await window.jupyterapp.restored; }")
        self.page.evaluate(_JS_HELPERS)
        # Room for the notebook: no file browser in the screenshots.
        self.page.evaluate("() => window.jupyterapp.shell.collapseLeft()")

    def _only_loopback(self, route) -> None:
        url = route.request.url
        if re.match(rf"^(https?|wss?)://127\.0\.0\.1:{self.server.port}/", url):
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()

    def open(self, path: str, *, timeout: float = 180.0) -> "NotebookSession":
        """Open ``path`` (relative to the server's root) as a notebook and wait for its kernel to be idle."""
        return NotebookSession(self, path, timeout=timeout)

    def close(self) -> None:
        try:
            self.context.close()
        finally:
            self._pw.stop()


# --------------------------------------------------------------------------- one open notebook


def _norm(text: str) -> str:
    """Whitespace (no-break and zero-width spaces included) collapsed to single spaces."""
    return re.sub(r"[\s\u00a0\u200b]+", " ", text).strip()


def _same_value(shown: str, wanted: str) -> bool:
    """Whether a control showing ``shown`` holds ``wanted`` (numbers compared to the readout's precision)."""
    if shown == wanted:
        return True
    try:
        a, b = float(shown), float(wanted)
    except ValueError:
        return False
    decimals = len(shown.split(".")[1]) if "." in shown else 0
    return abs(a - b) <= 0.5 * 10 ** -decimals + 1e-12


@dataclass
class StepResult:
    step: str
    seconds: float
    checks: list[str]


class NotebookSession:
    """One notebook open in JupyterLab (see :meth:`LabBrowser.open`)."""

    def __init__(self, browser: LabBrowser, path: str, *, timeout: float) -> None:
        self.browser = browser
        self.page = browser.page
        self.path = path
        self._log_offset = browser.server.log_size()
        self.page.evaluate(
            """async (path) => {
                 const app = window.jupyterapp;
                 const nb = await app.commands.execute("docmanager:open", { path, factory: "Notebook" });
                 await nb.context.ready;
                 await nb.sessionContext.ready;
                 window.__bt.nb = nb;
                 window.__bt.iopub = [];
                 nb.sessionContext.iopubMessage.connect((_, msg) => {
                   const t = msg.header.msg_type, c = msg.content;
                   if (t === "error") window.__bt.iopub.push({ ename: c.ename, evalue: c.evalue,
                     traceback: (c.traceback || []).join("\\n").replace(/\\x1b\\[[0-9;]*m/g, "").slice(-2000) });
                   else if (t === "stream" && c.name === "stderr" && /Traceback \\(most recent call last\\)/.test(c.text))
                     window.__bt.iopub.push({ ename: "stderr", evalue: c.text.slice(-2000), traceback: "" });
                 });
               }""", path)
        self.wait_idle(timeout, what=f"the kernel of {path} to start")

    # ----------------------------------------------------------------- waiting and reading

    def _eval(self, script: str, arg=None):
        return self.page.evaluate(script, arg)

    def kernel_status(self) -> str:
        return self._eval("() => window.__bt.status()")

    def wait_idle(self, timeout: float, *, what: str = "the kernel to be idle", settle: float = 0.3) -> None:
        """Wait until the kernel is idle and stays idle for ``settle`` seconds."""
        deadline = time.monotonic() + timeout
        idle_since = None
        while time.monotonic() < deadline:
            status = self.kernel_status()
            if status == "dead":
                raise BrowserCheckError(f"{self.path}: the kernel died while waiting for {what}")
            if status == "idle":
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since >= settle:
                    return
            else:
                idle_since = None
            time.sleep(0.1)
        raise BrowserCheckError(f"{self.path}: timed out after {timeout:.0f} s waiting for {what} "
                                f"(kernel {self.kernel_status()})")

    def run_all(self, timeout: float) -> float:
        """Run all cells (JupyterLab's "Run All Cells") and wait until every code cell ran or one failed.

        Returns:
            The seconds it took.
        """
        tic = time.monotonic()
        self._eval("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
        deadline = tic + timeout
        state = {}
        while time.monotonic() < deadline:
            state = self._eval("() => window.__bt.runState()")
            if state["status"] == "dead":
                raise BrowserCheckError(f"{self.path}: the kernel died while running cell "
                                        f"{state['pending']} ({state['pendingSource']!r})")
            if state["status"] == "idle" and (state["done"] == state["total"] or state["errors"]):
                break
            time.sleep(0.5)
        else:
            raise BrowserCheckError(f"{self.path}: 'run all' did not finish in {timeout:.0f} s; "
                                    f"{state.get('done')} of {state.get('total')} code cells ran, "
                                    f"waiting on {state.get('pendingSource')!r}")
        self.wait_idle(30, what="the last outputs", settle=1.0)
        return time.monotonic() - tic

    def errors(self, error_text: Sequence[str] = ERROR_TEXT) -> list[str]:
        """Every error so far: error outputs of cells, errors on the kernel's iopub stream (widget callbacks
        included), and outputs whose text matches one of ``error_text``."""
        found = [f"cell {e['cell']} ({e['source'][:60]!r}): {e['ename']}: {e['evalue']}"
                 for e in self._eval("() => window.__bt.cellErrors()")]
        for e in self._eval("() => window.__bt.iopub"):
            line = f"kernel reported {e['ename']}: {e['evalue']}"
            if not any(e["evalue"] and e["evalue"] in f for f in found):
                found.append(line + (f"\n{e['traceback']}" if e["traceback"] else ""))
        # Exceptions raised in widget observers are only logged by the kernel (to the server's log).
        log = self.browser.server.log_since(self._log_offset)
        for m in re.finditer(r"Traceback \(most recent call last\):\n(?:[ \t].*\n)*.*", log):
            found.append(f"the kernel logged: {m.group(0)[-1500:]}")
        for k, text in enumerate(self.outputs_text()):
            for pattern in error_text:
                m = re.search(pattern, text)
                if m:
                    found.append(f"output of code cell with output area {k} shows {m.group(0)!r}: "
                                 f"...{text[max(0, m.start() - 200):m.end() + 300]}...")
        return found

    def outputs_text(self) -> list[str]:
        """The text of every cell's output area (controls' own labels and readouts left out)."""
        return self._eval("() => window.__bt.outputsText()")

    def save(self) -> None:
        self._eval("async () => { await window.__bt.nb.context.save(); }")

    def close(self) -> None:
        """Shut the notebook's kernel down and close its tab (no "save changes?" dialog)."""
        self._eval("async () => { const nb = window.__bt.nb; if (!nb) return;"
                   " await nb.sessionContext.shutdown(); nb.dispose(); window.__bt.nb = null; }")

    # ----------------------------------------------------------------- controls

    def control(self, description: str, nth: int | None = None) -> tuple[object, object, str]:
        """The control labelled ``description``, the output area around it, and its kind (e.g. "widget-slider")."""
        tag = secrets.token_hex(4)
        found = self._eval("([d, n, t]) => window.__bt.mark(d, n, t)", [description, nth, tag])
        if found["count"] == 0:
            raise BrowserCheckError(f"{self.path}: no control with description {description!r}; "
                                    f"controls on the page: {found['available']}")
        if "kind" not in found:
            raise BrowserCheckError(f"{self.path}: {found['count']} controls have description {description!r}; "
                                    f"pass nth=0..{found['count'] - 1} (got nth={nth})")
        el = self.page.locator(f'[data-bt="{tag}"]')
        scope = self.page.locator(f'[data-bt="{tag}-scope"]')
        return el, scope, found["kind"]

    def shown(self, control) -> str:
        return control.evaluate("el => window.__bt.shown(el)")

    def _set(self, control, kind: str, value: object, description: str) -> None:
        text = str(value)
        if kind in ("widget-dropdown", "widget-select", "widget-select-multiple"):
            select = control.locator("select")
            # ipywidgets shows spaces in option labels as no-break spaces
            raw = select.locator("option").all_text_contents()
            labels = [_norm(o) for o in raw]
            if _norm(text) not in labels:
                raise BrowserCheckError(f"{self.path}: {description!r} has no option {text!r}; options: {labels}")
            select.select_option(label=raw[labels.index(_norm(text))])
        elif kind == "widget-slider":
            readout = control.locator(".widget-readout")
            if readout.get_attribute("contenteditable") == "true":
                readout.click()
                self.page.keyboard.press("Control+A")
                self.page.keyboard.type(text)
                self.page.keyboard.press("Enter")
                self.page.wait_for_timeout(100)
            if not _same_value(self.shown(control), text):  # not typed, or not taken: walk with the arrow keys
                handle = control.locator(".noUi-handle").first
                handle.focus()
                for key in ("ArrowRight", "ArrowLeft"):
                    for _ in range(200):
                        if _same_value(self.shown(control), text):
                            return
                        before = self.shown(control)
                        handle.press(key)
                        if self.shown(control) == before:
                            break
                raise BrowserCheckError(f"{self.path}: slider {description!r} cannot show {text!r} "
                                        f"(it shows {self.shown(control)!r})")
        elif kind == "widget-toggle-buttons":
            control.locator("button.widget-toggle-button", has_text=re.compile(rf"^\s*{re.escape(text)}\s*$")).click()
        elif kind == "widget-radio":
            control.locator("label", has_text=re.compile(rf"^\s*{re.escape(text)}\s*$")).locator("input").check()
        elif kind == "widget-checkbox":
            control.locator("input[type=checkbox]").set_checked(bool(value))
        elif kind in ("widget-text", "widget-textarea"):
            field_ = control.locator("input, textarea").first
            field_.fill(text)
            field_.press("Enter")
            field_.blur()
        else:
            raise BrowserCheckError(f"{self.path}: cannot set {description!r}: control kind {kind} is not supported")

    # ----------------------------------------------------------------- observing the rendered output

    def _scope(self, scope_locator, scope: str):
        return scope_locator if scope == "widget" else self.page.locator(".jp-Notebook .jp-Cell-outputArea")

    def _text(self, scope_locator, scope: str) -> str:
        if scope == "widget":
            return scope_locator.evaluate("el => window.__bt.textOf(el)")
        return " | ".join(self.outputs_text())

    def _images(self, scope_locator, scope: str) -> list:
        """The rendered pixels (numpy arrays) of each visible ``img``/``canvas`` in scope, controls left out."""
        import numpy as np
        from PIL import Image

        root = self._scope(scope_locator, scope)
        images = root.locator("img, canvas")
        arrays = []
        for k in range(images.count()):
            img = images.nth(k)
            if not img.is_visible() or img.evaluate(f"el => !!el.closest({json.dumps(CONTROL_SELECTOR)})"):
                continue
            img.evaluate("el => el.tagName !== 'IMG' || el.complete || new Promise(r => el.onload = r)")
            arrays.append(np.asarray(Image.open(io.BytesIO(img.screenshot(animations="disabled"))).convert("RGB")))
        return arrays

    @staticmethod
    def _changed_fraction(before: list, after: list) -> float:
        import numpy as np

        if len(before) != len(after):
            return 1.0
        worst = 0.0
        for a, b in zip(before, after):
            if a.shape != b.shape:
                return 1.0
            worst = max(worst, float((np.abs(a.astype(int) - b.astype(int)).max(axis=2) > 8).mean()))
        return worst

    # ----------------------------------------------------------------- steps

    def apply(self, step: Step, *, error_text: Sequence[str] = ERROR_TEXT) -> StepResult:
        """Perform ``step`` and wait until all its expectations hold (else raise :class:`BrowserCheckError`)."""
        tic = time.monotonic()
        control, scope_loc, kind = self.control(step.description, step.nth)
        control.scroll_into_view_if_needed()
        scopes = {getattr(e, "scope", "widget") for e in step.expect}
        text_before = {s: self._text(scope_loc, s) for s in scopes}
        images_before = {e.scope: self._images(scope_loc, e.scope) for e in step.expect if isinstance(e, ImageChanged)}
        errors_before = len(self.errors(error_text))

        if isinstance(step, Set):
            self._set(control, kind, step.value, step.description)
            label = f"set {step.description!r} to {step.value!r}"
        elif isinstance(step, Nudge):
            if kind != "widget-slider":
                raise BrowserCheckError(f"{self.path}: Nudge needs a slider, {step.description!r} is a {kind}")
            handle = control.locator(".noUi-handle").first
            handle.focus()
            for _ in range(abs(step.steps)):
                handle.press("ArrowRight" if step.steps > 0 else "ArrowLeft")
            label = f"nudged {step.description!r} by {step.steps:+d}"
        elif isinstance(step, Press):
            if kind != "widget-button":
                raise BrowserCheckError(f"{self.path}: Press needs a button, {step.description!r} is a {kind}")
            control.click()
            label = f"pressed {step.description!r}"
        else:
            raise TypeError(f"step must be Set, Nudge or Press, got {type(step).__name__}")

        # The callback runs in the kernel: wait for it, then poll until the view shows what is expected.
        time.sleep(0.3)
        deadline = time.monotonic() + step.timeout
        checks: list[str] = []
        failures: list[str] = ["not checked yet"]
        while True:
            self.wait_idle(max(1.0, deadline - time.monotonic()), what=f"the callback after {label}", settle=0.5)
            errors = self.errors(error_text)
            if len(errors) > errors_before:
                raise BrowserCheckError(f"{self.path}: after {label}:\n" + "\n".join(errors[errors_before:]))
            checks, failures = [], []
            for e in step.expect:
                ok, note = self._holds(e, control, scope_loc, text_before, images_before)
                (checks if ok else failures).append(note)
            if not failures or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if failures:
            raise BrowserCheckError(f"{self.path}: after {label} (waited {step.timeout:.0f} s):\n"
                                    + "\n".join(f"  - {f}" for f in failures))
        return StepResult(label, time.monotonic() - tic, checks)

    def _holds(self, e: Expectation, control, scope_loc, text_before: dict, images_before: dict) -> tuple[bool, str]:
        if isinstance(e, Shows):
            shown = self.shown(control)
            return _same_value(shown, _norm(e.value)), f"control shows {shown!r} (expected {e.value!r})"
        if isinstance(e, TextMatches):
            text = self._text(scope_loc, e.scope)
            m = re.search(e.pattern, text)
            return bool(m), (f"text matches {e.pattern!r}: {m.group(0)!r}" if m else
                             f"text does not match {e.pattern!r}; it reads: {text[:600]!r}")
        if isinstance(e, TextChanged):
            text = self._text(scope_loc, e.scope)
            return text != text_before[e.scope], (f"text changed to {text[:200]!r}" if text != text_before[e.scope]
                                                  else f"text did not change: {text[:300]!r}")
        if isinstance(e, ImageChanged):
            after = self._images(scope_loc, e.scope)
            if not after:
                return False, "no image is shown"
            frac = self._changed_fraction(images_before[e.scope], after)
            return frac >= e.min_fraction, (f"image pixels changed: {frac:.1%} differ (>= {e.min_fraction:.1%})"
                                            if frac >= e.min_fraction else
                                            f"image did not change enough: {frac:.2%} of pixels differ "
                                            f"(< {e.min_fraction:.1%}; {len(after)} image(s))")
        raise TypeError(f"unknown expectation {e!r}")

    # ----------------------------------------------------------------- screenshots

    def screenshot(self, path: Path, *, around: str | None = None, nth: int | None = None) -> list[Path]:
        """Write a screenshot of the page, scrolled to the output of the control ``around`` (else to the end).

        Returns:
            The files written: ``path``.
        """
        if around is not None:
            _, scope, _ = self.control(around, nth)
            scope.evaluate("el => el.scrollIntoView({block: 'start'})")
        else:
            self._eval("() => { const w = window.__bt.nb.content.widgets;"
                       " w[w.length - 1].node.scrollIntoView({block: 'end'}); }")
        self.page.wait_for_timeout(200)
        self.page.screenshot(path=str(path), animations="disabled")
        return [Path(path)]


# --------------------------------------------------------------------------- one notebook, end to end


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
