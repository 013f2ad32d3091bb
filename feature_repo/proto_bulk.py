"""Feast's online values and entity keys as protobuf bytes, built in bulk from Arrow columns.

The protobuf wire format written without one Python object per value: a field tag, a varint length,
the payload (a float list is one packed run of float32), for the ``ValueProto`` types the output
views use, and entity keys laid out as ``feast.infra.key_encoding_utils.serialize_entity_key``
(version 3) does; and the Redis commands that write them (RESP-encoded ``EVAL`` of a small script
that HSETs a batch of hashes, built from Arrow binary columns). Used by
:mod:`feature_repo.online_write`; tests/feature_repo/test_online_write.py checks every serializer
byte for byte against Feast's own conversion.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from feast.value_type import ValueType


def _varints(prefix: bytes, values: np.ndarray) -> pa.BinaryArray:
    """``prefix + varint(v)`` for each ``v`` of ``values`` (int64; negatives as 10-byte two's complement)."""
    v = values.astype(np.int64).view(np.uint64)
    low, top = (int(v.min()), int(v.max())) if len(v) else (0, 0)
    if _varint_size(low) == _varint_size(top):  # the usual case (all lengths < 128): one fixed-width block
        w = _varint_size(top)
        size = len(prefix) + w
        block = np.empty((len(v), size), dtype=np.uint8)
        block[:, : len(prefix)] = np.frombuffer(prefix, dtype=np.uint8)
        for k in range(w):
            group = (v >> np.uint64(7 * k)) & np.uint64(0x7F)
            block[:, len(prefix) + k] = group | np.uint64(0x80 if k + 1 < w else 0)
        offsets = np.arange(len(v) + 1, dtype=np.int32) * size
        return pa.Array.from_buffers(pa.binary(), len(v), [None, pa.py_buffer(offsets), pa.py_buffer(block)])
    width = np.ones(len(v), dtype=np.int64)
    for k in range(1, _varint_size(top)):
        width += v >= np.uint64(1) << np.uint64(7 * k)
    sizes = len(prefix) + width
    offsets = np.zeros(len(v) + 1, dtype=np.int32)
    np.cumsum(sizes, out=offsets[1:])
    data = np.empty(int(offsets[-1]), dtype=np.uint8)
    starts = offsets[:-1]
    for j, byte in enumerate(prefix):
        data[starts + j] = byte
    for k in range(int(width.max(initial=1))):
        has = width > k
        group = (v[has] >> np.uint64(7 * k)) & np.uint64(0x7F)
        more = (width[has] > k + 1).astype(np.uint64) << np.uint64(7)
        data[starts[has] + len(prefix) + k] = (group | more).astype(np.uint8)
    return pa.Array.from_buffers(pa.binary(), len(v), [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _varint_size(value: int) -> int:
    """Bytes of the varint of ``value`` (0 <= value < 2**64)."""
    return max(1, (value.bit_length() + 6) // 7)


def _framed(prefix: bytes, payloads: pa.Array) -> pa.Array:
    """``prefix + varint(len(p)) + p`` for each binary ``p``: a length-delimited protobuf field."""
    lengths = pc.binary_length(payloads).to_numpy(zero_copy_only=False)
    return pc.binary_join_element_wise(_varints(prefix, lengths), payloads, b"")


def _tag(field: int, wire_type: int) -> bytes:
    return _varints(b"", np.array([field << 3 | wire_type])).to_pylist()[0]


def _list_rows(column: pa.ListArray, items: pa.Array) -> pa.ListArray:
    """``items`` (one per element of ``column``'s flattened values) regrouped into ``column``'s lists."""
    offsets = column.offsets
    offsets = pc.subtract(offsets, offsets[0]).cast(pa.int32())
    return pa.ListArray.from_arrays(offsets, items)


def _string_values(field: int) -> Callable[[pa.Array], pa.Array]:
    """Value bytes of a string scalar in field ``field`` (``string_val``)."""
    tag = _tag(field, 2)
    return lambda column: _framed(tag, column.cast(pa.binary()))


def _string_list_values(column: pa.Array) -> pa.Array:
    """``Value(string_list_val=StringList(val=...))``: each string a length-delimited ``val`` element."""
    items = _framed(_tag(1, 2), column.flatten().cast(pa.binary()))
    return _framed(_tag(12, 2), pc.binary_join(_list_rows(column, items), b""))


def _float_list_values(column: pa.Array) -> pa.Array:
    """``Value(float_list_val=FloatList(val=...))``: ``val`` packed, omitted when the list is empty."""
    floats = np.ascontiguousarray(column.flatten().to_numpy(zero_copy_only=False), dtype="<f4")
    offsets = column.offsets.to_numpy()
    byte_offsets = ((offsets - offsets[0]) * 4).astype(np.int32)
    raw = pa.Array.from_buffers(
        pa.binary(), len(column), [None, pa.py_buffer(byte_offsets), pa.py_buffer(floats.tobytes())]
    )
    packed = pc.if_else(pc.equal(pc.binary_length(raw), 0), pa.scalar(b""), _framed(_tag(1, 2), raw))
    return _framed(_tag(16, 2), packed)


def _unix_timestamp_values(column: pa.Array) -> pa.Array:
    """``Value(unix_timestamp_val=s)``: whole seconds since the epoch (floored, as Feast's numpy cast)."""
    micros = column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy(zero_copy_only=False)
    return _varints(_tag(8, 0), np.floor_divide(micros, 1_000_000))


def serializers() -> dict[ValueType, Callable[[pa.Array], pa.Array]]:
    from feast.value_type import ValueType

    return {
        ValueType.STRING: _string_values(2),
        ValueType.STRING_LIST: _string_list_values,
        ValueType.FLOAT_LIST: _float_list_values,
        ValueType.UNIX_TIMESTAMP: _unix_timestamp_values,
    }


def entity_keys(join_key: str, ids: pa.Array, suffix: bytes = b"") -> pa.Array:
    """``serialize_entity_key`` (version 3) of one string join key per id, followed by ``suffix``.

    Layout: ``<I 1`` (one key), ``<I STRING``, ``<I len(join_key)``, the join key, ``<I STRING``,
    ``<I len(id)``, the id (UTF-8). Redis keys append the project name.
    """
    from feast.value_type import ValueType

    name = join_key.encode()
    string = ValueType.STRING.value
    head = struct.pack("<III", 1, string, len(name)) + name + struct.pack("<I", string)
    raw = ids.cast(pa.binary())
    lengths = pc.binary_length(raw).to_numpy(zero_copy_only=False).astype("<u4")
    count = len(raw)
    width = len(head) + 4
    prefix = np.empty((count, width), dtype=np.uint8)
    prefix[:, : len(head)] = np.frombuffer(head, dtype=np.uint8)
    prefix[:, len(head) :] = lengths.view(np.uint8).reshape(count, 4)
    offsets = np.arange(count + 1, dtype=np.int32) * width
    prefixes = pa.Array.from_buffers(
        pa.binary(), count, [None, pa.py_buffer(offsets), pa.py_buffer(prefix.tobytes())]
    )
    return pc.binary_join_element_wise(prefixes, raw, pa.scalar(suffix, pa.binary()), b"")


# ---------------------------------------------------------------- Redis commands (RESP)
WRITE_HASHES = b"""
local width, ttl, at = tonumber(ARGV[1]), tonumber(ARGV[2]), 3
for _, key in ipairs(KEYS) do
  redis.call('HSET', key, unpack(ARGV, at, at + width - 1))
  if ttl > 0 then redis.call('EXPIRE', key, ttl) end
  at = at + width
end
return #KEYS
"""
"""``HSET key f1 v1 ...`` (``ARGV[1]`` items from ``ARGV[3]`` on, per key); ``EXPIRE key ttl`` if ttl > 0."""

SCRIPT_ROWS = 1_000
"""Hashes per script call: Redis runs a script without serving other clients, so keep each short."""


def resp(value: bytes) -> bytes:
    """One RESP bulk string: ``$<len> CRLF <value> CRLF``."""
    return b"$%d\r\n%s\r\n" % (len(value), value)


def resp_parts(values: pa.Array) -> list[Any]:
    """``binary_join_element_wise`` arguments that RESP-encode a binary column: ``$<len> CRLF value CRLF``."""
    lengths = pc.binary_length(values).cast(pa.string()).cast(pa.binary())
    return [b"$", lengths, b"\r\n", values, b"\r\n"]


def joined(parts: list[Any]) -> pa.Array:
    return pc.binary_join_element_wise(*parts, b"")


def spans(items: pa.Array, size: int) -> Iterator[tuple[int, memoryview]]:
    """``items`` (binary) ``size`` at a time: the count and a zero-copy view of their concatenated bytes."""
    offsets = np.frombuffer(items.buffers()[1], dtype=np.int32)[items.offset : items.offset + len(items) + 1]
    data = memoryview(items.buffers()[2])  # type: ignore[arg-type]
    for at in range(0, len(items), size):
        end = min(at + size, len(items))
        yield end - at, data[offsets[at] : offsets[end]]


def hset_commands(keys: pa.Array, items: pa.Array, width: int, ttl: int) -> list[bytes | memoryview]:
    """``EVAL WRITE_HASHES`` commands, RESP-encoded, each writing up to ``SCRIPT_ROWS`` hashes.

    Returned as the pieces to send one after the other (the hashes' items are views of ``items``).
    """
    pieces: list[bytes | memoryview] = []
    tail = resp(b"%d" % width) + resp(b"%d" % ttl)
    batches = zip(spans(joined(resp_parts(keys)), SCRIPT_ROWS), spans(items, SCRIPT_ROWS), strict=True)
    for (n, key_blob), (_, item_blob) in batches:
        head = b"*%d\r\n" % (3 + n + 2 + n * width) + resp(b"EVAL") + resp(WRITE_HASHES) + resp(b"%d" % n)
        pieces += (head, key_blob, tail, item_blob)
    return pieces
