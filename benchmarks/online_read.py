"""Online read latency on the production Feast settings (Redis online store, PostgreSQL registry).

    .venv/bin/python benchmarks/online_read.py
    .venv/bin/python benchmarks/online_read.py --quick
    .venv/bin/python benchmarks/online_read.py --profile     # + cProfile of the Recommender on stderr

Builds a tiny published world in one run: gold tables of one night (``--users`` lists of ``--items``
candidates, the default list, user and video embeddings) written with delta-rs, applied and published
(``materialize(group="outputs")``, what ``models.publish`` does) to Redis db 12 under a Feast project
of its own, torn down at the end. Then, interleaved round by round so that the shared machine's
noise hits every contender alike, it times (p50, p99, max in ms):

* ``recommender_1_user``: ``reelrec.serving.Recommender`` (warm), one user per call;
* ``recommender_100_users``: the same, 100 users per call (every 10th round); on Redis it reads
  with ``reelrec.online_read.RedisViewReader`` (Feast's key layout, one pipelined HMGET per user);
* ``feast_online_read_100_users``: the same answers read with the online store's own
  ``online_read`` (Feast's Redis read and decoding, what ``Recommender`` used before; every 10th round);
* ``feast_sdk_1_user``: ``FeatureStore.get_online_features`` on the ``recommendations_v1`` service plus
  ``to_dict()``, one user and the default list (the read path ``Recommender`` used before);
* ``feature_server_1_user``: Feast's HTTP feature server started as the README does (``feast -c
  $REELREC_HOME/feast serve --host 127.0.0.1 --port P``), one user per POST on a kept-alive
  connection, reply parsed with ``reelrec.serving_http.parse_feature_server_response``;
* ``raw_1_user``: redis-py ``HMGET`` of the user's hash in Feast's key layout plus protobuf decode of its
  values (the floor); ``raw_with_default_1_user``: the same for the user's and the default list's hashes
  in one pipeline (the data a ``Recommender`` call needs).

Prints one JSON object: every figure, the ratios of p99s to the raw read's, and the goals of
issue 10 section 4 (one user p99 <= 1 ms and <= 3x the raw read; 100 users p99 <= 10 ms; the HTTP
server p99 <= 5 ms).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import dataclasses
import http.client
import json
import os
import pstats
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from feature_repo.materialize import materialize
from feature_repo.registry import apply, teardown
from reelrec import catalog, lake
from reelrec.catalog import DEFAULT_LIST_KEY
from reelrec.dates import feature_timestamp
from reelrec.serving import VIEW, Recommender, _assemble
from reelrec.serving_http import feature_server_request, parse_feature_server_response
from reelrec.settings import Settings

DATE = "2026-11-02"
REDIS_URL = "127.0.0.1:6379,db=12"  # db 12 is the benchmarks'; the project name keeps runs apart
FEATURES = (catalog.VIDEO_IDS, catalog.SCORES, catalog.MODEL_VERSION, catalog.GENERATED_AT)


def user_id(i: int) -> str:
    return f"u{i:06d}"


def production_settings(home: Path) -> Settings:
    """Production Feast settings (Redis + SQL registry) under ``home``, with a Feast project of its own."""
    settings = Settings.from_env(home)
    return dataclasses.replace(
        settings,
        feast_env="production",
        redis_url=os.environ.get("REELREC_BENCH_REDIS_URL", REDIS_URL),
        extra={**settings.extra, "feast_project": f"bench_{uuid.uuid4().hex[:10]}"},
    )


def write_night(settings: Settings, users: int, items: int, videos: int, dim: int) -> None:
    """One night of the three gold tables that ``materialize(group="outputs")`` publishes."""
    rng = np.random.default_rng(11)
    keys = [*map(user_id, range(users)), DEFAULT_LIST_KEY]
    video_ids = np.array([f"v{i:07d}" for i in range(videos)])
    night = {
        catalog.MODEL_VERSION: "two_tower_v1-bench",
        catalog.GENERATED_AT: datetime(2026, 11, 3, 3, 15, 7, tzinfo=UTC),
        catalog.EVENT_TIMESTAMP: feature_timestamp(DATE),
        catalog.DT: DATE,
    }

    def rows(columns: dict[str, Any]) -> pa.Table:
        n = len(next(iter(columns.values())))
        return pa.table({**columns, **{name: [value] * n for name, value in night.items()}})

    def vectors(n: int, width: int) -> pa.Array:
        flat = pa.array(rng.random(n * width, dtype=np.float32))
        return pa.FixedSizeListArray.from_arrays(flat, width).cast(pa.list_(pa.float32()))

    starts = rng.integers(0, videos, len(keys))
    picks = (starts[:, None] + np.arange(items)) % videos  # (U, items): distinct videos per list
    scores = -np.sort(-rng.random((len(keys), items), dtype=np.float32), axis=1)  # best first
    candidates = rows(
        {
            catalog.USER_ID: keys,
            catalog.VIDEO_IDS: pa.FixedSizeListArray.from_arrays(pa.array(video_ids[picks.ravel()]), items),
            catalog.SCORES: pa.FixedSizeListArray.from_arrays(pa.array(scores.ravel()), items).cast(
                pa.list_(pa.float32())
            ),
        }
    )
    lake.write_partition(catalog.CANDIDATES, settings, candidates, DATE)
    user_vectors = rows({catalog.USER_ID: keys[:-1], catalog.EMBEDDING: vectors(users, dim)})
    lake.write_partition(catalog.USER_EMBEDDINGS, settings, user_vectors, DATE)
    video_vectors = rows({catalog.VIDEO_ID: video_ids.tolist(), catalog.EMBEDDING: vectors(videos, dim)})
    lake.write_partition(catalog.VIDEO_EMBEDDINGS, settings, video_vectors, DATE)


@contextlib.contextmanager
def published_world(args: argparse.Namespace) -> Iterator[Settings]:
    """A home on the production settings holding one published night; its Feast project torn down after."""
    with tempfile.TemporaryDirectory(prefix="reelrec-bench-read-") as tmp:
        settings = production_settings(Path(tmp) / "home")
        write_night(settings, args.users, args.items, args.videos, args.dim)
        try:
            apply(settings)
            report = materialize(DATE, settings, group="outputs")
            assert report["views"][VIEW]["status"] == "materialized", report
            yield settings
        finally:
            if (settings.feast / "feature_store.yaml").exists():
                teardown(settings)


# ---------------------------------------------------------------- contenders
def raw_reader(recommender: Recommender) -> Callable[[list[str]], list[list[Any]]]:
    """HMGET of the candidates' fields of each user's hash (one pipeline), decoded with protobuf.

    Keys and fields are Feast's layout: the serialized entity key followed by the project name;
    a field per feature, ``murmur3("<view>:<feature>")``, and ``_ts:<view>``.
    """
    import redis
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.infra.online_stores.helpers import _mmh3
    from feast.infra.online_stores.redis import RedisOnlineStore
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    config = recommender.store.config
    nodes, options = RedisOnlineStore._parse_connection_string(config.online_store.connection_string)
    client = redis.Redis(host=nodes[0]["host"], port=int(nodes[0]["port"]), **options)
    project = config.project.encode()
    fields = [_mmh3(f"{VIEW}:{name}") for name in FEATURES] + [f"_ts:{VIEW}".encode()]

    def key(user: str) -> bytes:
        entity = EntityKey(join_keys=[catalog.USER_ID], entity_values=[Value(string_val=user)])
        return serialize_entity_key(entity, config.entity_key_serialization_version) + project

    def read(users: list[str]) -> list[list[Any]]:
        with client.pipeline(transaction=False) as pipe:
            for user in users:
                pipe.hmget(key(user), fields)
            replies = pipe.execute()
        decoded = []
        for reply in replies:
            values = [Value.FromString(blob) for blob in reply[:-1]]
            videos, scores, version, generated = values
            decoded.append(
                [
                    list(videos.string_list_val.val),
                    list(scores.float_list_val.val),
                    version.string_val,
                    generated.unix_timestamp_val,
                ]
            )
        return decoded

    return read


def feast_online_read_reader(recommender: Recommender) -> Callable[[list[str]], list[dict[str, Any]]]:
    """``Recommender``'s answer read with the online store's ``online_read``, not its Redis reader."""
    reader = recommender.reader

    def read(users: list[str]) -> list[dict[str, Any]]:
        ids = [*users, DEFAULT_LIST_KEY]
        columns, present = reader.columns(ids)
        return _assemble(ids, columns, present, None)

    return read


def feast_sdk_reader(recommender: Recommender) -> Callable[[list[str]], dict[str, Any]]:
    """``get_online_features`` on the service (resolved once) and ``to_dict()``: the SDK's own read."""
    store, service = recommender.store, recommender.service

    def read(users: list[str]) -> dict[str, Any]:
        rows = [{catalog.USER_ID: user} for user in [*users, DEFAULT_LIST_KEY]]
        response = store.get_online_features(features=service, entity_rows=rows, full_feature_names=True)
        return response.to_dict()

    return read


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError):
        return False


@contextlib.contextmanager
def feature_server(settings: Settings, log_dir: Path) -> Iterator[int]:
    """``feast -c $REELREC_HOME/feast serve`` on 127.0.0.1 and a free port; yields the port once healthy."""
    port = _free_port()
    feast = Path(sys.executable).parent / "feast"
    command = [str(feast), "-c", str(settings.feast), "serve", "--host", "127.0.0.1", "--port", str(port)]
    # No worker recycling during the run (default: every ~1000 requests). With the SQL registry a
    # recycled worker can fail to boot ("prepared statement _pg3_0 already exists": psycopg's
    # connection inherited from gunicorn's master is shared with the previous worker), and the
    # whole server exits; it would also time a worker's boot, not a read.
    command += ["--max-requests", "1000000"]
    log = log_dir / "feast-serve.log"
    env = {**os.environ, "XDG_RUNTIME_DIR": str(log_dir)}  # gunicorn's control socket, private
    with log.open("wb") as sink:
        server = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                tail = log.read_text()[-2000:]
                raise RuntimeError(f"`{' '.join(command)}` exited {server.returncode}: {tail}")
            if _healthy(port):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"feature server not healthy after 120 s: {log.read_text()[-2000:]}")
            time.sleep(0.25)
        yield port
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait()


def http_reader(port: int) -> Callable[[list[str]], list[dict[str, Any]]]:
    """POST ``/get-online-features`` on one kept-alive connection and parse the reply."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json"}

    def read(users: list[str]) -> list[dict[str, Any]]:
        body = json.dumps(feature_server_request(users))
        # a dropped keep-alive connection (gunicorn's keep-alive timeout, a restarted worker):
        # reconnect until it answers (the wait counts in this call's time).
        deadline = time.monotonic() + 60
        while True:
            try:
                connection.request("POST", "/get-online-features", body=body, headers=headers)
                response = connection.getresponse()
                payload = response.read()
                break
            except (ConnectionError, http.client.HTTPException):
                connection.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        if response.status != 200:
            raise RuntimeError(f"feature server answered {response.status}: {payload[:500]!r}")
        return parse_feature_server_response(json.loads(payload), user_ids=users)

    return read


# ---------------------------------------------------------------- timing
def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1e3
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "max_ms": round(float(ms.max()), 3),
        "calls": len(ms),
    }


def interleaved(
    contenders: dict[str, Callable[[int], object]], every: dict[str, int], rounds: int
) -> dict[str, list[float]]:
    """Run each contender once per round (``every[name]``: only every n-th round), in a shuffled order."""
    order = random.Random(5)
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    for i in range(rounds):
        names = [name for name in contenders if i % every.get(name, 1) == 0]
        order.shuffle(names)
        for name in names:
            started = time.perf_counter()
            contenders[name](i)
            seconds[name].append(time.perf_counter() - started)
    return seconds


def profile(recommender: Recommender, users: int, calls: int) -> None:
    """cProfile of ``calls`` one-user and ``calls // 10`` hundred-user Recommender calls, on stderr."""
    for size, n in ((1, calls), (100, calls // 10)):
        profiler = cProfile.Profile()
        profiler.enable()
        for i in range(n):
            recommender([user_id((i * size + j) % users) for j in range(size)])
        profiler.disable()
        print(f"\n---- cProfile: {n} Recommender calls of {size} user(s), by own time", file=sys.stderr)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(18)


def measure(settings: Settings, args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    """Every contender's latencies on the published world of ``settings``."""
    recommender = Recommender(settings)
    raw, sdk = raw_reader(recommender), feast_sdk_reader(recommender)
    online_read = feast_online_read_reader(recommender)
    pick = random.Random(3)
    users = [user_id(pick.randrange(args.users)) for _ in range(args.reads)]
    batches = [[user_id(pick.randrange(args.users)) for _ in range(100)] for _ in range(args.reads)]
    with feature_server(settings, log_dir) as port:
        http = http_reader(port)
        first = recommender([users[0], "u_absent"])
        assert first[0]["found"] and first[1]["fallback"], first  # a real list and the default list
        assert http([users[0], "u_absent"]) == first, "the feature server answers unlike the Recommender"
        assert online_read(batches[0]) == recommender(batches[0]), (
            "online_read answers unlike the Recommender"
        )
        contenders: dict[str, Callable[[int], object]] = {
            "recommender_1_user": lambda i: recommender([users[i]]),
            "recommender_100_users": lambda i: recommender(batches[i]),
            "feast_online_read_100_users": lambda i: online_read(batches[i]),
            "feast_sdk_1_user": lambda i: sdk([users[i]]),
            "feature_server_1_user": lambda i: http([users[i]]),
            "raw_1_user": lambda i: raw([users[i]]),
            "raw_with_default_1_user": lambda i: raw([users[i], DEFAULT_LIST_KEY]),
        }
        for i in range(min(50, args.reads)):  # warm every path (connections, caches)
            for run in contenders.values():
                run(i)
        every = {"recommender_100_users": 10, "feast_online_read_100_users": 10}
        seconds = interleaved(contenders, every, args.reads)
    refresh = []
    for _ in range(5):
        started = time.perf_counter()
        recommender.store.refresh_registry()
        refresh.append(time.perf_counter() - started)
    if args.profile:
        profile(recommender, args.users, min(args.reads, 2000))
    result: dict[str, Any] = {name: percentiles(s) for name, s in seconds.items()}
    result["registry_refresh_ms_median"] = round(float(np.median(refresh)) * 1e3, 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=2_000, help="users with a published list")
    parser.add_argument("--items", type=int, default=100, help="candidates per list")
    parser.add_argument("--videos", type=int, default=5_000)
    parser.add_argument("--dim", type=int, default=64, help="embedding width (published, not read)")
    parser.add_argument("--reads", type=int, default=5_000, help="one-user calls per contender")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the Recommender")
    parser.add_argument("--quick", action="store_true", help="300 users, 1,000 reads")
    args = parser.parse_args()
    if args.quick:
        args.users, args.videos, args.reads = 300, 1_000, 1_000

    started = time.perf_counter()
    with published_world(args) as settings, tempfile.TemporaryDirectory() as log_dir:
        figures = measure(settings, args, Path(log_dir))
    rec1, rec100 = figures["recommender_1_user"]["p99_ms"], figures["recommender_100_users"]["p99_ms"]
    raw1, raw_default = figures["raw_1_user"]["p99_ms"], figures["raw_with_default_1_user"]["p99_ms"]
    server = figures["feature_server_1_user"]["p99_ms"]
    result: dict[str, Any] = {
        "users": args.users,
        "items_per_list": args.items,
        "reads": args.reads,
        "online_store": "redis",
        "registry": "sql (postgresql)",
        **figures,
        "ratios": {
            "recommender_1_user_p99_over_raw_p99": round(rec1 / raw1, 2),
            "recommender_1_user_p99_over_raw_with_default_p99": round(rec1 / raw_default, 2),
            "recommender_1_user_p50_over_raw_p50": round(
                figures["recommender_1_user"]["p50_ms"] / figures["raw_1_user"]["p50_ms"], 2
            ),
            "feast_sdk_1_user_p99_over_raw_p99": round(figures["feast_sdk_1_user"]["p99_ms"] / raw1, 2),
            "feature_server_1_user_p99_over_raw_p99": round(server / raw1, 2),
            "recommender_100_users_p99_over_feast_online_read_p99": round(
                rec100 / figures["feast_online_read_100_users"]["p99_ms"], 2
            ),
        },
        "goals": {
            "recommender_1_user_p99_le_1ms": rec1 <= 1.0,
            "recommender_1_user_p99_le_3x_raw": rec1 <= 3 * raw1,
            "recommender_100_users_p99_le_10ms": rec100 <= 10.0,
            "feature_server_1_user_p99_le_5ms": server <= 5.0,
        },
        "load_average_1min": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
