"""Time every stage of one night directly (no Airflow), with rows and rows/second per stage.

    .venv/bin/python benchmarks/nightly_stages.py --preset small --days 2
    .venv/bin/python benchmarks/nightly_stages.py --preset medium --days 1 --json

Generates a fresh world in a throwaway REELREC_HOME (unless --home is given), then for each date runs
ingest -> bronze suite -> features -> features suite -> Feast apply + materialize -> content
embeddings -> training set -> train (two-tower, ranker) -> evaluate -> gate (forced) -> score ->
outputs suite -> publish in one process
(so Spark starts once, as in an Airflow run), and prints seconds, output rows and the Python
process's peak RSS (the Spark JVM is apart). The model plane of the first night is skipped (nothing
to train on), as in the DAG.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from collections.abc import Callable
from typing import Any

from reelrec import lake
from reelrec.catalog import TABLES
from reelrec.dates import add_days, cli_date
from reelrec.settings import Settings

STAGES: list[tuple[str, str, tuple[str, ...]]] = [
    # (stage, "module:function", tables whose dt=D rows it produces)
    ("ingest_events", "spark_jobs.ingest_events:main", ("events",)),
    ("ingest_catalogs", "spark_jobs.ingest_catalogs:main", ("videos", "users", "creators", "follows")),
    ("validate_bronze", "reelrec.validation:gate", ()),
    ("user_features", "spark_jobs.user_features:main", ("user_features",)),
    ("video_features", "spark_jobs.video_features:main", ("video_features",)),
    ("creator_features", "spark_jobs.creator_features:main", ("creator_features",)),
    ("validate_features", "reelrec.validation:gate", ()),
    ("feast_apply", "feature_repo.registry:apply", ()),
    ("feast_materialize", "feature_repo.materialize:materialize", ()),
    ("content_embeddings", "models.content:main", ("video_content",)),
    ("publish_content", "models.publish:publish_content", ()),
    ("training_set", "models.training_set:main", ()),
    ("train", "models.two_tower.train:main", ()),
    ("train_ranker", "models.ranker.train:main", ()),
    ("evaluate", "models.evaluate:main", ()),
    ("gate", "models.promotion:gate", ()),
    ("score", "models.score:main", ("candidates", "user_embeddings", "video_embeddings")),
    ("validate_outputs", "reelrec.validation:gate", ()),
    ("publish", "models.publish:publish_outputs", ()),
]
MODEL_PLANE = {
    "training_set",
    "train",
    "train_ranker",
    "evaluate",
    "gate",
    "score",
    "validate_outputs",
    "publish",
}


def _resolve(entry: str) -> Callable[..., Any]:
    import importlib

    module, function = entry.split(":")
    return getattr(importlib.import_module(module), function)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(preset: str, start: str, days: int, settings: Settings) -> list[dict[str, Any]]:
    from synthetic_world import generate

    results: list[dict[str, Any]] = []
    metrics: list[dict[str, Any]] = []
    began = time.perf_counter()
    generate(settings, preset, start, days)
    results.append({"date": "-", "stage": "generate", "seconds": time.perf_counter() - began, "rows": None})
    from models.training_set import NoTrainingDataError

    for offset in range(days):
        date = add_days(start, offset)
        skip_models = False
        for stage, entry, tables in STAGES:
            if skip_models and stage in MODEL_PLANE:
                results.append({"date": date, "stage": stage, "seconds": 0.0, "rows": None, "skipped": True})
                continue
            args: tuple[Any, ...] = (date,)
            if stage.startswith("validate_"):
                args = (stage.removeprefix("validate_"), date)
            elif stage == "feast_apply":
                args = ()
            elif stage == "gate":
                args = (date, True)  # force_publish: every night publishes, as a benchmark should
            began = time.perf_counter()
            try:
                facts = _resolve(entry)(*args, settings)
            except NoTrainingDataError:
                skip_models = True
                results.append({"date": date, "stage": stage, "seconds": 0.0, "rows": None, "skipped": True})
                continue
            seconds = time.perf_counter() - began
            if stage == "evaluate":
                metrics.append(facts)
            rows = (
                sum(lake.partition_row_count(TABLES[t], settings, date) for t in tables) if tables else None
            )
            results.append(
                {
                    "date": date,
                    "stage": stage,
                    "seconds": round(seconds, 2),
                    "rows": rows,
                    "rows_per_s": round(rows / seconds) if rows else None,
                    "peak_rss_mb": round(_peak_rss_mb()),
                }
            )
    for facts in metrics:
        results.append({"date": facts["date"], "stage": "metrics", "seconds": 0.0, "rows": None, **facts})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="small", choices=["tiny", "small", "medium"])
    parser.add_argument("--start", default="2026-11-01", type=cli_date)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--home", default=None, help="REELREC_HOME (default: a fresh temp folder)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    home = args.home or tempfile.mkdtemp(prefix=f"reelrec-bench-{args.preset}-")
    results = run(args.preset, args.start, args.days, Settings.from_env(home))
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"preset={args.preset} days={args.days} home={home}")
    print(f"{'date':<11} {'stage':<18} {'seconds':>8} {'rows':>10} {'rows/s':>10} {'py MB':>8}")
    from reelrec.report import format_metrics

    for r in results:
        if r["stage"] == "metrics":
            print("\n".join(format_metrics(r)))
            continue
        note = "  skipped (no training data yet)" if r.get("skipped") else ""
        print(
            f"{r['date']:<11} {r['stage']:<18} {r['seconds']:>8.2f} {r['rows'] or '':>10} "
            f"{r.get('rows_per_s') or '':>10} {r.get('peak_rss_mb') or '':>8}{note}"
        )


if __name__ == "__main__":
    main()
