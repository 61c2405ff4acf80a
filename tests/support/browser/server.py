"""``jupyter lab`` on 127.0.0.1 with a random token and throw-away Jupyter folders (:class:`LabServer`)."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Mapping

from .tools import BrowserCheckError


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
