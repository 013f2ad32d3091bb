"""The Redis read of published candidates (:mod:`reelrec.online_read`) against Feast's own answer.

Tiny nights are published to Redis (PostgreSQL registry, a Feast project of their own) with the
gold tables and helpers of ``test_serving``; the reader's columns and the :class:`Recommender`'s
answers (which use it on Redis) are compared with ``FeatureStore.get_online_features`` for a mix
of users: listed, listed on an older night only, absent, duplicated, non-ASCII, the default list.
The value decoders are checked against protobuf on hand-built bytes, without Redis.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import _mmh3
from feast.infra.online_stores.redis import RedisClient
from feast.protos.feast.serving.ServingService_pb2 import FieldStatus
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import DoubleList, FloatList, StringList, Value

from feature_repo.materialize import materialize
from feature_repo.registry import apply
from reelrec import online_read, serving
from reelrec.catalog import DEFAULT_LIST_KEY
from reelrec.online_read import RedisViewReader
from reelrec.serving import Recommender, not_found
from reelrec.settings import Settings
from tests.reelrec.test_serving import D1, D2, U1, U2, U3, default_for, expected, online_store, write_gold

# Listed (D2), listed on D1 only, absent, a duplicate, non-ASCII and empty ids, the default list.
IDS = [U2, "u999999", U1, U3, U1, "ü-人-000", "", DEFAULT_LIST_KEY]


def _publish(settings: Settings, dates: tuple[str, ...]) -> None:
    for date in dates:
        write_gold(settings, date)
    apply(settings)
    for date in dates:
        report = materialize(date, settings, group="outputs")
        assert report["views"][serving.VIEW]["status"] == "materialized"


@pytest.fixture(scope="module")
def redis_night(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A Redis home holding D1, then D2 (D2 publishes the default list); read-only for tests."""
    with online_store(tmp_path_factory.mktemp("online-read") / "reelrec-home", "redis") as settings:
        _publish(settings, (D1, D2))
        yield settings


def _sdk(recommender: Recommender, ids: list[str]) -> tuple[dict[str, list[Any]], list[bool]]:
    """``get_online_features`` on ``recommendations_v1``: its columns and ``video_ids`` PRESENT or not."""
    response = recommender.store.get_online_features(
        features=recommender.service, entity_rows=[{"user_id": u} for u in ids], full_feature_names=True
    )
    columns = response.to_dict()
    assert columns.pop("user_id") == ids
    by_name = dict(zip(response.proto.metadata.feature_names.val, response.proto.results, strict=True))
    return columns, [status == FieldStatus.PRESENT for status in by_name[serving.VIDEO_IDS].statuses]


def _as_lists(columns: dict[str, list[Any]]) -> dict[str, list[Any]]:
    return {
        name: [v.tolist() if isinstance(v, np.ndarray) else v for v in col] for name, col in columns.items()
    }


def _answers_like_feast(recommender: Recommender, ids: list[str]) -> None:
    """The Redis reader's columns, and the Recommender's answers, are those from Feast's SDK."""
    sdk_columns, sdk_present = _sdk(recommender, ids)
    columns, present = recommender.reader.redis_columns(ids)
    assert set(columns) == {serving.VIDEO_IDS, serving.SCORES, serving.VERSION, serving.GENERATED}
    assert _as_lists(columns) == {name: sdk_columns[name] for name in columns}
    assert present == sdk_present
    for k in (None, 1, 2):
        assert recommender(ids[:-1], k=k) == serving._assemble(ids, sdk_columns, sdk_present, k)


# ---------------------------------------------------------------- against Feast, on Redis
@pytest.mark.feast
@pytest.mark.services
def test_the_redis_reader_answers_exactly_like_get_online_features(redis_night: Settings) -> None:
    recommender = Recommender(redis_night)
    assert recommender.reader.redis is not None  # the Redis store is read by the reader, not online_read
    _answers_like_feast(recommender, IDS)
    recs = recommender(IDS[:-1])
    assert recs[:4] == [expected(U2, D2), default_for("u999999"), expected(U1, D2), expected(U3, D1)]
    assert recs[5] == default_for("ü-人-000") and recs[6] == default_for("")
    assert recs[0]["items"][0] == {"video_id": "v0000002", "score": 0.65}  # shortest float32 decimal
    # many users per call, each answered as Feast answers them
    many = [f"u{i:06d}" for i in range(60)] + [U1, U2, U3] * 5 + [DEFAULT_LIST_KEY]
    _answers_like_feast(recommender, many)


@pytest.mark.feast
@pytest.mark.services
def test_keys_and_fields_are_feasts_layout(redis_night: Settings) -> None:
    recommender = Recommender(redis_night)
    reader = recommender.reader.redis
    assert reader is not None
    config = recommender.store.config
    for user in (U1, "u999999", "ü-人-000", ""):
        entity = EntityKey(join_keys=["user_id"], entity_values=[Value(string_val=user)])
        feast_key = serialize_entity_key(entity, config.entity_key_serialization_version)
        assert reader.key(user) == feast_key + config.project.encode()
    assert reader.fields == [_mmh3(f"user_daily_candidates:{name}") for name in reader.features]
    assert reader.client.exists(reader.key(U1)) == 1  # Feast wrote its hash there
    assert reader.client.exists(reader.key("u999999")) == 0
    assert len(reader.hashes([U1, "u999999"])) == 2


@pytest.mark.feast
@pytest.mark.services
def test_before_any_default_list_an_absent_user_gets_the_empty_answer_on_redis(tmp_path: Path) -> None:
    with online_store(tmp_path / "reelrec-home", "redis") as settings:
        _publish(settings, (D1,))  # D1 published no default list
        recommender = Recommender(settings)
        assert recommender.reader.redis is not None
        _answers_like_feast(recommender, [U1, "u999999", U3, DEFAULT_LIST_KEY])
        assert recommender(["u999999", U2]) == [not_found("u999999"), expected(U2, D1)]


@pytest.mark.feast
@pytest.mark.services
def test_the_reader_is_only_chosen_where_it_reads_what_feast_would(
    redis_night: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    recommender = Recommender(redis_night)
    view, needed = recommender.reader.view, recommender.reader.redis.features  # type: ignore[union-attr]
    assert RedisViewReader.open(recommender.store, view, needed) is not None
    monkeypatch.setattr(recommender.store.config.online_store, "client", RedisClient.glide)
    assert RedisViewReader.open(recommender.store, view, needed) is None  # Feast reads through GLIDE
    with pytest.raises(ValueError, match="user_daily_candidates has no feature"):
        RedisViewReader(recommender.store, view, ["video_ids", "no_such_feature"])


# ---------------------------------------------------------------- decoders, on hand-built bytes
@pytest.mark.parametrize(
    "floats",
    [
        [],
        [0.95],
        [3.0, 2.5, 1.25],
        [math.nan, math.inf, -math.inf, -0.0, 1e-45],
        list(np.linspace(0, 1, 1000)),
    ],
    ids=["empty", "one", "three", "special", "thousand"],
)
def test_float_lists_are_read_from_their_packed_bytes_as_protobuf_reads_them(floats: list[float]) -> None:
    blob = Value(float_list_val=FloatList(val=floats)).SerializeToString()
    decoded = online_read._float_list(blob)
    assert decoded is not None
    reference = list(Value.FromString(blob).float_list_val.val)
    assert [repr(v) for v in decoded.tolist()] == [repr(v) for v in reference]
    if floats:  # the packed encoding, read without protobuf: a view of the stored bytes
        assert decoded.dtype == np.float32 and decoded.base is not None


def test_other_float_encodings_go_through_protobuf() -> None:
    unpacked = b"".join(b"\x0d" + struct.pack("<f", v) for v in (0.5, 0.25))  # FloatList.val, unpacked
    blob = b"\x82\x01" + bytes([len(unpacked)]) + unpacked
    assert list(Value.FromString(blob).float_list_val.val) == [0.5, 0.25]
    assert online_read._float_list(blob).tolist() == [0.5, 0.25]  # type: ignore[union-attr]
    doubles = Value(double_list_val=DoubleList(val=[0.1, 0.2])).SerializeToString()
    assert online_read._float_list(doubles).tolist() == [0.1, 0.2]  # type: ignore[union-attr]
    assert online_read._float_list(None) is None
    assert online_read._float_list(b"") is None  # Feast's unset value
    truncated = Value(float_list_val=FloatList(val=[1.0, 2.0])).SerializeToString()[:-3]
    with pytest.raises(Exception, match="(?i)error parsing|decode"):
        online_read._float_list(truncated)


def test_other_values_decode_as_feasts_sdk_gives_them() -> None:
    videos = Value(string_list_val=StringList(val=["v1", "v2"])).SerializeToString()
    assert online_read._python(videos) == ["v1", "v2"]
    assert online_read._python(None) is None and online_read._python(b"") is None
    assert online_read._scalar(Value(string_val="two_tower_v1-x").SerializeToString()) == "two_tower_v1-x"
    stamp = Value(unix_timestamp_val=1_793_676_011).SerializeToString()
    assert online_read._scalar(stamp) == datetime(2026, 11, 3, 3, 20, 11, tzinfo=UTC)
    assert online_read._scalar(stamp) is online_read._scalar(stamp)  # decoded once per stored bytes
