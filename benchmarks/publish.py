"""Publishing throughput: Feast materialization of a night's outputs against raw writes of the same bytes.

    .venv/bin/python benchmarks/publish.py --users 20000 --items 100 --videos 20000 --dim 64
    .venv/bin/python benchmarks/publish.py --quick
    .venv/bin/python benchmarks/publish.py --profile       # + cProfile of each publish on stderr
    .venv/bin/python benchmarks/publish.py --writer feast  # Feast's own materialization, for comparison

Writes one synthetic night of the gold tables that publishing reads (``gold.candidates``: ``--users``
lists of ``--items`` candidates plus the default list; ``gold.user_embeddings`` and
``gold.video_embeddings``: ``--dim``-wide vectors), then, per online store:

* ``feast``: publishes them the way ``models.publish.publish_outputs`` does, through
  ``feature_repo.materialize.materialize(D, group="outputs")``, timed per view and as a whole. With
  ``--writer bulk`` (the default, as in production) that is :mod:`feature_repo.online_write`: Feast's
  layout written from Arrow columns, the materialization recorded in the registry; with ``--writer
  feast`` it is Feast's ``materialize`` of each view (the DuckDB pull of the Delta rows, conversion
  to protobuf values, the online store's ``online_write_batch``);
* ``raw``: the same bytes written straight to the store, read back from what the publish wrote
  and cleared first: on Redis (db 12, a Feast project of its own) one pipeline of ``HSET key mapping``
  per view (Feast's hash layout: one hash per entity, a field per feature); on SQLite one
  transaction of ``executemany`` upserts (Feast's own ``INSERT ... ON CONFLICT DO UPDATE``) per view.

Prints one JSON object: rows (entities) per second of each, their ratio (``feast / raw``) per view and
over the night, and the goals of issue 10 section 5 (Redis >= 50% of raw, SQLite >= 25%). The
production store config is used as ``feature_repo/feature_store.production.yaml`` renders it.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import dataclasses
import json
import os
import pstats
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from feature_repo.materialize import VIEW_GROUPS, WRITERS, materialize
from feature_repo.registry import apply, teardown
from feature_repo.store_config import open_store
from reelrec.catalog import DEFAULT_LIST_KEY
from reelrec.settings import Settings

DATE = "2026-11-02"  # the night online_read.write_night writes
REDIS_URL = "127.0.0.1:6379,db=12"  # db 12 is the benchmarks'; the project name keeps runs apart
VIEWS = VIEW_GROUPS["outputs"]  # user_daily_candidates, user_daily_embedding, video_daily_embedding


def store_settings(home: Path, store: str) -> Settings:
    """Embedded (SQLite + file registry) or production (Redis + SQL registry) settings under ``home``."""
    settings = Settings.from_env(home)
    if store == "sqlite":
        return dataclasses.replace(settings, feast_env="embedded")
    return dataclasses.replace(
        settings,
        feast_env="production",
        redis_url=os.environ.get("REELREC_BENCH_REDIS_URL", REDIS_URL),
        extra={**settings.extra, "feast_project": f"bench_{uuid.uuid4().hex[:10]}"},
    )


def write_night(settings: Settings, args: argparse.Namespace) -> dict[str, list[str]]:
    """The gold night of benchmarks/online_read.py; returns the entity ids of each outputs view."""
    from online_read import user_id
    from online_read import write_night as write_gold_night

    write_gold_night(settings, args.users, args.items, args.videos, args.dim)
    users = [*map(user_id, range(args.users)), DEFAULT_LIST_KEY]
    videos = [f"v{i:07d}" for i in range(args.videos)]
    return {
        "user_daily_candidates": users,
        "user_daily_embedding": users[:-1],
        "video_daily_embedding": videos,
    }


# ---------------------------------------------------------------- raw writes of Feast's bytes
def _redis_keys(store: Any, view: Any, ids: list[str]) -> list[bytes]:
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    (join_key,) = [column.name for column in view.entity_columns]
    version, project = store.config.entity_key_serialization_version, store.project.encode()
    return [
        serialize_entity_key(EntityKey(join_keys=[join_key], entity_values=[Value(string_val=i)]), version)
        + project
        for i in ids
    ]


def raw_redis(settings: Settings, ids: dict[str, list[str]]) -> dict[str, float]:
    """Seconds of one pipeline of ``HSET key mapping`` per view, the mappings being what Feast wrote."""
    import redis
    from feast.infra.online_stores.helpers import _mmh3
    from feast.infra.online_stores.redis import RedisOnlineStore

    store = open_store(settings)
    nodes, options = RedisOnlineStore._parse_connection_string(store.config.online_store.connection_string)
    client = redis.Redis(host=nodes[0]["host"], port=int(nodes[0]["port"]), **options)
    seconds = {}
    for name in VIEWS:
        view = store.get_feature_view(name)
        fields = [_mmh3(f"{name}:{feature.name}") for feature in view.features] + [f"_ts:{name}".encode()]
        keys = _redis_keys(store, view, ids[name])
        with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hmget(key, fields)
            written = pipe.execute()
        mappings = [dict(zip(fields, values, strict=True)) for values in written]
        if any(value is None for mapping in mappings for value in mapping.values()):
            raise RuntimeError(f"feature view {name}: Feast left a field of some entity unwritten")
        with client.pipeline(transaction=False) as pipe:  # back to the state before the publish
            for key in keys:
                pipe.hdel(key, *fields)
            pipe.execute()
        started = time.perf_counter()
        with client.pipeline(transaction=False) as pipe:
            for key, mapping in zip(keys, mappings, strict=True):
                pipe.hset(key, mapping=mapping)
            pipe.execute()
        seconds[name] = time.perf_counter() - started
        assert client.hmget(keys[-1], fields) == written[-1]
    client.close()
    return seconds


def raw_sqlite(settings: Settings) -> dict[str, float]:
    """Seconds of one transaction of ``executemany`` upserts per view, of the rows Feast wrote."""
    from feast.infra.online_stores.sqlite import _table_id

    store = open_store(settings)
    path = store.config.online_store.path
    seconds = {}
    with contextlib.closing(sqlite3.connect(path)) as conn:
        for name in VIEWS:
            table = f'"{_table_id(store.project, store.get_feature_view(name))}"'
            columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
            written = conn.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
            with conn:
                conn.execute(f"DELETE FROM {table}")
            updates = ", ".join(
                f"{c} = excluded.{c}" for c in columns if c not in ("entity_key", "feature_name")
            )
            upsert = (
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
                f"ON CONFLICT(entity_key, feature_name) DO UPDATE SET {updates}"
            )
            started = time.perf_counter()
            with conn:
                conn.executemany(upsert, written)
            seconds[name] = time.perf_counter() - started
            assert conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == len(written)
    return seconds


# ---------------------------------------------------------------- one store
@contextlib.contextmanager
def _profiled(enabled: bool, label: str) -> Iterator[None]:
    profiler = cProfile.Profile() if enabled else None
    if profiler:
        profiler.enable()
    try:
        yield
    finally:
        if profiler:
            profiler.disable()
            print(f"\n---- cProfile: {label}, by own time", file=sys.stderr)
            pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(20)


def publish_and_compare(store: str, args: argparse.Namespace) -> dict[str, Any]:
    """Write the night, publish it through Feast, rewrite Feast's bytes raw; rows/s of both per view."""
    with tempfile.TemporaryDirectory(prefix=f"reelrec-bench-publish-{store}-") as tmp:
        settings = store_settings(Path(tmp) / "home", store)
        ids = write_night(settings, args)
        try:
            apply(settings)
            started = time.perf_counter()
            with _profiled(args.profile, f"materialize(group='outputs') on {store}"):
                report = materialize(DATE, settings, group="outputs", writer=args.writer)
            feast_total = time.perf_counter() - started
            raw = raw_redis(settings, ids) if store == "redis" else raw_sqlite(settings)
        finally:
            if store == "redis" and (settings.feast / "feature_store.yaml").exists():
                teardown(settings)
    result: dict[str, Any] = {}
    for name in VIEWS:
        entry = report["views"][name]
        rows = len(ids[name])
        assert entry["status"] == "materialized" and entry["entities"] == rows, entry
        assert report["writers"][name] == args.writer, report["writers"]
        feast_rps, raw_rps = rows / entry["seconds"], rows / raw[name]
        result[name] = {
            "rows": rows,
            "feast_seconds": entry["seconds"],
            "raw_seconds": round(raw[name], 3),
            "feast_rows_per_second": round(feast_rps),
            "raw_rows_per_second": round(raw_rps),
            "ratio_feast_over_raw": round(feast_rps / raw_rps, 4),
        }
    rows = sum(len(ids[name]) for name in VIEWS)
    raw_total = sum(raw.values())
    result["ratio_of_raw"] = round(raw_total / feast_total, 4)  # the whole night: feast rows/s over raw
    result["night"] = {
        "rows": rows,
        "feast_seconds_materialize_call": round(feast_total, 3),
        "feast_seconds_views": round(sum(report["views"][n]["seconds"] for n in VIEWS), 3),
        "raw_seconds": round(raw_total, 3),
        "feast_rows_per_second": round(rows / feast_total),
        "raw_rows_per_second": round(rows / raw_total),
        "ratio_feast_over_raw": round(raw_total / feast_total, 4),
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=100, help="candidates per list")
    parser.add_argument("--videos", type=int, default=20_000, help="videos with an embedding")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--stores", nargs="+", default=["redis", "sqlite"], choices=["redis", "sqlite"])
    parser.add_argument("--profile", action="store_true", help="print a cProfile of each publish")
    parser.add_argument(
        "--writer",
        default="bulk",
        choices=WRITERS,
        help="materialize's writer (bulk: feature_repo.online_write)",
    )
    parser.add_argument("--quick", action="store_true", help="2,000 users, 2,000 videos")
    args = parser.parse_args()
    if args.quick:
        args.users, args.videos = 2_000, 2_000

    started = time.perf_counter()
    result: dict[str, Any] = {
        "users": args.users,
        "items_per_list": args.items,
        "videos": args.videos,
        "dim": args.dim,
        "writer": args.writer,
    }
    for store in args.stores:
        result[store] = publish_and_compare(store, args)
    goals = {"redis": 0.5, "sqlite": 0.25}
    result["goals"] = {
        f"{store}_ratio_of_raw_ge_{goals[store]}": result[store]["ratio_of_raw"] >= goals[store]
        for store in args.stores
    }
    result["load_average_1min"] = round(os.getloadavg()[0], 2)
    result["cpus"] = os.cpu_count()
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
