"""A real browser opens the controller playground in JupyterLab, runs it and moves a slider.

Needs Debian's Chromium (``.ci/run`` installs it) driven by Playwright; skips with
the reason where either is missing. The screenshot is kept in ``test-artifacts/``.
"""

import json
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
    # every cell stays in the page: with JupyterLab's default windowing, "run all" scrolls to
    # the last cell and the playground's output above it leaves the DOM (seen in CI: all
    # cells ran, the metrics never showed)
    settings = tmp_path / "lab-settings"
    tracker = settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))
    news = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text(json.dumps({"fetchNews": "false"}))
    port = _free_port()
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
           "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}",
           f"--ServerApp.root_dir={work}", "--ServerApp.disable_check_xsrf=True",
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           # window.jupyterapp: run commands and read the kernel's state without menus
           "--LabApp.expose_app_in_browser=True", f"--LabApp.user_settings_dir={settings}",
           f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}"]
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


_KERNEL_READY = """() => {
    const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    const k = w && w.sessionContext && w.sessionContext.session
        && w.sessionContext.session.kernel;
    return !!k && k.connectionStatus === 'connected' && k.status === 'idle';
}"""


def _run_all_cells(page) -> None:
    """Run every cell of the open notebook in its fresh kernel once that kernel is connected
    and idle. (Clicking "restart and run all" while the new kernel was still connecting made
    the server drop the restarted kernel's websocket, seen in CI: no cell ever ran.)"""
    page.wait_for_function(_KERNEL_READY, timeout=120_000)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    # execution must start: a prompt shows [*] or a number
    page.wait_for_function(
        "() => [...document.querySelectorAll('.jp-InputPrompt')]"
        ".some(e => /\\[(\\*|\\d+)\\]/.test(e.innerText))", timeout=60_000)


def _notebook_errors(page) -> str:
    """The text of every error output the notebook shows (empty when none)."""
    return "\n".join(page.locator(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'],"
        " .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']"
    ).all_inner_texts())


def _wait_or_report(page, script: str, timeout_ms: int, arg=None) -> None:
    """Wait for ``script`` to hold; fail at once with the notebook's error output when a cell
    raised, and with it after the timeout."""
    deadline = time.time() + timeout_ms / 1000
    while time.time() < deadline:
        if page.evaluate(script, arg):
            return
        if page.locator(".jp-OutputArea-output[data-mime-type="
                        "'application/vnd.jupyter.error']").count():
            pytest.fail(f"a notebook cell raised:\n{_notebook_errors(page)[-3000:]}")
        page.wait_for_timeout(1000)
    pytest.fail(f"waited {timeout_ms / 1000:.0f} s for {script!r}; notebook errors:\n"
                f"{_notebook_errors(page)[-3000:] or '(none)'}")


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
            _wait_or_report(page, "() => { const m = document.querySelector('.mobiprox-metrics');"
                            " return !!m && /energy/i.test(m.innerText); }", 600_000)
            # let every cell finish (no "[*]" prompt left) so the layout stops moving
            _wait_or_report(page, "() => ![...document.querySelectorAll('.jp-InputPrompt')]"
                            ".some(e => e.innerText.includes('*'))", 600_000)
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
