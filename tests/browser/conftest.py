"""The JupyterLab that ``make lab`` starts, on a copy of the notebooks, and a headless Chromium to drive it.

Run with ``make test-browser``. The copy keeps the test from saving run outputs into ``notebooks/``;
``checkpoints/`` is linked beside it, where the notebooks look for it. JupyterLab's settings and
workspaces go to the same temporary folder, so the user's own are neither read nor changed.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    # no background connections: this machine's closed network refuses them, many at a time
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
LAB_SETTINGS = {
    # every cell in the page, not only those scrolled into view, so outputs can be read and measured
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    # never save the copy: what we check is what the kernel sent
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}


@dataclass
class Lab:
    url: str
    token: str
    notebooks: Path
    log: Path

    def address(self, notebook: str) -> str:
        """The notebook alone in a fresh workspace of its own (no tab of another page restored beside it)."""
        return f"{self.url}/lab/workspaces/{Path(notebook).stem}/tree/{notebook}?reset&token={self.token}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_server(url: str, token: str, process: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"make lab exited with code {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"JupyterLab did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def lab(tmp_path_factory) -> Lab:
    """``make lab`` serving a copy of ``notebooks/`` on a free port, with a token of our own."""
    home = tmp_path_factory.mktemp("lab")
    notebooks = home / "notebooks"
    shutil.copytree(ROOT / "notebooks", notebooks, ignore=shutil.ignore_patterns("build", ".ipynb_checkpoints"))
    (home / "checkpoints").symlink_to(ROOT / "checkpoints")
    settings = home / "settings"
    for plugin, values in LAB_SETTINGS.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    token, port = secrets.token_hex(16), _free_port()
    env = {**os.environ, "JUPYTER_TOKEN": token, "JUPYTERLAB_SETTINGS_DIR": str(settings),
           "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces")}
    log = home / "lab.log"
    with log.open("w") as out:
        process = subprocess.Popen(["make", "--no-print-directory", "lab", f"LAB_ROOT={notebooks}", f"LAB_PORT={port}"],
                                   cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_server(url, token, process, log)
        yield Lab(url, token, notebooks, log)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium (``apt-get install chromium``; another binary with ``CHROMIUM=...``), driven by Playwright."""
    from playwright.sync_api import sync_playwright

    executable = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(executable).exists():
        pytest.fail("Chromium was not found. Install it with `apt-get install chromium` (as root), or set "
                    "CHROMIUM to a Chromium or Chrome binary. (Not `playwright install`: it downloads browsers.)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    return SCREENSHOTS
