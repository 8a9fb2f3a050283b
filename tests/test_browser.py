"""Real-browser test of `make lab`: what a student sees in JupyterLab, for every notebook.

JupyterLab is started by `make lab` itself (its LAB_ARGS add a free port, a token and
--no-browser), with MPLBACKEND=Agg in the environment as `make` exports it for the headless
targets: the lab target must drop it, or no figure appears. Headless chromium then

- checks that the student's lab has none of nbgrader's instructor tools (no nbgrader menu, no
  "Create Assignment" sidebar, no formgrader, no "No nbgrader_config.py" warning in the log),
  while `make formgrader` still has them (the same check, reversed, so it can fail);
- opens every notebook of notebooks/ in turn, clears its outputs and runs it with JupyterLab's
  "Run > Run All Cells", and checks that no cell raised, that figures render as images (never
  as "<Figure size ...>" text) and, where the committed notebook holds ipywidgets, that moving a
  slider of the volume explorer changes its image.

The explorer is found by widget structure (an output area holding ipywidgets sliders and an
image), not by cell index or text, so notebooks can be rewritten. Notebook autosave is off (a
temporary JupyterLab settings directory), and each test fails if the notebook file changed.

Run with `make browser-test` (installs chromium, chromium-driver and selenium); `make test`
deselects the `browser` marker. Screenshots and the Run All times go to $GOCOR_SCREENSHOTS
(default build/browser/).
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
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]*_*.ipynb"))
SHOTS = Path(os.environ.get("GOCOR_SCREENSHOTS", ROOT / "build" / "browser"))
RUN_TIMEOUT = 900          # seconds for one notebook's Run All on a loaded 2-core machine
LAB_SETTINGS = {           # a fresh user-settings directory: no autosave, every cell in the DOM
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification": {"checkForUpdates": False, "fetchNews": "false"},
}
# What nbgrader's JupyterLab extension adds: its menu, the assignment sidebar, its panels.
INSTRUCTOR_UI = ("Nbgrader", "Formgrader", "Create Assignment", "Assignment List", "Course List")


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


def _get(url: str, timeout: float = 5.0, method: str = "GET"):
    with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=timeout) as r:
        return json.loads(r.read() or b"null")


@contextmanager
def _start(target: str, tmp: Path):
    """`make <target>` on a free port with a fresh settings directory; yields its URLs and log."""
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
    log_path = tmp / f"{target}.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(["make", "-s", "--no-print-directory", target, f"LAB_ARGS={args}",
                             f"FORMGRADER_ARGS={args}"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    api = lambda path: f"{base}{path}?token={token}"  # noqa: E731
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"`make {target}` exited with {proc.returncode}:\n"
                            f"{log_path.read_text()[-3000:]}")
            try:
                _get(api("/api/status"))
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"`make {target}` did not answer in 180 s:\n"
                                f"{log_path.read_text()[-3000:]}")
                time.sleep(1)
        yield {"base": base, "token": token, "api": api, "log": log_path}
    finally:
        try:   # shut the kernels and the server down cleanly, then make sure the group is gone
            _get(api("/api/shutdown"), timeout=10, method="POST")
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
def lab(tmp_path_factory):
    _browser()
    with _start("lab", tmp_path_factory.mktemp("lab")) as server:
        yield server


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium, driver_path = _browser()
    tmp = tmp_path_factory.mktemp("chromium")   # chromium's own temporary files, not /tmp's
    from selenium import webdriver
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000", "--hide-scrollbars"):
        options.add_argument(arg)
    options.add_argument(f"--user-data-dir={tmp / 'profile'}")
    service = webdriver.ChromeService(executable_path=driver_path,
                                      env=dict(os.environ, TMPDIR=str(tmp)))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def timings():
    times: dict[str, float] = {}
    yield times
    if times:
        SHOTS.mkdir(parents=True, exist_ok=True)
        (SHOTS / "run_all_seconds.json").write_text(json.dumps(times, indent=1))
        print("\nRun All in JupyterLab: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items())
              + f"; total {sum(times.values()):.0f} s")


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
            readouts: Array.from(area.querySelectorAll('.widget-readout'))
                           .map(r => r.textContent.trim()),
            src: img ? img.getAttribute('src') : null});
}
return out;
"""

# Per output area outside any widget: image sources and text.
STATIC_OUTPUTS = """
const out = [];
for (const area of document.querySelectorAll('.jp-OutputArea-output')) {
  if (area.querySelector('.jupyter-widgets') || area.closest('.jupyter-widgets')) continue;
  out.push({imgs: Array.from(area.querySelectorAll('img'))
                       .map(i => [i.getAttribute('src') || '', i.naturalWidth]),
            text: area.innerText});
}
return out;
"""

# What the page offers besides the notebook: menu bar items, tab and sidebar titles, toolbar
# buttons (their text and tooltips).
CHROME_LABELS = """
const sel = '.lm-MenuBar-item, .lm-TabBar-tab, .jp-SideBar .lm-TabBar-tab, .jp-Toolbar-item, '
          + '[title], [aria-label]';
const out = new Set();
for (const el of document.querySelectorAll(sel)) {
  for (const t of [el.innerText, el.getAttribute('title'), el.getAttribute('aria-label')]) {
    if (t && t.trim()) out.add(t.trim());
  }
}
return Array.from(out);
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
    driver.find_element(
        By.XPATH, f"//li[contains(@class,'lm-MenuBar-item')][normalize-space()='{menu}']").click()
    _wait(lambda: driver.find_elements(
        By.XPATH, f"//li[contains(@class,'lm-Menu-item')][.//div[contains(@class,"
                  f"'lm-Menu-itemLabel')][normalize-space()='{item}']]"), 10,
          f"{menu} > {item}")[0].click()


def _open(driver, server: dict, notebook: str, workspace: str) -> int:
    """Open ``notebook`` in a workspace of its own (no other tab restored); the number of its
    code cells once the kernel is idle."""
    url = f"{server['base']}/lab/workspaces/{workspace}/tree/{notebook}?token={server['token']}"
    driver.get(url)
    _wait(lambda: _prompts(driver), 180, f"the code cells of {notebook}")
    _wait(lambda: any(k["execution_state"] == "idle" for k in _get(server["api"]("/api/kernels"))),
          180, "an idle kernel")
    return len(_prompts(driver))


def _instructor_ui(driver) -> list[str]:
    labels = driver.execute_script(CHROME_LABELS)
    return sorted({w for w in INSTRUCTOR_UI for label in labels if w.lower() in label.lower()})


def _committed(notebook: str) -> tuple[bool, bool]:
    """Whether the committed notebook shows figures (PNG) and ipywidgets."""
    outputs = [o for c in json.loads((ROOT / "notebooks" / notebook).read_text())["cells"]
               for o in c.get("outputs", [])]
    data = [o.get("data", {}) for o in outputs]
    return (any("image/png" in d for d in data),
            any("application/vnd.jupyter.widget-view+json" in d for d in data))


def test_student_lab_has_no_instructor_tools(lab, browser):
    _open(browser, lab, NOTEBOOKS[0], "student")
    time.sleep(3)          # let every extension add its menus and panels
    _shot(browser, "00_student_lab.png")
    assert _instructor_ui(browser) == [], f"nbgrader's UI in `make lab`: {_instructor_ui(browser)}"
    log = lab["log"].read_text()
    assert "nbgrader_config.py" not in log and "nbgrader.server_extensions" not in log, log[-2000:]
    assert urllib.request.urlopen(lab["api"]("/api/status")).status == 200
    try:
        urllib.request.urlopen(lab["api"]("/formgrader"))
        served = True
    except urllib.error.HTTPError as e:
        served = e.code != 404
    assert not served, "`make lab` serves nbgrader's /formgrader"


def test_formgrader_keeps_instructor_tools(browser, tmp_path):
    """The reverse check: `make formgrader` has nbgrader's menu (so the check above can fail)."""
    _browser()
    with _start("formgrader", tmp_path) as server:
        browser.get(f"{server['base']}/lab?token={server['token']}")
        found = _wait(lambda: _instructor_ui(browser), 120, "nbgrader's menu in `make formgrader`")
        _shot(browser, "00_formgrader_lab.png")
        assert "Nbgrader" in found or "Formgrader" in found, found


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_run_all_in_lab(lab, browser, timings, notebook):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver = browser
    path = ROOT / "notebooks" / notebook
    committed = path.read_bytes()
    has_figures, has_widgets = _committed(notebook)
    stem = notebook.split("_")[0]
    n_code = _open(driver, lab, notebook, f"nb{stem}")

    # Edit > Clear Outputs of All Cells (so that no stored output is taken for a fresh one), then
    # Run > Run All Cells, through the menus a student uses.
    _menu(driver, "Edit", "Clear Outputs of All Cells")
    _wait(lambda: not driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-OutputArea-output"),
          30, "the outputs to clear")
    assert not any(re.fullmatch(r"\[\d+\]:?", p) for p in _prompts(driver)), _prompts(driver)
    _menu(driver, "Run", "Run All Cells")
    t0 = time.monotonic()

    def finished():
        prompts = _prompts(driver)
        done = len(prompts) == n_code and all(re.fullmatch(r"\[\d+\]:?", p) for p in prompts)
        kernels = _get(lab["api"]("/api/kernels"))
        return done and all(k["execution_state"] == "idle" for k in kernels)
    try:
        _wait(finished, RUN_TIMEOUT, f"Run All of {notebook} to finish", poll=2)
    finally:
        timings[notebook] = time.monotonic() - t0
        _shot(driver, f"{stem}_after_run_all.png")

    errors = driver.find_elements(By.CSS_SELECTOR,
                                  "[data-mime-type='application/vnd.jupyter.error']")
    assert not errors, "a cell raised:\n" + "\n".join(e.text[-2000:] for e in errors)
    stderr = driver.find_elements(By.CSS_SELECTOR,
                                  "[data-mime-type='application/vnd.jupyter.stderr']")
    assert not [e.text for e in stderr if "Traceback" in e.text], "a traceback on stderr"

    # Figures are images, never their text stand-in.
    if has_widgets:
        try:   # the widget draws once its view is up; a missing image is reported below
            _wait(lambda: driver.execute_script(FIND_EXPLORERS) and
                  all(e["src"] for e in driver.execute_script(FIND_EXPLORERS)), 60,
                  "the explorer's image")
        except AssertionError:
            pass
    static = driver.execute_script(STATIC_OUTPUTS)
    explorers = driver.execute_script(FIND_EXPLORERS)
    leaked = [o["text"][:200] for o in static if "<Figure size" in o["text"]]
    leaked += [e["area"].text[:200] for e in explorers if "<Figure size" in e["area"].text]
    assert not leaked, f"figures shown as text, not images (inline backend off?): {leaked}"
    figures = [src for o in static for src, width in o["imgs"]
               if src.startswith("data:image/png") and width > 0]
    if has_figures:
        assert figures, f"{notebook}: no figure rendered as an image"

    if has_widgets:
        assert explorers, "no output area with ipywidgets sliders (the volume explorer)"
        index = next((i for i, e in enumerate(explorers) if e["src"]), 0)   # first with an image
        explorer = explorers[index]
        assert explorer["src"], f"the explorer shows no image: {explorer['area'].text[:300]!r}"
        assert explorer["handles"], "the explorer's sliders have no handle"
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", explorer["area"])
        time.sleep(1)
        _shot(driver, f"{stem}_explorer_before.png", explorer["area"])
        # Move the first slider one step with the keyboard, as a student would with the arrows.
        before_src, before_readouts = explorer["src"], explorer["readouts"]
        handle = explorer["handles"][0]
        handle.click()
        handle.send_keys(Keys.ARROW_RIGHT)
        time.sleep(0.5)
        if driver.execute_script(FIND_EXPLORERS)[index]["readouts"] == before_readouts:   # at max
            handle.send_keys(Keys.ARROW_LEFT)
        after = _wait(lambda: (lambda e: e if e["src"] and e["src"] != before_src else None)(
            driver.execute_script(FIND_EXPLORERS)[index]), 120,
            "the explorer's image to change after the slider moved")
        assert after["readouts"] != before_readouts, "the slider's readout did not change"
        time.sleep(1)
        _shot(driver, f"{stem}_explorer_after.png", after["area"])

    # The committed notebook was not saved over; its kernel is shut down before the next one.
    for session in _get(lab["api"]("/api/sessions")):
        _get(lab["api"](f"/api/sessions/{session['id']}"), method="DELETE")
    assert path.read_bytes() == committed, f"JupyterLab saved {notebook}"
    assert "Saving file" not in lab["log"].read_text(), "JupyterLab saved a notebook"
