"""The user-features aggregation in Spark against the same SQL in DuckDB, and a night's fixed overhead.

    nice -n 10 .venv/bin/python benchmarks/feature_engines.py --quick
    nice -n 10 .venv/bin/python benchmarks/feature_engines.py --preset medium --days 2
    nice -n 10 .venv/bin/python benchmarks/feature_engines.py --home /tmp/fe/medium --days 2 --skip-overhead

Unless ``--home`` already holds them, generates a world (``reelrec generate``) and lands its days in
bronze by running the real jobs, each in its own process (``python -m spark_jobs.ingest_events`` for
every day, ``spark_jobs.ingest_catalogs`` for the last day D). Then, on the same Delta snapshot, for D:

* ``spark``: :mod:`spark_jobs.user_features`'s ``extract -> transform_user_features`` collected to
  Arrow (what ``load`` hands to delta-rs) in a local[2] session; the session start is timed apart,
  and the same plan is also run to Spark's ``noop`` sink (``no_collect_*``: computed, not collected);
* ``duckdb_delta_scan``: the same aggregation as one DuckDB SQL query over ``delta_scan`` (2 threads);
* ``duckdb_parquet_files``: the same SQL over the snapshot's file list (``read_parquet``), the list
  Spark reads too.

The first run of each engine (cold) and the best of ``--repeats`` are kept. Both results are checked
equal, row by row, in the silver.user_features schema (floats within 1e-9 relative). Per-row costs are
microseconds per input event row (the 28-day window's bronze.events rows) and per output row; the
ratio is Spark over DuckDB (``delta_scan``), best against best. The Delta write is left out of both:
it is the same delta-rs call on the same Arrow table.

Unless ``--skip-overhead``, the fixed overhead of a night is split out, each in a fresh process, best
of ``--overhead-repeats``: the interpreter alone, importing each task module (seconds inside the
process, and the whole process), a bare JVM (``java -version``), Spark's launcher (``spark-submit
--version``), and a local[2] SparkSession from nothing to its first result (import, session, first
``collect``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from reelrec import lake
from reelrec.catalog import (
    DT,
    EVENTS,
    IMPRESSION,
    LIKE,
    RECENT_HISTORY_LEN,
    TIMED_EVENT_TYPES,
    USER_FEATURES,
    USER_ID,
    VIDEOS,
    VIEW,
    WINDOWS,
)
from reelrec.dates import add_days, date_range, feature_timestamp
from reelrec.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

IMPORTED_MODULES = (
    "pyspark.sql",
    "spark_jobs.user_features",
    "reelrec.validation",
    "great_expectations",
    "feature_repo.materialize",
    "models.two_tower.train",
    "models.score",
    "airflow.sdk",
)
LONGEST = max(WINDOWS)


def _sql_list(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{value}'" for value in values)


def user_features_sql(events: str, videos: str, date: str) -> str:
    """DuckDB SQL computing exactly ``spark_jobs.user_features.transform_user_features``.

    Args:
        events: a DuckDB table expression of bronze.events (``delta_scan(...)``, ``read_parquet(...)``).
        videos: the same for bronze.videos.
        date: logical date D.
    """

    def inside(days: int) -> str:
        dates = date_range(date, days)
        return f"dt BETWEEN '{dates[0]}' AND '{dates[-1]}'"

    def count(condition: str) -> str:
        return f"CAST(sum(CASE WHEN {condition} THEN 1 ELSE 0 END) AS BIGINT)"

    aggregates = []
    for days in WINDOWS:
        aggregates += [
            f"{count(f'{inside(days)} AND event_type = {IMPRESSION!r}')} AS impressions_{days}d",
            f"{count(f'{inside(days)} AND _view')} AS views_{days}d",
            f"CAST(coalesce(sum(CASE WHEN {inside(days)} AND event_type IN ({_sql_list(TIMED_EVENT_TYPES)})"
            f" THEN watch_ms END), 0) AS BIGINT) AS watch_ms_{days}d",
        ]

    def rate(numerator: str, denominator: str) -> str:
        return f"CASE WHEN {denominator} > 0 THEN CAST({numerator} AS DOUBLE) / {denominator} ELSE 0.0 END"

    return f"""
WITH recent AS (
    SELECT e.user_id, e.video_id, e.event_type, e.event_ts, e.watch_ms, e.dt,
           e.event_type = '{VIEW}' AS _view,
           e.event_type = '{VIEW}' AND coalesce(e.watch_ms * 10 >= v.duration_ms * 9, false) AS _completed
    FROM {events} AS e
    LEFT JOIN (SELECT video_id, duration_ms FROM {videos} WHERE dt = '{date}') AS v USING (video_id)
    WHERE e.{inside(LONGEST)}
), activity AS (
    SELECT user_id, {", ".join(aggregates)},
           {count(f"{inside(7)} AND _completed")} AS _completed_7d,
           {count("_completed")} AS _completed_28d,
           {count(f"event_type = {LIKE!r}")} AS _likes_28d,
           CAST(count(DISTINCT dt) AS BIGINT) AS active_days_28d
    FROM recent GROUP BY user_id
), last_views AS (
    SELECT user_id, video_id,
           row_number() OVER (PARTITION BY user_id ORDER BY max(event_ts) DESC, video_id) AS _rank
    FROM recent WHERE _view GROUP BY user_id, video_id
), recent_ids AS (
    SELECT user_id, list(video_id ORDER BY _rank) AS recent_video_ids
    FROM last_views WHERE _rank <= {RECENT_HISTORY_LEN} GROUP BY user_id
)
SELECT a.user_id,
       {", ".join(f"impressions_{d}d" for d in WINDOWS)},
       {", ".join(f"views_{d}d" for d in WINDOWS)},
       {", ".join(f"watch_ms_{d}d" for d in WINDOWS)},
       {rate("_completed_7d", "views_7d")} AS completion_rate_7d,
       {rate("_completed_28d", "views_28d")} AS completion_rate_28d,
       {rate("_likes_28d", "views_28d")} AS like_rate_28d,
       active_days_28d,
       coalesce(r.recent_video_ids, CAST([] AS VARCHAR[])) AS recent_video_ids,
       TIMESTAMPTZ '{feature_timestamp(date).isoformat()}' AS event_timestamp,
       '{date}' AS dt
FROM activity AS a LEFT JOIN recent_ids AS r USING (user_id)
"""


def _timed(run: Callable[[], pa.Table], repeats: int) -> tuple[pa.Table, dict[str, float]]:
    """Run ``repeats`` times; the result and ``first_s`` (cold) and ``best_s``."""
    seconds, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        seconds.append(time.perf_counter() - started)
    assert result is not None
    return result, {"first_s": seconds[0], "best_s": min(seconds)}


def run_spark(settings: Settings, date: str, repeats: int) -> tuple[pa.Table, dict[str, float]]:
    """The job's own extract and transform, collected to Arrow as its ``load`` does.

    ``no_collect_*``: the same plan run to Spark's ``noop`` sink (computed, not collected).
    """
    started = time.perf_counter()
    from reelrec.spark import get_spark
    from spark_jobs.user_features import extract, transform_user_features

    imported = time.perf_counter()
    spark = get_spark(settings, app_name=f"feature_engines {date}")
    spark.range(1).collect()
    session = time.perf_counter()

    def features() -> DataFrame:
        events, videos = extract(spark, settings, date)
        return transform_user_features(events, videos, date).select(*USER_FEATURES.columns)

    def no_collect() -> pa.Table:
        features().write.format("noop").mode("overwrite").save()
        return pa.table({})

    result, timings = _timed(lambda: features().toArrow(), repeats)
    _, computed = _timed(no_collect, repeats)
    partitions = spark.conf.get("spark.sql.shuffle.partitions")
    spark.stop()
    return result, {
        "import_s": imported - started,
        "session_start_s": session - imported,
        **timings,
        "no_collect_first_s": computed["first_s"],
        "no_collect_best_s": computed["best_s"],
        "shuffle_partitions": float(partitions or 0),
    }


def run_duckdb(settings: Settings, date: str, repeats: int, source: str) -> tuple[pa.Table, dict[str, float]]:
    """The SQL over ``delta_scan`` (``source="delta_scan"``) or the snapshot's file list (``"files"``)."""
    started = time.perf_counter()
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads = 2")
    con.execute("SET TimeZone = 'UTC'")
    con.execute("LOAD delta")
    connected = time.perf_counter()

    def tables() -> tuple[str, str]:
        if source == "delta_scan":
            return f"delta_scan('{EVENTS.uri(settings)}')", f"delta_scan('{VIDEOS.uri(settings)}')"
        reads = []
        for table, dates in ((EVENTS, date_range(date, LONGEST)), (VIDEOS, [date])):
            files = lake.snapshot_files(table, settings, dates)
            reads.append(
                f"read_parquet([{_sql_list(tuple(files))}], hive_partitioning = true, "
                "hive_types_autocast = false)"
            )
        return reads[0], reads[1]

    def once() -> pa.Table:
        return con.execute(user_features_sql(*tables(), date)).to_arrow_table()

    result, timings = _timed(once, repeats)
    con.close()
    return result, {"connect_s": connected - started, **timings}


def differences(spark: pa.Table, duck: pa.Table, rtol: float = 1e-9) -> dict[str, Any]:
    """Per column, how many rows differ after both are put in the silver.user_features schema."""
    a = lake.conform(USER_FEATURES, spark).sort_by(USER_ID)
    b = lake.conform(USER_FEATURES, duck).sort_by(USER_ID)
    if a.num_rows != b.num_rows or not a.column(USER_ID).equals(b.column(USER_ID)):
        return {"rows": [a.num_rows, b.num_rows], "user_ids_differ": True}
    found: dict[str, Any] = {}
    for field in USER_FEATURES.schema:
        x, y = a.column(field.name).combine_chunks(), b.column(field.name).combine_chunks()
        if pa.types.is_floating(field.type):
            xs, ys = x.to_numpy(zero_copy_only=False), y.to_numpy(zero_copy_only=False)
            bad = ~np.isclose(xs, ys, rtol=rtol, atol=0.0, equal_nan=True)
        elif pa.types.is_list(field.type):
            bad = np.array([p != q for p, q in zip(x.to_pylist(), y.to_pylist(), strict=True)], dtype=bool)
        else:
            same_null = pc.equal(pc.is_null(x), pc.is_null(y))
            bad = ~pc.and_(same_null, pc.fill_null(pc.equal(x, y), True)).to_numpy(zero_copy_only=False)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            found[field.name] = {
                "rows": int(bad.sum()),
                "first": [a.column(USER_ID)[row].as_py(), x[row].as_py(), y[row].as_py()],
            }
    return found


def _run(cmd: list[str], env: dict[str, str]) -> float:
    """Run ``cmd`` (failing loudly with its output) and return its wall seconds."""
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def child_env(home: Path) -> dict[str, str]:
    """The environment of a child: REELREC_HOME, in-process local[2] Spark, embedded profile."""
    env = {k: v for k, v in os.environ.items() if k != "REELREC_SPARK_REMOTE"}
    env.update({"REELREC_HOME": str(home), "SPARK_MASTER": "local[2]", "REELREC_PROFILE": "embedded"})
    return env


def prepare_world(settings: Settings, preset: str, start: str, days: int) -> dict[str, Any]:
    """Generate the world and land its days in bronze, skipping what ``settings.home`` already holds."""
    env, home, py = child_env(settings.home), str(settings.home), sys.executable
    dates = [add_days(start, offset) for offset in range(days)]
    seconds: dict[str, Any] = {}
    if not (settings.home / "landing" / "events" / f"dt={dates[-1]}").exists():
        reelrec = str(Path(py).with_name("reelrec"))
        cmd = [reelrec, "--home", home, "generate", "--preset", preset, "--start", start, "--days", str(days)]
        seconds["generate"] = _run(cmd, env)
    landed = lake.partition_dates(EVENTS, settings)
    for date in dates:
        if date not in landed:
            seconds[f"ingest_events {date}"] = _run(
                [py, "-m", "spark_jobs.ingest_events", "--date", date], env
            )
    if dates[-1] not in lake.partition_dates(VIDEOS, settings):
        cmd = [py, "-m", "spark_jobs.ingest_catalogs", "--date", dates[-1]]
        seconds[f"ingest_catalogs {dates[-1]}"] = _run(cmd, env)
    return seconds


def _best_child(code: str, env: dict[str, str], repeats: int) -> dict[str, float]:
    """Run ``python -c code`` ``repeats`` times in fresh processes: best wall and best of its JSON fields."""
    best: dict[str, float] = {}
    for _ in range(repeats):
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if done.returncode:
            raise RuntimeError(f"python -c {code!r} exited {done.returncode}:\n{done.stderr[-3000:]}")
        fields = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else {}
        for key, value in {**fields, "process_s": wall}.items():
            best[key] = min(best.get(key, float("inf")), value)
    return best


def _best_command(cmd: list[str], env: dict[str, str], repeats: int) -> float:
    return min(_run(cmd, env) for _ in range(repeats))


SPARK_CHILD = """
import json, time
t0 = time.perf_counter()
from reelrec.settings import Settings
from reelrec.spark import get_spark
t1 = time.perf_counter()
spark = get_spark(Settings.from_env(), app_name="overhead")
t2 = time.perf_counter()
spark.range(1).collect()
t3 = time.perf_counter()
spark.stop()
t4 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "session_s": t2 - t1, "first_result_s": t3 - t2,
                  "start_to_first_result_s": t3 - t0, "stop_s": t4 - t3}))
"""


def fixed_overhead(home: Path, repeats: int) -> dict[str, Any]:
    """Interpreter, imports, JVM and SparkSession start, each in fresh processes (best of ``repeats``)."""
    env = child_env(home)
    result: dict[str, Any] = {"interpreter_s": _best_child("pass", env, repeats)["process_s"], "imports": {}}
    for module in IMPORTED_MODULES:
        code = f"import json, time\nt = time.perf_counter()\nimport {module}\n"
        code += "print(json.dumps({'import_s': time.perf_counter() - t}))"
        result["imports"][module] = _best_child(code, env, repeats)
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if java:
        result["jvm_start_s"] = _best_command([java, "-version"], env, repeats)
    import pyspark

    spark_submit = Path(next(iter(pyspark.__path__))) / "bin" / "spark-submit"
    if spark_submit.exists():
        result["spark_submit_version_s"] = _best_command([str(spark_submit), "--version"], env, repeats)
    result["spark_session"] = _best_child(SPARK_CHILD, env, repeats)
    return result


def engines(settings: Settings, date: str, repeats: int) -> dict[str, Any]:
    """Time Spark and both DuckDB reads on D; check the results equal; per-row costs and ratios."""
    input_rows = lake.read(EVENTS, settings, dates=date_range(date, LONGEST), columns=[DT]).num_rows
    spark_result, spark_t = run_spark(settings, date, repeats)
    timings = {"spark": spark_t}
    results = {}
    for name, source in (("duckdb_delta_scan", "delta_scan"), ("duckdb_parquet_files", "files")):
        results[name], timings[name] = run_duckdb(settings, date, repeats, source)
    output_rows = spark_result.num_rows
    for timing in timings.values():
        timing["us_per_input_row"] = timing["best_s"] * 1e6 / max(input_rows, 1)
        timing["us_per_output_row"] = timing["best_s"] * 1e6 / max(output_rows, 1)
    spark_best = timings["spark"]["best_s"]
    return {
        "date": date,
        "input_event_rows": input_rows,
        "output_rows": output_rows,
        **timings,
        "differences": {name: differences(spark_result, duck) for name, duck in results.items()},
        "ratio_spark_over_duckdb": spark_best / timings["duckdb_delta_scan"]["best_s"],
        "ratio_spark_over_duckdb_files": spark_best / timings["duckdb_parquet_files"]["best_s"],
        "ratio_spark_over_duckdb_cold": timings["spark"]["first_s"] / timings["duckdb_delta_scan"]["first_s"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="medium", choices=("tiny", "small", "medium"))
    parser.add_argument("--start", default="2026-11-01")
    parser.add_argument("--days", type=int, default=2, help="days generated; features are for the last")
    parser.add_argument("--home", default=None, help="REELREC_HOME to reuse (default: a throwaway one)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--overhead-repeats", type=int, default=3)
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--quick", action="store_true", help="preset small, 2 days, 2 repeats")
    args = parser.parse_args(argv)
    if args.quick:
        args.preset, args.days, args.repeats = "small", 2, 2
    scratch = None if args.home else tempfile.TemporaryDirectory(prefix="reelrec-engines-")
    home = Path(args.home or (scratch.name if scratch else "")).resolve()
    os.environ.update(child_env(home))
    os.environ.pop("REELREC_SPARK_REMOTE", None)
    settings = Settings.from_env(home)
    date = add_days(args.start, args.days - 1)
    try:
        out: dict[str, Any] = {"preset": args.preset, "days": args.days, "home": str(home)}
        out["machine"] = {"cpus": os.cpu_count(), "load_avg_at_start": list(os.getloadavg())}
        out["prepare_s"] = prepare_world(settings, args.preset, args.start, args.days)
        out["engines"] = engines(settings, date, args.repeats)
        if not args.skip_overhead:
            out["fixed_overhead"] = fixed_overhead(home, args.overhead_repeats)
    finally:
        if scratch is not None:
            scratch.cleanup()
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
