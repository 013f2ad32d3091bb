"""Publish a view's night straight into Feast's online store, byte for byte as materialization does.

Feast's materialization of one night of model outputs spends most of its time in Python, per value:
the pandas dedup of the offline pull, one ``ValueProto`` object per feature value built from numpy
objects (``feast.utils._convert_arrow_to_proto``), the entity key serialized per row, and on Redis a
pipeline that reads every key's stored event time before it writes (benchmarks/publish.py measured
5% of the rate of raw pipelined HSETs of the same bytes on Redis, 13% of one-transaction upserts on
SQLite). :func:`write_view` writes the same layout from Arrow columns in bulk:

* the rows of the window ``[start, end]`` (both inclusive, as Feast's offline pull) are read from
  the view's Delta snapshot, and the latest row per entity is kept (Feast's dedup);
* each feature column is serialized to ``ValueProto`` bytes with Arrow kernels (the protobuf wire
  format: a field tag, a varint length, the payload; a float list is one packed run of float32),
  the entity keys as ``serialize_entity_key`` (version 3) lays them out;
* Redis: one hash per entity at ``serialize_entity_key(...) + project``, a field ``_mmh3("view:feature")``
  per feature and ``_ts:<view>`` with the event time (a protobuf ``Timestamp``); Feast's event-time
  rule holds, but for one case: a hash whose stored event time is newer is left as it is, while an
  equal one (a rerun of the same night) is rewritten, as SQLite rewrites it. Two small Lua
  scripts do the Redis side a batch of hashes per call (read the stored event times; HSET the
  newer rows), their commands RESP-encoded from the Arrow columns, so no Python object is built
  per value. Views keyed alike (a user's list and embedding) are written in batches of entities,
  each batch one ``MULTI``/``EXEC``, so a reader never sees one view of a user from one night and
  another from the next (:func:`write_views`);
* SQLite: Feast's table ``<project>_<view>``, one row per (entity key, feature), written with Feast's
  own upsert, every view of the call in one transaction;
* the registry records the materialization interval (and the view's state moves through
  ``MATERIALIZING`` to ``AVAILABLE_ONLINE``) exactly as ``FeatureStore.materialize`` does, so Feast
  and :func:`feature_repo.materialize.watermark` see the night as materialized.

:func:`supported` says when this path applies: one string join key, features of the types below, a
``redis`` (plain, not cluster or sentinel, event times compared: no ``skip_dedup``) or ``sqlite``
online store without feature-view versioning, vector columns or value_num columns, no precomputed
feature service. Anything else, and a window with a null feature value (Feast writes an empty
``ValueProto`` there), goes through Feast's own materialization. tests/feature_repo/test_online_write.py
compares both paths on both stores.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    import pyarrow.dataset as ds
    from feast import FeatureStore, FeatureView

from feature_repo.proto_bulk import entity_keys, hset_commands, joined, resp, resp_parts, serializers
from reelrec import faults

CHUNK_ROWS = 2_500
"""Entities serialized and written per round: bounds memory (a candidate list is ~2 KB of protobuf)."""


# ---------------------------------------------------------------- which views
def supported(store: FeatureStore, view: FeatureView) -> str | None:
    """Why ``view`` must go through Feast's materialization on ``store``, or None when this path applies."""
    from feast.value_type import ValueType

    config = store.config
    online = config.online_store
    if config.registry.enable_online_feature_view_versioning:
        return "feature view versioning is enabled"
    if online.type == "redis":
        if getattr(online, "redis_type", "redis") != "redis":
            return f"redis_type {online.redis_type}"
        if getattr(online, "skip_dedup", False):
            return "skip_dedup (Feast then overwrites without comparing event times)"
    elif online.type == "sqlite":
        if getattr(online, "vector_enabled", False) or getattr(
            online, "enable_openai_compatible_store", False
        ):
            return "SQLite vector or value_num columns"
    else:
        return f"online store {online.type}"
    if config.entity_key_serialization_version != 3:
        return f"entity_key_serialization_version {config.entity_key_serialization_version}"
    if len(view.entity_columns) != 1 or view.entity_columns[0].dtype.to_value_type() != ValueType.STRING:
        return "not one string join key"
    source = view.batch_source
    if source is None:
        return "no batch source"
    if source.field_mapping or source.created_timestamp_column:
        return "field mapping or created timestamp"
    kinds = serializers()
    odd = [f.name for f in view.features if f.dtype.to_value_type() not in kinds]
    if odd:
        return f"feature type of {odd}"
    for service in store.registry.list_feature_services(store.project, allow_cache=True):
        if getattr(service, "precompute_online", False) and view.name in {
            p.name for p in service.feature_view_projections
        }:
            return f"feature service {service.name} precomputes online vectors"
    return None


# ---------------------------------------------------------------- rows of the window
def _timestamp_field(view: FeatureView) -> str:
    if view.batch_source is None:
        raise ValueError(f"feature view {view.name} has no batch source")
    return view.batch_source.timestamp_field


def _has_nulls(column: pa.ChunkedArray) -> bool:
    """A null value, or a null inside a list (Feast writes a type's default there, e.g. 0.0)."""
    if column.null_count:
        return True
    return pa.types.is_list(column.type) and any(chunk.flatten().null_count for chunk in column.chunks)


def window_rows(dataset: ds.Dataset, view: FeatureView, start: datetime, end: datetime) -> pa.Table | None:
    """The latest row per entity in ``[start, end]`` (key, features, event time); None if a value is null.

    Feast's dedup keeps the row with the latest event time per entity; rows of one entity with the
    same event time (which a gold table's ``(key, dt)`` uniqueness rules out) keep the first read.
    """
    import pyarrow.dataset as pads

    (key,) = [column.name for column in view.entity_columns]
    ts_field = _timestamp_field(view)
    columns = [key, *(f.name for f in view.features), ts_field]
    ts = pads.field(ts_field)
    rows = dataset.to_table(columns=columns, filter=(ts >= start) & (ts <= end))
    if any(_has_nulls(rows.column(f.name)) for f in view.features):
        return None
    if pc.count_distinct(rows.column(key)).as_py() != rows.num_rows:
        order = pc.sort_indices(rows, [(key, "ascending"), (ts_field, "descending")])
        rows = rows.take(order)
        keys = rows.column(key).combine_chunks()
        first = np.ones(rows.num_rows, dtype=bool)
        first[1:] = pc.not_equal(keys[1:], keys[:-1]).to_numpy(zero_copy_only=False)
        rows = rows.filter(pa.array(first))
    return rows.combine_chunks()


@dataclass(frozen=True)
class _Chunk:
    """One round of entities, serialized as binary Arrow arrays: keys, Value bytes per feature, stamps."""

    keys: pa.Array
    values: dict[str, pa.Array]  # feature name -> Value bytes, in the view's feature order
    texts: dict[str, pa.Array]  # string features: SQLite's value_text column
    event_micros: np.ndarray  # (N,) int64
    stamps: pa.Array  # the event time as a protobuf Timestamp (Redis' ``_ts:<view>`` field)


def _chunks(rows: pa.Table, view: FeatureView, suffix: bytes) -> Iterator[_Chunk]:
    from feast.value_type import ValueType

    kinds = serializers()
    (key,) = [column.name for column in view.entity_columns]
    ts_field = _timestamp_field(view)
    for batch in rows.to_batches(max_chunksize=CHUNK_ROWS):
        values, texts = {}, {}
        for feature in view.features:
            column = batch.column(feature.name)
            kind = feature.dtype.to_value_type()
            values[feature.name] = kinds[kind](column)
            if kind == ValueType.STRING:
                texts[feature.name] = column
        micros = batch.column(ts_field).cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
        micros_np = micros.to_numpy(zero_copy_only=False)
        yield _Chunk(
            keys=entity_keys(key, batch.column(key), suffix),
            values=values,
            texts=texts,
            event_micros=micros_np,
            stamps=pa.array(_per_row(micros_np, _timestamp_proto), pa.binary()),
        )


def _per_row(micros: np.ndarray, build: Callable[[int], Any]) -> list[Any]:
    """``build(us)`` for each event time, built once per distinct time (a night has one or a few)."""
    distinct, index = np.unique(micros, return_inverse=True)
    built = [build(int(us)) for us in distinct]
    return [built[i] for i in index.tolist()]


# ---------------------------------------------------------------- the stores
def _timestamp_proto(us: int) -> bytes:
    from google.protobuf.timestamp_pb2 import Timestamp

    seconds, rest = divmod(us, 1_000_000)
    return Timestamp(seconds=seconds, nanos=rest * 1000).SerializeToString()


def _stored_nanos(stored: bytes) -> int:
    from google.protobuf.timestamp_pb2 import Timestamp

    ts = Timestamp()
    ts.ParseFromString(stored)
    return ts.seconds * 1_000_000_000 + ts.nanos


# Two Lua scripts keep the Redis side to one command per batch of hashes instead of one per hash:
# redis-py's per-command packing and reply parsing, not Redis, is what a pipeline of HSETs costs.
_READ_STAMPS = """
local stamps = {}
for i, key in ipairs(KEYS) do stamps[i] = redis.call('HGET', key, ARGV[1]) end
return stamps
"""
"""``HGET key _ts:<view>`` of every key (KEYS); nil where the hash or the field does not exist."""


def _newer(stored: list[bytes | None], nanos: list[int], cache: dict[bytes, int]) -> list[int]:
    """Rows whose event time (``nanos``) is not earlier than the stored ``_ts``.

    Feast's Redis store also drops an *equal* event time; here a rerun of a night (same event time)
    rewrites its values, as it does on SQLite, so a corrected rerun reaches both stores alike.
    """
    keep = []
    for i, previous in enumerate(stored):
        if previous is not None:
            if previous not in cache:
                cache[previous] = _stored_nanos(previous)
            before = cache[previous]
            if before and nanos[i] < before:
                continue
        keep.append(i)
    return keep


def _hash_items(chunk: _Chunk, ts_field: bytes, fields: list[bytes]) -> pa.Array:
    """Per row, the RESP-encoded field/value items of its hash: ``_ts:<view>`` and every feature."""
    parts: list[Any] = [resp(ts_field), *resp_parts(chunk.stamps)]
    for field, column in zip(fields, chunk.values.values(), strict=True):
        parts += (resp(field), *resp_parts(column))
    return joined(parts)


def _batch_rows() -> int:
    """Entities per atomic batch: :data:`CHUNK_ROWS`, or ``REELREC_PUBLISH_BATCH_ROWS`` (tests)."""
    return int(os.environ.get("REELREC_PUBLISH_BATCH_ROWS") or CHUNK_ROWS)


def _entity_batches(parts: list[_Part]) -> Iterator[list[_Part]]:
    """Views keyed alike, cut into batches that hold the same entities in every view.

    Every entity of the views is in exactly one batch, whichever views hold it: a batch is written
    in one Redis transaction (or inside the one SQLite transaction), so a user's list and embedding
    change together.
    """
    keys = [part.rows.column(part.key) for part in parts]
    every = pc.unique(pa.chunked_array([k.cast(pa.string()) for k in keys]).combine_chunks()).sort()
    size = _batch_rows()
    for at in range(0, len(every), size):
        members = every[at : at + size]
        batch = []
        for part, column in zip(parts, keys, strict=True):
            rows = part.rows.filter(pc.is_in(column, value_set=members))
            if rows.num_rows:
                batch.append(_Part(part.view, part.key, rows))
        yield batch


_MULTI, _EXEC = b"*1\r\n$5\r\nMULTI\r\n", b"*1\r\n$4\r\nEXEC\r\n"


def _write_redis(store: FeatureStore, parts: list[_Part]) -> dict[str, int]:
    """HSET each entity's hashes unless the stored ``_ts:<view>`` is newer; entities written per view.

    As Feast's ``online_write_batch``: the stored event times are read first, then the hashes of the
    rows that are newer are written (with ``EXPIRE`` when the store sets ``key_ttl_seconds``). Views
    with the same join key share one hash per entity (Feast's layout), and each batch of entities
    (:func:`_entity_batches`) is written in one ``MULTI``/``EXEC``: a reader's ``HMGET`` of a user
    sees all of that user's views of one night, never a list of one and an embedding of another.
    The commands are encoded (RESP) from Arrow columns and sent on one connection; a batch's
    replies are read once the next batch is sent, so Redis runs one batch while the next is
    serialized. A process killed mid-batch leaves that batch's transaction unexecuted.
    """
    from feast.infra.online_stores.helpers import _mmh3
    from feast.infra.online_stores.redis import RedisOnlineStore

    config = store.config.online_store
    client = RedisOnlineStore()._get_client(config)
    ttl = config.key_ttl_seconds or 0
    project = store.project.encode()
    stored_nanos: dict[bytes, int] = {}
    written = {part.view.name: 0 for part in parts}
    connection = client.connection_pool.get_connection()
    by_key: dict[str, list[_Part]] = {}
    for part in parts:
        by_key.setdefault(part.key, []).append(part)

    def settle(sent: list[tuple[str, int]], number: int) -> None:
        """Read one batch's replies (OK, QUEUED per script, EXEC's results), then its fault point."""
        if sent:
            for _ in range(1 + sum(n for _, n in sent)):
                connection.read_response()
            results = iter(connection.read_response())
            for name, n in sent:
                written[name] += sum(next(results) for _ in range(n))
        faults.point("online_write.batch", batch=number, views="+".join(sorted(written)))

    try:
        pending: list[tuple[str, int]] = []
        number = -1
        for group in by_key.values():
            for batch in _entity_batches(group):
                pieces: list[bytes | memoryview] = []
                sent: list[tuple[str, int]] = []
                for part in batch:
                    view = part.view
                    ts_field = f"_ts:{view.name}".encode()
                    fields = [_mmh3(f"{view.name}:{f.name}") for f in view.features]
                    for chunk in _chunks(part.rows, view, project):
                        keys = chunk.keys.to_pylist()
                        stored = client.eval(_READ_STAMPS, len(keys), *keys, ts_field)
                        keep = _newer(stored, (chunk.event_micros * 1000).tolist(), stored_nanos)
                        if not keep:
                            continue
                        taken = pa.array(keep, pa.int64())
                        items = _hash_items(chunk, ts_field, fields).take(taken)
                        commands = hset_commands(chunk.keys.take(taken), items, 2 * (len(fields) + 1), ttl)
                        pieces += commands
                        sent.append((view.name, len(commands) // 4))
                if pieces:
                    connection.send_packed_command([_MULTI, *pieces, _EXEC])
                if number >= 0:
                    settle(pending, number)
                pending, number = sent, number + 1
        if number >= 0:
            settle(pending, number)
        return written
    except BaseException:
        connection.disconnect()  # replies may be left unread: never hand this connection back as is
        raise
    finally:
        client.connection_pool.release(connection)
        client.close()


def _write_sqlite(store: FeatureStore, parts: list[_Part]) -> dict[str, int]:
    """Feast's upsert of one row per (entity, feature) into ``<project>_<view>``: every view, one transaction.

    Readers see all of the views' new rows or none of them (a killed writer's transaction is rolled
    back by SQLite's journal at the next open).
    """
    from feast.infra.online_stores.sqlite import SqliteOnlineStore, _quote_id, _table_id

    conn = SqliteOnlineStore()._get_conn(store.config)
    columns = ["entity_key", "feature_name", "value", "value_text", "event_ts", "created_ts"]
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns[2:])
    written = {part.view.name: 0 for part in parts}
    number = 0
    try:
        with conn:
            for part in parts:
                table = _quote_id(_table_id(store.project, part.view))
                upsert = (
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
                    f"ON CONFLICT(entity_key, feature_name) DO UPDATE SET {updates};"
                )
                for chunk in _chunks(part.rows, part.view, b""):
                    stamps = _per_row(chunk.event_micros, _sqlite_event_ts)
                    keys, n = chunk.keys.to_pylist(), len(chunk.keys)
                    for name, column in chunk.values.items():
                        text = chunk.texts.get(name)
                        texts = text.to_pylist() if text is not None else [None] * n
                        conn.executemany(
                            upsert,
                            zip(keys, [name] * n, column.to_pylist(), texts, stamps, [None] * n, strict=True),
                        )
                    written[part.view.name] += n
                    faults.point("online_write.batch", batch=number, views="+".join(sorted(written)))
                    number += 1
    finally:
        conn.close()
    return written


def _sqlite_event_ts(us: int) -> Any:
    """The ``event_ts`` value Feast stores: its naive UTC datetime, as the sqlite3 adapter in force binds it.

    Feast binds ``to_naive_utc(event time)`` and registers an adapter for ``datetime`` (epoch
    seconds); calling that adapter once per distinct time stores the same value without 200,000 calls.
    """
    import sqlite3

    seconds, rest = divmod(us, 1_000_000)
    naive = datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest, tzinfo=None)
    adapt = sqlite3.adapters.get((datetime, sqlite3.PrepareProtocol))
    return adapt(naive) if adapt else naive


# ---------------------------------------------------------------- registry
def _record(
    store: FeatureStore, view: FeatureView, start: datetime, end: datetime, write: Callable[[], int]
) -> int:
    """Run ``write`` between the registry updates ``FeatureStore.materialize`` makes around a view."""
    from feast.feature_view import FeatureViewState

    unspecified = FeatureViewState.STATE_UNSPECIFIED
    previous = getattr(view, "state", unspecified)
    if previous == FeatureViewState.MATERIALIZING:
        previous = FeatureViewState.GENERATED
    elif previous != unspecified:
        if not view.state.can_transition_to(FeatureViewState.MATERIALIZING):
            raise ValueError(
                f"FeatureView {view.name} cannot transition from {view.state.name} to MATERIALIZING."
            )
        view.state = FeatureViewState.MATERIALIZING
        store.registry.apply_feature_view(view, store.project, commit=True)
    try:
        written = write()
    except Exception:
        if previous != unspecified:
            view.state = previous
            store.registry.apply_feature_view(view, store.project, commit=True)
        raise
    store.registry.apply_materialization(view, store.project, start, end)
    return written


@dataclass(frozen=True)
class _Part:
    """One view's rows to publish, and its join key."""

    view: FeatureView
    key: str
    rows: pa.Table


def write_views(
    store: FeatureStore, loads: list[tuple[FeatureView, ds.Dataset, datetime]], end: datetime
) -> dict[str, int] | None:
    """Publish each view's rows of ``[start, end]`` from its dataset (Delta snapshot) as Feast would.

    ``loads`` are ``(view, dataset, start)``. The views are written together: on SQLite in one
    transaction; on Redis, views keyed alike (a user's list and embedding) in batches of entities,
    each one transaction (:func:`_write_redis`). The registry records each view's materialization
    once all are written.

    Returns:
        The number of entities written per view (on Redis, those whose stored event time was
        older), or None when a window holds a null feature value: nothing was written, and the
        caller materializes the views through Feast instead.
    """
    parts = []
    for view, dataset, start in loads:
        rows = window_rows(dataset, view, start, end)
        if rows is None:
            return None
        (key,) = [column.name for column in view.entity_columns]
        parts.append(_Part(view, key, rows))
    writer = _write_redis if store.config.online_store.type == "redis" else _write_sqlite
    result: dict[str, int] = {}

    def write() -> int:
        result.update(writer(store, parts))
        return 0

    for view, _, start in reversed(loads):  # registry updates around the write, as Feast's per view
        write = functools.partial(_record, store, view, start, end, write)
    write()
    return result


def write_view(
    store: FeatureStore, view: FeatureView, dataset: ds.Dataset, start: datetime, end: datetime
) -> int | None:
    """:func:`write_views` of one view: the entities written, or None (a null value: Feast must write it)."""
    written = write_views(store, [(view, dataset, start)], end)
    return None if written is None else written[view.name]
