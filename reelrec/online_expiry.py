"""Lists too old to serve: the age rule, and removing expired rows from the online store.

The rule. A user's list (view ``user_daily_candidates``) is *expired* when it was generated more
than :func:`max_age` (``REELREC_ONLINE_MAX_AGE_DAYS``, default 7 days) before the default list that
is online (the ``__default__`` row, which every published night rewrites): a user whom a week of
nights no longer scored gets the default list, flagged as a fallback, instead of a list that says
nothing about the feed of today. The reference is the default list's ``generated_at``, not the wall
clock: the rule reads two stored values, serves the same answer whenever it is asked, and a rollback
(which republishes an older night's default list with its lists) moves the reference with it. Nights
run back to back (a backfill, the synthetic demo's past dates) are generated minutes apart, so
nothing expires there; in production the nights are a day apart and the rule means days.

:func:`expired` is the rule as a function of the two ``generated_at`` values (serving calls it for
a row not removed yet); :func:`expire` removes the rows it names from the store, so serving's
existing fallback for absent users answers them:

- views ``user_daily_candidates`` and ``user_daily_embedding`` (a user's list and embedding are one
  answer of one model version: both go), each judged by its own ``generated_at``;
- SQLite: Feast's table ``<project>_<view>``, one row per (entity key, feature): the expired users'
  rows are deleted in one ``BEGIN IMMEDIATE`` transaction that also reads the ages, so a publish
  cannot slip a fresh row in between;
- Redis: one hash per entity (``serialize_entity_key + project``), shared by every view keyed by
  the user: only the view's fields (``_ts:<view>`` and ``mmh3("<view>:<feature>")``) are deleted,
  by a Lua script that first checks the stored ``generated_at`` is still the one judged expired;
- the ``__default__`` row is never removed. Rows without a ``generated_at`` (a rollback's cleared
  users, already answered as absent) are left as they are.

Reported per view: users (entities) removed, stored values removed, and their bytes (key, field
and value bytes as stored; SQLite keeps its file size until a ``VACUUM``, which is not run here).

Feast is imported inside the functions: importing this module stays cheap for serving.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from reelrec.catalog import DEFAULT_LIST_KEY, GENERATED_AT, USER_ID
from reelrec.settings import Settings

if TYPE_CHECKING:
    from feast import FeatureStore

CANDIDATES_VIEW = "user_daily_candidates"
VIEWS = (CANDIDATES_VIEW, "user_daily_embedding")
DEFAULT_MAX_AGE_DAYS = 7.0
REDIS_BATCH = 500

_DELETE_IF_UNCHANGED = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return {0, 0} end
local size = 0
local removed = 0
for i = 3, #ARGV do
  local n = redis.call('HSTRLEN', KEYS[1], ARGV[i])
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 1 then
    size = size + n + string.len(ARGV[i])
    removed = removed + 1
  end
end
redis.call('HDEL', KEYS[1], unpack(ARGV, 3))
return {removed, size}
"""
"""Delete a view's fields of one hash (KEYS[1]) if field ARGV[1] still holds ARGV[2]: {values, bytes}."""


def max_age() -> timedelta:
    """How much older than the online default list a user's list may be: ``REELREC_ONLINE_MAX_AGE_DAYS``."""
    days = float(os.environ.get("REELREC_ONLINE_MAX_AGE_DAYS", DEFAULT_MAX_AGE_DAYS))
    if days <= 0:
        raise ValueError(f"REELREC_ONLINE_MAX_AGE_DAYS must be positive, got {days}")
    return timedelta(days=days)


def _as_datetime(value: datetime | str | int | float) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def expired(
    generated_at: datetime | str | int | float | None,
    reference: datetime | str | int | float | None,
    age: timedelta | None = None,
) -> bool:
    """Whether a list generated at ``generated_at`` is too old next to the default list's ``reference``.

    Args:
        generated_at: the list's ``generated_at`` (datetime, ISO string or epoch seconds).
        reference: the online default list's ``generated_at``; ``None`` (no default list): never expired.
        age: the largest allowed difference (:func:`max_age` when ``None``).
    """
    if generated_at is None or reference is None:
        return False
    return _as_datetime(generated_at) < _as_datetime(reference) - (age or max_age())


def _entity_key(store: FeatureStore, user_id: str) -> bytes:
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    key = EntityKey(join_keys=[USER_ID], entity_values=[Value(string_val=user_id)])
    return serialize_entity_key(
        key, entity_key_serialization_version=store.config.entity_key_serialization_version
    )


def _seconds(blob: bytes | None) -> int | None:
    """The epoch seconds of a stored ``ValueProto`` timestamp, ``None`` when absent or unset."""
    if not blob:
        return None
    from feast.protos.feast.types.Value_pb2 import Value

    value = Value()
    value.ParseFromString(blob)
    return value.unix_timestamp_val if value.WhichOneof("val") == "unix_timestamp_val" else None


def expire(
    settings: Settings, dry_run: bool = False, store: FeatureStore | None = None, age: timedelta | None = None
) -> dict[str, Any]:
    """Remove the expired users' rows of :data:`VIEWS` from the online store (see the module docstring).

    Returns:
        ``{"store", "reference", "cutoff", "views": {view: {"users", "values", "bytes"}}, "bytes"}``;
        ``reference`` is ``None`` (and nothing is removed) while no default list is online.
    """
    if store is None:
        from reelrec.feast_store import get_store

        store = get_store(settings)
    age = age or max_age()
    kind = store.config.online_store.type
    views = {view.name: view for view in store.list_feature_views(allow_cache=False) if view.name in VIEWS}
    if kind == "sqlite":
        reference, views_out = _sqlite(store, views, age, dry_run)
    elif kind == "redis":
        reference, views_out = _redis(store, views, age, dry_run)
    else:
        raise ValueError(f"online expiry: online store type {kind!r} is not supported (sqlite, redis)")
    return {
        "store": kind,
        "max_age_days": age.total_seconds() / 86400,
        "reference": _as_datetime(reference).isoformat() if reference is not None else None,
        "cutoff": (_as_datetime(reference) - age).isoformat() if reference is not None else None,
        "views": views_out,
        "bytes": sum(v["bytes"] for v in views_out.values()),
    }


def _sqlite(
    store: FeatureStore, views: dict[str, Any], age: timedelta, dry_run: bool
) -> tuple[int | None, dict[str, dict[str, int]]]:
    from feast.infra.online_stores.sqlite import SqliteOnlineStore, _quote_id, _table_id

    default = _entity_key(store, DEFAULT_LIST_KEY)
    conn = SqliteOnlineStore()._get_conn(store.config)
    out: dict[str, dict[str, int]] = {}
    reference: int | None = None
    try:
        conn.execute("BEGIN IMMEDIATE")  # ages read and rows deleted as one write transaction
        tables = {name: _quote_id(_table_id(store.project, view)) for name, view in views.items()}
        existing = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        tables = {name: table for name, table in tables.items() if table.strip('"') in existing}
        if CANDIDATES_VIEW in tables:
            row = conn.execute(
                f"SELECT value FROM {tables[CANDIDATES_VIEW]} WHERE entity_key = ? AND feature_name = ?",
                (default, GENERATED_AT),
            ).fetchone()
            reference = _seconds(row[0]) if row else None
        for name, table in sorted(tables.items()):
            stale = []
            if reference is not None:
                ages = conn.execute(
                    f"SELECT entity_key, value FROM {table} WHERE feature_name = ? AND entity_key != ?",
                    (GENERATED_AT, default),
                )
                stale = [(key,) for key, value in ages if expired(_seconds(value), reference, age)]
            values = size = 0
            for (key,) in stale:
                count, stored = conn.execute(
                    f"SELECT COUNT(*), COALESCE(SUM(LENGTH(entity_key) + LENGTH(feature_name) + "
                    f"LENGTH(value)), 0) FROM {table} WHERE entity_key = ?",
                    (key,),
                ).fetchone()
                values, size = values + count, size + stored
            if stale and not dry_run:
                conn.executemany(f"DELETE FROM {table} WHERE entity_key = ?", stale)
            out[name] = {"users": len(stale), "values": values, "bytes": size}
        conn.commit()
    finally:
        conn.close()
    return reference, out


def _redis(
    store: FeatureStore, views: dict[str, Any], age: timedelta, dry_run: bool
) -> tuple[int | None, dict[str, dict[str, int]]]:
    from feast.infra.online_stores.helpers import _mmh3
    from feast.infra.online_stores.redis import RedisOnlineStore

    project = store.project.encode()
    default = _entity_key(store, DEFAULT_LIST_KEY) + project
    ages = {name: _mmh3(f"{name}:{GENERATED_AT}") for name in views}
    fields = {
        name: [f"_ts:{name}".encode(), *(_mmh3(f"{name}:{f.name}") for f in view.features)]
        for name, view in views.items()
    }
    out = {name: {"users": 0, "values": 0, "bytes": 0} for name in views}
    client = RedisOnlineStore()._get_client(store.config.online_store)
    try:
        delete = client.register_script(_DELETE_IF_UNCHANGED)
        stamp = client.hget(default, ages[CANDIDATES_VIEW]) if CANDIDATES_VIEW in ages else None
        reference = _seconds(stamp)
        if reference is None:
            return None, out
        keys = [k for k in client.scan_iter(match=b"*" + project, count=1000) if k.endswith(project)]
        keys = [k for k in keys if k != default]
        names = sorted(views)
        for start in range(0, len(keys), REDIS_BATCH):
            batch = keys[start : start + REDIS_BATCH]
            with client.pipeline(transaction=False) as pipe:
                for key in batch:
                    pipe.hmget(key, [ages[name] for name in names])
                stored = pipe.execute()
            for key, values in zip(batch, stored, strict=True):
                for name, blob in zip(names, values, strict=True):
                    if not expired(_seconds(blob), reference, age):
                        continue
                    if dry_run:
                        lengths = [
                            (client.hstrlen(key, f), f) for f in fields[name] if client.hexists(key, f)
                        ]
                        removed, size = len(lengths), sum(n + len(f) for n, f in lengths)
                    else:
                        removed, size = delete(keys=[key], args=[ages[name], blob, *fields[name]])
                    if removed:
                        out[name]["users"] += 1
                        out[name]["values"] += int(removed)
                        out[name]["bytes"] += int(size)
    finally:
        client.close()
    return reference, out
