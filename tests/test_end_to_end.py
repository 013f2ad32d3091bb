"""The tiny world through real Airflow task instances, data plane and model plane (the inline path,
``reelrec run --inline``; tests/test_scheduler_path.py runs nights through the scheduler).

One REELREC_HOME for the module: four generated days. Nights 1 and 2 run the data plane and skip
the model plane (night 1 has no earlier night; night 1's impressions were served without features,
so night 2 has nothing to learn from either); night 3 trains on night 2, evaluates, scores and
publishes; night 1 is rerun; night 4's event drop is cut to a few percent of its volume, which the
bronze suite must stop before any feature, model or the online store is touched.
"""

from __future__ import annotations

import gzip
from typing import Any

import pytest

from reelrec.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.airflow, pytest.mark.spark]

D1, D2, D3, D4 = "2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04"


def _shrink_events(settings: Settings, date: str, keep_every: int = 25) -> None:
    """Keep one line in ``keep_every`` of the day's event drop (an upstream outage)."""
    for path in sorted((settings.landing / "events" / f"dt={date}").glob("*.jsonl*")):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt") as f:
            lines = f.readlines()
        with opener(path, "wt") as f:
            f.writelines(lines[::keep_every])


def _status_json(settings: Settings) -> list[dict[str, Any]]:
    """What `reelrec status --json` prints for this home."""
    import contextlib
    import io
    import json

    from reelrec.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["--home", str(settings.home), "status", "--json"]) == 0
    return json.loads(out.getvalue())


@pytest.fixture(scope="module")
def nightly(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from reelrec.airflow_local import task_instances
    from reelrec.cli import run_nights
    from reelrec.runs import table_state
    from synthetic_world import generate

    settings = Settings.from_env(tmp_path_factory.mktemp("e2e") / "home")
    world = generate(settings, "tiny", D1, 4)
    _shrink_events(settings, D4)
    facts: dict[str, Any] = {"settings": settings, "world": world}
    facts["first_runs"] = run_nights([D1, D2, D3], settings, inline=True)
    facts["state_d1"] = table_state(D1, settings)
    facts["state_d3"] = table_state(D3, settings)
    facts["rerun"] = run_nights([D1], settings, inline=True)
    facts["state_d1_rerun"] = table_state(D1, settings)
    facts["bad_night"] = run_nights([D4], settings, inline=True)
    facts["status"] = _status_json(settings)
    facts["tasks"] = {
        d: {t["task_id"]: t["state"] for t in task_instances(d, settings)} for d in (D1, D2, D3, D4)
    }
    return facts


MODEL_TASKS = ("training_set", "train", "evaluate", "score", "validate_outputs", "publish")


def test_clean_nights_succeed_with_every_task(nightly: dict[str, Any]) -> None:
    assert nightly["first_runs"] == 0
    third = nightly["tasks"][D3]
    assert len(third) == 20 and set(third.values()) == {"success"}, third
    # Nights 1 and 2 have nothing to train on: the model plane is skipped, the nights still succeed.
    for date in (D1, D2):
        early = nightly["tasks"][date]
        assert {t: early[t] for t in MODEL_TASKS} == dict.fromkeys(MODEL_TASKS, "skipped"), early
        assert early["content_embeddings"] == early["record_run"] == "success", early


def test_third_night_publishes_candidates_for_every_active_user(nightly: dict[str, Any]) -> None:
    from reelrec import lake
    from reelrec.catalog import CANDIDATES, USER_FEATURES
    from reelrec.serving import recommend

    settings = nightly["settings"]
    active = set(lake.read(USER_FEATURES, settings, dates=[D3], columns=["user_id"]).column(0).to_pylist())
    candidates = lake.read(CANDIDATES, settings, dates=[D3]).to_pylist()
    assert {row["user_id"] for row in candidates} == active
    assert all(row["video_ids"] for row in candidates)
    versions = {row["model_version"] for row in candidates}
    assert len(versions) == 1 and next(iter(versions)).startswith(f"two_tower_v1-{D3}-")
    served = recommend(settings, sorted(active)[:3], k=5)
    assert [r["found"] for r in served] == [True] * 3
    assert all(r["model_version"] in versions and 0 < len(r["items"]) <= 5 for r in served)


def test_metrics_of_every_method_are_recorded(nightly: dict[str, Any]) -> None:
    import json

    metrics = json.loads((nightly["settings"].run_dir(D3) / "metrics.json").read_text())
    for model in ("two_tower", "popularity", "covisit"):
        for k in (10, 50, 100):
            assert 0.0 <= metrics["retrieval"][model][f"recall@{k}"] <= 1.0
            assert 0.0 <= metrics["retrieval"][model][f"ndcg@{k}"] <= 1.0
    assert metrics["users"] > 0
    status = nightly["status"]
    assert [run["date"] for run in status] == [D4, D3, D2, D1]
    assert (
        status[1]["metrics"]["retrieval"]["two_tower"]["recall@100"]
        == metrics["retrieval"]["two_tower"]["recall@100"]
    )
    assert status[1]["state"] == "success" and status[0]["state"] == "failed"
    assert status[1]["tasks"]["train"]["state"] == "success" and status[1]["rows"]["gold.candidates"] > 0
    manifest = json.loads((nightly["settings"].run_dir(D3) / "manifest.json").read_text())
    assert manifest["tables"]["gold.candidates"]["rows"] > 0
    assert manifest["tasks"]["train"]["model_version"] == metrics["model_version"]


def test_tables_filled_and_quarantine_counted(nightly: dict[str, Any]) -> None:
    from reelrec.report import quarantine_counts

    state = nightly["state_d3"]
    for name in (
        "bronze.events",
        "bronze.videos",
        "silver.user_features",
        "silver.video_features",
        "silver.creator_features",
    ):
        assert state[name]["rows"] > 0, name
    quarantined = quarantine_counts(D1, nightly["settings"])
    assert sum(quarantined.get("events", {}).values()) > 0


def test_rerunning_a_night_leaves_row_counts_unchanged(nightly: dict[str, Any]) -> None:
    assert nightly["rerun"] == 0
    before = {name: s["rows"] for name, s in nightly["state_d1"].items()}
    after = {name: s["rows"] for name, s in nightly["state_d1_rerun"].items()}
    assert after == before
    # ... while the Delta versions moved on (the partitions were really rewritten).
    assert (
        nightly["state_d1_rerun"]["bronze.events"]["version"]
        > nightly["state_d1"]["bronze.events"]["version"]
    )


def test_online_store_serves_the_latest_night(nightly: dict[str, Any]) -> None:
    from reelrec import lake
    from reelrec.catalog import USER_FEATURES
    from reelrec.feast_store import online_features

    settings = nightly["settings"]
    row = lake.read(USER_FEATURES, settings, dates=[D3]).slice(0, 1).to_pylist()[0]
    online = online_features(settings, user_id=row["user_id"])
    flat = str(online)
    assert row["user_id"] in flat
    assert str(row["views_28d"]) in flat


def test_bad_volume_stops_the_night_before_features(nightly: dict[str, Any]) -> None:
    from reelrec import lake
    from reelrec.catalog import USER_FEATURES

    assert nightly["bad_night"] == 1
    states = nightly["tasks"][D4]
    assert states["validate_bronze"] == "failed"
    for downstream in (
        "user_features",
        "validate_features",
        "feast_materialize",
        "train",
        "publish",
        "record_run",
    ):
        assert states[downstream] == "upstream_failed", (downstream, states)
    assert lake.partition_row_count(USER_FEATURES, nightly["settings"], D4) == 0
    log = (nightly["settings"].run_dir(D4) / "airflow.log").read_text()
    assert f"table events, dt={D4}" in log and "expect_table_row_count_to_be_between" in log
