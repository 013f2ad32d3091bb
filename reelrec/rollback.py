"""Roll the online store back to an earlier model version, from the gold tables (Delta time travel).

Every night's model outputs stay in the gold tables (``gold.candidates``, ``gold.user_embeddings``,
``gold.video_embeddings``), and a rerun that replaced a night's partition left the older rows in
the tables' Delta history. :func:`rollback` therefore needs nothing but the version name:

1. the night: the release record's night (:mod:`reelrec.releases`), else the latest ``dt`` whose rows
   carry the version;
2. per gold table, the newest Delta version at which that night's partition still holds rows of the
   version (the current one, unless a rerun replaced them: then time travel), and exactly those rows;
3. those rows are written to the Feast online views that publish the table (``user_daily_candidates``,
   ``user_daily_embedding``, ``video_daily_embedding``) with their own ``model_version`` and
   ``generated_at``, so :func:`reelrec.serving.recommend` answers what the version published;
4. the serving pointer moves to the version (reason ``rollback``).

The online timestamp of a rollback. The rows keep their lists, versions and ``generated_at``, but not
their ``event_timestamp``: Feast's Redis store ignores a write whose event time is not newer than what
it holds (SQLite overwrites whatever it holds), and the rolled-back night is older than what is online.
Rows are written with a *rollback stamp*: one second after the latest of (the outputs views'
materialization watermark, i.e. the end of the latest published night's window; the latest
``event_timestamp`` of the rows written; the previous rollback's stamp, kept in the serving
pointer's history). That wins on both stores, and the next night's publish (rows stamped at the end
of the next ``dt``) still wins over the rollback. Wall-clock "now" would not do: on a backfill or the
synthetic worlds' past dates it lies after every later night, and Redis would then silently refuse
all of them. The cost: republishing a night that was already online before the rollback (e.g. a held
night forced after it) loses on Redis; republish such a night with ``reelrec rollback --to`` instead.

Entities the version did not score. A user (or video) that a night at or after the rolled-back one
scored, but that the version's rows do not hold, would keep a newer version's list or embedding,
mixing model versions (for embeddings: vector spaces). Their online values are cleared (written empty
with the rollback stamp), so serving answers ``found: False`` for them, as for a user never scored.
Entities seen only before that night keep what they had when the version was published.

Feast is imported inside the functions: importing this module stays cheap for the CLI.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from reelrec import lake, releases
from reelrec.catalog import (
    CANDIDATES,
    DT,
    EVENT_TIMESTAMP,
    GOLD_TABLES,
    MODEL_VERSION,
    USER_EMBEDDINGS,
    VIDEO_EMBEDDINGS,
    Table,
)
from reelrec.errors import DataError
from reelrec.settings import Settings

if TYPE_CHECKING:
    from feast import FeatureStore

# The Feast view that publishes each gold table (defined in feature_repo.feature_views).
VIEWS: dict[str, str] = {
    CANDIDATES.name: "user_daily_candidates",
    USER_EMBEDDINGS.name: "user_daily_embedding",
    VIDEO_EMBEDDINGS.name: "video_daily_embedding",
}
STAMP_STEP = timedelta(seconds=1)


class UnknownVersionError(DataError, KeyError):
    """No gold rows carry the requested model version."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def _key(table: Table) -> str:
    return table.key[0]


def known_versions(settings: Settings) -> list[str]:
    """Model versions with a release record or rows in the current gold snapshots, sorted."""
    found = {r.version for r in releases.releases(settings)}
    for table in GOLD_TABLES:
        if lake.exists(table, settings):
            column = lake.read(table, settings, columns=[MODEL_VERSION]).column(0)
            found |= set(pc.unique(column).to_pylist())
    return sorted(found)


def _version_rows(table: Table, settings: Settings, at: int, version: str, night: str | None) -> pa.Table:
    """Rows of ``version`` (in ``night`` if given) in ``table`` as of Delta version ``at``."""
    flt = pc.field(MODEL_VERSION) == version
    if night is not None:
        flt = flt & (pc.field(DT) == night)
    dataset = lake.open_table(table, settings, version=at).to_pyarrow_dataset()
    try:
        return dataset.to_table(columns=table.columns, filter=flt)
    except OSError as err:  # a file of an old version was vacuumed away
        raise DataError(
            f"rollback to {version}: {table.layer}.{table.name} at Delta version {at} is no longer "
            f"readable ({err}); its history was vacuumed"
        ) from err


def find_rows(
    table: Table, settings: Settings, version: str, night: str | None
) -> tuple[int, pa.Table] | None:
    """The newest Delta version of ``table`` holding rows of ``version`` (in ``night``), and those rows.

    With ``night=None``, the rows of the latest ``dt`` that carries the version at that Delta version.
    ``None`` when no version of the table holds any.
    """
    if not lake.exists(table, settings):
        return None
    for at in range(lake.open_table(table, settings).version(), -1, -1):
        rows = _version_rows(table, settings, at, version, night)
        if rows.num_rows:
            if night is None:
                latest = pc.max(rows.column(DT)).as_py()
                rows = rows.filter(pc.equal(rows.column(DT), latest))
            return at, rows
    return None


def _night(settings: Settings, version: str) -> str:
    """The night whose rows ``version`` produced (release record first, else the gold rows).

    Raises:
        UnknownVersionError: naming the version and the known ones.
    """
    release = releases.get_release(settings, version)
    if release is not None:
        return release.night
    found = find_rows(CANDIDATES, settings, version, None)
    if found is None:
        raise UnknownVersionError(
            f"rollback: no release and no gold.candidates rows of model version {version!r} (in any Delta "
            f"version); known versions: {known_versions(settings)}"
        )
    return str(found[1].column(DT)[0].as_py())


def _gather(settings: Settings, version: str, night: str) -> dict[str, tuple[int, pa.Table]]:
    """Per gold table name: the Delta version read and the rows of ``version`` in ``night``.

    Raises:
        UnknownVersionError: when no gold table holds rows of the version in that night.
        DataError: when some gold tables hold them and others do not (naming which).
    """
    found = {t.name: find_rows(t, settings, version, night) for t in GOLD_TABLES}
    missing = sorted(name for name, rows in found.items() if rows is None)
    if len(missing) == len(found):
        raise UnknownVersionError(
            f"rollback: no gold rows of model version {version!r} in dt={night} (in any Delta version); "
            f"known versions: {known_versions(settings)}"
        )
    if missing:
        raise DataError(
            f"rollback to {version} (dt={night}): gold table(s) {['gold.' + m for m in missing]} hold no "
            "rows of that version in any Delta version; refusing a partial rollback"
        )
    return {name: rows for name, rows in found.items() if rows is not None}


def _stale_keys(table: Table, settings: Settings, night: str, keep: pa.Array) -> list[str]:
    """Keys that the current snapshot holds for ``night`` or later but the rolled-back rows do not."""
    key = _key(table)
    current = lake.read(table, settings, columns=[key, DT])
    later = pc.unique(current.filter(pc.greater_equal(current.column(DT), night)).column(key))
    return sorted(pc.filter(later, pc.invert(pc.is_in(later, value_set=keep))).to_pylist())


def rollback_stamp(settings: Settings, store: FeatureStore, rows: list[pa.Table]) -> datetime:
    """The event time the rollback writes with (see the module docstring): later than what is online."""
    from datetime import UTC

    marks: list[datetime] = []
    for view in VIEWS.values():
        for _, end in store.get_feature_view(view).materialization_intervals:
            marks.append(end if end.tzinfo else end.replace(tzinfo=UTC))
    marks += [pc.max(t.column(EVENT_TIMESTAMP)).as_py() for t in rows if t.num_rows]
    pointer = releases.serving_pointer(settings) or {}
    for move in pointer.get("history", []):
        stamp = (move.get("details") or {}).get("online_timestamp")
        if stamp:
            marks.append(datetime.fromisoformat(stamp))
    return max(m if m.tzinfo else m.replace(tzinfo=UTC) for m in marks) + STAMP_STEP


def _clear(store: FeatureStore, view_name: str, key: str, ids: list[str], stamp: datetime) -> None:
    """Write empty values for ``ids`` in ``view_name`` at ``stamp``: the store then holds nothing for them.

    Feast's ``write_to_online_store`` refuses all-null rows, so this goes one level down, to the
    provider's ``online_write_batch`` (what materialization itself calls), with unset values.
    """
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    view = store.get_feature_view(view_name)
    batch: list[tuple[EntityKey, dict[str, Value], datetime, datetime | None]] = [
        (
            EntityKey(join_keys=[key], entity_values=[Value(string_val=entity)]),
            {feature.name: Value() for feature in view.features},
            stamp,
            None,
        )
        for entity in ids
    ]
    if batch:
        store.provider.online_write_batch(store.config, view, batch, progress=None)


def _write(store: FeatureStore, view_name: str, rows: pa.Table, stamp: datetime) -> None:
    """Write ``rows`` (their ``dt`` dropped) to ``view_name`` with ``event_timestamp = stamp``."""
    frame = rows.drop_columns([DT]).to_pandas()
    frame[EVENT_TIMESTAMP] = stamp
    store.write_to_online_store(view_name, frame)


def rollback(settings: Settings, to_version: str, store: FeatureStore | None = None) -> dict[str, Any]:
    """Republish ``to_version``'s lists and embeddings from the gold tables and make it the serving version.

    Args:
        settings: which lake, Feast store and models folder.
        to_version: a ``model_version`` of gold rows (``reelrec models list`` shows them).
        store: an open ``FeatureStore`` (``get_store(settings)`` when ``None``).

    Returns:
        Facts: ``{"version", "night", "previous", "online_timestamp", "tables": {table: {"view",
        "delta_version", "time_travel", "rows", "cleared"}}, "seconds"}``.

    Raises:
        UnknownVersionError: naming the version and the known versions when no gold rows carry it.
        DataError: when only some gold tables hold the version's rows, or their history was vacuumed.
    """
    started = time.perf_counter()
    night = _night(settings, to_version)
    found = _gather(settings, to_version, night)
    if store is None:
        from reelrec.feast_store import get_store

        store = get_store(settings)
    stamp = rollback_stamp(settings, store, [rows for _, rows in found.values()])
    tables: dict[str, dict[str, Any]] = {}
    for table in GOLD_TABLES:
        at, rows = found[table.name]
        stale = _stale_keys(table, settings, night, rows.column(_key(table)))
        _write(store, VIEWS[table.name], rows, stamp)
        _clear(store, VIEWS[table.name], _key(table), stale, stamp)
        tables[table.name] = {
            "view": VIEWS[table.name],
            "delta_version": at,
            "time_travel": at != lake.version(table, settings),
            "rows": rows.num_rows,
            "cleared": len(stale),
        }
    previous = releases.serving_pointer(settings)
    if releases.get_release(settings, to_version) is None:  # published before releases were recorded
        releases.record_release(
            settings, releases.Release(version=to_version, night=night, published_at=releases.now_iso())
        )
    releases.set_serving(settings, to_version, "rollback", {"online_timestamp": stamp.isoformat()})
    return {
        "version": to_version,
        "night": night,
        "previous": previous["version"] if previous else None,
        "online_timestamp": stamp.isoformat(),
        "tables": tables,
        "seconds": round(time.perf_counter() - started, 3),
    }
