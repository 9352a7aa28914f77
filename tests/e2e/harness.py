"""A throwaway JupyterLab server and a headless Debian Chromium, for e2e tests and benchmarks.

Never downloads a browser: it launches /usr/bin/chromium (``apt-get install chromium``).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
REPO = Path(__file__).resolve().parents[2]


def ensure_chromium() -> str | None:
    """Return None when /usr/bin/chromium is usable, else the reason it is not.

    Installs Debian's chromium with apt-get when running as root and it is missing.
    """
    if os.access(CHROMIUM, os.X_OK):
        return None
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
            subprocess.run(cmd, env=env, capture_output=True, timeout=900, check=False)
        if os.access(CHROMIUM, os.X_OK):
            return None
        return f"{CHROMIUM} is missing and `apt-get install chromium` did not provide it"
    return f"{CHROMIUM} is missing and cannot be installed here (not root or no apt-get)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LabServer:
    root: Path
    port: int
    token: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}?token={self.token}"

    def shutdown_kernels(self) -> None:
        """Delete every session (and its kernel), so tests do not share kernels."""
        auth = {"Authorization": f"token {self.token}"}
        with urllib.request.urlopen(
            urllib.request.Request(f"{self.base}/api/sessions", headers=auth), timeout=10
        ) as r:
            sessions = json.load(r)
        for sess in sessions:
            req = urllib.request.Request(
                f"{self.base}/api/sessions/{sess['id']}", method="DELETE", headers=auth
            )
            urllib.request.urlopen(req, timeout=10).close()

    def stop(self) -> None:
        try:
            req = urllib.request.Request(
                f"{self.base}/api/shutdown",
                method="POST",
                headers={"Authorization": f"token {self.token}"},
            )
            urllib.request.urlopen(req, timeout=5).close()
            self.proc.wait(timeout=10)
        except Exception:  # noqa: BLE001 - fall through to killing the group
            pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


def start_lab(tmp: Path, *, tcp_nodelay: bool = False, app: str = "lab") -> LabServer:
    """Start JupyterLab (``app="notebook"``: Notebook 7) on 127.0.0.1 with its own root, port,
    token and Jupyter dirs in ``tmp``."""
    root = tmp / "root"
    root.mkdir(parents=True, exist_ok=True)
    cfg = tmp / "config"
    settings = cfg / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(cfg),
        "JUPYTER_DATA_DIR": str(tmp / "data"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "IPYTHONDIR": str(tmp / "ipython"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"),
    }
    if tcp_nodelay:
        # Small replies otherwise wait ~40 ms on Nagle + delayed ACK (see bench/widget_latency.py).
        pth = tmp / "sitecustomize_dir"
        pth.mkdir(exist_ok=True)
        (pth / "sitecustomize.py").write_text(_NODELAY_PATCH)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pth), env.get("PYTHONPATH")]))
    port, token = free_port(), secrets.token_hex(16)
    log = tmp / "lab.log"
    cmd = [
        sys.executable,
        "-m",
        "jupyter",
        app,
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--ServerApp.token={token}",
        f"--ServerApp.root_dir={root}",
        "--allow-root",
        "--LabApp.expose_app_in_browser=True"
        if app == "lab"
        else "--JupyterNotebookApp.expose_app_in_browser=True",
        "--ServerApp.open_browser=False",
    ]
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            cmd, cwd=root, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = LabServer(root, port, token, proc, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited early:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(server.url("api/status"), timeout=2).close()
            return server
        except OSError:
            time.sleep(0.3)
    server.stop()
    raise RuntimeError(f"jupyter lab did not start in 60 s:\n{log.read_text()[-3000:]}")


_NODELAY_PATCH = """
try:
    from tornado import iostream as _io

    _orig_init = _io.IOStream.__init__

    def _init(self, *a, **k):
        _orig_init(self, *a, **k)
        try:
            self.set_nodelay(True)
        except Exception:
            pass

    _io.IOStream.__init__ = _init
except Exception:
    pass
"""


def python_notebook(*cells: str) -> Any:
    """A notebook of code cells with a python3 kernelspec (no kernel-selection dialog)."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    return nb


def launch_browser(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


# JS run in the page: execute code in the notebook's kernel, return its stdout (and errors).
KERNEL_EXEC = """async (code) => {
  const panel = window.jupyterapp.shell.currentWidget;
  const kernel = panel.sessionContext.session.kernel;
  let out = "";
  const fut = kernel.requestExecute({ code, store_history: false });
  fut.onIOPub = (msg) => {
    const t = msg.header.msg_type;
    if (t === "stream") out += msg.content.text;
    else if (t === "error") out += "ERROR " + msg.content.ename + ": " + msg.content.evalue;
  };
  await fut.done;
  return out;
}"""


def open_and_run(
    page: Any, server: LabServer, name: str, timeout_ms: int = 60_000, app: str = "lab"
) -> None:
    """Open notebook ``name`` (in the server root) and run all its cells."""
    if app == "lab":
        # ?reset: ignore the saved workspace, so only this notebook opens and becomes current.
        page.goto(server.url(f"lab/tree/{name}") + "&reset")
    else:
        page.goto(server.url(f"notebooks/{name}"))
    page.wait_for_function(
        """() => {
          const app = window.jupyterapp;
          const w = app && app.shell.currentWidget;
          return !!(w && w.sessionContext && w.sessionContext.session &&
                    w.sessionContext.session.kernel &&
                    w.sessionContext.session.kernel.connectionStatus === 'connected');
        }""",
        timeout=timeout_ms,
    )
    page.evaluate("() => window.jupyterapp.commands.execute('runmenu:run-all')")
