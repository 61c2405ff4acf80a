"""One notebook open in JupyterLab (:class:`NotebookSession`): run all cells, wait for the kernel, read outputs
and errors, find controls, apply steps, screenshot."""
from __future__ import annotations

import io
import json
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from .dom import CONTROL_SELECTOR
from .steps import ERROR_TEXT, Expectation, ImageChanged, Nudge, Press, Set, Shows, Step, TextChanged, TextMatches
from .tools import BrowserCheckError

if TYPE_CHECKING:
    from .lab import LabBrowser


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

    def __init__(self, browser: "LabBrowser", path: str, *, timeout: float) -> None:
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
        """Shut the notebook's kernel down and close its tab (no "save changes?" dialog).

        A loaded machine once made the page drop the shutdown's promise ("Resulting promise was garbage
        collected") after every check had passed; that one error is not the notebook's, and the lab server's own
        teardown stops any kernel left, so it is let through. Any other error is raised."""
        from playwright.sync_api import Error as PlaywrightError  # the browser extra only (as in _images)

        try:
            self._eval("async () => { const nb = window.__bt.nb; if (!nb) return;"
                       " await nb.sessionContext.shutdown(); nb.dispose(); window.__bt.nb = null; }")
        except PlaywrightError as err:
            if "garbage collected" not in str(err):
                raise

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

    def _images(self, scope_locator, scope: str, *, attempts: int = 10) -> list:
        """The rendered pixels (numpy arrays) of each visible ``img``/``canvas`` in scope, controls left out.

        A view redrawn while it is read (an output area replacing its image) detaches the element under the
        screenshot: read it again, once it has settled.
        """
        from playwright.sync_api import Error as PlaywrightError

        for attempt in range(attempts):
            try:
                return self._read_images(scope_locator, scope)
            except PlaywrightError as err:
                if "not attached" not in str(err) or attempt == attempts - 1:
                    raise
                time.sleep(0.5)
        raise AssertionError("unreachable")

    def _read_images(self, scope_locator, scope: str) -> list:
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
