"""The Airflow UI in a real browser: headless Chromium walks the pages a data engineer uses.

The UI is started the way ``reelrec ui`` starts it (:func:`reelrec.services.up` over the profile's
components: api-server, scheduler, dag-processor, triggerer), on free ports in a throwaway home;
the Spark Connect server is left out, as no Spark job runs here. Its nights:

* ``nightly__D1`` is the record of a first night (data plane and record done, the model plane
  skipped): created through the REST API as ``reelrec run`` creates nights, while the DAG is still
  paused, then given those states through the API. A real night costs minutes on this machine.
* ``nightly__D2`` is a real night run by ``reelrec run``'s code (:func:`reelrec.nights.run_scheduled`)
  through the scheduler: D2's drops never landed, so ``check_landing`` fails at once naming them
  and the night fails. Its log is the real task log the browser opens.

Chromium (Debian's ``chromium`` and ``chromium-driver``, installed by ``make setup``) is driven with
Selenium. Screenshots go to ``test-artifacts/ui/`` (git-ignored; ``REELREC_TEST_ARTIFACTS`` moves
it), printed at the start. The test skips, saying why, only where the browser is not installed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reelrec.settings import Settings
from tests.test_end_to_end import MODEL_TASKS
from tests.test_scheduler_path import _env, _free_port

pytestmark = [pytest.mark.slow, pytest.mark.airflow]

D1, D2 = "2026-11-01", "2026-11-02"
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("REELREC_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "ui"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
# What a first night leaves skipped (nothing to train on yet): the model tasks of tests/test_end_to_end.py.
MODEL_PLANE_SKIPPED = MODEL_TASKS
WAIT_S = 90.0  # a page or a run state; the machine may be busy with other tests


def _until(check: Callable[[], Any], what: str, timeout_s: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(1.0)
    raise AssertionError(f"not within {timeout_s:.0f} s: {what}")


def _require_browser() -> None:
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("chromium and chromedriver are not installed (`make setup` installs them with apt-get)")


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A running UI with nights D1 (a first night's record) and D2 (failed for a missing drop)."""
    from reelrec import services
    from reelrec.airflow_api import AirflowApi
    from reelrec.airflow_local import DAG_ID, api_url
    from reelrec.nights import run_scheduled
    from synthetic_world import generate

    _require_browser()  # before a minute of stack start
    with _env(REELREC_PROFILE="embedded", REELREC_UI_PORT=str(_free_port())):
        settings = Settings.from_env(tmp_path_factory.mktemp("ui") / "home")
        generate(settings, "tiny", D1, 1)  # D1's drops only: D2's never land
        stack = services.components(settings, spark=[])
        api = AirflowApi(settings)
        try:
            services.up(settings, stack)  # `reelrec ui`
            api.wait_for_dag(DAG_ID)
            first, _ = api.start_night(DAG_ID, D1)  # the DAG is paused at creation: it waits
            # Marking the run success skips its unfinished tasks; the first night's work is success.
            api.request("PATCH", f"/dags/{DAG_ID}/dagRuns/{first}", json={"state": "success"})
            for ti in api.task_instances(DAG_ID, first):
                if ti["task_id"] not in MODEL_PLANE_SKIPPED:
                    path = f"/dags/{DAG_ID}/dagRuns/{first}/taskInstances/{ti['task_id']}"
                    api.request("PATCH", path, json={"new_state": "success"})
            code = run_scheduled([D2], settings, stack=stack)  # `reelrec run --date D2`
            yield {"settings": settings, "api": api, "base": api_url(settings), "run_code": code}
        finally:
            api.close()
            services.down(settings, stack)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium through chromedriver (Selenium), 1600x1000."""
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in CI containers
        "--disable-dev-shm-usage",
        "--window-size=1600,1000",
        "--lang=en-US",  # the date field reads mm/dd/yyyy
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def shots(request: pytest.FixtureRequest) -> Callable[[Any, str], Path]:
    """``shot(driver, name)`` saves a screenshot under :data:`ARTIFACTS`, printed once."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print(f"\n[test_ui_browser] screenshots: {ARTIFACTS}", flush=True)

    def shot(driver: Any, name: str) -> Path:
        path = ARTIFACTS / f"{name}.png"
        driver.save_screenshot(str(path))
        return path

    return shot


def _find(driver: Any, css: str, text: str = "", timeout_s: float = WAIT_S) -> Any:
    """The first element matching ``css`` (and containing ``text``), once it is displayed."""
    from selenium.webdriver.common.by import By

    def visible() -> Any:
        for element in driver.find_elements(By.CSS_SELECTOR, css):
            with contextlib.suppress(Exception):  # re-rendered between find and read
                if element.is_displayed() and text in element.text:
                    return element
        return None

    try:
        return _until(visible, f"{css} showing {text!r} on {driver.current_url}", timeout_s)
    except AssertionError:
        driver.save_screenshot(str(ARTIFACTS / "timed-out.png"))  # what the page showed instead
        raise


def _page_text(driver: Any) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.TAG_NAME, "body").text)


def test_the_dag_list_shows_the_nightly_dag(ui: dict[str, Any], browser: Any, shots: Any) -> None:
    browser.get(f"{ui['base']}/dags")
    link = _find(browser, 'a[data-testid="dag-id"]', "reelrec_nightly")
    card = _find(browser, '[data-testid="dag-card"]', "reelrec_nightly")
    for tag in ("reelrec", "nightly", "data-plane", "model-plane"):
        assert tag in card.text, card.text
    shots(browser, "01-dag-list")
    link.click()
    _until(lambda: browser.current_url.rstrip("/").endswith("/dags/reelrec_nightly"), "the DAG page opens")
    # The DAG's doc, one click from its page: the planes, the gates, how to trigger a past night.
    _find(browser, '[data-testid="markdown-button"]').click()
    docs = _find(browser, '[role="dialog"]', "Triggering a past night from the UI")
    assert "data_plane" in docs.text and "Unpause on trigger" in docs.text
    shots(browser, "02-dag-docs")


def test_the_grid_shows_each_night_with_its_state(ui: dict[str, Any], browser: Any, shots: Any) -> None:
    assert ui["run_code"] == 1  # `reelrec run` reports the failed night
    browser.get(f"{ui['base']}/dags/reelrec_nightly/runs")
    for group in ("data_plane", "model_plane", "publishing"):  # the task groups head the grid
        _find(browser, f'[data-testid="task-{group}"]', group)
    for night in (D1, D2):
        _find(browser, f'a[data-testid="grid-nightly__{night}-data_plane"]')
    # The runs table beside the grid: one row per night with its state, as words.
    first = _find(browser, "tr", f"nightly__{D1}")
    second = _find(browser, "tr", f"nightly__{D2}")
    assert "success" in first.text.lower(), first.text
    assert "failed" in second.text.lower(), second.text
    _find(browser, '[data-testid="expand-all-button"]').click()
    failed = _find(
        browser, f'a[data-testid="grid-nightly__{D2}-check_landing"] [data-testid="task-state-badge"]'
    )
    done = _find(
        browser, f'a[data-testid="grid-nightly__{D1}-check_landing"] [data-testid="task-state-badge"]'
    )
    skipped = _find(browser, f'a[data-testid="grid-nightly__{D1}-train"] [data-testid="task-state-badge"]')
    colours = {
        name: badge.value_of_css_property("background-color")
        for name, badge in (("failed", failed), ("success", done), ("skipped", skipped))
    }
    assert len(set(colours.values())) == 3, colours  # three states, three colours
    shots(browser, "03-grid-and-runs")
    browser.find_element("css selector", 'button[aria-label^="Show Graph"]').click()
    _find(browser, ".react-flow", "data_plane")
    _find(browser, 'button[aria-label="Collapse Details Panel"]').click()
    _find(browser, '[data-testid="collapse-all-button"]').click()  # one box per plane
    time.sleep(2)  # the layout settles
    shots(browser, "04-graph-groups")
    _find(browser, '[data-testid="expand-all-button"]').click()
    time.sleep(2)
    shots(browser, "05-graph-tasks")


def test_a_task_log_opens_with_the_tasks_own_words(ui: dict[str, Any], browser: Any, shots: Any) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    browser.get(f"{ui['base']}/dags/reelrec_nightly/runs/nightly__{D2}/tasks/check_landing")
    _find(browser, 'button[aria-label^="Show Grid"]').click()  # the grid beside: a wider log pane
    page = _find(browser, "body", "not waiting (manual run of a past date)")
    ActionChains(browser).send_keys("w").perform()  # the UI's hotkey: wrap long log lines
    time.sleep(1)
    shots(browser, "06-task-log")
    # The failure in the task's own words: the date, and every feed that did not land.
    assert f"5 of 5 landing drops for dt={D2} not complete (events, videos, users, creators, follows)" in (
        page.text
    ), page.text[-3000:]


def test_triggering_a_past_night_runs_that_night_only(ui: dict[str, Any], browser: Any, shots: Any) -> None:
    """The trigger form of a paused DAG ticks "Unpause on trigger": the night runs with D from the
    ``date`` param, and no scheduled night appears (the scheduler creates no cron runs)."""
    from reelrec.airflow_local import DAG_ID
    from reelrec.nights import task_log_path

    api = ui["api"]
    api.request("PATCH", f"/dags/{DAG_ID}", json={"is_paused": True})
    before = {r["dag_run_id"] for r in api.request("GET", f"/dags/{DAG_ID}/dagRuns")["dag_runs"]}
    browser.get(f"{ui['base']}/dags/reelrec_nightly")
    _find(browser, '[data-testid="trigger-dag-button"]', "Trigger").click()
    dialog = _find(browser, '[role="dialog"]', "Trigger Dag")
    unpause = _find(browser, "label", "on trigger")
    box = unpause.find_element("css selector", "input[type=checkbox]")
    assert box.is_selected(), "the form no longer ticks 'Unpause on trigger' by default"
    date = _find(browser, 'input[name="element_date"]')
    date.send_keys("11022026")  # the browser's date field: mm/dd/yyyy
    shots(browser, "07-trigger-form")
    _find(browser, '[data-testid="trigger-dag-submit"]', "Trigger").click()
    _until(lambda: not _shown(dialog), "the trigger form closes")

    def new_run() -> dict[str, Any] | None:
        runs = api.request("GET", f"/dags/{DAG_ID}/dagRuns")["dag_runs"]
        return next((r for r in runs if r["dag_run_id"] not in before), None)

    run = _until(new_run, "the triggered run exists")
    assert run["run_type"] == "manual" and run["conf"].get("date") == D2, run
    assert api.dag(DAG_ID)["is_paused"] is False  # the box did what it says
    finished = _until(
        lambda: (r := api.dag_run(DAG_ID, run["dag_run_id"]))["state"] in ("success", "failed") and r,
        "the triggered night finishes",
        timeout_s=240,
    )
    # It ran D2 (from the param, not its logical date of today) and stopped at D2's missing drops.
    assert finished["state"] == "failed", finished
    log = task_log_path(ui["settings"], run["dag_run_id"], "check_landing", 1).read_text()
    assert f"landing drops for dt={D2} not complete" in log, log[-2000:]
    # No daily schedule started: every run is one we made; none is "scheduled".
    runs = api.request("GET", f"/dags/{DAG_ID}/dagRuns")["dag_runs"]
    assert {r["run_type"] for r in runs} == {"manual"}, [(r["dag_run_id"], r["run_type"]) for r in runs]
    assert len(runs) == len(before) + 1
    browser.get(f"{ui['base']}/dags/reelrec_nightly/runs")
    _find(browser, "tr", run["dag_run_id"])
    shots(browser, "08-after-trigger")


def _shown(element: Any) -> bool:
    try:
        return bool(element.is_displayed())
    except Exception:  # noqa: BLE001 -- stale: it left the page
        return False
