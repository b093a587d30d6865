"""The web dashboard in a real browser: `offtake dashboard --store DIR` started on a free local
port, driven by a headless Chromium (Debian's `chromium` and `chromium-driver`, through
Selenium). Every page is opened and its figures and tables are looked for; a screenshot of
each is saved under tests/artifacts/dashboard/ (or $OFFTAKE_ARTIFACTS/dashboard).

Without Streamlit, Selenium or the browser these tests skip and say what is missing; with
OFFTAKE_REQUIRE_BROWSER=1 (set by .ci/run) that is a failure instead.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import INSTANCES, ROOT

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
MISSING = [name for name, ok in (
    ("the Python package streamlit (pip install -e .[dashboard])",
     importlib.util.find_spec("streamlit") is not None),
    ("the Python package selenium (pip install -e .[dashboard])",
     importlib.util.find_spec("selenium") is not None),
    ("the chromium browser (apt-get install chromium)", BROWSER is not None),
    ("chromedriver (apt-get install chromium-driver)", DRIVER is not None),
) if not ok]
REQUIRED = os.environ.get("OFFTAKE_REQUIRE_BROWSER") == "1"

if MISSING:
    reason = "browser tests need " + "; ".join(MISSING)
    if REQUIRED:
        pytest.fail(f"OFFTAKE_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

ARTIFACTS = Path(os.environ.get("OFFTAKE_ARTIFACTS") or ROOT / "tests" / "artifacts") \
    / "dashboard"
WAIT = 90.0
"""Seconds to wait for a page (the machine may be busy with other tests)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SPEC = """name: cap-curve
instance: {instance}
axes:
  - {{set: rules.SUPPLIER-CAP-50.max_share, values: [0.5, 0.7]}}
combine: product
"""


def _cli(*args: str) -> None:
    """An offtake command, run in this process (no second start-up of Python and the
    solver's modules)."""
    from typer.testing import CliRunner

    from offtake.apps.cli import app

    done = CliRunner().invoke(app, list(args))
    assert done.exit_code == 0, f"offtake {' '.join(args)}:\n{done.output}{done.exception!r}"


RUNS = ["us_ev_oem_scenarios", "us_ev_oem_small", "medium_multitier"]


@pytest.fixture(scope="session")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder the dashboard serves (filled by `store`)."""
    return tmp_path_factory.mktemp("dashboard-store")


@pytest.fixture(scope="session")
def store(root: Path) -> Path:
    """Solved once per test session: output folders of the small instance, its
    four-scenario version (with the value of the stochastic solution) and the medium
    instance; a results store of a two-point sweep of the small instance's supplier cap;
    a store of a three-point Pareto front of the small instance (least cost against
    non-Chinese content); and `offtake consortium` of allied_consortium.yaml (15
    coalitions). Everything runs in this process, one after the other: on a machine
    whose cores are busy, worker processes and more Python start-ups only cost time."""
    from offtake.pipeline.run import run

    for name in RUNS:
        result = run(INSTANCES / f"{name}.yaml", root / name)
        assert result.results is not None and result.results.has_solution
    small = str(INSTANCES / "us_ev_oem_small.yaml")
    _cli("value", str(INSTANCES / "us_ev_oem_scenarios.yaml"), "--out",
         str(root / "us_ev_oem_scenarios"))
    spec = root / "cap_curve.yaml"
    spec.write_text(SPEC.format(instance=small))
    _cli("sweep", str(spec), "--store", str(root / "sweeps" / "cap_curve"), "--executor",
         "serial")
    _cli("pareto", small, "--metric", "non_cn_content", "--points", "3", "--store",
         str(root / "fronts" / "non_cn"), "--executor", "serial")
    _cli("consortium", str(INSTANCES / "allied_consortium.yaml"), "--out",
         str(root / "allied_consortium"), "--executor", "serial")
    return root


@pytest.fixture(scope="module")
def app(root: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """The dashboard of the store, served by `offtake dashboard` on a free port: its URL.
    Started before the store is filled (the app looks for runs on every page), so that
    Streamlit starts while the runs are solved."""
    port = _free_port()
    log = root / "dashboard.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "offtake.apps.cli", "dashboard", "--store", str(root),
             "--port", str(port), "--instances", str(INSTANCES)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        request.getfixturevalue("store")
        deadline = time.monotonic() + WAIT
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                    if resp.read() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the dashboard did not start:\n{log.read_text()}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    opts = Options()
    opts.binary_location = str(BROWSER)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,2400"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(DRIVER)), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def _count(driver: webdriver.Chrome, testid: str) -> int:
    return len(driver.find_elements(By.CSS_SELECTOR, f"[data-testid='{testid}']"))


def open_page(driver: webdriver.Chrome, url: str, title: str, images: int, tables: int,
              shot: str) -> str:
    """Open `url`, wait until the page titled `title` shows at least `images` figures and
    `tables` tables and has stopped running; no error on it; a screenshot. Its text."""
    driver.get(url)

    def ready(d: webdriver.Chrome) -> bool:
        body = d.find_element(By.TAG_NAME, "body").text
        return (f"\n{title}\n" in f"\n{body}\n" and _count(d, "stImage") >= images
                and _count(d, "stDataFrame") + _count(d, "stTable") >= tables
                and not d.find_elements(By.CSS_SELECTOR, "[data-testid='stSkeleton']"))
    try:
        WebDriverWait(driver, WAIT, poll_frequency=0.3).until(ready)
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / f"{shot}.png"))
    assert not driver.find_elements(By.CSS_SELECTOR, "[data-testid='stException']"), \
        driver.find_element(By.TAG_NAME, "body").text
    for img in driver.find_elements(By.CSS_SELECTOR, "[data-testid='stImage'] img"):
        assert driver.execute_script("return arguments[0].naturalWidth", img) > 100
    return driver.find_element(By.TAG_NAME, "body").text


PAGES = [
    # (path, title, figures, tables, text on the page; with several scenarios)
    ("", "Portfolio", 1, 2, ("Signed contracts", "Signed contracts")),
    ("costs", "Costs", 2, 4, ("Cost by term (discounted, expected)",) * 2),
    ("custody", "Chain of custody", 1, 2, ("Concentration (HHI",) * 2),
    ("rules", "Rules", 1, 2, ("Binding rules (shadow price, USD)",) * 2),
    ("scenarios", "Scenarios", 0, 1, ("One scenario: no distribution",
                                       "Value of modelling uncertainty (VSS and EVPI)")),
]


@pytest.mark.parametrize("run", RUNS)
def test_every_page_of_a_run_shows_its_figures_and_tables(app: str, browser: webdriver.Chrome,
                                                          run: str) -> None:
    several = run == "us_ev_oem_scenarios"
    for path, title, images, n_tables, texts in PAGES:
        if several and path == "scenarios":
            images, n_tables = 1, 3  # the cost distribution; risk, value, scenario costs
        body = _page(browser, f"{app}/{path}?run={run}", title, images, n_tables,
                     f"{run}-{path or 'portfolio'}")
        assert texts[several] in body
        assert f"run {run}" in body  # the run asked for in the address is the one shown
    print(f"screenshots in {ARTIFACTS}")


def test_sweep_page_shows_the_curve_and_the_points(app: str, browser: webdriver.Chrome
                                                    ) -> None:
    body = _page(browser, f"{app}/sweeps?store=sweeps/cap_curve", "Sweeps", 1, 2, "sweeps")
    assert "cap-curve: 2 point(s)" in body
    # the axis box shows the path: as text (older Streamlit) or as its input's value (1.67;
    # the first box of the page is the store's)
    chosen = [box.get_attribute("value") for box in
              browser.find_elements(By.CSS_SELECTOR, "[data-testid='stSelectbox'] input")]
    assert browser.find_elements(By.XPATH, "//*[text()='rules.SUPPLIER-CAP-50.max_share']") \
        or "rules.SUPPLIER-CAP-50.max_share" in chosen, chosen
    assert "Points side by side" in body


def test_a_pareto_front_shows_its_figure_knee_and_table(app: str, browser: webdriver.Chrome
                                                        ) -> None:
    """The store of `offtake pareto`: the front's figure (the command's pareto-METRIC.png)
    and table; its three points are all on the front (a tighter floor never costs less:
    test_pareto), with one knee; every point in the points table, side by side."""
    body = _page(browser, f"{app}/sweeps?store=fronts/non_cn", "Sweeps", 1, 3,
                 "sweeps-pareto-front")
    assert "Pareto front: least cost against non-Chinese content" in body
    assert "3 non-dominated of 3 solved points" in body
    assert "pareto-non_cn_content: 3 point(s)" in body
    assert "leave dominated points out" in body


def test_the_consortium_page_shows_coalitions_allocations_and_the_core_check(
        app: str, browser: webdriver.Chrome) -> None:
    """allied_consortium.yaml through `offtake consortium`: the record (only the four
    together build both plants), the coalitions, the allocations' figure and table, and
    the core check (the core is empty: test_consortium and the instance's notes)."""
    body = _page(browser, f"{app}/consortium?consortium=allied_consortium", "Consortium", 1,
                 4, "consortium")
    assert "Consortium of 4 (USD, discounted, expected)" in body
    assert "G-CONS-MAG-BUILD, S-CONS-HRE-BUILD" in body  # plants built by all
    assert "coalitions\n15" in body
    assert "Coalitions (USD; market: alone)" in body
    assert "Allocation of the grand coalition's cost (USD)" in body
    core = body.split("Core check (USD)", 1)[1]
    for method in ("proportional", "shapley", "nucleolus", "least_core"):
        assert method in core
    assert "The core is empty" in core
    [heading] = [h for h in browser.find_elements(By.TAG_NAME, "h3")
                 if h.text.startswith("Core check")]
    browser.execute_script("arguments[0].scrollIntoView()", heading)
    browser.save_screenshot(str(ARTIFACTS / "consortium-core-check.png"))


def _open_whatif(driver: webdriver.Chrome, app: str) -> None:
    _page(driver, f"{app}/whatif?run=us_ev_oem_small", "What-if", 0, 0, "whatif-form")
    WebDriverWait(driver, WAIT).until(lambda d: d.find_elements(By.TAG_NAME, "textarea"))


def _widget(driver: webdriver.Chrome, testid: str, label: str) -> WebElement:
    """The widget of kind `testid` whose label starts with `label` (waited for)."""
    def find(d: webdriver.Chrome) -> WebElement | bool:
        for w in d.find_elements(By.CSS_SELECTOR, f"[data-testid='{testid}']"):
            lines = w.text.splitlines()
            if lines and lines[0].startswith(label):
                return w
        return False
    return WebDriverWait(driver, WAIT, poll_frequency=0.2).until(find)


def _choose(driver: webdriver.Chrome, label: str, option: str) -> None:
    """Pick `option` in the select box labelled `label` (type to filter, click it)."""
    box = _widget(driver, "stSelectbox", label).find_element(By.TAG_NAME, "input")
    box.click()
    box.send_keys(option)
    WebDriverWait(driver, WAIT, poll_frequency=0.2).until(lambda d: [
        o for o in d.find_elements(By.CSS_SELECTOR, "[role='option']")
        if o.text.strip() == option])[0].click()
    WebDriverWait(driver, WAIT, poll_frequency=0.2).until(
        lambda d: _widget(d, "stSelectbox", label).find_element(By.TAG_NAME, "input")
        .get_attribute("value") == option)


def _button(driver: webdriver.Chrome, text: str) -> WebElement:
    [button] = [b for b in driver.find_elements(By.TAG_NAME, "button")
                if b.text.strip() == text]
    return button


def _run_whatif(driver: webdriver.Chrome, until: str) -> str:
    """Press 'Run what-if'; the page's text once `until` shows and nothing is queued or
    running (or fail with a screenshot)."""
    _button(driver, "Run what-if").click()
    try:
        WebDriverWait(driver, WAIT, poll_frequency=0.5).until(
            lambda d: until in (text := d.find_element(By.TAG_NAME, "body").text)
            and "running for" not in text and "queued for" not in text)
    except TimeoutException:
        driver.save_screenshot(str(ARTIFACTS / "whatif-timeout.png"))
        pytest.fail(f"no {until!r} on the what-if page within {WAIT:.0f} s:\n"
                    + driver.find_element(By.TAG_NAME, "body").text)
    return driver.find_element(By.TAG_NAME, "body").text


def test_a_whatif_runs_in_the_background_and_shows_its_difference_to_the_base(
        app: str, browser: webdriver.Chrome, store: Path) -> None:
    """The change made with the per-field inputs (the rule, its max_share shown as 0.5,
    0.7 typed, added as its PATH=VALUE line): raising the small instance's single-supplier
    cap from 50 % to 70 % saves 5,564,750 USD (760,703,065 -> 755,138,315: the second point
    of the sweep above, solved the same way), shown as the objective's difference; the run
    is kept in the store."""
    _open_whatif(browser, app)
    _choose(browser, "Rule, offer, facility", "rule SUPPLIER-CAP-50")
    _choose(browser, "Number", "max_share")
    value = _widget(browser, "stNumberInput", "New value (now 0.5)").find_element(
        By.TAG_NAME, "input")
    assert value.get_attribute("value") == "0.5"
    value.send_keys(Keys.CONTROL, "a")
    value.send_keys("0.7", Keys.TAB)
    _button(browser, "Add to the changes").click()
    line = "rules.SUPPLIER-CAP-50.max_share=0.7"
    WebDriverWait(browser, WAIT, poll_frequency=0.2).until(
        lambda d: d.find_element(By.TAG_NAME, "textarea").get_attribute("value") == line)
    browser.save_screenshot(str(ARTIFACTS / "whatif-one-number.png"))
    body = _run_whatif(browser, "Signed only in the what-if")
    browser.save_screenshot(str(ARTIFACTS / "whatif-difference.png"))
    lines = [line.strip() for line in body.split("Difference to the base", 1)[1].splitlines()]
    at = lines.index("objective")  # the table's cells, one a line: base, what-if, difference
    assert lines[at + 1:at + 4] == ["760,703,065", "755,138,315", "-5,564,750"]
    assert "rules.SUPPLIER-CAP-50.max_share=0.7" in body
    [record] = (store / "whatif").glob("*.json")
    assert '"state": "done"' in record.read_text()
    assert (store / "whatif" / record.stem / "COMPLETE").exists()


def test_a_bad_whatif_value_shows_located_findings(app: str, browser: webdriver.Chrome,
                                                   store: Path) -> None:
    """A misspelt rule typed into the PATH=VALUE box."""
    before = set((store / "whatif").glob("*.json")) if (store / "whatif").exists() else set()
    _open_whatif(browser, app)
    browser.find_element(By.TAG_NAME, "textarea").send_keys(
        "rules.SUPPLIER-CAP-5.max_share=0.7")
    body = _run_whatif(browser, "was not run")
    browser.save_screenshot(str(ARTIFACTS / "whatif-findings.png"))
    assert "SUPPLIER-CAP-50" in body  # the did-you-mean of the misspelt rule
    after = set((store / "whatif").glob("*.json")) if (store / "whatif").exists() else set()
    assert after == before  # nothing queued


def _page(driver: webdriver.Chrome, url: str, title: str, images: int, n_tables: int,
          shot: str) -> str:
    try:
        return open_page(driver, url, title, images, n_tables, shot)
    except TimeoutException:
        pytest.fail(f"{url}: no {title!r} with {images} figures and {n_tables} tables within "
                    f"{WAIT:.0f} s; screenshot in {ARTIFACTS}")
