"""Driving the dashboard headless, shared by tests/test_browser.py and scripts/screenshots.py:
finding Chromium, starting `lldmix app` on a free port and waiting for it, moving between pages."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-dev-shm-usage"]


def find_browser(given: str | None = None) -> str | None:
    """A headless Chromium: `given`, $LLDMIX_BROWSER, the usual system paths, or chromium on PATH."""
    for b in (given, os.environ.get("LLDMIX_BROWSER"), "/usr/bin/chromium-headless-shell",
              "/usr/lib/chromium/chromium-headless-shell", "/usr/bin/chromium"):
        if b and Path(b).is_file():
            return b
    return shutil.which("chromium")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_dashboard(env: dict, *, wait_s: float = 60.0) -> tuple[subprocess.Popen, str]:
    """`lldmix app` in its own process group with `env`; returns (process, url) once /_stcore/health
    answers. Raises RuntimeError (after killing it) when it does not come up within `wait_s`."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "lldmix_core.cli", "app", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + wait_s
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                return proc, url
        except OSError:
            time.sleep(0.5)
    stop_dashboard(proc)
    raise RuntimeError(f"the dashboard did not come up at {url} within {wait_s:.0f} s")


def stop_dashboard(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, 9)
    except ProcessLookupError:
        pass


def nav(page, title: str, *, timeout_ms: int = 60_000) -> None:
    """Click `title` in the sidebar and wait for the page's heading."""
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
    page.wait_for_load_state("networkidle")
    heading = title if title != "Compare" else "Compare methods"
    page.get_by_role("heading", name=heading).first.wait_for(timeout=timeout_ms)
