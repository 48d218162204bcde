"""A real browser opens the controller playground in JupyterLab, runs it and moves a slider.

Needs Debian's Chromium (``.ci/run`` installs it) driven by Playwright; skips with
the reason where either is missing. The screenshot is kept in ``test-artifacts/``.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
NOTEBOOK = "04_context_aware_control.ipynb"
TOKEN = "mobiprox-browser-test"

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def lab_server(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    work = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", work)
    nb = work / NOTEBOOK
    # Quick mode, as in the notebook tests: set the parameter in the copy only.
    nb.write_text(nb.read_text().replace('"QUICK = False', '"QUICK = True'))
    port = _free_port()
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
           "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}",
           f"--ServerApp.root_dir={work}", "--ServerApp.disable_check_xsrf=True",
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    env = dict(os.environ, MPLBACKEND="Agg", JUPYTER_CONFIG_DIR=str(tmp_path / "jcfg"))
    log = open(tmp_path / "lab.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited: {(tmp_path / 'lab.log').read_text()[-2000:]}")
            time.sleep(0.5)
    else:
        proc.terminate()
        pytest.fail("jupyter lab did not start within 90 s")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def _run_all_cells(page) -> None:
    """Restart the kernel and run every cell from the notebook toolbar, confirming the
    dialog (the toolbar button is steadier across JupyterLab versions than the menus)."""
    page.locator(".jp-Notebook").first.click()
    button = page.locator("jp-button[data-command='notebook:restart-run-all'], "
                          "button[data-command='notebook:restart-run-all']").first
    button.wait_for(timeout=60_000)
    button.click()
    page.locator(".jp-Dialog .jp-mod-accept").first.click(timeout=60_000)


def test_playground_metrics_follow_a_slider(lab_server):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(f"{lab_server}/lab/tree/{NOTEBOOK}?token={TOKEN}", timeout=120_000)
            page.wait_for_selector(".jp-Notebook", timeout=120_000)
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']",
                                   timeout=120_000)
            _run_all_cells(page)
            metrics = page.locator(".mobiprox-metrics").first
            metrics.wait_for(timeout=300_000)
            page.wait_for_function(
                "() => { const m = document.querySelector('.mobiprox-metrics');"
                " return m && /energy/i.test(m.innerText); }", timeout=300_000)
            # let every cell finish (no "[*]" prompt left) so the layout stops moving
            page.wait_for_function(
                "() => ![...document.querySelectorAll('.jp-InputPrompt')]"
                ".some(e => e.innerText.includes('*'))", timeout=600_000)
            # the static controller: its index slider moves the energy for sure
            pick = page.locator(".widget-dropdown select").filter(
                has=page.locator("option", has_text="static")).first
            pick.evaluate("e => e.scrollIntoView({block: 'center'})")
            pick.select_option(label="static")
            page.wait_for_function(
                "() => /static/.test(document.querySelector('.mobiprox-metrics').innerText)",
                timeout=60_000)
            # a trace whose list has an approximate configuration (a quick-mode tune may
            # keep none for one of the models): the static index slider must be able to move
            handle = page.locator(".mobiprox-slider:visible .noUi-handle").first
            traces = page.locator(".widget-dropdown select").filter(
                has=page.locator("option", has_text="kws_context")).first
            def slider_can_move() -> bool:  # the kernel redraws a little after each pick
                for _ in range(40):
                    if float(handle.get_attribute("aria-valuemax") or 0) > 0:
                        return True
                    page.wait_for_timeout(250)
                return False

            for option in traces.locator("option").all_inner_texts():
                traces.select_option(label=option)
                if slider_can_move():
                    break
            else:
                pytest.fail("every trace's configuration list holds only the exact model")
            before = metrics.inner_text()
            key = "ArrowRight" if float(handle.get_attribute("aria-valuenow") or 0) == 0 \
                else "ArrowLeft"
            handle.evaluate("e => { e.scrollIntoView({block: 'center'}); e.focus(); }")
            for _ in range(3):
                page.keyboard.press(key)
                page.wait_for_timeout(150)
            page.wait_for_function(
                "(b) => document.querySelector('.mobiprox-metrics').innerText !== b",
                arg=before, timeout=60_000)
            after = metrics.inner_text()
            page.screenshot(path=str(ARTIFACTS / "playground.png"), full_page=False)
        finally:
            # what the page showed last, for a failure's post-mortem
            page.screenshot(path=str(ARTIFACTS / "playground-last.png"), full_page=False)
            browser.close()
    assert after != before
