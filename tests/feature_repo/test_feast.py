"""The Feast store's whole life on tiny silver Delta tables: apply, historical retrieval, materialize, read.

Real components throughout: delta-rs writes the silver tables, Feast's DuckDB offline store reads
them through DuckDB's delta extension, SQLite (embedded) or Redis + PostgreSQL (``services``) hold
the online values and the registry.
"""

from __future__ import annotations

import dataclasses
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from feature_repo import registry
from feature_repo.materialize import materialize, watermark
from reelrec import catalog, feast_store, lake
from reelrec.cli_format import format_features
from reelrec.settings import Settings
from tests.feature_repo.test_definitions import ALL_SERVICES, ALL_VIEWS

pytestmark = pytest.mark.feast

D1, D2, D3 = "2026-11-01", "2026-11-02", "2026-11-03"
USERS = ("u000001", "u000002")
VIDEOS = ("v0000001", "v0000002", "v0000003")
CREATOR = "c00001"
UPLOADED = datetime(2026, 10, 30, 8, tzinfo=UTC)  # content rows are valid from the upload time


def end_of(date: str) -> datetime:
    """``event_timestamp`` of a silver row for ``date``: the last second of the day, UTC."""
    return datetime.fromisoformat(f"{date}T23:59:59+00:00")


def day_level(date: str) -> int:
    """A per-date number that makes every date's feature values distinct (D1 -> 1, D2 -> 2)."""
    return int(date[-2:])


def _rows(table: catalog.Table, date: str, values: dict[str, list[Any]]) -> pa.Table:
    n = len(next(iter(values.values())))
    columns = {name: [None] * n for name in table.columns}
    columns.update(values)
    columns[catalog.EVENT_TIMESTAMP] = [end_of(date)] * n
    columns[catalog.DT] = [date] * n
    return pa.table(columns)


def write_silver(settings: Settings, date: str, bump: int = 0) -> None:
    """Write one date of all three silver tables; values encode the date (and ``bump``)."""
    k = day_level(date) + bump
    users = _rows(
        catalog.USER_FEATURES,
        date,
        {
            catalog.USER_ID: list(USERS),
            "impressions_1d": [10 * k, 10 * k + 1],
            "views_1d": [k, k],
            "completion_rate_7d": [k / 10, 0.5],
            "recent_video_ids": [[VIDEOS[k % 3], VIDEOS[0]], []],
        },
    )
    videos = _rows(
        catalog.VIDEO_FEATURES,
        date,
        {
            catalog.VIDEO_ID: list(VIDEOS),
            catalog.CREATOR_ID: [CREATOR] * 3,
            "impressions_1d": [100 * k, 1, 2],
            "trending_score": [k + 0.25, 0.0, 0.0],
        },
    )
    creators = _rows(
        catalog.CREATOR_FEATURES,
        date,
        {catalog.CREATOR_ID: [CREATOR], "followers_total": [1000 * k], "engagement_rate_7d": [k / 100]},
    )
    lake.write_partition(catalog.USER_FEATURES, settings, users, date)
    lake.write_partition(catalog.VIDEO_FEATURES, settings, videos, date)
    lake.write_partition(catalog.CREATOR_FEATURES, settings, creators, date)
    if not lake.exists(catalog.VIDEO_CONTENT, settings):  # content: written once, on the first night
        content = pa.table(
            {
                catalog.VIDEO_ID: list(VIDEOS),
                catalog.CREATOR_ID: [CREATOR] * 3,
                "text_embedding": [[float(i == j) for j in range(4)] for i in range(3)],
                "frame_embedding": [None, [0.5, 0.5], None],
                "text_encoder": ["test"] * 3,
                catalog.EVENT_TIMESTAMP: [UPLOADED] * 3,
                catalog.DT: [date] * 3,
            }
        )
        lake.write_partition(catalog.VIDEO_CONTENT, settings, content, date)


@pytest.fixture
def two_days(settings: Settings) -> Settings:
    """Silver tables holding D1 and D2, and the feature repo applied to the embedded store."""
    write_silver(settings, D1)
    write_silver(settings, D2)
    registry.apply(settings)
    return settings


def user_impressions(settings: Settings, user_id: str = USERS[0]) -> Any:
    result = feast_store.online_features(settings, user_id=user_id)
    return result["views"]["user_daily_engagement"]["features"]["impressions_1d"]


# ---------------------------------------------------------------- the whole life
def test_smoke_apply_historical_materialize_online(settings: Settings) -> None:
    write_silver(settings, D1)
    write_silver(settings, D2)

    t0 = time.perf_counter()
    applied = registry.apply(settings)
    apply_s = time.perf_counter() - t0
    assert applied["feature_views"] == ALL_VIEWS
    assert applied["feature_services"] == ALL_SERVICES
    assert applied["entities"] == ["creator", "user", "video"]
    again = registry.apply(settings)
    assert {**again, "seconds": 0} == {**applied, "seconds": 0}  # idempotent: same objects, nothing deleted

    labels = pd.DataFrame(
        {
            catalog.USER_ID: [USERS[0], USERS[1]],
            catalog.VIDEO_ID: [VIDEOS[0], VIDEOS[1]],
            catalog.EVENT_TIMESTAMP: [datetime(2026, 11, 3, 9, tzinfo=UTC)] * 2,
        },
        index=[7, 3],
    )
    training = feast_store.historical_features(settings, labels, "two_tower_v1")
    assert list(training.index) == [7, 3]
    assert training["user_daily_engagement__impressions_1d"].tolist() == [20, 21]
    assert training["video_daily_performance__impressions_1d"].tolist() == [200, 1]
    assert training["video_daily_performance__creator_id"].tolist() == [CREATOR, CREATOR]
    text = training["video_static_content__text_embedding"].tolist()
    assert [list(v) for v in text] == [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]

    for date in (D1, D2):
        report = materialize(date, settings)
        assert {v["status"] for v in report["views"].values()} == {"materialized"}
    assert report["views"]["user_daily_engagement"] | {"seconds": 0} == {
        "status": "materialized",
        "table": "silver.user_features",
        "rows": 2,
        "entities": 2,
        "seconds": 0,
    }
    assert report["views"]["video_daily_performance"]["entities"] == 3
    assert set(report["views"]) == {
        "creator_daily_audience",
        "user_daily_engagement",
        "video_daily_performance",
    }
    content = materialize(D1, settings, group="content")["views"]["video_static_content"]
    assert content["status"] == "materialized" and content["entities"] == 3
    nothing_new = materialize(D2, settings, group="content")["views"]["video_static_content"]
    assert nothing_new == {"status": "skipped", "reason": f"no new rows in dt={D2}"}

    t0 = time.perf_counter()
    online = feast_store.online_features(settings, user_id=USERS[0], video_id=VIDEOS[0], creator_id=CREATOR)
    read_s = time.perf_counter() - t0
    user = online["views"]["user_daily_engagement"]
    assert user["found"] and user["event_timestamp"] == end_of(D2).isoformat()
    assert user["features"]["impressions_1d"] == 20
    assert user["features"]["recent_video_ids"] == [VIDEOS[2], VIDEOS[0]]
    assert user["features"]["watch_ms_1d"] is None
    assert online["views"]["video_daily_performance"]["features"]["trending_score"] == 2.25
    assert online["views"]["creator_daily_audience"]["features"]["followers_total"] == 2000
    assert online["views"]["video_static_content"]["features"]["text_embedding"] == [1.0, 0.0, 0.0, 0.0]
    print(
        f"\ntimings (tiny data): apply {apply_s:.2f}s, online read {read_s:.3f}s, "
        f"materialize D2 {report['seconds']:.2f}s"
    )


def test_online_read_of_unknown_user_is_not_found_and_formats(two_days: Settings) -> None:
    materialize(D2, two_days)
    result = feast_store.online_features(two_days, user_id="u999999", creator_id=CREATOR)
    assert result["views"]["user_daily_engagement"]["found"] is False
    assert result["views"]["user_daily_engagement"]["features"]["impressions_1d"] is None
    text = format_features(result)
    assert "user_daily_engagement  user_id=u999999: not in the online store" in text
    assert "creator_daily_audience  creator_id=c00001  (as of 2026-11-02T23:59:59+00:00)" in text
    assert any(line.split() == ["followers_total", "2000"] for line in text.splitlines())
    with pytest.raises(ValueError, match="at least one of"):
        feast_store.online_features(two_days)


# ---------------------------------------------------------------- point-in-time correctness
def test_point_in_time_join_never_leaks_later_rows(two_days: Settings) -> None:
    stamps = [
        datetime(2026, 11, 1, 12, tzinfo=UTC),  # before D1's row (valid from D1 23:59:59): nothing
        end_of(D1),  # exactly when D1's row becomes valid
        datetime(2026, 11, 2, 12, tzinfo=UTC),  # D2's row is not valid yet: D1's values
        end_of(D2) - timedelta(microseconds=1),  # still D1
        end_of(D2),  # D2's row
        end_of(D2) + timedelta(days=2),  # last instant inside the two-day TTL
        end_of(D2) + timedelta(days=2, seconds=1),  # TTL expired: nothing
    ]
    labels = pd.DataFrame(
        {catalog.USER_ID: USERS[0], catalog.VIDEO_ID: VIDEOS[0], catalog.EVENT_TIMESTAMP: stamps}
    )
    got = feast_store.historical_features(two_days, labels, "two_tower_v1")
    values = [None if pd.isna(v) else int(v) for v in got["user_daily_engagement__impressions_1d"]]
    assert values == [None, 10, 10, 10, 20, 20, None]
    video = [None if pd.isna(v) else int(v) for v in got["video_daily_performance__impressions_1d"]]
    assert video == [None, 100, 100, 100, 200, 200, None]


def test_historical_reads_the_delta_snapshot_not_overwritten_files(two_days: Settings) -> None:
    write_silver(two_days, D1, bump=5)  # replaces D1's partition; the old parquet file stays on disk
    labels = pd.DataFrame(
        {
            catalog.USER_ID: [USERS[0]],
            catalog.VIDEO_ID: [VIDEOS[0]],
            catalog.EVENT_TIMESTAMP: [datetime(2026, 11, 2, 12, tzinfo=UTC)],
        }
    )
    got = feast_store.historical_features(two_days, labels, "two_tower_v1")
    assert got["user_daily_engagement__impressions_1d"].tolist() == [60]
    assert len(got) == 1


def test_historical_features_errors_name_the_problem(two_days: Settings) -> None:
    labels = pd.DataFrame({catalog.USER_ID: [USERS[0]], catalog.EVENT_TIMESTAMP: [end_of(D2)]})
    with pytest.raises(ValueError, match=r"lacks join key\(s\) \['video_id'\]"):
        feast_store.historical_features(two_days, labels, "two_tower_v1")
    with pytest.raises(ValueError, match="unknown feature service 'ranker_v9'"):
        feast_store.historical_features(two_days, labels, "ranker_v9")
    with pytest.raises(ValueError, match="no 'event_timestamp' column"):
        feast_store.historical_features(
            two_days, labels.drop(columns=[catalog.EVENT_TIMESTAMP]), "two_tower_v1"
        )


# ---------------------------------------------------------------- materialize rules
def test_backfill_of_an_older_date_never_rolls_the_online_store_back(two_days: Settings) -> None:
    materialize(D2, two_days)
    registry.apply(two_days)  # the nightly DAG re-applies; the registry must keep the watermark
    backfill = materialize(D1, two_days)
    assert backfill["views"]["user_daily_engagement"] == {
        "status": "skipped",
        "reason": f"online store already at dt={D2}",
        "watermark_date": D2,
    }
    assert {v["status"] for v in backfill["views"].values()} == {"skipped"}
    assert user_impressions(two_days) == 20


def test_rerun_of_the_same_date_is_allowed_and_picks_up_rewritten_rows(two_days: Settings) -> None:
    first = materialize(D2, two_days)
    again = materialize(D2, two_days)
    assert again["views"]["user_daily_engagement"]["status"] == "materialized"
    assert again["views"]["user_daily_engagement"]["rows"] == first["views"]["user_daily_engagement"]["rows"]
    assert user_impressions(two_days) == 20

    write_silver(two_days, D2, bump=3)  # the feature job reran D2 with corrected data
    materialize(D2, two_days)
    assert user_impressions(two_days) == 50
    view = feast_store.get_store(two_days).get_feature_view("user_daily_engagement")
    assert watermark(view) == datetime(2026, 11, 3, tzinfo=UTC)


def test_dates_in_order_move_the_online_store_forward(two_days: Settings) -> None:
    materialize(D1, two_days)
    assert user_impressions(two_days) == 10
    materialize(D2, two_days)
    assert user_impressions(two_days) == 20


def test_materialize_a_date_without_feature_rows_fails_naming_table_and_date(two_days: Settings) -> None:
    with pytest.raises(ValueError, match=rf"materialize dt={D3}: table silver\.\w+_features .* has no rows"):
        materialize(D3, two_days)
    view = feast_store.get_store(two_days).get_feature_view("user_daily_engagement")
    assert watermark(view) is None  # nothing was materialized
    with pytest.raises(ValueError, match="logical date must be YYYY-MM-DD, got '2026-11-3'"):
        materialize("2026-11-3", two_days)
    with pytest.raises(ValueError, match=r"unknown feature view\(s\) \['nope'\]"):
        materialize(D2, two_days, feature_views=["nope"])


def test_materialize_without_the_delta_table_names_view_and_table(settings: Settings) -> None:
    registry.apply(settings)  # the views are registered, but no feature job has written a table yet
    with pytest.raises(
        FileNotFoundError, match=r"feature view creator_daily_audience: .*silver\.creator_features"
    ):
        materialize(D1, settings)
    with pytest.raises(ValueError, match="unknown view group 'nightly'"):
        materialize(D1, settings, group="nightly")


def test_apply_removes_views_that_left_the_repo(two_days: Settings) -> None:
    from feast import FeatureView

    from feature_repo.data_sources import delta_source
    from feature_repo.entities import user

    store = feast_store.get_store(two_days)
    retired = FeatureView(
        name="user_daily_retired",
        entities=[user],
        ttl=timedelta(days=2),
        source=delta_source(catalog.USER_FEATURES, two_days),
        schema=[feast_store_field("views_1d")],
    )
    store.apply([retired])
    assert "user_daily_retired" in {v.name for v in store.list_feature_views()}
    result = registry.apply(two_days)
    assert result["deleted"] == ["FeatureView:user_daily_retired"]
    assert "user_daily_retired" not in {v.name for v in feast_store.get_store(two_days).list_feature_views()}


def feast_store_field(name: str) -> Any:
    from feature_repo.feature_views import catalog_field

    return catalog_field(catalog.USER_FEATURES, name, "test field")


# ---------------------------------------------------------------- production config (services tier)
def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.mark.services
def test_production_config_redis_and_postgres_registry(settings: Settings) -> None:
    for name, port in (("Redis", 6379), ("PostgreSQL", 5432)):
        if not _reachable("127.0.0.1", port):
            pytest.fail(
                f"{name} is not reachable at 127.0.0.1:{port}; the services tier needs it "
                "(deselect with -m 'not services')"
            )
    prod = dataclasses.replace(
        settings,
        feast_env="production",
        redis_url="127.0.0.1:6379",
        registry_url="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        extra={"feast_project": f"reelrec_test_{uuid.uuid4().hex[:10]}"},
    )
    write_silver(prod, D1)
    write_silver(prod, D2)
    try:
        applied = registry.apply(prod)
        assert applied["feast_env"] == "production" and len(applied["feature_views"]) == len(ALL_VIEWS)
        store = feast_store.get_store(prod)
        assert store.config.online_store.type == "redis"
        assert type(store.registry).__name__ == "SqlRegistry"

        assert {v["status"] for v in materialize(D2, prod)["views"].values()} == {"materialized"}
        backfill = materialize(D1, prod)
        assert backfill["views"]["user_daily_engagement"]["reason"] == f"online store already at dt={D2}"
        online = feast_store.online_features(prod, user_id=USERS[0], video_id=VIDEOS[0])
        assert online["online_store"] == "redis"
        assert online["views"]["user_daily_engagement"]["features"]["impressions_1d"] == 20
        assert online["views"]["user_daily_engagement"]["features"]["recent_video_ids"] == [
            VIDEOS[2],
            VIDEOS[0],
        ]
        assert online["views"]["video_daily_performance"]["features"]["impressions_1d"] == 200
        # Redis answers a key it does not hold with PRESENT and null values: still not found.
        absent = feast_store.online_features(prod, user_id="u_never_seen")["views"]["user_daily_engagement"]
        assert absent["found"] is False and absent["event_timestamp"] is None
    finally:
        torn = registry.teardown(prod)
        assert torn["project"] == prod.extra["feast_project"]
    _assert_project_gone(prod.extra["feast_project"])


def _assert_project_gone(project: str) -> None:
    import psycopg
    import redis

    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres") as conn:
        for table in ("projects", "feature_views", "entities", "feature_view_version_history"):
            count = conn.execute(f"SELECT count(*) FROM {table} WHERE project_id = %s", [project]).fetchone()
            assert count == (0,), f"registry table {table} still has rows of project {project}"
    keys = list(redis.Redis(host="127.0.0.1", port=6379).scan_iter(match=f"*{project}"))
    assert keys == [], f"Redis still holds {len(keys)} key(s) of project {project}"
