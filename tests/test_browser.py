"""Real-browser smoke test of `make lab`: what a student sees in JupyterLab.

JupyterLab is started by `make lab` itself (its LAB_ARGS add a free port, a token and
--no-browser), with MPLBACKEND=Agg in the environment as `make` exports it for the headless
targets: the lab target must drop it, or no figure appears. Headless chromium then opens
notebook 04, runs it with JupyterLab's "Run > Run All Cells", and the test checks that figures
render as images, that no "<Figure size ...>" text stands in for one, and that moving a slider of
the volume explorer changes its image.

The explorer is found by widget structure (an output area holding ipywidgets sliders and an
image), not by cell index or text, so the notebook can be rewritten. Notebook autosave is off
(a temporary JupyterLab settings directory), and the test fails if the server saved the notebook.

Run with `make browser-test` (installs chromium, chromium-driver and selenium); `make test`
deselects the `browser` marker. Screenshots go to $GOCOR_SCREENSHOTS (default /tmp/gocor_browser).
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = "04_the_gocor_module.ipynb"
SHOTS = Path(os.environ.get("GOCOR_SCREENSHOTS", "/tmp/gocor_browser"))
RUN_TIMEOUT = 600          # seconds for Run All on a loaded 2-core machine
LAB_SETTINGS = {           # a fresh user-settings directory: no autosave, every cell in the DOM
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification": {"checkForUpdates": False, "fetchNews": "false"},
}


def _browser() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("chromium and chromedriver are not installed (Debian: apt-get install chromium "
                    "chromium-driver; `make browser-test` does it when run as root)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("selenium is not installed (`make browser-test` installs it into .venv)")
    if not shutil.which("make"):
        pytest.skip("make is not installed: the test starts JupyterLab with `make lab`")
    return chromium, driver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read() or b"null")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    _browser()
    tmp = tmp_path_factory.mktemp("lab")
    for plugin, values in LAB_SETTINGS.items():
        f = tmp / "settings" / f"{plugin}.jupyterlab-settings"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(values))
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, MPLBACKEND="Agg",          # as exported by the Makefile
               JUPYTERLAB_SETTINGS_DIR=str(tmp / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"))
    args = (f"--no-browser --ServerApp.ip=127.0.0.1 --ServerApp.port={port} "
            f"--ServerApp.port_retries=0 --IdentityProvider.token={token}")
    log_path = tmp / "lab.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(["make", "-s", "--no-print-directory", "lab", f"LAB_ARGS={args}"], cwd=ROOT,
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    api = lambda path: f"{base}{path}?token={token}"  # noqa: E731
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"`make lab` exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                _get(api("/api/status"))
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer in 180 s:\n{log_path.read_text()[-3000:]}")
                time.sleep(1)
        yield {"base": base, "token": token, "api": api, "log": log_path}
    finally:
        try:   # shut the kernels and the server down cleanly, then make sure the group is gone
            urllib.request.urlopen(urllib.request.Request(api("/api/shutdown"), method="POST"), timeout=10)
            proc.wait(timeout=30)
        except Exception:
            pass
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


@pytest.fixture(scope="module")
def browser():
    chromium, driver_path = _browser()
    from selenium import webdriver
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000", "--hide-scrollbars"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(predicate, timeout: float, what: str, poll: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)


# The explorer: an output area holding ipywidgets sliders and an image. Returns, for each, the
# area, its slider handles, readouts and image source (or null when no image is shown yet).
FIND_EXPLORERS = """
const out = [];
for (const area of document.querySelectorAll('.jp-OutputArea-output')) {
  const sliders = area.querySelectorAll('.widget-slider');
  if (!sliders.length) continue;
  const img = area.querySelector('img');
  out.push({area: area,
            handles: Array.from(area.querySelectorAll('.widget-slider .noUi-handle')),
            readouts: Array.from(area.querySelectorAll('.widget-readout')).map(r => r.textContent.trim()),
            src: img ? img.getAttribute('src') : null});
}
return out;
"""

# Per output area outside any widget: image sources and text.
STATIC_OUTPUTS = """
const out = [];
for (const area of document.querySelectorAll('.jp-OutputArea-output')) {
  if (area.querySelector('.jupyter-widgets') || area.closest('.jupyter-widgets')) continue;
  out.push({imgs: Array.from(area.querySelectorAll('img')).map(i => [i.getAttribute('src') || '', i.naturalWidth]),
            text: area.innerText});
}
return out;
"""


def _prompts(driver) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt'))"
        ".map(p => p.textContent.trim());")


def _shot(driver, name: str, element=None) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    if element is None:
        driver.save_screenshot(str(path))
    else:
        element.screenshot(str(path))
    return path


def _menu(driver, menu: str, item: str) -> None:
    from selenium.webdriver.common.by import By
    driver.find_element(By.XPATH, f"//li[contains(@class,'lm-MenuBar-item')][normalize-space()='{menu}']").click()
    _wait(lambda: driver.find_elements(
        By.XPATH, f"//li[contains(@class,'lm-Menu-item')][.//div[contains(@class,'lm-Menu-itemLabel')]"
                  f"[normalize-space()='{item}']]"), 10, f"{menu} > {item}")[0].click()


def test_lab_runs_notebook_04_with_figures_and_a_live_explorer(lab, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver = browser
    driver.get(f"{lab['base']}/lab/tree/{NOTEBOOK}?token={lab['token']}")
    _wait(lambda: _prompts(driver), 180, "the notebook's code cells")
    n_code = len(_prompts(driver))
    _wait(lambda: any(k["execution_state"] == "idle" for k in _get(lab["api"]("/api/kernels"))),
          180, "an idle kernel")

    # Edit > Clear Outputs of All Cells (so that no stored output is taken for a fresh one), then
    # Run > Run All Cells, through the menus a student uses.
    _menu(driver, "Edit", "Clear Outputs of All Cells")
    _wait(lambda: not driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-OutputArea-output"), 30,
          "the outputs to clear")
    assert not any(re.fullmatch(r"\[\d+\]:?", p) for p in _prompts(driver)), _prompts(driver)
    _menu(driver, "Run", "Run All Cells")
    t0 = time.monotonic()

    def finished():
        prompts = _prompts(driver)
        done = len(prompts) == n_code and all(re.fullmatch(r"\[\d+\]:?", p) for p in prompts)
        return done and all(k["execution_state"] == "idle" for k in _get(lab["api"]("/api/kernels")))
    _wait(finished, RUN_TIMEOUT, "Run All to finish", poll=2)
    run_s = time.monotonic() - t0
    print(f"Run All: {run_s:.0f} s for {n_code} code cells")

    errors = driver.find_elements(By.CSS_SELECTOR, "[data-mime-type='application/vnd.jupyter.error']")
    assert not errors, "a cell raised:\n" + "\n".join(e.text[-2000:] for e in errors)

    # Figures are images, never their text stand-in.
    try:   # the widget draws once its view is up; a missing image is reported below
        _wait(lambda: driver.execute_script(FIND_EXPLORERS) and
              all(e["src"] for e in driver.execute_script(FIND_EXPLORERS)), 60, "the explorer's image")
    except AssertionError:
        pass
    static = driver.execute_script(STATIC_OUTPUTS)
    leaked = [o["text"][:200] for o in static if "<Figure size" in o["text"]]
    explorers = driver.execute_script(FIND_EXPLORERS)
    leaked += [e["area"].text[:200] for e in explorers if "<Figure size" in e["area"].text]
    assert not leaked, f"figures shown as text, not images (inline backend off?): {leaked}"
    figures = [src for o in static for src, width in o["imgs"] if src.startswith("data:image/png") and width > 0]
    assert figures, "no figure rendered as an image outside the explorer"
    assert len(explorers) >= 1, "no output area with ipywidgets sliders (the volume explorer)"

    index = next((i for i, e in enumerate(explorers) if e["src"]), 0)   # the first one with an image
    explorer = explorers[index]
    assert explorer["src"], f"the explorer shows no image: {explorer['area'].text[:300]!r}"
    assert explorer["handles"], "the explorer's sliders have no handle"
    area = explorer["area"]
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", area)
    time.sleep(1)
    _shot(driver, "01_after_run_all.png")
    _shot(driver, "02_explorer_before.png", area)

    # Move the first slider one step with the keyboard, as a student would with the arrows.
    before_src, before_readouts = explorer["src"], explorer["readouts"]
    handle = explorer["handles"][0]
    handle.click()
    handle.send_keys(Keys.ARROW_RIGHT)
    time.sleep(0.5)
    if driver.execute_script(FIND_EXPLORERS)[index]["readouts"] == before_readouts:   # it was at its maximum
        handle.send_keys(Keys.ARROW_LEFT)
    after = _wait(lambda: (lambda e: e if e["src"] and e["src"] != before_src else None)(
        driver.execute_script(FIND_EXPLORERS)[index]), 120, "the explorer's image to change after the slider moved")
    assert after["readouts"] != before_readouts, "the slider's readout did not change"
    time.sleep(1)
    _shot(driver, "03_explorer_after.png", after["area"])
    assert not any("<Figure size" in e["area"].text for e in driver.execute_script(FIND_EXPLORERS))

    # The committed notebook was not saved over by the server.
    assert "Saving file" not in lab["log"].read_text(), "JupyterLab saved the notebook"
