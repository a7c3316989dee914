"""End to end in a real headless Chromium: start the dashboard, build a run on the New run page (a bad
multiplier disables Start, the fixed one starts it), watch the Runs page refresh to finished, check that
Compare shows mean ± sd and gives uniform the same colour as the Model map, download a recipe and check
it against the database. Screenshots of each page land in a temporary folder (scripts/screenshots.py
regenerates docs/screenshots/ from a finished quickstart's LLDMIX_HOME), so the suite leaves the
tracked pictures alone."""

import json
import os
import re
import sqlite3
import sys

import pytest

from conftest import ROOT, run_cli

sys.path.insert(0, str(ROOT / "scripts"))
from dashboard import CHROMIUM_ARGS, find_browser, nav, start_dashboard, stop_dashboard  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Every wait ends as soon as the app renders what it waits for; these are only ceilings, generous
# because CI may share its cores with other jobs (a fixed 30 s failed there while filling a box)
UI_WAIT_MS = 180_000  # a page, a widget, a chart, a download
RUN_WAIT_MS = 900_000  # the queued run itself: trains three tiny models


@pytest.fixture
def server(tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "LLDMIX_HOME": str(home), "LLDMIX_DB_URL": "", "MLFLOW_TRACKING_URI": ""}
    run_cli("db", "upgrade", env=env)
    try:
        proc, url = start_dashboard(env, wait_s=UI_WAIT_MS / 1000)
    except RuntimeError as e:
        pytest.fail(str(e))
    yield url, home
    stop_dashboard(proc)
    pid_file = home / "worker.pid"
    if pid_file.is_file():
        try:
            os.killpg(int(pid_file.read_text()), 9)
        except (ProcessLookupError, ValueError, PermissionError):
            pass


LEGEND_COLOURS = """() => {
  const out = {};
  for (const t of document.querySelectorAll('.vega-embed svg .role-legend-label text')) {
    let g = t.parentElement;
    while (g && !g.querySelector('.role-legend-symbol path')) g = g.parentElement;
    const p = g && g.querySelector('.role-legend-symbol path');
    const fill = p && p.getAttribute('fill');
    if (!(t.textContent in out)) out[t.textContent] = fill && fill !== 'none' ? fill : p && p.getAttribute('stroke');
  }
  return out;
}"""  # legend label → the colour of its symbol, over every chart on the page (vega renders SVG)


def _start_button(page):
    return page.locator("button:visible").filter(has_text=re.compile(r"^\s*Start\s*$")).first


def test_start_a_run_in_the_browser_and_download_its_recipe(server, tmp_path):
    browser_path = find_browser()
    if browser_path is None:
        pytest.skip("no headless Chromium (scripts/install_browser.sh installs Debian's)")
    playwright = pytest.importorskip("playwright.sync_api")
    url, home = server
    SHOTS = tmp_path / "screenshots"
    SHOTS.mkdir()
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page.set_default_timeout(UI_WAIT_MS)  # fill, click and press wait for their element too
        page.goto(url)
        page.get_by_role("heading", name="Runs").first.wait_for(timeout=UI_WAIT_MS)

        nav(page, "New run", timeout_ms=UI_WAIT_MS)
        box = page.get_by_role("textbox", name="Domain multipliers (domain=factor, …)")
        box.wait_for(timeout=UI_WAIT_MS)
        box.fill("Python=4 C++=4")  # the missing comma
        box.press("Enter")
        page.get_by_text("is not domain=factor", exact=False).first.wait_for(timeout=UI_WAIT_MS)
        assert _start_button(page).is_disabled()
        box.fill("Python=4, C++=4")
        box.press("Enter")
        page.wait_for_function("() => ![...document.querySelectorAll('button')].some("
                               "b => b.innerText.trim() === 'Start' && b.disabled)", timeout=UI_WAIT_MS)
        assert page.get_by_text("is not domain=factor", exact=False).count() == 0
        _start_button(page).click()
        page.get_by_text("Queued job").wait_for(timeout=UI_WAIT_MS)
        page.screenshot(path=str(SHOTS / "new_run.png"), full_page=True)

        nav(page, "Runs", timeout_ms=UI_WAIT_MS)
        page.get_by_text(re.compile(r"^(queued|running)$")).first.wait_for(timeout=UI_WAIT_MS)
        # no reload from here on: the page refreshes itself while the job runs
        page.get_by_text(re.compile(r"^dashboard-run — finished — 3 runs")).first.wait_for(timeout=RUN_WAIT_MS)
        page.get_by_text("finished", exact=True).first.wait_for(timeout=UI_WAIT_MS)
        page.wait_for_timeout(2500)
        page.screenshot(path=str(SHOTS / "runs.png"), full_page=True)

        nav(page, "Compare", timeout_ms=UI_WAIT_MS)
        page.locator(".vega-embed").first.wait_for(timeout=UI_WAIT_MS)
        page.get_by_role("heading", name="Final model-map KL to target (mean ± sd over seeds)").wait_for(timeout=UI_WAIT_MS)
        page.wait_for_timeout(1500)
        compare_colours = page.evaluate(LEGEND_COLOURS)
        page.screenshot(path=str(SHOTS / "compare.png"), full_page=True)

        nav(page, "Model map", timeout_ms=UI_WAIT_MS)
        page.locator(".vega-embed").first.wait_for(timeout=UI_WAIT_MS)
        page.wait_for_timeout(1500)
        map_colours = page.evaluate(LEGEND_COLOURS)
        page.screenshot(path=str(SHOTS / "model_map.png"), full_page=True)

        nav(page, "Recipes", timeout_ms=UI_WAIT_MS)
        with page.expect_download(timeout=UI_WAIT_MS) as dl:
            page.locator("button:visible", has_text="Download JSON").first.click()
        path = tmp_path / "recipe.json"
        dl.value.save_as(path)
        page.screenshot(path=str(SHOTS / "recipes.png"), full_page=True)
        browser.close()

    recipe = json.loads(path.read_text())
    assert abs(sum(recipe["weights"].values()) - 1.0) < 1e-9
    with sqlite3.connect(home / "lldmix.db") as con:
        stored = json.loads(con.execute("SELECT weights FROM recipes WHERE name = ?", (recipe["name"],)).fetchone()[0])
        assert con.execute("SELECT status FROM jobs").fetchone()[0] == "finished"
    assert stored == pytest.approx(recipe["weights"])
    from lldmix_core.methods import TARGET_COLOR, color_of

    assert compare_colours["uniform"] == map_colours["uniform"] == color_of("uniform")
    assert compare_colours["aggregated-lld"] == map_colours["aggregated-lld"] == color_of("aggregated-lld")
    assert map_colours["target"] == TARGET_COLOR and "" not in map_colours  # the target's entry is named
