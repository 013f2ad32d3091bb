"""Scoring on Spark: users/second of exact top-N in one process against the Spark job on 1 and 2 cores.

    .venv/bin/python benchmarks/spark_scoring.py --users 20000 --videos 100000 --dim 64
    .venv/bin/python benchmarks/spark_scoring.py --quick

Random unit embeddings stand in for the towers' outputs, with ``watched_per_user`` exclusions and
``fresh_slots`` reserved for fresh uploads (as benchmarks/scoring_throughput.py). On the same data, prints
users/second of:

* ``single_process``: :func:`models.spark_scoring.local_top_k` (``models.topk.top_k_with_quota`` over
  blocked dot products), on every core of this machine (top-k threads and BLAS threads);
* ``single_process_1_thread``: the same with one top-k thread and one BLAS thread (in a child process),
  the per-core figure a Spark task's should be set against;
* ``spark_local_<n>``: :func:`models.spark_scoring.spark_top_k` on an in-process Spark session
  ``local[n]`` for each ``--cores`` n (one core per task, one task per core), the whole job: users to a
  DataFrame, shuffle by ``user_id``, broadcast catalog, top-k per partition, collect, reorder.

Each Spark figure is the best of ``--repeats`` jobs after one warm-up job on a few users (it starts the
Python workers and loads the compiled top-k); the session start and the warm-up are printed apart. Each
result is checked to equal the single-process one, item for item and bit for bit. The machine is shared:
the 1-minute load average before and after the run is printed with the figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp

from models.spark_scoring import ScoredUsers, local_top_k, spark_top_k
from reelrec.settings import Settings
from reelrec.spark import get_spark


def _best_seconds(run: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """The fastest of ``repeats`` runs and the last run's result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - started)
    return best, result


def _data(args: argparse.Namespace) -> tuple[list[str], np.ndarray, np.ndarray, sp.csr_matrix, np.ndarray]:
    """The embeddings of benchmarks/scoring_throughput.py (same seed and shapes)."""
    from scoring_throughput import random_world

    users, videos, fresh, watched = random_world(args.users, args.videos, args.dim, args.watched_per_user)
    return [f"u{i:08d}" for i in range(args.users)], users, videos, watched, fresh


def _one_thread_seconds(args: argparse.Namespace) -> float:
    """Best single-process seconds with one top-k thread and one BLAS thread (run in a fresh process)."""
    from threadpoolctl import threadpool_limits

    os.environ["REELREC_TOPK_THREADS"] = "1"  # read when models.topk first makes its thread pool
    _, users, videos, watched, fresh = _data(args)
    with threadpool_limits(1):
        seconds, _ = _best_seconds(
            lambda: local_top_k(users, watched, videos, args.top_n, fresh, args.fresh_slots, args.block_size),
            args.repeats,
        )
    return seconds


def _spark_run(
    cores: int, home: str, data: tuple[Any, ...], args: argparse.Namespace, expected: tuple[Any, Any]
) -> dict[str, Any]:
    """One ``local[cores]`` session's figures: start, warm-up, best job, whether it equals ``expected``."""
    ids, users, videos, watched, fresh = data
    settings = dataclasses.replace(Settings.from_env(home), spark_master=f"local[{cores}]", spark_remote="")
    started = time.perf_counter()
    spark = get_spark(settings, app_name=f"bench-spark-scoring-{cores}")
    spark.sparkContext.setLogLevel("ERROR")
    start_s = time.perf_counter() - started
    few = min(256, len(ids))
    started = time.perf_counter()
    spark_top_k(spark, ids[:few], users[:few], watched[:few], videos, args.top_n, fresh, args.fresh_slots)
    warm_up_s = time.perf_counter() - started

    def job() -> ScoredUsers:
        quota, block = args.fresh_slots, args.block_size
        return spark_top_k(spark, ids, users, watched, videos, args.top_n, fresh, quota, block_size=block)

    seconds, scored = _best_seconds(job, args.repeats)
    spark.stop()
    identical = np.array_equal(scored.items, expected[0]) and np.array_equal(scored.scores, expected[1])
    return {
        "session_start_seconds": round(start_s, 1),
        "warm_up_job_seconds": round(warm_up_s, 1),
        "job_seconds": round(seconds, 2),
        "users_per_second": round(len(ids) / seconds),
        "identical_to_single_process": bool(identical),
    }


def main() -> None:
    from scoring_throughput import add_world_arguments

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_world_arguments(parser)
    parser.add_argument("--cores", type=int, nargs="+", default=[1, 2], help="local[n] sessions to run")
    parser.add_argument("--quick", action="store_true", help="2,000 users x 20,000 videos")
    args = parser.parse_args()
    if args.quick:
        args.users, args.videos = 2_000, 20_000

    load_before = os.getloadavg()[0]
    with multiprocessing.get_context("spawn").Pool(1) as child:
        one_thread_seconds = child.apply(_one_thread_seconds, (args,))
    data = _data(args)
    ids, users, videos, watched, fresh = data
    seconds, expected = _best_seconds(
        lambda: local_top_k(users, watched, videos, args.top_n, fresh, args.fresh_slots, args.block_size),
        args.repeats,
    )
    result: dict[str, Any] = {
        "users": args.users,
        "videos": args.videos,
        "dim": args.dim,
        "top_n": args.top_n,
        "fresh_slots": args.fresh_slots,
        "watched_per_user": args.watched_per_user,
        "block_size": args.block_size,
        "machine_cores": len(os.sched_getaffinity(0)),
        "single_process_users_per_second": round(args.users / seconds),
        "single_process_1_thread_users_per_second": round(args.users / one_thread_seconds),
    }
    with tempfile.TemporaryDirectory(prefix="bench-spark-scoring-") as home:
        for cores in args.cores:
            figures = _spark_run(cores, home, data, args, expected)
            for name, value in figures.items():
                result[f"spark_local_{cores}_{name}"] = value
            result[f"spark_local_{cores}_ratio_of_single_process"] = round(
                figures["users_per_second"] / result["single_process_users_per_second"], 3
            )
    if {1, 2} <= set(args.cores):
        result["spark_2_cores_over_1"] = round(
            result["spark_local_2_users_per_second"] / result["spark_local_1_users_per_second"], 2
        )
    result["load_average_1min_before_after"] = [round(load_before, 1), round(os.getloadavg()[0], 1)]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
