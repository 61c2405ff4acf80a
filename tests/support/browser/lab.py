"""Headless Chromium (the system build, driven by Playwright) with JupyterLab open (:class:`LabBrowser`)."""
from __future__ import annotations

import re
from pathlib import Path

from .dom import JS_HELPERS
from .server import LabServer
from .session import NotebookSession
from .tools import CHROMIUM_ARGS, chromium_path


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
        self.page.evaluate(JS_HELPERS)
        # Room for the notebook: no file browser in the screenshots.
        self.page.evaluate("() => window.jupyterapp.shell.collapseLeft()")

    def _only_loopback(self, route) -> None:
        url = route.request.url
        if re.match(rf"^(https?|wss?)://127\.0\.0\.1:{self.server.port}/", url):
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()

    def open(self, path: str, *, timeout: float = 180.0) -> NotebookSession:
        """Open ``path`` (relative to the server's root) as a notebook and wait for its kernel to be idle."""
        return NotebookSession(self, path, timeout=timeout)

    def close(self) -> None:
        try:
            self.context.close()
        finally:
            self._pw.stop()
