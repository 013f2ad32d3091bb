"""Content fingerprints of the lake and the online store: "equal to a clean run's" made checkable.

The reliability suites (crashes, reruns, backfills) compare what a night left behind with what a
clean run leaves: not row counts, the rows themselves.

- :func:`lake_fingerprint`: per Delta table, a SHA-256 of its current snapshot's rows (read through
  the Delta log, as every reader does, so files the log does not name never count), order-free:
  each row is serialized canonically and the sorted serializations are hashed.
- :func:`online_fingerprint`: per feature view, a SHA-256 of every value the online store holds for
  it (entity key, feature, value bytes, event time), read from the store's own layout: Feast's
  ``<project>_<view>`` tables on SQLite, the project's hashes on Redis.
- :func:`models_fingerprint`: per file under ``models/``, a SHA-256 of its bytes (a night's pointer
  by the version it names); model versions are hashes of the weights, so equal files mean equal
  versions.

Columns that record *when* a job ran rather than what it computed (:data:`WALL_CLOCK`, e.g. the
scoring job's ``generated_at``) are left out of both: two correct runs differ there by design.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from reelrec import lake
from reelrec.catalog import ALL_TABLES, GENERATED_AT, Table
from reelrec.settings import Settings

if TYPE_CHECKING:
    from feast import FeatureStore

WALL_CLOCK = frozenset({GENERATED_AT})
"""Columns/features stamped with the wall-clock time of the job that wrote them."""


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, float) and value != value:  # NaN: json.dumps writes it, but NaN != NaN
        return "NaN"
    if isinstance(value, list | tuple):
        return [_canonical(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): _canonical(item) for key, item in value.items()}
    return value


def _digest(lines: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    count = 0
    for line in sorted(lines):
        digest.update(line)
        digest.update(b"\n")
        count += 1
    return f"{count}:{digest.hexdigest()}"


def table_fingerprint(table: Table, settings: Settings, version: int | None = None) -> str | None:
    """``"<rows>:<sha256>"`` of ``table``'s snapshot (``version`` for time travel); None when absent."""
    if not lake.exists(table, settings):
        return None
    columns = [name for name in table.columns if name not in WALL_CLOCK]
    rows = lake.read(table, settings, columns=columns, version=version).to_pylist()
    return _digest(json.dumps(_canonical(row), sort_keys=True).encode() for row in rows)


def lake_fingerprint(settings: Settings, tables: Iterable[Table] = ALL_TABLES) -> dict[str, str | None]:
    """:func:`table_fingerprint` of each table, keyed ``layer.name``."""
    return {f"{table.layer}.{table.name}": table_fingerprint(table, settings) for table in tables}


# ---------------------------------------------------------------- models
def models_fingerprint(settings: Settings, skip: Iterable[str] = ()) -> dict[str, str]:
    """Per file under ``REELREC_HOME/models``: the SHA-256 of its bytes, keyed by its relative path.

    A night's pointer (``<model>/dt=D.json``) counts by the version it names (it also holds the
    absolute path of the version folder, which differs between two homes). Files named in ``skip``
    (e.g. ``training.json``, which records seconds) are left out.
    """
    root, skipped, out = settings.models, set(skip), {}
    for path in sorted(root.rglob("*")) if root.is_dir() else []:
        if not path.is_file() or path.name in skipped:
            continue
        key = path.relative_to(root).as_posix()
        body = path.read_bytes()
        pointer = json.loads(body) if path.name.startswith("dt=") and path.suffix == ".json" else None
        if isinstance(pointer, dict) and "model_version" in pointer:
            out[key] = str(pointer["model_version"])
        else:
            out[key] = hashlib.sha256(body).hexdigest()
    return out


# ---------------------------------------------------------------- online store
def online_fingerprint(settings: Settings, store: FeatureStore | None = None) -> dict[str, str]:
    """Per registered feature view, ``"<values>:<sha256>"`` of what the online store holds for it.

    A view the store holds nothing for gets ``"0:<sha256 of nothing>"``, so a view written by one
    run and not the other shows up as a difference.
    """
    from reelrec.feast_store import get_store

    store = store or get_store(settings)
    views = {view.name: view for view in store.list_feature_views(allow_cache=False)}
    kind = store.config.online_store.type
    if kind == "sqlite":
        return _sqlite(store, views)
    if kind == "redis":
        return _redis(store, views)
    raise ValueError(f"online_fingerprint: online store type {kind!r} is not supported (sqlite, redis)")


def _sqlite(store: FeatureStore, views: Mapping[str, Any]) -> dict[str, str]:
    from feast.infra.online_stores.sqlite import SqliteOnlineStore, _quote_id, _table_id

    conn = SqliteOnlineStore()._get_conn(store.config)
    try:
        out = {}
        for name, view in sorted(views.items()):
            table = _table_id(store.project, view)
            exists = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
            ).fetchone()
            rows = (
                conn.execute(f"SELECT entity_key, feature_name, value, event_ts FROM {_quote_id(table)}")
                if exists
                else []
            )
            out[name] = _digest(
                json.dumps(_canonical(list(row))).encode() for row in rows if row[1] not in WALL_CLOCK
            )
        return out
    finally:
        conn.close()


def _redis(store: FeatureStore, views: Mapping[str, Any]) -> dict[str, str]:
    from feast.infra.online_stores.helpers import _mmh3
    from feast.infra.online_stores.redis import RedisOnlineStore

    fields: dict[bytes, tuple[str, str]] = {}
    for name, view in views.items():
        fields[f"_ts:{name}".encode()] = (name, "_ts")
        for feature in view.features:
            fields[_mmh3(f"{name}:{feature.name}")] = (name, feature.name)
    lines: dict[str, list[bytes]] = {name: [] for name in views}
    client = RedisOnlineStore()._get_client(store.config.online_store)
    project = store.project.encode()
    try:
        for key in client.scan_iter(match=b"*" + project, count=1000):
            if not key.endswith(project):
                continue
            for field, value in client.hgetall(key).items():
                view, feature = fields.get(field, (None, None))
                if view is None or feature in WALL_CLOCK:
                    continue
                lines[view].append(json.dumps([key.hex(), feature, value.hex()]).encode())
    finally:
        client.close()
    return {name: _digest(lines[name]) for name in sorted(lines)}


def differences(left: Mapping[str, Any], right: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The keys whose fingerprints differ (either side missing counts), with both values."""
    return {
        key: (left.get(key), right.get(key))
        for key in sorted(set(left) | set(right))
        if left.get(key) != right.get(key)
    }
