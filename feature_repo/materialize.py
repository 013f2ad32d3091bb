"""Materialize one logical date's rows of a group of views into the online store, never rolling it back.

The nightly DAG calls :func:`materialize` three times, once per view group (:data:`VIEW_GROUPS`):
``feature_repo.materialize:materialize`` for the daily features, and :mod:`models.publish` for the
content embeddings and the model outputs. From the shell: ``python -m feature_repo.materialize
--date D`` (the ``features`` group, as the DAG's ``feast_materialize`` task).

Backfills and the online store. Feast's SQLite online store overwrites a key's values without
comparing event times, so materializing an older date after a newer one would roll the online
store back. :func:`materialize` therefore keeps a per-view *watermark*: the latest end of the
materialization intervals that the Feast registry records for the view. A date whose window ends
before the watermark is skipped for that view (``skipped: online store already at dt=X``);
rerunning the watermark's own date is allowed and rewrites the same values.

Before anything is written, each view's rows in the window are counted from its Delta table
(through :mod:`reelrec.lake`): a view without rows for D fails the whole call, naming the table.

Writers. The model outputs (:data:`BULK_VIEWS`) are written by :mod:`feature_repo.online_write`
(``writer="bulk"``, the default): the same Redis hashes / SQLite rows as Feast's materialization,
serialized from Arrow columns in bulk, and the same materialization interval recorded in the
registry (so the watermark above, ``feast`` and reelrec's status see the night as materialized),
at several times Feast's rate (benchmarks/publish.py). They are written together, so serving never
reads a user's list of one night with an embedding of another: on SQLite in one transaction, on
Redis in one ``MULTI``/``EXEC`` per batch of users (a user's views share one hash). Every other
view, and any window the bulk writer does not cover (a null feature value, an online store it
does not know), goes through ``FeatureStore.materialize``; ``writer="feast"`` sends every view there.

Feast is imported inside the functions: importing this module stays cheap for the DAG.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from feature_repo.store_config import open_store
from reelrec import faults, lake
from reelrec.catalog import DT, EVENT_TIMESTAMP, TABLES, Table
from reelrec.dates import day_bounds
from reelrec.jobs import run_job
from reelrec.settings import Settings

if TYPE_CHECKING:
    import pyarrow.dataset as ds
    from feast import FeatureStore, FeatureView

# Which DAG step materializes which views (``group=``):
#   features: the daily silver features, right after the "features" suite passed;
#   content:  content embeddings of the videos first seen on D (rows valid from their upload);
#   outputs:  the night's model outputs, only after the "outputs" suite passed (publishing).
VIEW_GROUPS: dict[str, tuple[str, ...]] = {
    "features": ("creator_daily_audience", "user_daily_engagement", "video_daily_performance"),
    "content": ("video_static_content",),
    "outputs": ("user_daily_candidates", "user_daily_embedding", "video_daily_embedding"),
}
WRITERS = ("bulk", "feast")
"""``bulk``: :mod:`feature_repo.online_write` for :data:`BULK_VIEWS`, else Feast; ``feast``: always Feast."""
BULK_VIEWS = frozenset(VIEW_GROUPS["outputs"])
"""Views the ``bulk`` writer publishes (tests/feature_repo/test_online_write.py: equal to Feast's)."""
BY_DT_VIEWS = frozenset(VIEW_GROUPS["content"])
"""Views whose rows are not stamped with the end of ``dt``: materialize the ``dt=D`` partition's rows."""


@dataclass(frozen=True)
class _Load:
    """One view to materialize: its window ``[start, end]``, the rows/entities it holds there, and the
    Delta snapshot they were counted in (the one the ``bulk`` writer publishes)."""

    view: FeatureView
    start: datetime
    rows: int
    entities: int
    dataset: ds.Dataset


# ---------------------------------------------------------------- watermarks
def watermark(view: FeatureView) -> datetime | None:
    """Latest end of the view's materialization intervals in the registry (UTC), if any."""
    ends = [end if end.tzinfo else end.replace(tzinfo=UTC) for _, end in view.materialization_intervals]
    return max(ends) if ends else None


def watermark_date(mark: datetime) -> str:
    """Logical date whose window ends at ``mark`` (the day of the instant just before it)."""
    return (mark.astimezone(UTC) - timedelta(microseconds=1)).date().isoformat()


# ---------------------------------------------------------------- a view's Delta rows
def source_table(view: FeatureView) -> Table:
    """The catalog table behind the view's batch source (a Delta ``FileSource`` tagged with its table).

    Raises:
        TypeError: naming the view when its source is anything else.
    """
    from feast import FileSource
    from feast.data_format import DeltaFormat

    source = view.batch_source
    if not isinstance(source, FileSource) or not isinstance(source.file_format, DeltaFormat):
        raise TypeError(f"feature view {view.name}: batch source {source!r} is not a Delta FileSource")
    name = (source.tags or {}).get("table")
    if name not in TABLES:
        raise TypeError(f"feature view {view.name}: source {source.name} is tagged with no catalog table")
    return TABLES[name]


def _label(table: Table) -> str:
    return f"{table.layer}.{table.name}"


def _dataset(view: FeatureView, settings: Settings) -> ds.Dataset:
    """The current snapshot of the view's Delta table as an Arrow dataset.

    Raises:
        FileNotFoundError: naming the view and the table when the table does not exist.
    """
    try:
        return lake.open_table(source_table(view), settings).to_pyarrow_dataset()
    except FileNotFoundError as err:
        raise FileNotFoundError(f"feature view {view.name}: {err}") from None


def _window_counts(view: FeatureView, dataset: ds.Dataset, start: datetime, end: datetime) -> tuple[int, int]:
    """Rows and distinct entities of the view's Delta table inside ``[start, end]``.

    Feast's offline pull takes the same bounds (both inclusive) and keeps the latest row per
    entity, so ``entities`` is the number of online keys the materialization writes.
    """
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    ts = ds.field(EVENT_TIMESTAMP)
    keys = [column.name for column in view.entity_columns]
    rows = dataset.to_table(columns=keys, filter=(ts >= start) & (ts <= end))
    if not rows.num_rows:
        return 0, 0
    if len(keys) == 1:
        return rows.num_rows, len(pc.unique(rows.column(keys[0])))
    return rows.num_rows, rows.group_by(keys).aggregate([]).num_rows


def _dt_window(view: FeatureView, dataset: ds.Dataset, date: str, end: datetime) -> tuple[datetime, int, int]:
    """Window start, rows and entities of a view whose ``dt=D`` rows carry earlier timestamps.

    Content rows are stamped with the upload time but written on the night the video is first
    seen; the window therefore starts at the earliest timestamp of the ``dt=D`` partition.
    """
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    keys = [column.name for column in view.entity_columns]
    rows = dataset.to_table(columns=[*keys, EVENT_TIMESTAMP], filter=ds.field(DT) == date)
    if not rows.num_rows:
        return end, 0, 0
    first = pc.min(rows.column(EVENT_TIMESTAMP)).as_py()
    return first, rows.num_rows, len(pc.unique(rows.column(keys[0])))


# ---------------------------------------------------------------- materialize
def _select_views(
    store: FeatureStore, date: str, feature_views: Sequence[str] | None, group: str
) -> dict[str, FeatureView]:
    """The registered views to materialize: ``feature_views`` if given, else the registered ones of ``group``.

    Raises:
        ValueError: for an unknown group or view, or a project without feature views.
    """
    views = {view.name: view for view in store.list_feature_views(allow_cache=False)}
    if feature_views is None:
        if group not in VIEW_GROUPS:
            raise ValueError(
                f"materialize dt={date}: unknown view group {group!r}; known: {sorted(VIEW_GROUPS)}"
            )
        feature_views = [name for name in VIEW_GROUPS[group] if name in views]
    unknown = sorted(set(feature_views) - set(views))
    if unknown:
        raise ValueError(
            f"materialize dt={date}: unknown feature view(s) {unknown}; registered: {sorted(views)}"
        )
    views = {name: views[name] for name in feature_views}
    if not views:
        raise ValueError(f"materialize dt={date}: project {store.project} has no feature views; run apply")
    return views


def _plan_loads(
    views: dict[str, FeatureView], date: str, settings: Settings
) -> tuple[list[_Load], dict[str, dict[str, Any]]]:
    """Decide per view (by name) whether D is loaded or skipped; nothing is written here.

    Returns:
        The loads to run, and the report entries of the skipped views.

    Raises:
        ValueError: naming the table when a view stamped with the end of ``dt`` has no rows for D.
    """
    start, end = day_bounds(date)
    loads: list[_Load] = []
    skipped: dict[str, dict[str, Any]] = {}
    for name, view in sorted(views.items()):
        mark = watermark(view)
        if mark is not None and mark > end:
            at = watermark_date(mark)
            skipped[name] = {
                "status": "skipped",
                "reason": f"online store already at dt={at}",
                "watermark_date": at,
            }
            continue
        dataset = _dataset(view, settings)
        if name in BY_DT_VIEWS:
            first, rows, entities = _dt_window(view, dataset, date, end)
            if rows == 0:
                skipped[name] = {"status": "skipped", "reason": f"no new rows in dt={date}"}
                continue
            loads.append(_Load(view, min(first, start), rows, entities, dataset))
            continue
        rows, entities = _window_counts(view, dataset, start, end)
        if rows == 0:
            raise ValueError(
                f"materialize dt={date}: table {_label(source_table(view))} (feature view {name}) "
                f"has no rows with {EVENT_TIMESTAMP} in [{start.isoformat()}, {end.isoformat()}]; "
                "run its feature job for this date first"
            )
        loads.append(_Load(view, start, rows, entities, dataset))
    return loads, skipped


def _write_loads(store: FeatureStore, loads: list[_Load], end: datetime, bulk: bool) -> str:
    """Write planned views over ``[load.start, end]``; which writer did (``bulk`` or ``feast``).

    ``bulk`` (:func:`feature_repo.online_write.write_views`) writes the views together (one SQLite
    transaction; on Redis, a user's views in one transaction per batch of users), in Feast's layout
    from Arrow columns, and records the materialization in the registry; a window it does not cover
    (a null value) goes through Feast, view by view.
    """
    from feature_repo import online_write

    views = [(load.view, load.dataset, load.start) for load in loads]
    if bulk and online_write.write_views(store, views, end) is not None:
        return "bulk"
    # Feast prints progress on stdout; keep stdout clean for JSON-printing callers.
    with contextlib.redirect_stdout(sys.stderr):
        for load in loads:
            store.materialize(start_date=load.start, end_date=end, feature_views=[load.view.name])
    return "feast"


def _run_loads(
    store: FeatureStore, loads: list[_Load], end: datetime, writer: str, settings: Settings, date: str
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Materialize the planned views over ``[load.start, end]``: the bulk writer's views in one step
    (:func:`_write_loads`), then each other view alone.

    Returns:
        The report entry of each view and the writer that wrote it, both by view name.
    """
    from feature_repo import online_write

    def bulk_ok(load: _Load) -> bool:
        name = load.view.name
        return writer == "bulk" and name in BULK_VIEWS and online_write.supported(store, load.view) is None

    together = [load for load in loads if bulk_ok(load)]
    steps = ([together] if together else []) + [[load] for load in loads if not bulk_ok(load)]
    report: dict[str, dict[str, Any]] = {}
    writers: dict[str, str] = {}
    for step in steps:
        for load in step:  # a crash here: the views of earlier steps are written, these not
            faults.point("materialize.view", settings, date=date, view=load.view.name)
        started = time.perf_counter()
        used = _write_loads(store, step, end, bulk=step is together)
        for load in step:
            writers[load.view.name] = used
            report[load.view.name] = {
                "status": "materialized",
                "table": _label(source_table(load.view)),
                "rows": load.rows,
                "entities": load.entities,
                "seconds": round(time.perf_counter() - started, 3),
            }
    return report, writers


def materialize(
    date: str,
    settings: Settings,
    feature_views: Sequence[str] | None = None,
    group: str = "features",
    writer: str = "bulk",
) -> dict[str, Any]:
    """Load logical date ``D``'s feature rows into the online store, never rolling it back.

    Materializes the window ``[D 00:00, D+1 00:00)`` UTC (silver rows carry ``event_timestamp =
    D 23:59:59``) for the views of ``group`` (``features``, ``content`` or ``outputs``; see
    :data:`VIEW_GROUPS`), or for ``feature_views``. Content views (rows valid from the upload
    time) start their window at the earliest row of ``dt=D`` and are skipped when D brought no
    new video. A view whose watermark (see the module docstring) is later than ``D+1 00:00`` is
    skipped: its online values are already newer. Rerunning the watermark's own date rewrites
    the same values.

    ``writer="bulk"`` (the default) writes the model outputs (:data:`BULK_VIEWS`) through
    :mod:`feature_repo.online_write`: Feast's exact layout from Arrow columns, the materialization
    recorded in the registry as Feast does; the other views go through Feast. ``writer="feast"``
    materializes every view through ``FeatureStore.materialize``.

    Returns:
        ``{"date", "project", "online_store", "window": [start, end], "views": {name: {...}},
        "writers": {name: "bulk" | "feast"}, "seconds"}``; each view reports ``status``
        ``materialized`` (with ``rows``, ``entities``, ``table`` and ``seconds``; ``writers`` names
        who wrote it) or ``skipped`` (with ``reason`` and ``watermark_date``).

    Raises:
        ValueError: for a malformed date, an unknown view or writer, or a view whose source has no
            rows for ``D`` (the feature job did not run); nothing is materialized in that case.
        FileNotFoundError: when a view's Delta table does not exist.
    """
    started = time.perf_counter()
    start, end = day_bounds(date)
    if writer not in WRITERS:
        raise ValueError(f"materialize dt={date}: unknown writer {writer!r}; known: {list(WRITERS)}")
    store = open_store(settings)
    views = _select_views(store, date, feature_views, group)
    loads, report = _plan_loads(views, date, settings)
    written, writers = _run_loads(store, loads, end, writer, settings, date)
    report |= written
    return {
        "date": date,
        "project": store.project,
        "online_store": store.config.online_store.type,
        "window": [start.isoformat(), end.isoformat()],
        "views": dict(sorted(report.items())),
        "writers": dict(sorted(writers.items())),
        "seconds": round(time.perf_counter() - started, 3),
    }


def main(date: str, settings: Settings) -> dict[str, Any]:
    """``python -m feature_repo.materialize --date D``: materialize D's daily features."""
    return materialize(date, settings)


if __name__ == "__main__":
    raise SystemExit(run_job(main, "Materialize night D's daily features into the online store."))
