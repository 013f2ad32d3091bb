"""The nightly HTML report and GX's Data Docs, on a hand-built world of four nights.

The world is the facts the nightly tasks leave behind, written directly and honestly: tiny bronze
partitions validated by the real "bronze" suite (GX, Data Docs included), quarantined rows, run
manifests (:func:`reelrec.runs.record_manifest`), ``metrics.json`` / ``gate.json`` /
``release.json`` and a ``gold.candidates`` partition. The nights:

* D1, the first night: data only (no model, no suite run), two quarantined rows;
* D2: published, with lists (one video of the lists uploaded on D2: a fresh upload);
* D3: held by the promotion gate (metrics, no lists);
* D4: the bronze suite failed (a duplicated event id), so the night has no manifest.

A headless Chromium (Debian's ``chromium``) renders D2's report: no console message, and a
screenshot kept in ``test-artifacts/report/`` (``REELREC_TEST_ARTIFACTS`` moves it), printed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from reelrec import catalog, lake, report_html, runs
from reelrec.catalog import CANDIDATES, DEFAULT_LIST_KEY, QUARANTINE
from reelrec.cli import main as cli_main
from reelrec.dates import feature_timestamp
from reelrec.settings import Settings
from reelrec.validation import ValidationError, check, validate_suite
from reelrec.validation.data_docs import data_docs_index, validation_pages
from tests.reelrec.validation.test_bronze_and_features import at, events_rows, videos_rows, write, write_suite

pytestmark = pytest.mark.gx

D1, D2, D3, D4 = "2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04"
PLOTS = (
    "plot-retrieval",
    "plot-task-seconds",
    "plot-rows",
    "plot-quarantine",
    "plot-scores",
    "plot-list-lengths",
)
SECTIONS = (
    "retrieval",
    "task-seconds",
    "rows",
    "quarantine",
    "candidates",
    "coverage",
    "validation",
    "lineage",
)
CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
# the screenshot and the rendered report are kept here (git-ignored), as the UI browser test does
ARTIFACTS = Path(os.environ.get("REELREC_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "report"
FRESH_VIDEO = "v0000009"  # uploaded on D2


def _json(path: Path, body: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body))


def _quarantine(date: str, source: str, reasons: list[str]) -> pa.Table:
    rows = [
        {"source": source, "file": f"{source}.jsonl", "line": i + 1, "reason": r, "record": "{}", "dt": date}
        for i, r in enumerate(reasons)
    ]
    return pa.Table.from_pylist(rows, schema=QUARANTINE.schema)


def _metrics(date: str, final: float) -> dict[str, Any]:
    def m(recall: float) -> dict[str, float]:
        return {"recall@10": recall / 2, "recall@100": recall, "ndcg@10": recall / 3, "coverage@100": 0.5}

    return {
        "date": date,
        "users": 3,
        "catalog_videos": 5,
        "model_version": f"two_tower-{date}",
        "retrieval": {
            "two_tower": m(final - 0.05),
            "trending": m(0.2),
            "covisit": m(0.25),
            "final": m(final),
        },
    }


def _candidates(date: str) -> pa.Table:
    lists = {
        "u000000": (["v0000001", FRESH_VIDEO, "v0000002"], [0.9, 0.7, 0.4]),
        "u000001": (["v0000003", "v0000002"], [0.8, 0.3]),
        "u000002": (["v0000001", "v0000003", FRESH_VIDEO, "v0000000"], [0.6, 0.5, 0.45, 0.1]),
        DEFAULT_LIST_KEY: (["v0000001", FRESH_VIDEO], [1.0, 0.9]),
    }
    generated = dt.datetime(2026, 11, 3, 2, tzinfo=dt.UTC)
    rows = [
        {
            "user_id": user,
            "video_ids": items,
            "scores": scores,
            "model_version": f"two_tower-{date}",
            "generated_at": generated,
            "event_timestamp": feature_timestamp(date),
            "dt": date,
        }
        for user, (items, scores) in lists.items()
    ]
    return pa.Table.from_pylist(rows, schema=CANDIDATES.schema)


def _facts(seconds: float, **extra: Any) -> dict[str, Any]:
    return {
        "ingest_events": {"seconds": seconds, "rows_written": 8, "versions": {"events": 0}, "inputs": {}},
        "ingest_catalogs": {"seconds": seconds / 2},
        "validate_bronze": {"suite": "bronze", "seconds": 1.0},
        **extra,
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    settings = Settings.from_env(tmp_path_factory.mktemp("report-world") / "home")
    # D1: the first night, data only
    write_suite("bronze", settings, D1)
    lake.write_partition(
        QUARANTINE,
        settings,
        _quarantine(D1, "events", ["bad_json", "schema: watch_ms"]),
        D1,
        {"source": "events"},
    )
    runs.record_manifest(D1, _facts(3.0, training_set=None), settings)
    # D2: published
    fresh = dict(videos_rows(D2)[0], video_id=FRESH_VIDEO, upload_ts=at(D2, 10))
    write_suite("bronze", settings, D2, videos=[*videos_rows(D2), fresh])
    lake.write_partition(
        QUARANTINE, settings, _quarantine(D2, "videos", ["duplicate"]), D2, {"source": "videos"}
    )
    validate_suite("bronze", D2, settings)
    lake.write_partition(CANDIDATES, settings, _candidates(D2), D2)
    _json(settings.run_dir(D2) / "metrics.json", _metrics(D2, 0.5))
    _json(settings.run_dir(D2) / "gate.json", {"publish": True, "reason": "final beats every baseline"})
    _json(
        settings.run_dir(D2) / "release.json",
        {
            "version": f"release-{D2}",
            "components": {"two_tower": "two_tower-2026-11-02", "ranker": "ranker-x"},
        },
    )
    model = {
        "seconds": 9.0,
        "model_version": "two_tower-2026-11-02",
        "inputs": {"events": 1, "user_features": 0},
    }
    runs.record_manifest(
        D2,
        _facts(
            4.0,
            training_set={"seconds": 5.0, "feature_service": "two_tower_v1", "inputs": {"events": 1}},
            train=model,
            feast_apply={"feature_services": ["ranker_v1", "two_tower_v1"]},
            gate={"publish": True},
            publish={"seconds": 2.0},
        ),
        settings,
    )
    # D3: held by the promotion gate
    _json(settings.run_dir(D3) / "metrics.json", _metrics(D3, 0.3))
    _json(
        settings.run_dir(D3) / "gate.json",
        {"publish": False, "reason": "final NDCG@10 below the serving one"},
    )
    runs.record_manifest(D3, _facts(3.5, gate={"publish": False}), settings)
    # D4: the bronze suite fails; the night stops there (no manifest)
    events = events_rows(D4)
    events[3]["event_id"] = events[2]["event_id"]
    write_suite("bronze", settings, D4, events=events)
    with pytest.raises(ValidationError) as failed:
        check("bronze", D4, settings)
    built: dict[str, float] = {}
    for night in (D1, D2, D3, D4):
        started = time.perf_counter()
        report_html.write_report(night, settings)
        built[night] = time.perf_counter() - started
    return {"settings": settings, "gate_error": str(failed.value), "seconds": built}


def _page_text(page: Path) -> str:
    """The words of a Data Docs page (tags, scripts and styles removed, spaces collapsed)."""
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", page.read_text(), flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text))


def _html(world: dict[str, Any], date: str) -> str:
    return (world["settings"].run_dir(date) / report_html.REPORT_FILE).read_text()


def test_the_report_of_a_published_night_has_every_plot_and_section(world: dict[str, Any]) -> None:
    settings: Settings = world["settings"]
    path = settings.run_dir(D2) / "report.html"
    text = path.read_text()
    print(f"\nreport.html of dt={D2}: {path.stat().st_size:,} bytes, built in {world['seconds'][D2]:.2f}s")
    for plot in PLOTS:  # each plot present and drawn (an inline <svg>, not the "missing" note)
        figure = re.search(rf'<figure id="{plot}">(.*?)</figure>', text, re.S)
        assert figure is not None, plot
        assert "<svg" in figure.group(1), plot
    for section in SECTIONS:
        assert f'id="{section}"' in text, section
    # every model and baseline of the nights, the quarantine reasons, the tasks, the tables
    for label in (
        "two_tower",
        "trending",
        "covisit",
        "final",
        "events: bad_json",
        "events: schema",
        "videos: duplicate",
    ):
        assert label in text, label
    assert "ingest_events" in text and "bronze.events" in text
    # coverage: v0, v1, v2, v3 and the fresh video are listed out of 5 catalog videos; fresh slots: 3 of 11
    assert "100.0% (5 of 5 catalog videos in some list)" in text
    assert "27.3% of 11 list slots (catalog videos uploaded on dt=2026-11-02: 1)" in text
    # lineage: the model and its components, the feature services, versions read and written
    assert f"release-{D2}" in text and "ranker=ranker-x" in text
    assert "ranker_v1, two_tower_v1" in text
    assert re.search(r"<td>train</td><td>user_features</td><td class=\"n\">v0</td>", text)
    assert re.search(r"<td>gold.candidates</td><td class=\"n\">v0</td><td class=\"n\">4</td>", text)


def test_the_report_is_self_contained(world: dict[str, Any]) -> None:
    text = _html(world, D2)
    assert "<script" not in text
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", text), "fetches from the network"
    assert not re.search(r"<link\b", text)
    assert not re.search(r"url\(\s*['\"]?(?:https?:)?//", text)


def test_nights_with_missing_pieces_say_so(world: dict[str, Any]) -> None:
    first, held, failed = _html(world, D1), _html(world, D3), _html(world, D4)
    assert "No model was evaluated on dt=2026-11-01" in first
    assert 'id="plot-scores" data-empty="true"' in first and "No candidates were published" in first
    assert '<figure id="plot-quarantine">' in first  # the data plane is there on the first night
    assert "No suite was run for dt=2026-11-01" in first
    assert "status <b>held</b>" in held and "The promotion gate held this night" in held
    assert "final NDCG@10 below the serving one" in held and "No candidates were published" in held
    assert "no run manifest" in failed and "FAILED" in failed


def test_the_index_lists_every_night_with_its_status(world: dict[str, Any]) -> None:
    settings: Settings = world["settings"]
    text = (settings.runs / "index.html").read_text()
    lines = re.findall(r"<li>(.*?)</li>", text)
    assert [re.search(r"dt=(\d{4}-\d\d-\d\d)", line).group(1) for line in lines] == [D4, D3, D2, D1]  # type: ignore[union-attr]
    statuses = [line.split(" · ")[1] for line in lines]
    assert statuses == ["incomplete", "held", "published", "data-only"]
    for night in (D1, D2, D3, D4):
        assert f'href="dt={night}/report.html"' in text
    assert 'href="data_docs/index.html"' in text


def test_data_docs_are_built_by_gx_and_linked_from_the_report(world: dict[str, Any]) -> None:
    settings: Settings = world["settings"]
    index = data_docs_index(settings)
    assert index == settings.runs / "data_docs" / "index.html" and index.exists()
    site = index.read_text()
    assert "Great Expectations" in site  # GX's own site, not a page of ours
    pages = validation_pages(D2, settings)
    assert sorted(pages) == [
        f"bronze.{t}" for t in sorted(["events", "videos", "users", "creators", "follows"])
    ]
    for night in (D2, D4):  # every validated night is on the index, as links to its pages
        assert f"validations/bronze/events/{night}/dt%3D{night}/" in site  # GX escapes the run name
    report = _html(world, D2)
    assert 'id="data-docs-link" href="../data_docs/index.html"' in report
    events_page = pages["bronze.events"]
    assert f'href="{events_page.relative_to(settings.runs).as_posix().join(["../", ""])}"' in report
    failed = _page_text(validation_pages(D4, settings)["bronze.events"])  # GX's words for the rule
    assert "Status: Failed" in failed and "values must be unique. 2 unexpected values found" in failed
    assert f"{D4}-e2" in failed


def test_a_failed_gate_points_at_the_data_docs(world: dict[str, Any]) -> None:
    settings: Settings = world["settings"]
    message = world["gate_error"]
    assert message.startswith(f"validation suite 'bronze' failed for dt={D4}")
    assert f"Data Docs: {data_docs_index(settings)}" in message
    page = validation_pages(D4, settings)["bronze.events"]
    assert f"  bronze.events: {page}" in message
    assert "bronze.videos:" not in message  # only the failing table's page is named


def test_a_missing_table_still_has_a_data_docs_page(settings: Settings) -> None:
    write(catalog.EVENTS, settings, D1, events_rows(D1))  # videos, users, creators, follows: never written
    with pytest.raises(ValidationError) as failed:
        check("bronze", D1, settings)
    pages = validation_pages(D1, settings)
    assert sorted(pages) == [
        "bronze.creators",
        "bronze.events",
        "bronze.follows",
        "bronze.users",
        "bronze.videos",
    ]
    missing = _page_text(pages["bronze.videos"])
    assert "Status: Failed" in missing and "Must have greater than or equal to 1 rows. 0" in missing
    assert str(pages["bronze.follows"]) in str(failed.value)


def test_reelrec_report_prints_the_path(world: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    settings: Settings = world["settings"]
    path = settings.run_dir(D2) / "report.html"
    before = path.stat().st_mtime_ns
    assert cli_main(["--home", str(settings.home), "report", "--date", D2]) == 0
    assert capsys.readouterr().out.strip() == str(path)
    assert path.stat().st_mtime_ns >= before and "plot-retrieval" in path.read_text()
    facts = report_html.main(D2, settings)
    assert facts["report"] == str(path) and facts["bytes"] == path.stat().st_size


def _chromium(page: Path, screenshot: Path) -> list[str]:
    """Render ``page`` in headless Chromium; the console messages it logged."""
    run = subprocess.run(
        [
            str(CHROMIUM),
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1280,4200",
            f"--screenshot={screenshot}",
            "--enable-logging=stderr",
            "--v=0",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert screenshot.exists() and screenshot.stat().st_size > 1000, run.stderr[-2000:]
    return [line for line in run.stderr.splitlines() if ":CONSOLE" in line]


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is missing: `make setup` installs it")
def test_headless_chromium_renders_the_report_without_console_errors(world: dict[str, Any]) -> None:
    artifacts = ARTIFACTS
    artifacts.mkdir(parents=True, exist_ok=True)
    # the check can fail: a page that logs an error is caught
    control = artifacts / "control.html"
    control.write_text("<html><body><script>undefinedFunction()</script></body></html>")
    assert any("undefinedFunction" in line for line in _chromium(control, artifacts / "control.png"))

    report = world["settings"].run_dir(D2) / "report.html"
    shutil.copy(report, artifacts / "report.html")
    screenshot = artifacts / f"report-dt={D2}.png"
    assert _chromium(report, screenshot) == []
    print(f"\nscreenshot of the dt={D2} report: {screenshot} (the page: {artifacts / 'report.html'})")


def test_reelrec_report_refuses_a_date_that_is_a_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as refused:
        cli_main(["--home", str(tmp_path / "home"), "report", "--date", "../../etc"])
    assert refused.value.code == 2 and "argument --date" in capsys.readouterr().err
    assert not (tmp_path / "home").exists()
