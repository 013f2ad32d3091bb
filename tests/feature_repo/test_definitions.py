"""The Feast definitions of ``feature_repo/``: fields typed from the catalog, versioned services, CLI view.

Nothing here opens a feature store: the objects are built over sources of a home that does not exist.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from feature_repo.feature_services import FEATURE_SERVICES
from feature_repo.feature_views import VIEW_BUILDERS, feast_type, windowed_fields
from feature_repo.store_config import repo_dir
from reelrec import catalog
from reelrec.settings import Settings

ALL_VIEWS = [
    "creator_daily_audience",
    "user_daily_candidates",
    "user_daily_embedding",
    "user_daily_engagement",
    "video_daily_embedding",
    "video_daily_performance",
    "video_static_content",
]
ALL_SERVICES = ["creator_insights_v1", "embeddings_v1", "ranker_v1", "recommendations_v1", "two_tower_v1"]


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
    assert set(services) == {
        "two_tower_v1",
        "ranker_v1",
        "creator_insights_v1",
        "recommendations_v1",
        "embeddings_v1",
    }
    two_tower = {p.name for p in services["two_tower_v1"].feature_view_projections}
    assert two_tower == {"user_daily_engagement", "video_daily_performance", "video_static_content"}
    ranker = {p.name for p in services["ranker_v1"].feature_view_projections}
    assert ranker == {"user_daily_engagement", "video_daily_performance", "creator_daily_audience"}
    assert {p.name for p in services["recommendations_v1"].feature_view_projections} == {
        "user_daily_candidates"
    }


def test_feast_cli_sees_each_definition_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from feast.repo_operations import parse_repo

    repo = repo_dir()
    monkeypatch.chdir(repo)  # what `feast -c feature_repo plan` does before importing the files
    monkeypatch.syspath_prepend(str(repo))
    contents = parse_repo(repo)
    assert sorted(v.name for v in contents.feature_views) == ALL_VIEWS
    assert sorted(s.name for s in contents.feature_services) == ALL_SERVICES
    assert sorted(e.name for e in contents.entities if e.name != "__dummy") == ["creator", "user", "video"]


def test_windowed_fields_follow_the_catalog_windows_in_order() -> None:
    fields = windowed_fields(
        catalog.USER_FEATURES, "views", "Videos the user watched", defined_as="(view events)"
    )
    assert [f.name for f in fields] == list(catalog.windowed_names("views"))
    assert [f.description for f in fields] == [
        "Videos the user watched (view events) on dt.",
        "Videos the user watched in the 7 days ending at dt.",
        "Videos the user watched in the 28 days ending at dt.",
    ]
    view = VIEW_BUILDERS[catalog.USER_FEATURES](_source_for(catalog.USER_FEATURES))
    names = [f.name for f in view.features]
    for prefix in ("impressions", "views", catalog.WATCH_MS):  # the catalog's windowed columns, in its order
        windowed = list(catalog.windowed_names(prefix))
        assert names[names.index(windowed[0]) : names.index(windowed[0]) + len(windowed)] == windowed
    with pytest.raises(KeyError, match="silver.creator_features has no column 'impressions_1d'"):
        windowed_fields(catalog.CREATOR_FEATURES, "impressions", "Times shown")


def test_every_view_is_materialized_by_exactly_one_group() -> None:
    from feature_repo.materialize import BY_DT_VIEWS, VIEW_GROUPS

    members = [name for group in VIEW_GROUPS.values() for name in group]
    assert sorted(members) == ALL_VIEWS
    assert sorted(BY_DT_VIEWS) == [
        "video_static_content"
    ]  # content rows carry their upload time, not end of dt
