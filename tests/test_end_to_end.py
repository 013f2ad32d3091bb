"""The tiny world through real Airflow task instances, data plane and model plane (the inline path,
``reelrec run --inline``; tests/test_scheduler_path.py runs nights through the scheduler).

One REELREC_HOME for the module: six generated days.

* Nights 1 and 2 run the data plane and skip the model plane (night 1 has no earlier night; night
  1's impressions were served without features, so night 2 has nothing to learn from either).
* Night 3 trains the two-tower model and the ranker on night 2, evaluates every stage, and is
  published with ``force_publish`` (a tiny world's first models may lose to a baseline; the gate's
  own rules are tested on night 5). Night 1 is rerun. Night 4 is published, forced, too.
* Night 5 trains a deliberately broken release (``REELREC_FAULTS=train.labels:corrupt``: both
  models learn from shuffled labels): the promotion gate holds it, nothing is written, serving
  keeps night 4's lists; ``reelrec rollback --to`` night 3's release then serves night 3's lists
  exactly.
* Night 6's event drop is cut to a few percent of its volume, which the bronze suite must stop
  before any feature, model or the online store is touched.
"""

from __future__ import annotations

import contextlib
import gzip
import os
from collections.abc import Iterator
from typing import Any

import pytest

from reelrec import faults
from reelrec.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.airflow, pytest.mark.spark]

D1, D2, D3, D4, D5, D6 = (f"2026-11-0{day}" for day in range(1, 7))
FORCE = {"force_publish": True}
BROKEN = f"train.labels@date={D5}:corrupt:2"  # both trainers of night 5 shuffle their labels


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


@contextlib.contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    """``name=value`` in this process's environment (inline nights inherit it) for the block."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def _served(settings: Settings, users: list[str]) -> list[dict[str, Any]]:
    from reelrec.serving import recommend

    return [
        {k: r[k] for k in ("user_id", "model_version", "items", "found")} for r in recommend(settings, users)
    ]


def _gold_lists(settings: Settings, date: str, users: list[str]) -> list[dict[str, Any]]:
    """What ``recommend`` must answer for ``users`` when night ``date``'s gold lists serve."""
    from reelrec import lake
    from reelrec.catalog import CANDIDATES
    from reelrec.serving import _float32

    rows = {r["user_id"]: r for r in lake.read(CANDIDATES, settings, dates=[date]).to_pylist()}
    return [
        {
            "user_id": u,
            "model_version": rows[u]["model_version"],
            "items": [
                {"video_id": v, "score": s}
                for v, s in zip(rows[u]["video_ids"], _float32(rows[u]["scores"]), strict=True)
            ],
            "found": True,
        }
        for u in users
    ]


@pytest.fixture(scope="module")
def nightly(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from reelrec import lake, releases
    from reelrec.airflow_local import task_instances
    from reelrec.catalog import CANDIDATES, DEFAULT_LIST_KEY
    from reelrec.cli import main, run_nights
    from reelrec.runs import table_state
    from synthetic_world import generate

    settings = Settings.from_env(tmp_path_factory.mktemp("e2e") / "home")
    world = generate(settings, "tiny", D1, 6)
    _shrink_events(settings, D6)
    facts: dict[str, Any] = {"settings": settings, "world": world}
    facts["first_runs"] = run_nights([D1, D2, D3], settings, inline=True, conf=FORCE)
    facts["state_d1"] = table_state(D1, settings)
    facts["state_d3"] = table_state(D3, settings)
    facts["rerun"] = run_nights([D1], settings, inline=True)
    facts["state_d1_rerun"] = table_state(D1, settings)
    facts["d4"] = run_nights([D4], settings, inline=True, conf=FORCE)
    users = lake.read(CANDIDATES, settings, dates=[D4], columns=["user_id"]).column(0).to_pylist()
    facts["users"] = [u for u in sorted(users) if u != DEFAULT_LIST_KEY][:5]
    facts["served_d4"] = _served(settings, facts["users"])
    with _env(faults.ENV, BROKEN):
        facts["broken_night"] = run_nights([D5], settings, inline=True)
    facts["served_after_held"] = _served(settings, facts["users"])
    facts["serving_after_held"] = releases.serving(settings)
    facts["releases"] = {r.night: r for r in releases.releases(settings)}
    facts["rollback"] = main(
        ["--home", str(settings.home), "rollback", "--to", facts["releases"][D3].version]
    )
    facts["served_after_rollback"] = _served(settings, facts["users"])
    facts["bad_night"] = run_nights([D6], settings, inline=True)
    facts["status"] = _status_json(settings)
    facts["tasks"] = {
        d: {t["task_id"]: t["state"] for t in task_instances(d, settings)} for d in (D1, D2, D3, D4, D5, D6)
    }
    return facts


MODEL_TASKS = (
    "training_set",
    "train",
    "train_ranker",
    "evaluate",
    "gate",
    "score",
    "validate_outputs",
    "publish",
)
OUTPUT_TASKS = ("score", "validate_outputs", "publish")


def test_clean_nights_succeed_with_every_task(nightly: dict[str, Any]) -> None:
    assert nightly["first_runs"] == 0
    third = nightly["tasks"][D3]
    assert len(third) == 22 and set(third.values()) == {"success"}, third
    # Nights 1 and 2 have nothing to train on: the model plane is skipped, the nights still succeed.
    for date in (D1, D2):
        early = nightly["tasks"][date]
        assert {t: early[t] for t in MODEL_TASKS} == dict.fromkeys(MODEL_TASKS, "skipped"), early
        assert early["content_embeddings"] == early["record_run"] == "success", early


def test_third_night_publishes_candidates_for_every_active_user(nightly: dict[str, Any]) -> None:
    from reelrec import lake
    from reelrec.catalog import CANDIDATES, DEFAULT_LIST_KEY, USER_FEATURES
    from reelrec.serving import recommend

    settings = nightly["settings"]
    active = set(lake.read(USER_FEATURES, settings, dates=[D3], columns=["user_id"]).column(0).to_pylist())
    candidates = lake.read(CANDIDATES, settings, dates=[D3]).to_pylist()
    assert {row["user_id"] for row in candidates} == active | {DEFAULT_LIST_KEY}
    assert all(row["video_ids"] for row in candidates)
    versions = {row["model_version"] for row in candidates}
    assert len(versions) == 1 and next(iter(versions)).startswith(f"reelrec_v1-{D3}-")
    served = recommend(settings, sorted(active)[:3], k=5)
    assert [r["found"] for r in served] == [True] * 3
    assert all(r["model_version"] in versions and 0 < len(r["items"]) <= 5 for r in served)


def test_metrics_of_every_stage_are_recorded(nightly: dict[str, Any]) -> None:
    import json

    from models.sources.config import SOURCE_NAMES

    metrics = json.loads((nightly["settings"].run_dir(D3) / "metrics.json").read_text())
    for stage in (*SOURCE_NAMES, "merged", "ranker", "final"):
        for k in (10, 50, 100):
            assert 0.0 <= metrics["retrieval"][stage][f"recall@{k}"] <= 1.0, stage
            assert 0.0 <= metrics["retrieval"][stage][f"ndcg@{k}"] <= 1.0, stage
        assert 0.0 < metrics["retrieval"][stage]["creator_diversity@10"] <= 1.0 or stage == "followed"
    assert set(metrics["heads"]) == {"completion", "like", "share", "skip"}
    assert all(h["log_loss"] >= 0.0 for h in metrics["heads"].values())
    assert metrics["users"] > 0 and metrics["cold_users"] >= 0
    assert metrics["serving"] is None  # nothing served before night 3
    status = nightly["status"]
    assert [run["date"] for run in status] == [D6, D5, D4, D3, D2, D1]
    d3 = status[3]
    assert d3["metrics"]["retrieval"]["final"]["recall@100"] == metrics["retrieval"]["final"]["recall@100"]
    assert d3["state"] == "success" and status[0]["state"] == "failed"
    assert d3["tasks"]["train_ranker"]["state"] == "success" and d3["rows"]["gold.candidates"] > 0
    manifest = json.loads((nightly["settings"].run_dir(D3) / "manifest.json").read_text())
    assert manifest["tables"]["gold.candidates"]["rows"] > 0
    assert manifest["status"] == "published (forced)"
    assert manifest["tasks"]["score"]["model_version"] == metrics["model_version"]
    assert (
        manifest["tasks"]["score"]["components"]["two_tower"] == manifest["tasks"]["train"]["model_version"]
    )


def test_the_gate_holds_a_broken_release_and_serving_keeps_the_last_lists(nightly: dict[str, Any]) -> None:
    import json

    settings = nightly["settings"]
    assert nightly["broken_night"] == 0  # a held night is a finished night, not a failed one
    tasks = nightly["tasks"][D5]
    assert tasks["train"] == tasks["train_ranker"] == tasks["evaluate"] == tasks["gate"] == "success", tasks
    assert {t: tasks[t] for t in OUTPUT_TASKS} == dict.fromkeys(OUTPUT_TASKS, "skipped"), tasks
    gate = json.loads((settings.run_dir(D5) / "gate.json").read_text())
    assert gate["publish"] is False and gate["reason"].startswith("held: ")
    assert gate["serving_version"] == nightly["releases"][D4].version
    ranker = json.loads((settings.run_dir(D5) / "manifest.json").read_text())["tasks"]["train_ranker"]
    assert ranker["corrupted_labels"] is True
    manifest = json.loads((settings.run_dir(D5) / "manifest.json").read_text())
    assert manifest["status"] == "held"
    from reelrec import lake
    from reelrec.catalog import CANDIDATES

    assert lake.partition_row_count(CANDIDATES, settings, D5) == 0  # no output writes
    assert nightly["serving_after_held"].version == nightly["releases"][D4].version
    assert nightly["served_after_held"] == nightly["served_d4"] == _gold_lists(settings, D4, nightly["users"])
    assert nightly["status"][1]["night"] == "held" and "held: " in nightly["status"][1]["gate"]["reason"]


def test_rollback_serves_an_older_release_exactly(nightly: dict[str, Any]) -> None:
    from reelrec import releases

    settings = nightly["settings"]
    assert nightly["rollback"] == 0
    assert releases.serving(settings).version == nightly["releases"][D3].version
    assert nightly["served_after_rollback"] == _gold_lists(settings, D3, nightly["users"])
    assert nightly["served_after_rollback"] != nightly["served_d4"]


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
    row = lake.read(USER_FEATURES, settings, dates=[D5]).slice(0, 1).to_pylist()[0]
    online = online_features(settings, user_id=row["user_id"])
    flat = str(online)
    assert row["user_id"] in flat
    assert str(row["views_28d"]) in flat


def test_bad_volume_stops_the_night_before_features(nightly: dict[str, Any]) -> None:
    from reelrec import lake
    from reelrec.catalog import USER_FEATURES

    assert nightly["bad_night"] == 1
    states = nightly["tasks"][D6]
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
    assert lake.partition_row_count(USER_FEATURES, nightly["settings"], D6) == 0
    log = (nightly["settings"].run_dir(D6) / "airflow.log").read_text()
    assert f"table events, dt={D6}" in log and "expect_table_row_count_to_be_between" in log
