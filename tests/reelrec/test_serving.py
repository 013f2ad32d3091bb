"""The serving read API on tiny gold tables: SDK reads, the CLI and Feast's HTTP feature server.

Gold tables of two nights are written by hand with delta-rs, applied and published (materialized,
``group="outputs"``) to the online store, then read back the way services do. Every test that reads
a store runs on both stores (the ``store`` parameter): the embedded SQLite online store with its
file registry, and Redis with the PostgreSQL registry (``services``; a Feast project of its own per
fixture, torn down at the end). The two answer an absent user differently (see
:mod:`reelrec.serving`), which is what the Redis runs are for. D2 also publishes the default list
(``user_id`` ``__default__``) that users without a list are served; D1 does not, so a store holding
only D1 shows the answer before any default list exists.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

from feature_repo.materialize import materialize
from feature_repo.registry import apply, teardown
from reelrec import catalog, cli, lake, serving
from reelrec.catalog import DEFAULT_LIST_KEY
from reelrec.cli_format import format_recommendations
from reelrec.dates import feature_timestamp
from reelrec.serving import Recommender, not_found, recommend
from reelrec.serving_http import feature_server_request, parse_feature_server_response
from reelrec.settings import Settings

D1, D2 = "2026-11-01", "2026-11-02"
U1, U2, U3 = "u000001", "u000002", "u000003"
VIDEOS = ("v0000001", "v0000002", "v0000003", "v0000004", "v0000005")
MODEL = {D1: "two_tower_v1-test-1", D2: "two_tower_v1-test-2"}
GENERATED = {
    D1: datetime(2026, 11, 2, 3, 15, 7, tzinfo=UTC),
    D2: datetime(2026, 11, 3, 3, 20, 11, tzinfo=UTC),
}
# Each night's lists, best first. U3 is not scored on D2: it keeps D1's list online.
LISTS: dict[str, dict[str, list[tuple[str, float]]]] = {
    D1: {
        U1: [("v0000001", 0.9), ("v0000002", 0.7), ("v0000003", 0.3), ("v0000004", 0.1)],
        U2: [("v0000003", 0.8), ("v0000005", 0.6), ("v0000001", 0.2)],
        U3: [("v0000002", 0.55), ("v0000004", 0.45)],
    },
    D2: {
        U1: [
            ("v0000005", 0.95),
            ("v0000004", 0.75),
            ("v0000003", 0.5),
            ("v0000002", 0.35),
            ("v0000001", 0.05),
        ],
        U2: [("v0000002", 0.65), ("v0000001", 0.4)],
        DEFAULT_LIST_KEY: [("v0000004", 3.0), ("v0000001", 2.5), ("v0000003", 1.25)],
    },
}


def write_gold(settings: Settings, date: str) -> None:
    """One night of the three gold tables that ``materialize(group="outputs")`` publishes."""
    users = list(LISTS[date])
    night = {
        catalog.MODEL_VERSION: MODEL[date],
        catalog.GENERATED_AT: GENERATED[date],
        catalog.EVENT_TIMESTAMP: feature_timestamp(date),
        catalog.DT: date,
    }

    def rows(keys: dict[str, list[Any]]) -> pa.Table:
        n = len(next(iter(keys.values())))
        return pa.table({**keys, **{name: [value] * n for name, value in night.items()}})

    candidates = rows(
        {
            catalog.USER_ID: users,
            "video_ids": [[v for v, _ in LISTS[date][u]] for u in users],
            "scores": pa.array([[s for _, s in LISTS[date][u]] for u in users], pa.list_(pa.float32())),
        }
    )
    user_embeddings = rows({catalog.USER_ID: users, "embedding": [[1.0, 0.0]] * len(users)})
    video_embeddings = rows({catalog.VIDEO_ID: list(VIDEOS), "embedding": [[0.0, 1.0]] * len(VIDEOS)})
    lake.write_partition(catalog.CANDIDATES, settings, candidates, date)
    lake.write_partition(catalog.USER_EMBEDDINGS, settings, user_embeddings, date)
    lake.write_partition(catalog.VIDEO_EMBEDDINGS, settings, video_embeddings, date)


def expected(user_id: str, date: str, k: int | None = None) -> dict[str, Any]:
    """What ``recommend`` must return for ``user_id`` when ``date``'s list is the one online."""
    return {
        "user_id": user_id,
        "model_version": MODEL[date],
        "generated_at": GENERATED[date].isoformat(),
        "items": [{"video_id": v, "score": s} for v, s in LISTS[date][user_id][:k]],
        "found": True,
        "fallback": False,
    }


def default_for(user_id: str, k: int | None = None) -> dict[str, Any]:
    """What ``recommend`` must return for a user without a list: D2's default list."""
    return {
        **expected(DEFAULT_LIST_KEY, D2, k),
        "user_id": user_id,
        "found": False,
        "fallback": True,
    }


# The two online stores every store test runs on: SQLite + file registry, Redis + SQL registry.
STORES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("redis", id="redis+postgres", marks=pytest.mark.services),
]


def _reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


@contextmanager
def online_store(home: Path, store: str) -> Iterator[Settings]:
    """Settings of a fresh home on ``store``; a Redis store gets its own Feast project, torn down after.

    The rendered ``feature_store.yaml`` carries the project, so the CLI and the feature server
    (which open the home's rendered config) read the same project as the SDK.
    """
    settings = Settings.from_env(home)
    if store == "sqlite":
        yield dataclasses.replace(settings, feast_env="embedded")
        return
    for name, port in (("Redis", 6379), ("PostgreSQL", 5432)):
        if not _reachable(port):
            pytest.fail(f"{name} is not reachable at 127.0.0.1:{port} (deselect with -m 'not services')")
    prod = dataclasses.replace(
        settings, feast_env="production", extra={"feast_project": f"reelrec_test_{uuid.uuid4().hex[:10]}"}
    )
    try:
        yield prod
    finally:
        if (prod.feast / "feature_store.yaml").exists():
            teardown(prod)


@pytest.fixture(scope="module", params=STORES)
def published(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A home whose online store holds D1, then D2, published in order (read-only for tests)."""
    with online_store(tmp_path_factory.mktemp("serving") / "reelrec-home", request.param) as settings:
        for date in (D1, D2):
            write_gold(settings, date)
        apply(settings)
        for date in (D1, D2):
            report = materialize(date, settings, group="outputs")
            assert report["views"]["user_daily_candidates"]["status"] == "materialized"
        yield settings


@pytest.fixture(params=STORES)
def empty_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """A fresh home on each store, nothing written yet (for tests that publish themselves)."""
    with online_store(tmp_path / "reelrec-home", request.param) as settings:
        yield settings


# ---------------------------------------------------------------- SDK reads
@pytest.mark.feast
def test_recommend_serves_the_latest_night_best_first(published: Settings) -> None:
    recs = recommend(published, [U2, U1, U3])
    assert recs == [expected(U2, D2), expected(U1, D2), expected(U3, D1)]
    assert recs[1]["items"][0] == {"video_id": "v0000005", "score": 0.95}  # float32 shown as 0.95

    service = Recommender(published)  # what a long-lived service holds: store and service resolved once
    seconds = []
    for _ in range(20):
        started = time.perf_counter()
        assert service([U2, U1, U3]) == recs
        seconds.append(time.perf_counter() - started)
    median_ms = statistics.median(seconds) * 1e3
    print(f"\nbatched online read of 3 users (warm Recommender): median {median_ms:.2f} ms")


@pytest.mark.feast
def test_an_absent_user_gets_the_default_list_never_an_empty_answer(published: Settings) -> None:
    # Redis answers an absent key PRESENT with null values; SQLite answers NOT_FOUND. Same result.
    assert recommend(published, ["u999999"]) == [default_for("u999999")]
    assert recommend(published, ["u999999"], k=1) == [default_for("u999999", k=1)]
    assert Recommender(published)(["u999999", U3]) == [default_for("u999999"), expected(U3, D1)]
    (rec,) = recommend(published, ["u999999"], k=2)
    assert rec["found"] is False and rec["fallback"] is True and rec["model_version"] == MODEL[D2]
    assert rec["items"] == [{"video_id": "v0000004", "score": 3.0}, {"video_id": "v0000001", "score": 2.5}]


@pytest.mark.feast
def test_k_truncates_and_arguments_are_checked(published: Settings) -> None:
    recs = recommend(published, [U1, U2], k=2)
    assert recs == [expected(U1, D2, k=2), expected(U2, D2, k=2)]
    assert recommend(published, [U2], k=10) == [expected(U2, D2)]  # fewer than k: all of them
    assert recommend(published, []) == []
    with pytest.raises(ValueError, match="k must be >= 1"):
        recommend(published, [U1], k=0)
    with pytest.raises(TypeError, match="not the str 'u000001'"):
        recommend(published, U1)


@pytest.mark.feast
def test_one_batched_read_keeps_input_order_and_marks_unknown_users(
    published: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    recommender = Recommender(published)
    calls: list[int] = []
    redis = recommender.reader.redis  # Redis: one pipelined HMGET per user (test_online_read.py)
    owner, name = (recommender.reader.provider, "online_read") if redis is None else (redis, "hashes")
    read = getattr(owner, name)

    def counting(*args: Any) -> Any:
        calls.append(len(args[-1] if redis is not None else args[2]))  # entity values / entity keys
        return read(*args)

    monkeypatch.setattr(owner, name, counting)
    recs = recommender(["u999999", U2, U1, "u999999", U2], k=1)
    assert calls == [6]  # one online read for the whole batch and the default list
    assert [r["user_id"] for r in recs] == ["u999999", U2, U1, "u999999", U2]
    assert (
        recs[0]
        == recs[3]
        == {
            "user_id": "u999999",
            "model_version": MODEL[D2],
            "generated_at": GENERATED[D2].isoformat(),
            "items": [{"video_id": "v0000004", "score": 3.0}],
            "found": False,
            "fallback": True,
        }
    )
    assert recs[1] == recs[4] == expected(U2, D2, k=1)
    assert recs[2] == expected(U1, D2, k=1)


@pytest.mark.feast
def test_the_read_path_answers_exactly_like_feasts_sdk(published: Settings) -> None:
    # Recommender reads the view with the online store's own online_read instead of
    # FeatureStore.get_online_features: the same columns and statuses, hence the same answers.
    recommender = Recommender(published)
    ids = [U2, "u999999", U1, U3, U1, DEFAULT_LIST_KEY]  # found, absent, a duplicate, the default list
    response = recommender.store.get_online_features(
        features=recommender.service, entity_rows=[{"user_id": u} for u in ids], full_feature_names=True
    )
    sdk_columns = response.to_dict()
    assert sdk_columns.pop("user_id") == ids
    by_name = dict(zip(response.proto.metadata.feature_names.val, response.proto.results, strict=True))
    sdk_present = [status == FieldStatus.PRESENT for status in by_name[serving.VIDEO_IDS].statuses]

    assert (recommender.reader.redis is not None) is (published.feast_env == "production")  # Redis' own read
    columns, present = recommender.reader.columns(ids)  # Feast's online_read, on both stores
    assert columns == sdk_columns
    assert present == sdk_present
    assert present[1] is (published.feast_env == "production")  # Redis: PRESENT with null values
    assert columns[serving.VIDEO_IDS][1] is None
    assert columns[serving.VIDEO_IDS][2] == [v for v, _ in LISTS[D2][U1]]
    assert recommender(ids[:-1]) == serving._assemble(ids, sdk_columns, sdk_present, None)
    assert recommender(ids[:-1], k=2) == serving._assemble(ids, sdk_columns, sdk_present, 2)


def test_scores_are_the_shortest_decimals_that_read_back_as_their_float32() -> None:
    rng = np.random.default_rng(0)
    values = np.concatenate(
        [
            rng.integers(0, 2**32, 100_000, dtype=np.uint32).view(np.float32),  # every kind of float32
            rng.random(50_000, dtype=np.float32),  # scores in [0, 1)
            (rng.integers(0, 10**6, 50_000) / 10.0 ** rng.integers(0, 9, 50_000)).astype(np.float32),
            np.array([0.95, 3.0, 2.5, -0.0, 0.0, 1e-45, 1e-14, 9.9e22, 3.4028235e38, 16777217.0], np.float32),
            np.array([np.nan, np.inf, -np.inf], np.float32),
        ]
    )
    with np.errstate(invalid="ignore"):  # random bits include signalling NaNs
        floats = values.astype(np.float64).tolist()
    reference = [float(str(value)) for value in values]  # numpy's shortest repr, one at a time
    shortest = serving._float32(floats)
    assert [repr(v) for v in shortest] == [repr(v) for v in reference]  # repr: -0.0 and nan count too
    assert [repr(v) for v in serving._float32(["NaN", "0.949999988079071", 3])] == ["nan", "0.95", "3.0"]


@pytest.mark.feast
def test_publishing_a_new_night_switches_the_model_version(empty_store: Settings) -> None:
    settings = empty_store
    write_gold(settings, D1)
    write_gold(settings, D2)
    apply(settings)
    assert recommend(settings, [U1]) == [not_found(U1)]  # applied, nothing published yet
    materialize(D1, settings, group="outputs")
    service = Recommender(settings)  # a long-lived service, started before D2 is published
    assert service([U1, U3]) == [expected(U1, D1), expected(U3, D1)]
    # D1 published no default list: a user without a list gets the empty answer, no fallback
    assert service(["u999999"]) == [not_found("u999999")]
    assert not_found("u999999") == {
        "user_id": "u999999",
        "model_version": None,
        "generated_at": None,
        "items": [],
        "found": False,
        "fallback": False,
    }

    materialize(D2, settings, group="outputs")
    assert service([U1, U3]) == [expected(U1, D2), expected(U3, D1)]  # U3 was not scored on D2
    assert service(["u999999", U1]) == [default_for("u999999"), expected(U1, D2)]  # D2's default list

    offline = lake.read(catalog.CANDIDATES, settings, dates=[D1]).to_pylist()  # kept for rollback
    assert {r[catalog.MODEL_VERSION] for r in offline} == {MODEL[D1]}
    by_user = {r[catalog.USER_ID]: r["video_ids"] for r in offline}
    assert by_user == {u: [v for v, _ in items] for u, items in LISTS[D1].items()}


def test_format_recommendations_lists_rank_video_and_score() -> None:
    text = format_recommendations(expected(U1, D2, k=2))
    assert text.splitlines() == [
        f"user {U1}",
        f"  model_version  {MODEL[D2]}",
        "  generated_at   2026-11-03T03:20:11+00:00",
        "  rank  video_id      score",
        "     1  v0000005      0.95",
        "     2  v0000004      0.75",
    ]
    assert format_recommendations(not_found("u9")) == "user u9: no candidates in the online store"


# ---------------------------------------------------------------- CLI
@pytest.mark.feast
def test_cli_recommend_prints_the_json_contract(published: Settings, capsys: pytest.CaptureFixture) -> None:
    home = ["--home", str(published.home)]
    assert cli.main([*home, "recommend", "--user", U1, "--k", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    want = {**expected(U1, D2, k=2), "serving_version": None}  # this home recorded no release
    assert out == want
    assert list(out) == [
        "user_id",
        "model_version",
        "generated_at",
        "items",
        "found",
        "fallback",
        "serving_version",
    ]

    assert cli.main([*home, "recommend", "--user", U2, "--user", U1, "--json"]) == 0
    assert [r["user_id"] for r in json.loads(capsys.readouterr().out)] == [U2, U1]

    assert cli.main([*home, "recommend", "--user", U2]) == 0
    assert "     1  v0000002      0.65" in capsys.readouterr().out.splitlines()


@pytest.mark.feast
def test_cli_recommend_answers_a_user_without_a_list_with_the_default_list(
    published: Settings, capsys: pytest.CaptureFixture
) -> None:
    home = ["--home", str(published.home)]
    assert cli.main([*home, "recommend", "--user", "u999999", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {**default_for("u999999"), "serving_version": None}
    assert "user u999999 has no list of their own: served the default list" in captured.err

    assert cli.main([*home, "recommend", "--user", U1, "--user", "u999999"]) == 0
    captured = capsys.readouterr()
    assert "user u999999: no list of their own, the default list" in captured.out
    assert f"user {U1}" in captured.out
    with pytest.raises(SystemExit, match="--k must be >= 1"):
        cli.main([*home, "recommend", "--user", U1, "--k", "0"])


# ---------------------------------------------------------------- Feast feature server (HTTP)
def test_feature_server_request_and_response_parsing() -> None:
    assert feature_server_request([U1, "u9"]) == {
        "feature_service": "recommendations_v1",
        "entities": {"user_id": [U1, "u9", "__default__"]},  # the default list, in the same request
        "full_feature_names": True,
    }
    ts = ["2026-11-02T23:59:59Z", "1970-01-01T00:00:00Z", "2026-11-02T23:59:59Z"]
    generated = int(GENERATED[D2].timestamp())
    body: dict[
        str, Any
    ] = {  # Feast 0.67's shape: column-wise, columns in no fixed order, timestamps in epoch seconds
        "metadata": {
            "feature_names": [
                "user_id",
                "user_daily_candidates__scores",
                "user_daily_candidates__model_version",
                "user_daily_candidates__video_ids",
                "user_daily_candidates__generated_at",
            ]
        },
        "results": [
            {"values": [U1, "u9", DEFAULT_LIST_KEY], "statuses": ["PRESENT"] * 3, "event_timestamps": ts},
            {
                "values": [[0.949999988079071, 0.75], None, [3.0, 2.5]],
                "statuses": ["PRESENT", "NOT_FOUND", "PRESENT"],
            },
            {"values": [MODEL[D2], None, MODEL[D2]], "statuses": ["PRESENT", "NOT_FOUND", "PRESENT"]},
            {
                "values": [["v0000005", "v0000004"], None, ["v0000004", "v0000001"]],
                "statuses": ["PRESENT", "NOT_FOUND", "PRESENT"],
            },
            {"values": [generated, None, generated], "statuses": ["PRESENT", "NOT_FOUND", "PRESENT"]},
        ],
    }
    assert parse_feature_server_response(body) == [expected(U1, D2, k=2), default_for("u9", k=2)]
    assert parse_feature_server_response(body, k=1, user_ids=[U1, "u9"]) == [
        expected(U1, D2, k=1),
        default_for("u9", k=1),
    ]
    with pytest.raises(
        ValueError, match=r"reply is for users \['u000001', 'u9', '__default__'\], not \['u9'\]"
    ):
        parse_feature_server_response(body, user_ids=["u9"])
    redis_form = json.loads(json.dumps(body))  # Redis: an absent user is PRESENT with null values
    for column in redis_form["results"][1:]:
        column["statuses"] = ["PRESENT"] * 3
    assert parse_feature_server_response(redis_form) == [expected(U1, D2, k=2), default_for("u9", k=2)]
    no_default = json.loads(json.dumps(redis_form))  # the key was asked for, no default list published
    for column in no_default["results"][1:]:
        column["values"][2] = None
    assert parse_feature_server_response(no_default) == [expected(U1, D2, k=2), not_found("u9")]
    without_key = json.loads(json.dumps(body))  # a request that did not append the key: no fallback
    for column in without_key["results"]:
        column["values"], column["statuses"] = column["values"][:2], column["statuses"][:2]
    assert parse_feature_server_response(without_key, user_ids=[U1, "u9"]) == [
        expected(U1, D2, k=2),
        not_found("u9"),
    ]
    redis_form["results"][2]["values"][0] = None  # video_ids stored but no model_version: a partial write
    with pytest.raises(ValueError, match=r"user u000001: video_ids stored but \['user_daily_candidates__mo"):
        parse_feature_server_response(redis_form)
    body["metadata"]["feature_names"] = {"val": body["metadata"]["feature_names"]}  # protobuf JSON form
    assert parse_feature_server_response(body)[0] == expected(U1, D2, k=2)
    body["metadata"]["feature_names"] = ["user_id", "scores", "model_version", "video_ids", "generated_at"]
    with pytest.raises(ValueError, match="full_feature_names=true"):
        parse_feature_server_response(body)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return dict(json.load(response))


@pytest.fixture
def feature_server(published: Settings, tmp_path: Path) -> Iterator[str]:
    """Feast's HTTP feature server over ``published``'s store; yields its base URL.

    ``feast -c $REELREC_HOME/feast serve`` is enough: the rendered ``feature_store.yaml`` lies there
    with absolute paths, and serving reads the applied objects from the registry, so the repo's
    definitions (``feature_repo/``) are not imported. ``XDG_RUNTIME_DIR`` gives gunicorn's control
    socket a private folder (its default, ``~/.gunicorn/gunicorn.ctl``, is shared by every server).
    """
    port = _free_port()
    feast = Path(sys.executable).parent / "feast"
    command = [str(feast), "-c", str(published.feast), "serve", "--host", "127.0.0.1", "--port", str(port)]
    log = tmp_path / "feast-serve.log"
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)}
    with log.open("wb") as sink:
        server = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                pytest.fail(
                    f"`{' '.join(command)}` exited with {server.returncode}:\n{log.read_text()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"feature server not up after 60 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.25)
        yield url
    finally:
        server.terminate()  # gunicorn's master stops its worker on SIGTERM
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait()


@pytest.mark.feast
@pytest.mark.slow
def test_feature_server_answers_like_the_sdk(published: Settings, feature_server: str) -> None:
    users = [U2, "u999999", U1, U3]
    endpoint = f"{feature_server}/get-online-features"
    started = time.perf_counter()
    cold = _post(endpoint, feature_server_request(users))
    cold_s = time.perf_counter() - started
    started = time.perf_counter()
    body = _post(endpoint, feature_server_request(users[:3]))
    warm_s = time.perf_counter() - started
    assert parse_feature_server_response(cold, user_ids=users) == recommend(published, users)
    assert parse_feature_server_response(body, k=2) == recommend(published, users[:3], k=2)
    assert parse_feature_server_response(body, k=2)[:2] == [
        expected(U2, D2, k=2),
        default_for("u999999", k=2),
    ]
    print(f"\nHTTP /get-online-features, 3 users: first {cold_s * 1000:.1f} ms, then {warm_s * 1000:.1f} ms")
