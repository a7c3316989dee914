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
import sys
from pathlib import Path

from dashboard import CHROMIUM_ARGS, find_browser, nav, start_dashboard, stop_dashboard

ROOT = Path(__file__).resolve().parents[1]
PAGES = [("Runs", "runs.png", None), ("Compare", "compare.png", ".vega-embed"),
         ("Model map", "model_map.png", ".vega-embed"), ("Recipes", "recipes.png", None),
         ("New run", "new_run.png", None)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", required=True, type=Path, help="a finished LLDMIX_HOME (holds lldmix.db)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    ap.add_argument("--browser", default=None)
    args = ap.parse_args()
    if not (args.home / "lldmix.db").is_file() and not os.environ.get("LLDMIX_DB_URL"):
        print(f"screenshots: --home {args.home} has no lldmix.db (run the quickstart first)", file=sys.stderr)
        return 2
    browser_path = find_browser(args.browser)
    if browser_path is None:
        print("screenshots: no headless Chromium (scripts/install_browser.sh installs one)", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    env = {**os.environ, "LLDMIX_HOME": str(args.home.resolve())}
    try:
        proc, url = start_dashboard(env)
    except RuntimeError as e:
        print(f"screenshots: {e}", file=sys.stderr)
        return 1
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=browser_path, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            page.get_by_role("heading", name="Runs").first.wait_for(timeout=60_000)
            for title, name, wait_for in PAGES:
                nav(page, title)
                if wait_for:
                    page.locator(wait_for).first.wait_for(timeout=60_000)
                page.wait_for_timeout(2000)
                page.screenshot(path=str(args.out / name), full_page=True)
                print(f"screenshots: wrote {args.out / name}")
            browser.close()
    finally:
        stop_dashboard(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
