"""Read a feature view's rows straight from Feast's Redis online store: Feast's layout, one round trip.

Feast's ``RedisOnlineStore.online_read`` (underneath ``FeatureStore.get_online_features``) spends
most of a 100-user read of ``user_daily_candidates`` outside Redis: an ``EntityKey`` protobuf per
user to build and serialize, every stored value parsed into a ``ValueProto``, the ``_ts:<view>``
stamp turned into a ``datetime`` nobody reads, then each repeated field copied into a Python list,
10,000 floats that the caller turns straight back into an array (``benchmarks/online_read.py
--profile``). :class:`RedisViewReader` reads the same hashes and decodes them with less on the way:

- **keys and fields are Feast's**: the key is ``serialize_entity_key`` of the entity followed by the
  project name, built from Feast's own ``serialize_entity_key_prefix`` and checked once against
  ``serialize_entity_key`` at start; the fields are Feast's ``_mmh3("<view>:<feature>")``
  (``RedisOnlineStore._generate_hset_keys_for_features``, with Feast's versioned view name). The
  ``_ts:<view>`` field is not read: Feast 0.67 reports no ``OUTSIDE_MAX_AGE`` on this path, so the
  stamp changes no answer;
- **one pipelined HMGET per entity, one round trip**, on the Redis client Feast's store itself opened
  from the connection string (host, db, password, ssl, sentinel all as Feast reads them);
- **values decoded by the view's dtypes**: a ``float32`` list (``scores``) is read from its packed
  protobuf bytes with ``numpy.frombuffer`` (any other encoding goes through protobuf); other lists
  through protobuf's parser; scalars (a night's ``model_version``, ``generated_at``: the same few
  values for every user) through Feast's own conversion, cached by their stored bytes.

A missing hash reads as every value ``None``: what ``online_read`` answers on Redis (``PRESENT``
with unset values). It is chosen only where it reads what Feast would: the ``redis`` online store
type with the ``redis-py`` client (not ``glide``) and not a Redis Cluster, a view keyed by one string
join key (:meth:`RedisViewReader.open` answers ``None`` otherwise, and the caller keeps Feast's
``online_read``). ``tests/reelrec/test_online_read.py`` compares its answers with Feast's.

Unlike :mod:`reelrec.serving`, this module imports Feast and numpy at its top, out of the per-value
decoders: :mod:`reelrec.serving` imports it only once a ``FeatureStore`` is open.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from feast.infra.key_encoding_utils import serialize_entity_key, serialize_entity_key_prefix
from feast.infra.online_stores.redis import RedisClient, RedisOnlineStore, RedisType, _versioned_fv_name
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value, ValueType
from feast.type_map import feast_value_type_to_python_type
from feast.types import String
from feast.value_type import ValueType as FeastValueType

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView

# Value{float_list_val (field 16, length-delimited): FloatList{val (field 1, packed float)}}
_FLOAT_LIST_TAG = b"\x82\x01"
_PACKED_VAL_TAG = 0x0A


def _varint(blob: bytes, at: int) -> tuple[int, int]:
    """The protobuf varint at ``blob[at:]`` and the offset after it; ``(-1, at)`` when truncated."""
    value = shift = 0
    while at < len(blob):
        byte = blob[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7
    return -1, at


def _python(blob: bytes | None) -> Any:
    """A stored Feast value as Python, as ``OnlineResponse.to_dict()`` gives it (``None`` when unset).

    A string list (the candidates' ``video_ids``) is read directly; every other kind goes through
    Feast's ``feast_value_type_to_python_type`` (a timestamp becomes a UTC ``datetime``).
    """
    if not blob:
        return None
    value = Value.FromString(blob)
    kind = value.WhichOneof("val")
    if kind is None:
        return None
    if kind == "string_list_val":
        return list(value.string_list_val.val)
    return feast_value_type_to_python_type(value)


@functools.lru_cache(maxsize=256)  # a night's rows share a few model versions and stamps
def _scalar(blob: bytes | None) -> Any:
    """:func:`_python` of a scalar (immutable) value, decoded once per distinct stored bytes."""
    return _python(blob)


def _float_list(blob: bytes | None) -> np.ndarray | None:
    """A stored float list as a read-only float32 array, ``(n,)``; ``None`` when unset.

    Feast writes ``Value(float_list_val=FloatList(val=[...]))`` as ``82 01 <len> 0a <len> <4n bytes,
    little-endian>`` (proto3 packs repeated floats): those bytes are the array. Anything else (an
    empty list, another kind, an unpacked encoding) goes through protobuf (:func:`_python`), as a
    float64 array when it is a list of numbers.
    """
    if not blob:
        return None
    if blob[:2] == _FLOAT_LIST_TAG:
        outer, at = _varint(blob, 2)
        if outer > 0 and at + outer == len(blob) and blob[at] == _PACKED_VAL_TAG:
            inner, start = _varint(blob, at + 1)
            if start + inner == len(blob) and inner % 4 == 0:
                return np.frombuffer(blob, dtype="<f4", offset=start)
    value = _python(blob)
    return None if value is None else np.asarray(value, dtype=np.float64)


def _decoder(value_type: Any) -> Callable[[bytes | None], Any]:
    """How to decode a feature of Feast ``ValueType`` ``value_type`` (see the module docstring)."""
    if value_type == FeastValueType.FLOAT_LIST:
        return _float_list
    name = value_type.name
    if name.endswith(("_LIST", "_SET")) or name in {"MAP", "STRUCT", "JSON", "PDF_BYTES", "IMAGE_BYTES"}:
        return _python  # mutable or large: decoded per read, never shared
    return _scalar


class RedisViewReader:
    """Reads features of one feature view from Feast's Redis online store (see the module docstring).

    Attributes:
        features: the feature names read, in the order of :meth:`read`'s columns.
        client: the redis-py client of Feast's online store (shared with Feast's own reads).
    """

    def __init__(
        self,
        store: FeatureStore,
        view: FeatureView,
        features: Sequence[str],
        also: Sequence[tuple[FeatureView, Sequence[str]]] = (),
    ) -> None:
        """Resolve keys, fields and decoders once; use :meth:`open` to fall back where this does not apply.

        ``also``: features of other views keyed alike, read in the same ``HMGET`` (Feast keeps every
        view of an entity in one hash), so one entity's values of several views are one snapshot;
        their columns are named ``<view>__<feature>``.

        Raises:
            ValueError: naming the view when the online store is not Redis, a feature is not one of
                the view's, or the keys built here are not ``serialize_entity_key``'s (a Feast whose
                layout changed).
        """
        config, online_store = store.config, store.provider.online_store
        if not isinstance(online_store, RedisOnlineStore):
            raise ValueError(
                f"feature view {view.name}: the online store is {config.online_store.type}, not redis"
            )
        dtypes = {field.name: field.dtype.to_value_type() for field in view.features}
        unknown = [name for name in features if name not in dtypes]
        if unknown:
            raise ValueError(f"feature view {view.name} has no feature(s) {unknown}; it has {sorted(dtypes)}")
        self.features = list(features)
        self.view_name = view.name
        (self.join_key,) = view.join_keys
        self.client = online_store._get_client(config.online_store)
        _, fields = online_store._generate_hset_keys_for_features(
            view, list(features), fv_name_override=_versioned_fv_name(view, config)
        )
        self.fields = fields[:-1]  # the last is "_ts:<view>", not read (see the module docstring)
        self.decoders = [_decoder(dtypes[name]) for name in features]
        for other, names in also:
            if other.join_keys != view.join_keys:
                raise ValueError(f"feature view {other.name} is not keyed like {view.name}")
            types = {field.name: field.dtype.to_value_type() for field in other.features}
            _, more = online_store._generate_hset_keys_for_features(
                other, list(names), fv_name_override=_versioned_fv_name(other, config)
            )
            self.fields += more[:-1]
            self.decoders += [_decoder(types[name]) for name in names]
            self.features += [f"{other.name}__{name}" for name in names]
        version = config.entity_key_serialization_version
        # serialize_entity_key of one string key: the key part, then the value's type, length, bytes
        self.prefix = serialize_entity_key_prefix([self.join_key], version) + struct.pack(
            "<I",
            ValueType.STRING,  # the protobuf enum's int, as serialize_entity_key writes it
        )
        self.project = config.project.encode("utf-8")
        self._check_keys(version)

    @classmethod
    def open(
        cls,
        store: FeatureStore,
        view: FeatureView,
        features: Sequence[str],
        also: Sequence[tuple[FeatureView, Sequence[str]]] = (),
    ) -> RedisViewReader | None:
        """A reader of ``view`` on ``store``, or ``None`` where Feast's ``online_read`` must read it.

        ``None`` unless the online store is Redis (not a cluster) read with redis-py, and the view is
        keyed by one string join key.
        """
        online = store.config.online_store
        if not isinstance(store.provider.online_store, RedisOnlineStore):
            return None
        if online.client != RedisClient.redis or online.redis_type == RedisType.redis_cluster:
            return None
        if [column.dtype for column in view.entity_columns] != [String] or len(view.join_keys) != 1:
            return None
        return cls(store, view, features, also)

    def key(self, entity_value: str) -> bytes:
        """The Redis key of one entity: ``serialize_entity_key`` of ``{join_key: entity_value}`` + project."""
        encoded = entity_value.encode("utf-8")
        return self.prefix + struct.pack("<I", len(encoded)) + encoded + self.project

    def _check_keys(self, version: int) -> None:
        probe = "u-é-00042"
        entity = EntityKey(join_keys=[self.join_key], entity_values=[Value(string_val=probe)])
        feast_key = serialize_entity_key(entity, entity_key_serialization_version=version) + self.project
        if self.key(probe) != feast_key:
            raise ValueError(
                f"feature view {self.view_name}: Redis key {self.key(probe)!r} is not Feast's {feast_key!r} "
                f"(entity_key_serialization_version {version})"
            )

    def hashes(self, entity_values: Sequence[str]) -> list[list[bytes | None]]:
        """The stored bytes of :attr:`features` for each entity: one pipelined HMGET each, one round trip."""
        fields = self.fields
        with self.client.pipeline(transaction=False) as pipe:
            for value in entity_values:
                pipe.execute_command("HMGET", self.key(value), *fields)  # = pipe.hmget, minus its arg checks
            replies: list[list[bytes | None]] = pipe.execute()
        return replies

    def read(self, entity_values: Sequence[str]) -> dict[str, list[Any]]:
        """The decoded features of each entity, as columns (one value per entity, in input order).

        An entity the store does not hold has ``None`` in every column; a float32 list is an array
        (see :func:`_float_list`), every other value what ``OnlineResponse.to_dict()`` gives.
        """
        replies = self.hashes(entity_values)
        return {
            name: [decode(reply[i]) for reply in replies]
            for i, (name, decode) in enumerate(zip(self.features, self.decoders, strict=True))
        }
