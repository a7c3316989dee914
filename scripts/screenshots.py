"""Regenerate docs/screenshots/ from a finished LLDMIX_HOME (e.g. a completed quickstart's), so the
pictures show a real comparison rather than the browser test's 20-step smoke run.

    python scripts/screenshots.py --home PATH/TO/LLDMIX_HOME [--out docs/screenshots] [--browser PATH]

Starts the dashboard on a free loopback port against that home's database (read only: nothing is
queued or started), opens each page in a headless Chromium and saves one full-page PNG per page.
Exit code 2 with a one-line error when the home has no database or no browser is found.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [("Runs", "runs.png", None), ("Compare", "compare.png", ".vega-embed"),
         ("Model map", "model_map.png", ".vega-embed"), ("Recipes", "recipes.png", None),
         ("New run", "new_run.png", None)]


def _browser(given: str | None) -> str | None:
    for b in (given, os.environ.get("LLDMIX_BROWSER"), "/usr/bin/chromium-headless-shell",
              "/usr/lib/chromium/chromium-headless-shell", "/usr/bin/chromium"):
        if b and Path(b).is_file():
            return b
    return shutil.which("chromium")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _nav(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
    page.wait_for_load_state("networkidle")
    page.get_by_role("heading", name=title if title != "Compare" else "Compare methods").first.wait_for(timeout=60_000)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", required=True, type=Path, help="a finished LLDMIX_HOME (holds lldmix.db)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    ap.add_argument("--browser", default=None)
    args = ap.parse_args()
    if not (args.home / "lldmix.db").is_file() and not os.environ.get("LLDMIX_DB_URL"):
        print(f"screenshots: --home {args.home} has no lldmix.db (run the quickstart first)", file=sys.stderr)
        return 2
    browser_path = _browser(args.browser)
    if browser_path is None:
        print("screenshots: no headless Chromium (scripts/install_browser.sh installs one)", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    env = {**os.environ, "LLDMIX_HOME": str(args.home.resolve())}
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "lldmix_core.cli", "app", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.5)
        else:
            print("screenshots: the dashboard did not come up", file=sys.stderr)
            return 1
        args.out.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=browser_path, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--no-first-run", "--disable-dev-shm-usage"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            page.get_by_role("heading", name="Runs").first.wait_for(timeout=60_000)
            for title, name, wait_for in PAGES:
                _nav(page, title)
                if wait_for:
                    page.locator(wait_for).first.wait_for(timeout=60_000)
                page.wait_for_timeout(2000)
                page.screenshot(path=str(args.out / name), full_page=True)
                print(f"screenshots: wrote {args.out / name}")
            browser.close()
    finally:
        os.killpg(proc.pid, 9)
    return 0


if __name__ == "__main__":
    sys.exit(main())
