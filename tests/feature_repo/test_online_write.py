"""The bulk online write (feature_repo.online_write) against Feast's own materialization.

Two homes receive the same tiny gold nights: one is published through ``FeatureStore.materialize``
(``writer="feast"``), the other through :mod:`feature_repo.online_write` (``writer="bulk"``). On
each store (SQLite + file registry; Redis + PostgreSQL registry, ``services``) the two must then
answer every ``get_online_features`` read alike, hold the same bytes (Redis hashes, SQLite rows)
and record the same materialization intervals in the registry. The nights carry what stresses the
wire format: an empty list, lists longer than 127 items (two-byte varint lengths), non-ASCII ids
and model versions, negative and NaN scores, sub-second timestamps.
"""

from __future__ import annotations

import math
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pytest
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from feast.type_map import python_values_to_proto_values
from feast.value_type import ValueType

from feature_repo import online_write, proto_bulk
from feature_repo.materialize import VIEW_GROUPS, materialize, watermark
from feature_repo.registry import apply
from feature_repo.store_config import open_store
from reelrec import catalog, lake
from reelrec.catalog import DEFAULT_LIST_KEY
from reelrec.dates import day_bounds, feature_timestamp
from reelrec.settings import Settings
from tests.reelrec.test_serving import STORES, online_store

pytestmark = pytest.mark.feast

D1, D2 = "2026-11-01", "2026-11-02"
VIEWS = VIEW_GROUPS["outputs"]
VIDEOS = [f"v{i:07d}" for i in range(300)]
# D1 lists three users; D2 rescored two of them (u2 now has an empty list, "ü3" keeps D1's) and adds
# the default list, 300 long.
USERS = {D1: ["u000001", "u000002", "üser-3"], D2: ["u000001", "u000002", DEFAULT_LIST_KEY]}


def _lists(date: str) -> list[list[str]]:
    if date == D1:
        return [VIDEOS[:5], VIDEOS[10:140], VIDEOS[7:9]]
    return [VIDEOS[3:4], [], VIDEOS]


def write_gold(settings: Settings, date: str) -> None:
    """One night of the three gold tables ``group="outputs"`` publishes (edge cases: see module doc)."""
    rng = np.random.default_rng(int(date[-2:]))
    users, lists = USERS[date], _lists(date)
    night = {
        catalog.MODEL_VERSION: f"two_tower_v1-{date}-ß",
        catalog.GENERATED_AT: datetime.fromisoformat(f"{date}T03:15:07.654321+00:00") + timedelta(days=1),
        catalog.EVENT_TIMESTAMP: feature_timestamp(date),
        catalog.DT: date,
    }

    def rows(keys: dict[str, Any]) -> pa.Table:
        n = len(next(iter(keys.values())))
        return pa.table({**keys, **{name: [value] * n for name, value in night.items()}})

    def floats(n: int) -> list[float]:
        values = rng.standard_normal(n).astype(np.float32).tolist()
        return [math.nan, *values[1:]] if n > 3 else values

    scores = pa.array([floats(len(v)) for v in lists], pa.list_(pa.float32()))
    embeddings = pa.array([floats(8) for _ in users], pa.list_(pa.float32()))
    lake.write_partition(
        catalog.CANDIDATES,
        settings,
        rows({catalog.USER_ID: users, catalog.VIDEO_IDS: lists, catalog.SCORES: scores}),
        date,
    )
    real = [u for u in users if u != DEFAULT_LIST_KEY]
    lake.write_partition(
        catalog.USER_EMBEDDINGS,
        settings,
        rows({catalog.USER_ID: real, catalog.EMBEDDING: embeddings[: len(real)]}),
        date,
    )
    videos = VIDEOS[: 4 + int(date[-2:])]
    lake.write_partition(
        catalog.VIDEO_EMBEDDINGS,
        settings,
        rows(
            {
                catalog.VIDEO_ID: videos,
                catalog.EMBEDDING: pa.array([floats(5) for _ in videos], pa.list_(pa.float32())),
            }
        ),
        date,
    )


# ---------------------------------------------------------------- the wire format, value by value
def test_serialized_values_are_feasts_bytes() -> None:
    floats = pa.array([[1.5, -0.0, math.nan], [], [3.0] * 200], pa.list_(pa.float32()))
    strings = pa.array([["a", "ü" * 70], [], [f"v{i}" for i in range(150)]], pa.list_(pa.string()))
    scalars = pa.array(["", "two_tower", "é" * 200])
    stamps = pa.array(
        [
            datetime(1970, 1, 1, tzinfo=UTC),
            datetime(2026, 11, 2, 3, 4, 5, 999999, tzinfo=UTC),
            datetime(2262, 1, 1, tzinfo=UTC),
        ],
        pa.timestamp("us", tz="UTC"),
    )
    kinds = proto_bulk.serializers()
    for column, kind in (
        (floats, ValueType.FLOAT_LIST),
        (strings, ValueType.STRING_LIST),
        (scalars, ValueType.STRING),
        (stamps, ValueType.UNIX_TIMESTAMP),
    ):
        feast = [
            v.SerializeToString()
            for v in python_values_to_proto_values(column.to_numpy(zero_copy_only=False), kind)
        ]
        assert kinds[kind](column).to_pylist() == feast, kind
        # a slice (offsets not starting at 0) serializes the same rows
        assert kinds[kind](column.slice(1)).to_pylist() == feast[1:], kind


def test_entity_keys_are_serialize_entity_key_v3_plus_suffix() -> None:
    ids = ["u000001", "", "üser-3", DEFAULT_LIST_KEY]
    feast = [
        serialize_entity_key(EntityKey(join_keys=["user_id"], entity_values=[Value(string_val=i)]), 3)
        + b"proj"
        for i in ids
    ]
    assert proto_bulk.entity_keys("user_id", pa.array(ids), b"proj").to_pylist() == feast


def test_window_rows_keep_the_latest_row_per_entity_inside_the_window() -> None:
    start, end = day_bounds(D1)
    view = open_view()
    t = [start - timedelta(seconds=1), start, start + timedelta(hours=5), end, end + timedelta(seconds=1)]
    table = pa.table(
        {
            catalog.USER_ID: ["a", "a", "b", "a", "b"],
            catalog.EMBEDDING: pa.array([[float(i)] for i in range(5)], pa.list_(pa.float32())),
            catalog.MODEL_VERSION: ["m"] * 5,
            catalog.GENERATED_AT: pa.array(t, pa.timestamp("us", tz="UTC")),
            catalog.EVENT_TIMESTAMP: pa.array(t, pa.timestamp("us", tz="UTC")),
        }
    )
    rows = online_write.window_rows(pads.dataset(table), view, start, end)
    assert rows is not None
    got = dict(
        zip(rows.column(catalog.USER_ID).to_pylist(), rows.column(catalog.EMBEDDING).to_pylist(), strict=True)
    )
    assert got == {"a": [3.0], "b": [2.0]}  # both bounds inclusive, latest wins, outside rows ignored
    nulls = table.set_column(2, catalog.MODEL_VERSION, pa.array(["m", None, "m", "m", "m"]))
    assert online_write.window_rows(pads.dataset(nulls), view, start, end) is None  # Feast's path then
    inner = table.set_column(
        1, catalog.EMBEDDING, pa.array([[0.0], [1.0], [None], [3.0], [4.0]], pa.list_(pa.float32()))
    )
    assert online_write.window_rows(pads.dataset(inner), view, start, end) is None


def open_view() -> Any:
    from feature_repo.feature_views import user_daily_embedding_fv

    return user_daily_embedding_fv


# ---------------------------------------------------------------- both writers, both stores
def _nan_safe(value: Any) -> Any:
    """``value`` with NaN floats replaced by ``"NaN"`` (NaN != NaN would fail every comparison)."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, list):
        return [_nan_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: _nan_safe(v) for k, v in value.items()}
    return value


def online_rows(settings: Settings) -> dict[str, dict[str, list[Any]]]:
    """``get_online_features`` of every view for every entity ever published, plus one unknown."""
    store = open_store(settings)
    out = {}
    for name in VIEWS:
        view = store.get_feature_view(name)
        (key,) = [c.name for c in view.entity_columns]
        ids = sorted({*USERS[D1], *USERS[D2], *VIDEOS[:8], "nobody"})
        features = [f"{name}:{f.name}" for f in view.features]
        read = store.get_online_features(features=features, entity_rows=[{key: i} for i in ids])
        out[name] = _nan_safe(read.to_dict())
    return out


def stored_bytes(settings: Settings) -> dict[str, Any]:
    """Every hash (Redis, project suffix cut) or row (SQLite) the online store holds for the project."""
    store = open_store(settings)
    if store.config.online_store.type == "sqlite":
        with closing(sqlite3.connect(store.config.online_store.path)) as conn:
            return {
                name: sorted(
                    conn.execute(
                        "SELECT entity_key, feature_name, value, value_text, event_ts, created_ts "
                        f'FROM "{store.project}_{name}"'
                    ).fetchall()
                )
                for name in VIEWS
            }
    import redis
    from feast.infra.online_stores.redis import RedisOnlineStore

    client = RedisOnlineStore()._get_client(store.config.online_store)
    assert isinstance(client, redis.Redis)
    suffix = store.project.encode()
    try:
        keys = list(client.scan_iter(match=b"*" + suffix))
        return {key[: -len(suffix)]: client.hgetall(key) for key in keys}
    finally:
        client.close()


def intervals(settings: Settings) -> dict[str, Any]:
    views = {v.name: v for v in open_store(settings).list_feature_views(allow_cache=False)}
    return {
        name: (
            [(s.astimezone(UTC), e.astimezone(UTC)) for s, e in views[name].materialization_intervals],
            getattr(views[name], "state", None),
            watermark(views[name]),
        )
        for name in VIEWS
    }


@pytest.mark.parametrize("store", STORES)
def test_bulk_writes_what_feast_materializes(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # several rounds and several script calls per round, as a full night has
    monkeypatch.setattr(online_write, "CHUNK_ROWS", 3)
    monkeypatch.setattr(proto_bulk, "SCRIPT_ROWS", 2)
    with online_store(tmp_path / "feast", store) as feast, online_store(tmp_path / "bulk", store) as bulk:
        for settings in (feast, bulk):
            for date in (D1, D2):
                write_gold(settings, date)
            apply(settings)
        for date in (D1, D2):
            by_feast = materialize(date, feast, group="outputs", writer="feast")
            by_bulk = materialize(date, bulk, group="outputs")
            assert by_feast["writers"] == dict.fromkeys(VIEWS, "feast")
            assert by_bulk["writers"] == dict.fromkeys(VIEWS, "bulk")
            assert online_rows(bulk) == online_rows(feast), date
            assert stored_bytes(bulk) == stored_bytes(feast), date
            assert intervals(bulk) == intervals(feast), date
        online = online_rows(bulk)["user_daily_candidates"]
        assert online["video_ids"][online["user_id"].index("u000002")] == []  # D2's empty list is online
        assert online["video_ids"][online["user_id"].index("üser-3")] == VIDEOS[7:9]  # D1's, not rescored

        # An older night written after a newer one: Redis keeps the newer hashes (Feast's event-time
        # rule), SQLite overwrites them (Feast's SQLite store compares nothing); both writers alike.
        start, end = day_bounds(D1)
        for name in VIEWS:
            feast_store, bulk_store = open_store(feast), open_store(bulk)
            feast_store.materialize(start_date=start, end_date=end, feature_views=[name])
            view = bulk_store.get_feature_view(name)
            dataset = lake.open_table(online_write_source(view), bulk).to_pyarrow_dataset()
            assert online_write.write_view(bulk_store, view, dataset, start, end) is not None
        assert online_rows(bulk) == online_rows(feast)
        assert stored_bytes(bulk) == stored_bytes(feast)
        assert intervals(bulk) == intervals(feast)
        got = online_rows(bulk)["user_daily_candidates"]
        at_u1 = got["model_version"][got["user_id"].index("u000001")]
        assert at_u1 == f"two_tower_v1-{D2 if store == 'redis' else D1}-ß"


def online_write_source(view: Any) -> catalog.Table:
    from feature_repo.materialize import source_table

    return source_table(view)


@pytest.mark.parametrize("store", STORES)
def test_a_corrected_rerun_of_a_night_reaches_both_stores(store: str, tmp_path: Path) -> None:
    """A night published again with different values (a fixed job) replaces them, on Redis too.

    Feast's Redis store drops an equal event time, so its own materialization would keep the first
    values on Redis while SQLite takes the new ones; the bulk writer rewrites an equal event time.
    """
    with online_store(tmp_path / "home", store) as settings:
        write_gold(settings, D1)
        apply(settings)
        materialize(D1, settings, group="outputs")
        first = online_rows(settings)["user_daily_candidates"]
        fixed = lake.read(catalog.CANDIDATES, settings, dates=[D1])
        lists = [list(reversed(items)) for items in fixed.column(catalog.VIDEO_IDS).to_pylist()]
        scores = [list(reversed(s)) for s in fixed.column(catalog.SCORES).to_pylist()]
        fixed = fixed.set_column(
            fixed.schema.get_field_index(catalog.VIDEO_IDS),
            catalog.VIDEO_IDS,
            pa.array(lists, pa.list_(pa.string())),
        ).set_column(
            fixed.schema.get_field_index(catalog.SCORES),
            catalog.SCORES,
            pa.array(scores, pa.list_(pa.float32())),
        )
        lake.write_partition(catalog.CANDIDATES, settings, fixed, D1)
        report = materialize(D1, settings, group="outputs")
        assert report["views"]["user_daily_candidates"]["status"] == "materialized"
        again = online_rows(settings)["user_daily_candidates"]
        u1 = again["user_id"].index("u000001")
        assert again["video_ids"][u1] == list(reversed(first["video_ids"][u1])) != first["video_ids"][u1]
