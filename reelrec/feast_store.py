"""Generic operations on the Feast store of a ``REELREC_HOME``: open it, read online and historical features.

The store is the folder ``$REELREC_HOME/feast``: its ``feature_store.yaml`` (rendered from the
templates in ``feature_repo/`` for ``settings.feast_env`` by :mod:`feature_repo.store_config`),
the registry and, in the embedded engine, the SQLite online store. :func:`get_store` opens exactly
what the Feast CLI opens (``feast -c $REELREC_HOME/feast serve``), so the SDK, the CLI and the
feature server always agree. What the store holds (the repo's objects, materialized days) is
``feature_repo``'s business (:mod:`feature_repo.registry`, :mod:`feature_repo.materialize`); the
core never imports the repo definitions.

Feast is imported inside the functions: importing this module stays cheap for the CLI and DAGs.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reelrec.catalog import CREATOR_ID, EVENT_TIMESTAMP, USER_ID, VIDEO_ID
from reelrec.settings import Settings

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureStore

CONFIG_NAME = "feature_store.yaml"
RENDER_COMMAND = "python -m feature_repo.store_config"
_ENTITY_KEYS = (USER_ID, VIDEO_ID, CREATOR_ID)


# ---------------------------------------------------------------- the store
def config_path(settings: Settings) -> Path:
    """Where the rendered Feast config of ``settings`` lies: ``$REELREC_HOME/feast/feature_store.yaml``."""
    return settings.feast / CONFIG_NAME


def get_store(settings: Settings) -> FeatureStore:
    """The ``FeatureStore`` of ``settings``, opened from its rendered :func:`config_path`.

    The config is parsed here rather than by Feast's loader, which would expand ``$VARS`` a
    second time inside already-rendered values (e.g. a password containing ``$``).

    Raises:
        FileNotFoundError: naming the file and the command that renders it when it is absent.
    """
    import yaml
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

    from reelrec import duckdb_delta

    path = config_path(settings)
    if not path.exists():
        raise FileNotFoundError(
            f"no Feast store config at {path}; render it with `{RENDER_COMMAND} --home {settings.home}` "
            "(the nightly DAG's feast_apply task, `python -m feature_repo.registry`, also does it)"
        )
    if not duckdb_delta.is_installed():  # normally done once by `make setup`; never downloads
        duckdb_delta.ensure_installed()
    config = RepoConfig(**yaml.safe_load(path.read_text()))
    config.repo_path = settings.feast
    return FeatureStore(repo_path=str(settings.feast), config=config)


# ---------------------------------------------------------------- reads
def online_features(
    settings: Settings,
    user_id: str | None = None,
    video_id: str | None = None,
    creator_id: str | None = None,
) -> dict[str, Any]:
    """Online feature values of the given entities, grouped by feature view (JSON-able).

    Returns:
        ``{"project", "online_store", "entities": {key: id}, "views": {view: {"entity": {key: id},
        "found": bool, "event_timestamp": ISO str | None, "features": {name: value}}},
        "seconds"}``. A key absent from the online store has ``found: false`` and null values.

    Raises:
        ValueError: when no id is given.
    """
    from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

    given = {
        key: value for key, value in zip(_ENTITY_KEYS, (user_id, video_id, creator_id), strict=True) if value
    }
    if not given:
        raise ValueError(f"online_features: give at least one of {list(_ENTITY_KEYS)}")
    started = time.perf_counter()
    store = get_store(settings)
    result: dict[str, Any] = {
        "project": store.project,
        "online_store": store.config.online_store.type,
        "entities": given,
        "views": {},
    }
    views = sorted(store.list_feature_views(), key=lambda v: v.name)
    for key, value in given.items():
        mine = [v for v in views if [c.name for c in v.entity_columns] == [key]]
        if not mine:
            continue
        refs = [f"{v.name}:{f.name}" for v in mine for f in v.features]
        response = store.get_online_features(
            features=refs, entity_rows=[{key: value}], full_feature_names=True
        )
        proto = response.proto
        columns = response.to_dict()
        by_ref = dict(zip(proto.metadata.feature_names.val, proto.results, strict=True))
        for view in mine:
            features: dict[str, Any] = {}
            found = False
            stamp = 0
            for feature in view.features:
                ref = f"{view.name}__{feature.name}"
                features[feature.name] = columns[ref][0]
                vector = by_ref[ref]
                # Redis answers a key it does not hold with PRESENT and a null value (SQLite: NOT_FOUND),
                # so a view is found only when some feature came back with a value.
                present = vector.statuses[0] in (FieldStatus.PRESENT, FieldStatus.OUTSIDE_MAX_AGE)
                if present and features[feature.name] is not None:
                    found = True
                stamp = max(stamp, vector.event_timestamps[0].seconds)
            result["views"][view.name] = {
                "entity": {key: value},
                "found": found,
                "event_timestamp": datetime.fromtimestamp(stamp, UTC).isoformat() if found else None,
                "features": features,
            }
    result["seconds"] = round(time.perf_counter() - started, 4)
    return result


def historical_features(settings: Settings, entity_df: pd.DataFrame, service_name: str) -> pd.DataFrame:
    """Point-in-time correct features of ``service_name`` for every row of ``entity_df``.

    Each row gets, per view, the latest feature row with ``event_timestamp <= row's
    event_timestamp`` and within the view's TTL; later rows never leak in. Output columns are
    ``<view>__<feature>``; rows keep ``entity_df``'s order and index.

    Args:
        settings: which store.
        entity_df: join keys of the service's views plus ``event_timestamp`` (UTC; naive means UTC).
        service_name: a registered feature service, e.g. ``two_tower_v1``.

    Raises:
        ValueError: when ``event_timestamp`` or a join key is missing, or the service is unknown.
    """
    import pandas as pd

    if EVENT_TIMESTAMP not in entity_df.columns:
        raise ValueError(f"historical_features({service_name}): entity_df has no {EVENT_TIMESTAMP!r} column")
    store = get_store(settings)
    try:
        service = store.get_feature_service(service_name)
    except Exception as err:  # Feast raises FeatureServiceNotFoundException
        known = sorted(s.name for s in store.list_feature_services())
        raise ValueError(f"unknown feature service {service_name!r}; registered: {known}") from err
    views = {v.name: v for v in store.list_feature_views()}
    keys = sorted({c.name for p in service.feature_view_projections for c in views[p.name].entity_columns})
    missing = [k for k in keys if k not in entity_df.columns]
    if missing:
        raise ValueError(
            f"historical_features({service_name}): entity_df lacks join key(s) {missing}; "
            f"has {list(entity_df.columns)}"
        )
    row = "__reelrec_row"
    frame = entity_df.reset_index(drop=True).copy()
    frame[row] = range(len(frame))
    frame[EVENT_TIMESTAMP] = pd.to_datetime(frame[EVENT_TIMESTAMP], utc=True)
    job = store.get_historical_features(entity_df=frame, features=service, full_feature_names=True)
    out = job.to_df().sort_values(row).drop(columns=[row])
    out.index = entity_df.index
    return out
