"""The Feast layer: render the store config, apply the repo, materialize a date, read features.

One code path serves both engines: ``settings.feast_env`` picks the config template in
``feature_repo/`` (``embedded``: SQLite online store + file registry; ``production``: Redis + SQL
registry on PostgreSQL); the offline store is DuckDB over the silver Delta tables in both.

Backfills and the online store. Feast's SQLite online store overwrites a key's values without
comparing event times, so materializing an older date after a newer one would roll the online
store back. :func:`materialize` therefore keeps a per-view *watermark*: the latest end of the
materialization intervals that the Feast registry records for the view. A date whose window ends
before the watermark is skipped for that view (``skipped: online store already at dt=X``);
rerunning the watermark's own date is allowed and rewrites the same values.

Feast is imported inside the functions: importing this module stays cheap for the CLI and DAGs.
"""

from __future__ import annotations

import contextlib
import re
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from datetime import date as date_type
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reelrec.catalog import CREATOR_ID, EVENT_TIMESTAMP, USER_ID, VIDEO_ID
from reelrec.settings import Settings

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureStore, FeatureView, FileSource

DEFAULT_PROJECT = "reelrec"
CONFIG_NAME = "feature_store.yaml"
FEAST_ENVS = ("embedded", "production")
_PROJECT_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_TEMPLATE_VAR = re.compile(r"\$\{([A-Z_]+)\}")
_ENTITY_KEYS = (USER_ID, VIDEO_ID, CREATOR_ID)


# ---------------------------------------------------------------- config
def repo_dir() -> Path:
    """The ``feature_repo/`` folder holding the definitions and config templates."""
    import feature_repo

    return Path(next(iter(feature_repo.__path__)))


def project_name(settings: Settings) -> str:
    """Feast project of ``settings``: ``settings.extra["feast_project"]``, default ``reelrec``.

    Raises:
        ValueError: when the name is not a letter followed by letters, digits or underscores.
    """
    name = settings.extra.get("feast_project", DEFAULT_PROJECT)
    if not _PROJECT_RE.match(name):
        raise ValueError(
            f"Feast project name {name!r} (settings.extra['feast_project']) must start with a letter "
            "and contain only letters, digits and underscores"
        )
    return name


def _yaml_str(value: str) -> str:
    # Templates put every variable inside a double-quoted YAML scalar.
    return value.replace("\\", "\\\\").replace('"', '\\"')


def render_config(settings: Settings) -> Path:
    """Write ``feature_store.yaml`` for ``settings.feast_env`` into ``settings.feast``.

    The template ``feature_repo/feature_store.<env>.yaml`` is filled from ``settings`` (absolute
    registry and online-store paths under ``REELREC_HOME/feast``, Redis and registry URLs, the
    project name). The file is only rewritten when its content changes.

    Returns:
        Path of the rendered file.

    Raises:
        ValueError: for an unknown ``feast_env`` or a template variable that settings do not fill.
    """
    if settings.feast_env not in FEAST_ENVS:
        raise ValueError(f"REELREC_FEAST_ENV={settings.feast_env!r} is not one of {list(FEAST_ENVS)}")
    template = repo_dir() / f"feature_store.{settings.feast_env}.yaml"
    values = {
        "REELREC_FEAST_PROJECT": project_name(settings),
        "REELREC_FEAST_DIR": str(settings.feast),
        "REELREC_HOME": str(settings.home),
        "REELREC_REDIS_URL": settings.redis_url,
        "REELREC_REGISTRY_URL": settings.registry_url,
    }

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise ValueError(f"{template}: unknown variable ${{{name}}}; known: {sorted(values)}")
        return _yaml_str(values[name])

    text = _TEMPLATE_VAR.sub(fill, template.read_text())
    settings.feast.mkdir(parents=True, exist_ok=True)
    target = settings.feast / CONFIG_NAME
    if not target.exists() or target.read_text() != text:
        target.write_text(text)
    return target


def get_store(settings: Settings) -> FeatureStore:
    """A ``FeatureStore`` for ``settings`` (renders the config first).

    The config is parsed here rather than by Feast's loader, which would expand ``$VARS`` a
    second time inside already-rendered values (e.g. a password containing ``$``).
    """
    import yaml
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

    from reelrec import duckdb_delta

    if not duckdb_delta.is_installed():  # normally done once by `make setup`; never downloads
        duckdb_delta.ensure_installed()
    path = render_config(settings)
    config = RepoConfig(**yaml.safe_load(path.read_text()))
    config.repo_path = settings.feast
    return FeatureStore(repo_path=str(settings.feast), config=config)


# ---------------------------------------------------------------- apply
def repo_objects(settings: Settings) -> list[Any]:
    """Every object of ``feature_repo/``, with sources pointing at ``settings``' lake.

    The module-level objects in ``feature_repo`` read their paths from the environment at
    import time; here the views are rebuilt over :func:`feature_repo.data_sources.delta_source`
    for ``settings``, so one process can apply several homes. Services reference views by name.
    """
    from feature_repo.data_sources import delta_source
    from feature_repo.entities import ENTITIES
    from feature_repo.feature_services import FEATURE_SERVICES
    from feature_repo.feature_views import VIEW_BUILDERS

    sources = [delta_source(table, settings) for table in VIEW_BUILDERS]
    views = [build(delta_source(table, settings)) for table, build in VIEW_BUILDERS.items()]
    return [*ENTITIES, *sources, *views, *FEATURE_SERVICES]


def apply(settings: Settings) -> dict[str, Any]:
    """Register the feature repo in the store's registry and create online tables (idempotent).

    Like ``feast apply``, the repo is the source of truth for its project: entities, sources,
    views and services registered earlier but no longer in ``feature_repo/`` are deleted (with
    the online tables of deleted views).

    Returns:
        ``{"project", "feast_env", "entities", "feature_views", "feature_services", "deleted",
        "seconds"}`` (names as lists).
    """
    from feast import Entity, FeatureService, FeatureView

    started = time.perf_counter()
    store = get_store(settings)
    objects = repo_objects(settings)
    wanted = {(type(o).__name__, o.name) for o in objects}
    registered: list[Any] = [
        *store.list_entities(),
        *store.list_data_sources(),
        *store.list_feature_views(),
        *store.list_feature_services(),
    ]
    stale = [o for o in registered if (type(o).__name__, o.name) not in wanted]
    with contextlib.redirect_stdout(sys.stderr):
        store.apply(objects, objects_to_delete=stale, partial=not stale)

    def names(kind: type[Any]) -> list[str]:
        return sorted(str(o.name) for o in objects if type(o) is kind)

    return {
        "project": store.project,
        "feast_env": settings.feast_env,
        "entities": names(Entity),
        "feature_views": names(FeatureView),
        "feature_services": names(FeatureService),
        "deleted": sorted(f"{type(o).__name__}:{o.name}" for o in stale),
        "seconds": round(time.perf_counter() - started, 3),
    }


def teardown(settings: Settings) -> dict[str, Any]:
    """Remove this project's online values and registry entries; other projects are untouched.

    ``FeatureStore.teardown`` deletes *every* project of a shared registry, so it is never used.
    Local files (the embedded registry and SQLite database) stay; delete ``settings.feast`` to
    drop them.

    Returns:
        ``{"project", "feature_views", "entities"}``: what was torn down.
    """
    store = get_store(settings)
    views = store.list_feature_views()
    entities = store.list_entities()
    store._get_provider().teardown_infra(store.project, views, entities)
    registry = store.registry
    if any(p.name == store.project for p in store.list_projects()):
        registry.delete_project(store.project)
    engine = getattr(registry, "write_engine", None)
    if engine is not None:  # SQL registry: Feast's delete_project leaves the view version history
        from feast.infra.registry.sql import feature_view_version_history as history
        from sqlalchemy import delete

        with engine.begin() as conn:
            conn.execute(delete(history).where(history.c.project_id == store.project))
    return {
        "project": store.project,
        "feature_views": sorted(v.name for v in views),
        "entities": sorted(e.name for e in entities),
    }


# ---------------------------------------------------------------- materialize
def day_window(date: str) -> tuple[datetime, datetime]:
    """``[D 00:00, D+1 00:00)`` in UTC for the logical date ``D``.

    Raises:
        ValueError: naming the date when it is not ``YYYY-MM-DD``.
    """
    try:
        day = date_type.fromisoformat(date)
    except ValueError:
        raise ValueError(f"logical date {date!r} is not YYYY-MM-DD") from None
    if day.isoformat() != date:
        raise ValueError(f"logical date {date!r} is not YYYY-MM-DD")
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def watermark(view: FeatureView) -> datetime | None:
    """Latest end of the view's materialization intervals in the registry (UTC), if any."""
    ends = [end if end.tzinfo else end.replace(tzinfo=UTC) for _, end in view.materialization_intervals]
    return max(ends) if ends else None


def watermark_date(mark: datetime) -> str:
    """Logical date whose window ends at ``mark`` (the day of the instant just before it)."""
    return (mark.astimezone(UTC) - timedelta(microseconds=1)).date().isoformat()


def _delta_source(view: FeatureView) -> FileSource:
    """The view's batch source, which must be a Delta ``FileSource``.

    Raises:
        TypeError: naming the view when its source is anything else.
    """
    from feast import FileSource
    from feast.data_format import DeltaFormat

    source = view.batch_source
    if not isinstance(source, FileSource) or not isinstance(source.file_format, DeltaFormat):
        raise TypeError(f"feature view {view.name}: batch source {source!r} is not a Delta FileSource")
    return source


def _source_label(view: FeatureView) -> str:
    source = _delta_source(view)
    tags = source.tags or {}
    return f"{tags.get('layer', 'silver')}.{tags.get('table', source.name)}"


def _window_counts(view: FeatureView, start: datetime, end: datetime) -> tuple[int, int]:
    """Rows and distinct entities of the view's Delta source inside ``[start, end]``.

    Feast's offline pull takes the same bounds (both inclusive) and keeps the latest row per
    entity, so ``entities`` is the number of online keys the materialization writes.
    """
    import pyarrow.compute as pc
    import pyarrow.dataset as ds
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    path = _delta_source(view).path
    try:
        dataset = DeltaTable(path).to_pyarrow_dataset()
    except TableNotFoundError:
        raise FileNotFoundError(
            f"feature view {view.name}: Delta table {_source_label(view)} does not exist at {path}; "
            "run its feature job first"
        ) from None
    ts = ds.field(EVENT_TIMESTAMP)
    keys = [column.name for column in view.entity_columns]
    rows = dataset.to_table(columns=keys, filter=(ts >= start) & (ts <= end))
    if not rows.num_rows:
        return 0, 0
    if len(keys) == 1:
        return rows.num_rows, len(pc.unique(rows.column(keys[0])))
    return rows.num_rows, rows.group_by(keys).aggregate([]).num_rows


def _dt_window(view: FeatureView, date: str, end: datetime) -> tuple[datetime, int, int]:
    """Window start, rows and entities of a view whose ``dt=D`` rows carry earlier timestamps.

    Content rows are stamped with the upload time but written on the night the video is first
    seen; the window therefore starts at the earliest timestamp of the ``dt=D`` partition.
    """
    import pyarrow.compute as pc
    import pyarrow.dataset as ds
    from deltalake import DeltaTable

    keys = [column.name for column in view.entity_columns]
    dataset = DeltaTable(_delta_source(view).path).to_pyarrow_dataset()
    rows = dataset.to_table(columns=[*keys, EVENT_TIMESTAMP], filter=ds.field("dt") == date)
    if not rows.num_rows:
        return end, 0, 0
    first = pc.min(rows.column(EVENT_TIMESTAMP)).as_py()
    return first, rows.num_rows, len(pc.unique(rows.column(keys[0])))


def materialize(
    date: str,
    settings: Settings,
    feature_views: Sequence[str] | None = None,
    group: str = "features",
) -> dict[str, Any]:
    """Load logical date ``D``'s feature rows into the online store, never rolling it back.

    Materializes the window ``[D 00:00, D+1 00:00)`` UTC (silver rows carry ``event_timestamp =
    D 23:59:59``) for the views of ``group`` (``features``, ``content`` or ``outputs``; see
    :data:`feature_repo.feature_views.VIEW_GROUPS`), or for ``feature_views``. Content views
    (rows valid from the upload time) start their window at the earliest row of ``dt=D`` and
    are skipped when D brought no new video. A view whose watermark
    (see the module docstring) is later than ``D+1 00:00`` is skipped: its online values are
    already newer. Rerunning the watermark's own date rewrites the same values.

    Returns:
        ``{"date", "project", "online_store", "window": [start, end], "views": {name: {...}},
        "seconds"}``; each view reports ``status`` ``materialized`` (with ``rows``, ``entities``,
        ``table`` and ``seconds``) or ``skipped`` (with ``reason`` and ``watermark_date``).

    Raises:
        ValueError: for a malformed date, an unknown view, or a view whose source has no rows for
            ``D`` (the feature job did not run); nothing is materialized in that case.
        FileNotFoundError: when a view's Delta table does not exist.
    """
    started = time.perf_counter()
    start, end = day_window(date)
    store = get_store(settings)
    from feature_repo.feature_views import BY_DT_VIEWS, VIEW_GROUPS

    views = {view.name: view for view in store.list_feature_views(allow_cache=False)}
    if feature_views is None:
        if group not in VIEW_GROUPS:
            raise ValueError(
                f"materialize dt={date}: unknown view group {group!r}; known: {sorted(VIEW_GROUPS)}"
            )
        feature_views = [name for name in VIEW_GROUPS[group] if name in views]
    if feature_views is not None:
        unknown = sorted(set(feature_views) - set(views))
        if unknown:
            raise ValueError(
                f"materialize dt={date}: unknown feature view(s) {unknown}; registered: {sorted(views)}"
            )
        views = {name: views[name] for name in feature_views}
    if not views:
        raise ValueError(f"materialize dt={date}: project {store.project} has no feature views; run apply")

    report: dict[str, dict[str, Any]] = {}
    plan: list[tuple[FeatureView, datetime, int, int]] = []
    for name, view in sorted(views.items()):
        mark = watermark(view)
        if mark is not None and mark > end:
            at = watermark_date(mark)
            report[name] = {
                "status": "skipped",
                "reason": f"online store already at dt={at}",
                "watermark_date": at,
            }
            continue
        if name in BY_DT_VIEWS:
            first, rows, entities = _dt_window(view, date, end)
            if rows == 0:
                report[name] = {"status": "skipped", "reason": f"no new rows in dt={date}"}
                continue
            plan.append((view, min(first, start), rows, entities))
            continue
        rows, entities = _window_counts(view, start, end)
        if rows == 0:
            raise ValueError(
                f"materialize dt={date}: table {_source_label(view)} (feature view {name}) has no rows "
                f"with {EVENT_TIMESTAMP} in [{start.isoformat()}, {end.isoformat()}]; "
                "run its feature job for this date first"
            )
        plan.append((view, start, rows, entities))

    for view, view_start, rows, entities in plan:
        view_started = time.perf_counter()
        # Feast prints progress on stdout; keep stdout clean for JSON-printing callers.
        with contextlib.redirect_stdout(sys.stderr):
            store.materialize(start_date=view_start, end_date=end, feature_views=[view.name])
        report[view.name] = {
            "status": "materialized",
            "table": _source_label(view),
            "rows": rows,
            "entities": entities,
            "seconds": round(time.perf_counter() - view_started, 3),
        }
    return {
        "date": date,
        "project": store.project,
        "online_store": store.config.online_store.type,
        "window": [start.isoformat(), end.isoformat()],
        "views": dict(sorted(report.items())),
        "seconds": round(time.perf_counter() - started, 3),
    }


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
                if vector.statuses[0] in (FieldStatus.PRESENT, FieldStatus.OUTSIDE_MAX_AGE):
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


# ---------------------------------------------------------------- display
def _cell(value: Any, width: int = 60) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        head = ", ".join(str(v) for v in value[:5])
        text = f"[{head}{', ...' if len(value) > 5 else ''}] ({len(value)})"
    else:
        text = str(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def format_features(d: dict[str, Any]) -> str:
    """Render an :func:`online_features` result as aligned text, one block per feature view."""
    lines = [f"project {d.get('project')} ({d.get('online_store')} online store)"]
    views: dict[str, Any] = d.get("views", {})
    if not views:
        lines.append(
            "  no feature view serves " + ", ".join(f"{k}={v}" for k, v in d.get("entities", {}).items())
        )
    for name, view in views.items():
        entity = ", ".join(f"{k}={v}" for k, v in view["entity"].items())
        if not view["found"]:
            lines.append(f"\n{name}  {entity}: not in the online store")
            continue
        stamp = view["event_timestamp"]
        lines.append(f"\n{name}  {entity}  (as of {stamp})")
        width = max(len(f) for f in view["features"])
        for feature, value in view["features"].items():
            lines.append(f"  {feature:<{width}}  {_cell(value)}")
    return "\n".join(lines)
