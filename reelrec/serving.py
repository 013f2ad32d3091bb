"""Read a user's published recommendations: the small read API of feed services.

The nightly pipeline publishes each user's candidate list (``gold.candidates``) to the Feast online
store as the view ``user_daily_candidates``; services read it through the feature service
``recommendations_v1``, their contract. Two ways lead to the same answer:

- in process, through the Feast SDK: :func:`recommend`, or a :class:`Recommender` that keeps one
  ``FeatureStore`` open in a long-lived service. Both resolve the service's view once and read it
  below ``FeatureStore.get_online_features``, which they skip: it re-resolves the service on every
  call and builds a protobuf response only to be turned back into columns (:class:`_CandidatesReader`).
  On SQLite they call the online store's own ``online_read`` (Feast's key layout and decoding); on
  Redis, :class:`reelrec.online_read.RedisViewReader` reads the same hashes in Feast's layout with
  one pipelined HMGET per user and a leaner decoding (twice as fast for 100 users per call; tests
  compare its answers with ``get_online_features``'; ``benchmarks/online_read.py`` measures all three);
- over HTTP, through Feast's feature server (``feast -c $REELREC_HOME/feast serve``): post
  :func:`reelrec.serving_http.feature_server_request` to ``/get-online-features`` and decode the
  reply with :func:`reelrec.serving_http.parse_feature_server_response`.

Both return, per user and in input order::

    {"user_id": "u000042", "model_version": "two_tower_v1-...", "generated_at": "2026-11-02T03:15:07+00:00",
     "items": [{"video_id": "v0000007", "score": 0.91}, ...], "found": True, "fallback": False}

Users without a list: the nightly scoring also publishes a *default list* (recent popularity with
fresh slots, :mod:`models.default_list`) as one more row of the same view, keyed
``user_id = "__default__"`` (:data:`reelrec.catalog.DEFAULT_LIST_KEY`). Every read asks for that key
along with the requested users, in the same single online call (:func:`feature_server_request`
appends it too), and a user who is not ``found`` gets the default list's items, ``model_version``
and ``generated_at`` with ``found: False, fallback: True``: a feed is never empty. The key itself is
never a result row. Only while no default list has been published yet (a store applied but not
materialized, or nights published before the default list existed) does a user without a list get
the empty answer: no items, null ``model_version``/``generated_at``, ``found: False, fallback: False``.

``generated_at`` has second precision (Feast stores timestamps as epoch seconds). Scores are float32
in the lake and are given as the shortest decimal that reads back as the same float32 (``0.9``, not
``0.8999999761581421``), which keeps their order.

Absent users: a user (or the default list) is ``found`` when the online store holds a list for
them. The two online stores say "absent" differently: SQLite answers ``NOT_FOUND``, while Feast's
Redis store answers ``PRESENT`` with empty values (it reads a hash that does not exist as fields
that are all unset), so a user counts as found only when the status is ``PRESENT`` *and* a
``video_ids`` value came back.

Freshness: Feast 0.67 flags ``OUTSIDE_MAX_AGE`` (past the view's TTL) only for precomputed vectors,
not on this read path, so reelrec applies its own rule: a user's list generated more than
:func:`reelrec.online_expiry.max_age` (7 days; ``REELREC_ONLINE_MAX_AGE_DAYS``) before the default
list (which every scoring night republishes) has expired: the default list answers instead, with
``found: False, fallback: True`` and ``expired`` naming the expired list's ``model_version``. A
younger list of a user whom later nights did not score is served; its ``model_version`` and
``generated_at`` say which night it came from. Housekeeping (``reelrec housekeep``) removes
expired rows from the store. A status of ``OUTSIDE_MAX_AGE`` counts as not found.

One model version per answer: ``recommend(..., embeddings=True)`` also gives each found user's
``embedding`` (view ``user_daily_embedding``). Publishing writes a user's list and embedding in one
store transaction and this reads them as one snapshot, so both are of the ``model_version`` the
answer reports, even while a night is half-published (tests/reelrec/test_half_publish.py).

Feast is imported inside the functions: importing this module stays cheap.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from reelrec import catalog
from reelrec.catalog import DEFAULT_LIST_KEY, GENERATED_AT, MODEL_VERSION, USER_ID
from reelrec.online_expiry import expired as list_expired
from reelrec.online_expiry import max_age as max_list_age
from reelrec.settings import Settings

if TYPE_CHECKING:
    import numpy as np
    from feast import FeatureService, FeatureStore
    from feast.protos.feast.types.Value_pb2 import Value as ValueProto

FEATURE_SERVICE = "recommendations_v1"
VIEW = "user_daily_candidates"
# Full feature names (``<view>__<feature>``) of the service's columns in an online response.
VIDEO_IDS = f"{VIEW}__{catalog.VIDEO_IDS}"
SCORES = f"{VIEW}__{catalog.SCORES}"
VERSION = f"{VIEW}__{MODEL_VERSION}"
GENERATED = f"{VIEW}__{GENERATED_AT}"
PRESENT = "PRESENT"  # FieldStatus name in the feature server's JSON
EMBEDDING_VIEW = "user_daily_embedding"  # read with the list when asked (``embeddings=True``)
EMBEDDING = f"{EMBEDDING_VIEW}__{catalog.EMBEDDING}"
EMBEDDING_VERSION = f"{EMBEDDING_VIEW}__{MODEL_VERSION}"


def _check_ids(user_ids: Sequence[str]) -> None:
    if isinstance(user_ids, str):  # a lone id would be read as one user per character
        raise TypeError(f"user_ids must be a sequence of user ids, not the str {user_ids!r}")


def _check_k(k: int | None) -> None:
    if k is not None and k < 1:
        raise ValueError(f"k must be >= 1 (items per user), got {k}")


@functools.lru_cache(maxsize=64)  # a read's rows share a few nights' stamps
def _iso(value: datetime | int | float) -> str:
    """ISO-8601 UTC string of a timestamp (a ``datetime`` from the SDK, epoch seconds over HTTP)."""
    if isinstance(value, datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=UTC)
    else:
        stamp = datetime.fromtimestamp(value, UTC)
    return stamp.astimezone(UTC).isoformat()


_MIN_EXPONENT, _MAX_EXPONENT = -14, 22  # decimal exponents whose 1..9-digit scales are exact powers of ten


@functools.cache
def _decimal_scales() -> tuple[Any, Any]:
    """``(up, down)``, each ``(37, 9)``: for a value of decimal exponent e (row ``e + 14``) and p + 1
    significant digits (column p), ``10.0 ** max(p - e, 0)`` and ``10.0 ** max(e - p, 0)``: powers of
    ten that float64 holds exactly (``10**0 .. 10**22``), one of the pair 1. One row per value is
    gathered at once, faster than building each value's nine powers.
    """
    import numpy as np

    powers = 10.0 ** np.arange(23)
    point = np.arange(9)[None, :] - np.arange(_MIN_EXPONENT, _MAX_EXPONENT + 1)[:, None]  # digits after "."
    return powers[np.maximum(point, 0)], powers[np.maximum(-point, 0)]


def _float32(values: Sequence[float | str] | np.ndarray) -> list[float]:
    """Shortest decimals that read back as the same float32 values (``"NaN"`` strings included).

    Equal to ``[float(str(numpy.float32(v))) for v in values]`` (numpy's shortest repr), computed for all
    values at once: for p = 1..9 significant digits, the p-digit decimal nearest to the value (``m *
    10**-q``, built with one correctly rounded operation on exact operands, so it is the float64 that
    ``float()`` of that decimal gives) is tried, and the first that rounds back to the float32 is kept.
    Values whose scale leaves exact powers of ten (|v| < 1e-14 or >= 1e23), zeros and non-finite
    values take numpy's own repr, one by one.
    """
    import numpy as np

    x = np.asarray(values, dtype=np.float64).astype(np.float32)  # (n,)
    d = x.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        exponent = np.floor(np.log10(np.abs(d)))  # (n,) decimal exponent of the leading digit
    fast = (exponent >= _MIN_EXPONENT) & (exponent <= _MAX_EXPONENT)  # False for 0, inf and nan too
    row = np.where(fast, exponent - _MIN_EXPONENT, -_MIN_EXPONENT).astype(np.intp)  # (n,) e = 0 if not fast
    scale_up, scale_down = _decimal_scales()
    up, down = np.take(scale_up, row, axis=0), np.take(scale_down, row, axis=0)  # (n, 9), one of them 1
    decimals = np.rint(d[:, None] * up / down) * down / up  # (n, 9): one rounding of exact operands
    fits = decimals.astype(np.float32) == x[:, None]  # (n, 9)
    fast &= fits[:, -1]  # nine digits always round back; a guard
    first = fits.argmax(axis=1)  # the fewest digits that round back
    result = np.take_along_axis(decimals, first[:, None], axis=1)[:, 0].tolist()
    for i in np.flatnonzero(~fast).tolist():
        result[i] = float(str(x[i])) if np.isfinite(x[i]) and x[i] != 0 else float(d[i])
    return result


def not_found(user_id: str) -> dict[str, Any]:
    """The result for a user without candidates while no default list is published either."""
    return {
        "user_id": user_id,
        "model_version": None,
        "generated_at": None,
        "items": [],
        "found": False,
        "fallback": False,
    }


def fallback(user_id: str, default: Mapping[str, Any]) -> dict[str, Any]:
    """The result for a user without candidates: the default list's (a found ``default`` result)."""
    return {**default, "user_id": user_id, "items": list(default["items"]), "found": False, "fallback": True}


def _stored_list(
    user_id: str, columns: Mapping[str, Sequence[Any]], i: int, present: bool, k: int | None
) -> dict[str, Any] | None:
    """Row ``i`` of column-oriented online values as a found result, ``None`` when absent.

    The result's ``items`` are still ``(video_ids, raw scores)``: :func:`_assemble` turns the scores
    of a whole batch into floats at once (:func:`_with_items`).

    Absent: the store did not flag ``video_ids`` ``PRESENT``, or it did with a null value (Redis
    flags absent keys ``PRESENT`` with null values, see the module docstring).

    Raises:
        ValueError: naming the user when the stored list's video_ids and scores differ in length, or
            when a stored list's scores, model_version or generated_at is null (a partial write).
    """
    if not present or columns[VIDEO_IDS][i] is None:
        return None
    nulls = [name for name in (SCORES, VERSION, GENERATED) if columns[name][i] is None]
    if nulls:
        raise ValueError(f"feature view {VIEW}, user {user_id}: video_ids stored but {nulls} are null")
    videos, scores = columns[VIDEO_IDS][i], columns[SCORES][i]
    if len(videos) != len(scores):
        raise ValueError(
            f"feature view {VIEW}, user {user_id}: {len(videos)} video_ids but {len(scores)} scores"
        )
    return {
        "user_id": user_id,
        "model_version": columns[VERSION][i],
        "generated_at": _iso(columns[GENERATED][i]),
        "items": (videos, scores) if k is None else (videos[:k], scores[:k]),
        "found": True,
        "fallback": False,
    }


@functools.lru_cache(maxsize=4)
def _default_scores(scores: tuple[float | str, ...]) -> list[float]:
    """:func:`_float32` of the default list's scores: one list, read on every call, converted once."""
    return _float32(scores)


def _with_items(recs: list[dict[str, Any]], default: dict[str, Any] | None) -> None:
    """Turn the ``(video_ids, raw scores)`` of found results (and the default's) into item lists, in place.

    The scores of every user's list go through one :func:`_float32` call; the default list's are
    cached, as the same list is read with every request.
    """
    import numpy as np

    parts = [rec["items"][1] for rec in recs]
    if parts and all(isinstance(part, np.ndarray) for part in parts):  # from the Redis reader
        scores = _float32(np.concatenate(parts))
    else:
        scores = _float32(list(itertools.chain.from_iterable(parts)))
    start = 0
    for rec in recs:
        videos = rec["items"][0]
        end = start + len(videos)
        rec["items"] = [{"video_id": v, "score": s} for v, s in zip(videos, scores[start:end], strict=True)]
        start = end
    if default is not None:
        videos, raw = default["items"]
        key = tuple(raw.tolist() if isinstance(raw, np.ndarray) else raw)
        default["items"] = [
            {"video_id": v, "score": s} for v, s in zip(videos, _default_scores(key), strict=True)
        ]


def _assemble(
    user_ids: Sequence[str],
    columns: Mapping[str, Sequence[Any]],
    present: Sequence[bool],
    k: int | None,
    with_default: bool = True,
) -> list[dict[str, Any]]:
    """Per-user dicts from column-oriented online values (one entry per requested row in every column).

    With ``with_default``, the last row of every column is :data:`DEFAULT_LIST_KEY`'s, appended to
    the request: it answers every requested user without a list of their own and is not a result.
    ``present[i]`` is whether the store flagged row i's ``video_ids`` as ``PRESENT``.
    """
    n = len(user_ids) - 1 if with_default else len(user_ids)
    default = _stored_list(DEFAULT_LIST_KEY, columns, n, present[n], k) if with_default else None
    recs = [_stored_list(user_id, columns, i, present[i], k) for i, user_id in enumerate(user_ids[:n])]
    expired: dict[int, str] = {}
    if default is not None:  # a list much older than the night's default list is not served
        age = max_list_age()
        for i, rec in enumerate(recs):
            if rec is not None and list_expired(rec["generated_at"], default["generated_at"], age):
                expired[i], recs[i] = rec["model_version"], None
    _with_items([rec for rec in recs if rec is not None], default)
    return [
        rec
        if rec is not None
        else not_found(user_id)
        if default is None
        else fallback(user_id, default) | ({"expired": expired[i]} if i in expired else {})
        for i, (user_id, rec) in enumerate(zip(user_ids[:n], recs, strict=True))
    ]


def recommend(
    settings: Settings,
    user_ids: Sequence[str],
    k: int | None = None,
    store: FeatureStore | None = None,
    embeddings: bool = False,
) -> list[dict[str, Any]]:
    """The published candidates of ``user_ids``, best first, from one batched online read.

    Args:
        settings: which Feast store (ignored when ``store`` is given).
        user_ids: users to look up; duplicates are allowed and answered each time.
        k: keep at most the ``k`` best items per user (all when ``None``).
        store: an open ``FeatureStore`` to reuse (a long-lived service); ``get_store(settings)``
            otherwise.
        embeddings: also give each found user's ``embedding`` (view ``user_daily_embedding``), read
            in the same snapshot as the list and of the same ``model_version`` (:func:`_with_embedding`).

    Returns:
        One dict per user in input order (see the module docstring); a user absent from the online
        store gets the default list with ``found: False, fallback: True`` (no items, null
        ``model_version``/``generated_at`` and ``fallback: False`` while no default list is published).

    Raises:
        ValueError: when ``k < 1``.
        TypeError: when ``user_ids`` is a single ``str``.
    """
    _check_ids(user_ids)
    _check_k(k)
    if len(user_ids) == 0:
        return []
    if store is None:
        from reelrec.feast_store import get_store

        store = get_store(settings)
    service = store.get_feature_service(FEATURE_SERVICE, allow_cache=True)
    return _CandidatesReader(store, service, embeddings).read(user_ids, k)


def _python_value(value: ValueProto | None) -> Any:
    """A stored Feast value as Python, as the SDK's ``OnlineResponse.to_dict()`` gives it.

    Lists and strings (the candidates' columns) are read directly; every other kind goes through
    Feast's own conversion (``feast_value_type_to_python_type``: a timestamp becomes a UTC datetime).
    """
    if value is None:
        return None
    kind = value.WhichOneof("val")
    if kind is None:
        return None
    if kind in _LIST_KINDS:
        return list(getattr(value, kind).val)
    if kind == "string_val":
        return value.string_val
    from feast.type_map import feast_value_type_to_python_type

    return feast_value_type_to_python_type(value)


_LIST_KINDS = frozenset({"string_list_val", "float_list_val", "double_list_val", "int64_list_val"})


class _CandidatesReader:
    """The view behind ``recommendations_v1``, resolved once and read below ``get_online_features``.

    ``FeatureStore.get_online_features`` resolves the service's views from the registry on every call
    and builds a protobuf response, only for it to be turned back into columns here; this reads the same
    rows with the online store method underneath it (:meth:`columns`: ``OnlineStore.online_read``,
    Feast's key layout and decoding, on SQLite and Redis alike) and keeps the view it resolved at
    start. On Redis, :meth:`read` takes :attr:`redis` instead (:meth:`redis_columns`: Feast's key
    layout, one pipelined HMGET, scores decoded in bulk; :mod:`reelrec.online_read`). Columns and
    statuses are those of the SDK (tests compare them on both stores and both paths), and no call
    touches the registry, so a registry cache expiry (``cache_ttl_seconds``) never lands on a read.
    """

    def __init__(self, store: FeatureStore, service: FeatureService, embeddings: bool = False) -> None:
        projections = {projection.name: projection for projection in service.feature_view_projections}
        if list(projections) != [VIEW]:
            raise ValueError(
                f"feature service {service.name} reads views {sorted(projections)}; serving reads {VIEW} only"
            )
        self.features = [feature.name for feature in projections[VIEW].features]
        needed = (catalog.VIDEO_IDS, catalog.SCORES, MODEL_VERSION, GENERATED_AT)
        missing = [name for name in needed if name not in self.features]
        if missing:
            raise ValueError(f"feature service {service.name} lacks {missing} of feature view {VIEW}")
        self.view = store.get_feature_view(VIEW, allow_registry_cache=True)
        self.config = store.config
        self.provider = store.provider
        # With embeddings, the user's embedding view is read in the same snapshot (see _with_embedding).
        self.also = (
            [
                (
                    store.get_feature_view(EMBEDDING_VIEW, allow_registry_cache=True),
                    [catalog.EMBEDDING, MODEL_VERSION],
                )
            ]
            if embeddings
            else []
        )
        self.redis = None  # on SQLite (and where RedisViewReader.open declines) online_read reads
        if store.config.online_store.type == "redis":
            from reelrec.online_read import RedisViewReader  # imports redis-py: Redis stores only

            self.redis = RedisViewReader.open(store, self.view, needed, self.also)

    def columns(self, user_ids: Sequence[str]) -> tuple[dict[str, list[Any]], list[bool]]:
        """One online read of ``user_ids``: ``<view>__<feature>`` columns, and ``video_ids`` PRESENT or not.

        Like the SDK's statuses: a key the store does not hold is absent on SQLite and present with
        null values on Redis (see the module docstring).
        """
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value

        keys = [EntityKey(join_keys=[USER_ID], entity_values=[Value(string_val=u)]) for u in user_ids]
        reads = [(self.view, list(self.features)), *self.also]
        sqlite = self.config.online_store.type == "sqlite" and self.also
        conn = self.provider.online_store._get_conn(self.config) if sqlite else None  # type: ignore[attr-defined]
        if conn is not None:  # one read transaction: both views as of one commit of a publish
            conn.execute("BEGIN")
        try:
            # Redis' online_read appends its timestamp field to the list it is given: give it a copy.
            answers = [
                self.provider.online_read(self.config, view, keys, list(names)) for view, names in reads
            ]
        finally:
            if conn is not None:
                conn.commit()
        columns: dict[str, list[Any]] = {}
        present = [catalog.VIDEO_IDS in (values or {}) for _, values in answers[0]]
        for (view, names), rows in zip(reads, answers, strict=True):
            for name in names:
                columns[f"{view.name}__{name}"] = [
                    _python_value((values or {}).get(name)) for _, values in rows
                ]
        return columns, present

    def redis_columns(self, user_ids: Sequence[str]) -> tuple[dict[str, list[Any]], list[bool]]:
        """:meth:`columns` of the candidates' four features, read by :attr:`redis` (Redis only).

        Scores are float32 arrays rather than lists; every row is ``PRESENT``, as Feast's Redis
        store answers (see the module docstring).
        """
        assert self.redis is not None, "redis_columns needs a Redis online store"
        values = self.redis.read(user_ids)
        named = {name if "__" in name else f"{VIEW}__{name}": column for name, column in values.items()}
        return named, [True] * len(user_ids)

    def read(self, user_ids: Sequence[str], k: int | None) -> list[dict[str, Any]]:
        """One online read for all of ``user_ids`` and the default list, as :func:`recommend` answers."""
        ids = [*user_ids, DEFAULT_LIST_KEY]
        columns, present = self.columns(ids) if self.redis is None else self.redis_columns(ids)
        recs = _assemble(ids, columns, present, k)
        return _with_embedding(recs, columns) if self.also else recs


def _with_embedding(recs: list[dict[str, Any]], columns: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Add each found user's ``embedding`` (``None`` for the rest), checked to be of the list's version.

    Publishing writes a user's list and embedding together (one SQLite transaction; one Redis
    transaction per batch of users, :mod:`feature_repo.online_write`) and they are read as one
    snapshot (one read transaction; one ``HMGET`` of the user's hash), so both carry the same
    ``model_version``, which the result reports. A difference is refused, never served.

    Raises:
        ValueError: naming the user and both versions when they differ.
    """
    for i, rec in enumerate(recs):
        embedding, version = columns[EMBEDDING][i], columns[EMBEDDING_VERSION][i]
        if not rec["found"]:
            rec["embedding"] = None
            continue
        if version != rec["model_version"]:
            raise ValueError(
                f"user {rec['user_id']}: list of model_version {rec['model_version']!r} but embedding of "
                f"{version!r} (feature views {VIEW}, {EMBEDDING_VIEW}); refusing a mixed answer"
            )
        rec["embedding"] = [float(x) for x in embedding]
    return recs


class Recommender:
    """:func:`recommend` over one open ``FeatureStore`` and feature service, for a long-lived service.

    The service and its view are resolved once (:class:`_CandidatesReader`); the online values are
    read on every call, so a night published while the service runs is served at once.
    """

    def __init__(self, settings: Settings, embeddings: bool = False) -> None:
        from reelrec.feast_store import get_store

        self.store = get_store(settings)
        self.service = self.store.get_feature_service(FEATURE_SERVICE, allow_cache=True)
        self.reader = _CandidatesReader(self.store, self.service, embeddings)
        self(["__warmup__"])  # the first online read opens the store's connection; not a user

    def __call__(self, user_ids: Sequence[str], k: int | None = None) -> list[dict[str, Any]]:
        """Same as :func:`recommend` (same argument checks, same result)."""
        _check_ids(user_ids)
        _check_k(k)
        return self.reader.read(user_ids, k) if len(user_ids) else []
