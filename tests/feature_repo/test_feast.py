"""The Feast layer on tiny silver Delta tables: apply, historical retrieval, materialize, online read.

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
import yaml

from feature_repo.feature_services import FEATURE_SERVICES
from feature_repo.feature_views import VIEW_BUILDERS, feast_type
from reelrec import catalog, feast_store, lake
from reelrec.settings import Settings

D1, D2, D3 = "2026-11-01", "2026-11-02", "2026-11-03"
USERS = ("u000001", "u000002")
VIDEOS = ("v0000001", "v0000002", "v0000003")
CREATOR = "c00001"
UPLOADED = datetime(2026, 10, 30, 8, tzinfo=UTC)  # content rows are valid from the upload time


ALL_VIEWS = [
    "creator_daily_audience",
    "user_daily_candidates",
    "user_daily_embedding",
    "user_daily_engagement",
    "video_daily_embedding",
    "video_daily_performance",
    "video_static_content",
]
ALL_SERVICES = ["creator_insights_v1", "embeddings_v1", "recommendations_v1", "two_tower_v1"]


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
    feast_store.apply(settings)
    return settings


def user_impressions(settings: Settings, user_id: str = USERS[0]) -> Any:
    result = feast_store.online_features(settings, user_id=user_id)
    return result["views"]["user_daily_engagement"]["features"]["impressions_1d"]


# ---------------------------------------------------------------- definitions and config
def test_every_view_field_comes_from_the_catalog_with_description_and_type() -> None:
    for table, build in VIEW_BUILDERS.items():
        view = build(_source_for(table))
        assert view.name.count("_") >= 2 and view.name.split("_")[1] in ("daily", "static"), view.name
        # daily rows expire after two days; content is valid from upload and never expires
        assert view.ttl == (timedelta(0) if table is catalog.VIDEO_CONTENT else timedelta(days=2))
        assert view.owner and view.tags["source_table"] == f"{table.layer}.{table.name}"
        fields = [*view.entity_columns, *view.features]
        # every silver column but the partition and the timestamp is served, none invented
        assert {f.name for f in fields} == set(table.columns) - {catalog.DT, catalog.EVENT_TIMESTAMP}
        for field in fields:
            assert field.description, f"{view.name}.{field.name} has no description"
            assert field.dtype == feast_type(table.schema.field(field.name).type, field.name)
    recent = next(
        f
        for f in VIEW_BUILDERS[catalog.USER_FEATURES](_source_for(catalog.USER_FEATURES)).features
        if f.name == "recent_video_ids"
    )
    assert str(recent.dtype) == "Array(String)"


def _source_for(table: catalog.Table) -> Any:
    from feature_repo.data_sources import delta_source

    return delta_source(table, Settings.from_env("/nonexistent-home"))


def test_services_are_versioned_and_two_tower_joins_user_and_video() -> None:
    services = {s.name: s for s in FEATURE_SERVICES}
    assert set(services) == {"two_tower_v1", "creator_insights_v1", "recommendations_v1", "embeddings_v1"}
    two_tower = {p.name for p in services["two_tower_v1"].feature_view_projections}
    assert two_tower == {"user_daily_engagement", "video_daily_performance", "video_static_content"}
    assert {p.name for p in services["recommendations_v1"].feature_view_projections} == {
        "user_daily_candidates"
    }


def test_feast_cli_sees_each_definition_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from feast.repo_operations import parse_repo

    repo = feast_store.repo_dir()
    monkeypatch.chdir(repo)  # what `feast -c feature_repo plan` does before importing the files
    monkeypatch.syspath_prepend(str(repo))
    contents = parse_repo(repo)
    assert sorted(v.name for v in contents.feature_views) == ALL_VIEWS
    assert sorted(s.name for s in contents.feature_services) == ALL_SERVICES
    assert sorted(e.name for e in contents.entities if e.name != "__dummy") == ["creator", "user", "video"]


def test_render_config_embedded_uses_absolute_paths_under_feast_home(settings: Settings) -> None:
    path = feast_store.render_config(settings)
    config = yaml.safe_load(path.read_text())
    assert path == settings.feast / "feature_store.yaml"
    assert config["registry"]["path"] == str(settings.feast / "registry.db")
    assert config["online_store"] == {"type": "sqlite", "path": str(settings.feast / "online_store.db")}
    assert config["offline_store"]["type"] == "duckdb"
    assert config["project"] == "reelrec"


def test_render_config_production_takes_endpoints_from_settings(settings: Settings) -> None:
    prod = dataclasses.replace(
        settings,
        feast_env="production",
        redis_url="redis.internal:6380,db=2",
        registry_url="postgresql+psycopg://feast@pg.internal:5432/feast",
        extra={"feast_project": "reelrec_staging"},
    )
    config = yaml.safe_load(feast_store.render_config(prod).read_text())
    assert config["project"] == "reelrec_staging"
    assert config["online_store"] == {"type": "redis", "connection_string": "redis.internal:6380,db=2"}
    assert config["registry"]["registry_type"] == "sql"
    assert config["registry"]["path"] == "postgresql+psycopg://feast@pg.internal:5432/feast"
    assert config["offline_store"]["type"] == "duckdb"


def test_render_config_rejects_unknown_env_and_bad_project(settings: Settings) -> None:
    with pytest.raises(ValueError, match="REELREC_FEAST_ENV='cloud'"):
        feast_store.render_config(dataclasses.replace(settings, feast_env="cloud"))
    with pytest.raises(ValueError, match="project name 'bad-name'"):
        feast_store.render_config(dataclasses.replace(settings, extra={"feast_project": "bad-name"}))


# ---------------------------------------------------------------- the whole life
def test_smoke_apply_historical_materialize_online(settings: Settings) -> None:
    write_silver(settings, D1)
    write_silver(settings, D2)

    t0 = time.perf_counter()
    applied = feast_store.apply(settings)
    apply_s = time.perf_counter() - t0
    assert applied["feature_views"] == ALL_VIEWS
    assert applied["feature_services"] == ALL_SERVICES
    assert applied["entities"] == ["creator", "user", "video"]
    again = feast_store.apply(settings)
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
        report = feast_store.materialize(date, settings)
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
    content = feast_store.materialize(D1, settings, group="content")["views"]["video_static_content"]
    assert content["status"] == "materialized" and content["entities"] == 3
    nothing_new = feast_store.materialize(D2, settings, group="content")["views"]["video_static_content"]
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
    feast_store.materialize(D2, two_days)
    result = feast_store.online_features(two_days, user_id="u999999", creator_id=CREATOR)
    assert result["views"]["user_daily_engagement"]["found"] is False
    assert result["views"]["user_daily_engagement"]["features"]["impressions_1d"] is None
    text = feast_store.format_features(result)
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
    feast_store.materialize(D2, two_days)
    feast_store.apply(two_days)  # the nightly DAG re-applies; the registry must keep the watermark
    backfill = feast_store.materialize(D1, two_days)
    assert backfill["views"]["user_daily_engagement"] == {
        "status": "skipped",
        "reason": f"online store already at dt={D2}",
        "watermark_date": D2,
    }
    assert {v["status"] for v in backfill["views"].values()} == {"skipped"}
    assert user_impressions(two_days) == 20


def test_rerun_of_the_same_date_is_allowed_and_picks_up_rewritten_rows(two_days: Settings) -> None:
    first = feast_store.materialize(D2, two_days)
    again = feast_store.materialize(D2, two_days)
    assert again["views"]["user_daily_engagement"]["status"] == "materialized"
    assert again["views"]["user_daily_engagement"]["rows"] == first["views"]["user_daily_engagement"]["rows"]
    assert user_impressions(two_days) == 20

    write_silver(two_days, D2, bump=3)  # the feature job reran D2 with corrected data
    feast_store.materialize(D2, two_days)
    assert user_impressions(two_days) == 50
    view = feast_store.get_store(two_days).get_feature_view("user_daily_engagement")
    assert feast_store.watermark(view) == datetime(2026, 11, 3, tzinfo=UTC)


def test_dates_in_order_move_the_online_store_forward(two_days: Settings) -> None:
    feast_store.materialize(D1, two_days)
    assert user_impressions(two_days) == 10
    feast_store.materialize(D2, two_days)
    assert user_impressions(two_days) == 20


def test_materialize_a_date_without_feature_rows_fails_naming_table_and_date(two_days: Settings) -> None:
    with pytest.raises(ValueError, match=rf"materialize dt={D3}: table silver\.\w+_features .* has no rows"):
        feast_store.materialize(D3, two_days)
    view = feast_store.get_store(two_days).get_feature_view("user_daily_engagement")
    assert feast_store.watermark(view) is None  # nothing was materialized
    with pytest.raises(ValueError, match="logical date '2026-11-3' is not YYYY-MM-DD"):
        feast_store.materialize("2026-11-3", two_days)
    with pytest.raises(ValueError, match=r"unknown feature view\(s\) \['nope'\]"):
        feast_store.materialize(D2, two_days, feature_views=["nope"])


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
    result = feast_store.apply(two_days)
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
        applied = feast_store.apply(prod)
        assert applied["feast_env"] == "production" and len(applied["feature_views"]) == len(ALL_VIEWS)
        store = feast_store.get_store(prod)
        assert store.config.online_store.type == "redis"
        assert type(store.registry).__name__ == "SqlRegistry"

        assert {v["status"] for v in feast_store.materialize(D2, prod)["views"].values()} == {"materialized"}
        backfill = feast_store.materialize(D1, prod)
        assert backfill["views"]["user_daily_engagement"]["reason"] == f"online store already at dt={D2}"
        online = feast_store.online_features(prod, user_id=USERS[0], video_id=VIDEOS[0])
        assert online["online_store"] == "redis"
        assert online["views"]["user_daily_engagement"]["features"]["impressions_1d"] == 20
        assert online["views"]["user_daily_engagement"]["features"]["recent_video_ids"] == [
            VIDEOS[2],
            VIDEOS[0],
        ]
        assert online["views"]["video_daily_performance"]["features"]["impressions_1d"] == 200
    finally:
        torn = feast_store.teardown(prod)
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
