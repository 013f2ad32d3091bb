"""Exact top-k scoring as a Spark job: users partitioned across executors, the catalog broadcast.

The single-process path (:func:`local_top_k`: :func:`models.topk.top_k_with_quota`, or
:func:`models.topk.blocked_top_k` without a quota, over user-video dot products) uses the cores of one
machine. :func:`spark_top_k` runs the same selection as a Spark job:

* users become a DataFrame (``user_id``, ``row``, ``vector``, ``watched``) hash-partitioned by
  ``user_id``;
* the video embeddings ``(I, D)`` and fresh flags ``(I,)`` are broadcast, so they travel once per
  executor (Spark Connect has no broadcast variables: there they travel inside the serialized function);
* every partition runs :func:`local_top_k` on its Arrow batches (``mapInArrow``). A user's list depends
  only on that user's row of scores and exclusions, so the result is the single-process result whatever
  the partitioning;
* the driver collects ``(user_id, row, items, scores)`` and puts the rows back in input order.

Both paths score with :func:`user_video_scores`, which multiplies users in groups of one fixed shape:
BLAS picks its kernel (and so the float32 rounding) by a product's shape, and a partition's blocks hold
other users than the single process's. Identity is bitwise where the executors run the same BLAS kernels
as the driver (the same library on the same CPU family: OpenBLAS picks kernels per CPU).

Which engine scores a night: ``settings.scoring_engine`` (``REELREC_SCORING_ENGINE``), see
:func:`use_spark`: ``local`` in the embedded profile, ``auto`` in production (Spark from
``settings.spark_scoring_min_users`` users on, where one machine's cores stop being enough).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from models.topk import DEFAULT_BLOCK_SIZE, DotScores, blocked_top_k, top_k_with_quota
from reelrec.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

USER_ID, ROW, VECTOR, WATCHED, ITEMS, SCORES = "user_id", "row", "vector", "watched", "items", "scores"
OUTPUT_SCHEMA = f"{USER_ID} string, {ROW} long, {ITEMS} array<long>, {SCORES} array<float>"
SCORE_ROWS = 256  # users per matrix product (one shape for every product, see user_video_scores)
MAX_USERS_PER_PARTITION = 50_000  # keeps a task's inputs and outputs small next to its score blocks


@dataclass(frozen=True)
class ScoredUsers:
    """Each user's top ``k``, rows in the input order."""

    user_ids: list[str]
    items: np.ndarray  # (U, k) int64 catalog column, best first, -1 padded
    scores: np.ndarray  # (U, k) float32, -inf padded


def use_spark(settings: Settings, n_users: int) -> bool:
    """Whether a night of ``n_users`` scores on Spark.

    ``scoring_engine`` ``spark`` always does, ``local`` never, ``auto`` from ``spark_scoring_min_users``
    users on.
    """
    engine = settings.scoring_engine
    return engine == "spark" or (engine == "auto" and n_users >= settings.spark_scoring_min_users)


def user_video_scores(users: np.ndarray, videos: np.ndarray) -> np.ndarray:
    """Dot products ``(B, D) x (I, D) -> (B, I)`` float32; a user's row has the same bits whatever ``B`` is.

    BLAS picks its kernel by the shape of a product (one row goes to gemv, small products to a
    small-matrix kernel), and kernels round float32 sums differently. So users are multiplied
    :data:`SCORE_ROWS` at a time, the last group zero-padded: every product has one shape, and a user's
    scores depend neither on how many users a block holds nor on where in it the user sits (nor on the
    BLAS thread count, checked in tests). Returns a fresh array (top-k may overwrite it).
    """
    users = np.asarray(users, dtype=np.float32)
    videos_t = np.asarray(videos, dtype=np.float32).T  # (D, I)
    n_users = users.shape[0]
    out = np.empty((n_users, videos_t.shape[1]), dtype=np.float32)  # (B, I)
    for start in range(0, n_users, SCORE_ROWS):
        group = users[start : start + SCORE_ROWS]
        if len(group) == SCORE_ROWS:
            np.matmul(group, videos_t, out=out[start : start + SCORE_ROWS])
        else:
            padded = np.zeros((SCORE_ROWS, users.shape[1]), dtype=np.float32)
            padded[: len(group)] = group
            out[start:] = (padded @ videos_t)[: len(group)]
    return out


def local_top_k(
    user_vectors: np.ndarray,
    exclude: sp.csr_matrix | None,
    video_vectors: np.ndarray,
    k: int,
    fresh: np.ndarray | None = None,
    quota: int = 0,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> tuple[np.ndarray, np.ndarray]:
    """The single-process path, also what each Spark partition runs on its users.

    Args:
        user_vectors: ``(U, D)`` float32 user embeddings.
        exclude: ``(U, I)`` CSR whose stored entries (watched videos) are never returned, or ``None``.
        video_vectors: ``(I, D)`` float32 video embeddings.
        k: Items per user.
        fresh: ``(I,)`` bool, the videos eligible for the ``quota`` reserved slots.
        quota: Reserved slots (0: plain :func:`models.topk.blocked_top_k`).
        block_size: Users per score block.

    Returns:
        ``(items (U, k) int64, scores (U, k) float32)`` as :func:`models.topk.top_k_with_quota`.
    """
    # DotScores: the selection fuses each tile's sgemm with the top-k (models.topk), scores equal to
    # user_video_scores' bit for bit (tests/models/test_topk_quota.py).
    score = DotScores(user_vectors, video_vectors)
    n_users = user_vectors.shape[0]
    if quota == 0 or fresh is None:
        return blocked_top_k(score, n_users, k, exclude=exclude, block_size=block_size)
    return top_k_with_quota(score, n_users, k, fresh, quota, exclude=exclude, block_size=block_size)


def spark_top_k(
    spark: SparkSession,
    user_ids: Sequence[str],
    user_vectors: np.ndarray,
    exclude: sp.csr_matrix,
    video_vectors: np.ndarray,
    k: int,
    fresh: np.ndarray | None = None,
    quota: int = 0,
    partitions: int | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> ScoredUsers:
    """:func:`local_top_k` as a Spark job over users partitioned by ``user_id``: the same result.

    Args:
        spark: A classic or Spark Connect session.
        user_ids: ``(U,)`` distinct user ids, the row order of the result.
        user_vectors, exclude, video_vectors, k, fresh, quota, block_size: as :func:`local_top_k`
            (``exclude`` is required: ``(U, I)``, one row per user, possibly empty).
        partitions: Spark partitions of the users; default: the session's parallelism, and at most
            :data:`MAX_USERS_PER_PARTITION` users each.

    Returns:
        Each user's top ``k`` (items, scores), rows in ``user_ids`` order.

    Raises:
        ValueError: naming the argument whose shape or value is wrong.
    """
    users, videos, exclude, fresh = _checked(user_ids, user_vectors, exclude, video_vectors, fresh, k, quota)
    n_users = len(user_ids)
    if n_users == 0:
        return ScoredUsers([], np.zeros((0, k), np.int64), np.zeros((0, k), np.float32))
    n_parts = partitions or max(_parallelism(spark), -(-n_users // MAX_USERS_PER_PARTITION))
    frame = spark.createDataFrame(_users_table(user_ids, users, exclude)).repartition(n_parts, USER_ID)
    with _broadcast(spark, (videos, fresh)) as catalog:
        rank = partial(_rank_batches, catalog=catalog, k=k, quota=quota, block_size=block_size)
        result = frame.mapInArrow(rank, OUTPUT_SCHEMA).toArrow()
    return _in_input_order(result, list(user_ids), k)


def _checked(
    user_ids: Sequence[str],
    user_vectors: np.ndarray,
    exclude: sp.csr_matrix,
    video_vectors: np.ndarray,
    fresh: np.ndarray | None,
    k: int,
    quota: int,
) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix, np.ndarray]:
    """The inputs as float32 / CSR / bool arrays after checking they fit each other (fail on the driver)."""
    users = np.ascontiguousarray(user_vectors, dtype=np.float32)
    videos = np.ascontiguousarray(video_vectors, dtype=np.float32)
    n_users, n_items = len(user_ids), videos.shape[0] if videos.ndim == 2 else -1
    if users.ndim != 2 or videos.ndim != 2 or users.shape[1] != videos.shape[1]:
        raise ValueError(f"user_vectors {users.shape}, video_vectors {videos.shape} must be (U, D), (I, D)")
    if users.shape[0] != n_users:
        raise ValueError(f"user_vectors has {users.shape[0]} rows but user_ids has {n_users}")
    if len(set(user_ids)) != n_users:
        raise ValueError("user_ids must be distinct")
    exclude = sp.csr_matrix(exclude)
    if exclude.shape != (n_users, n_items):
        raise ValueError(f"exclude is {exclude.shape}, not (U={n_users}, I={n_items})")
    flags = np.zeros(n_items, bool) if fresh is None else np.asarray(fresh, dtype=bool)
    if flags.shape != (n_items,):
        raise ValueError(f"fresh is {flags.shape}, not (I={n_items},)")
    if k < 1 or not 0 <= quota <= k:
        raise ValueError(f"k must be >= 1 and quota in [0, k], got k={k}, quota={quota}")
    return users, videos, exclude, flags


def _parallelism(spark: SparkSession) -> int:
    """Task slots of a classic session; a Connect client cannot see them: the shuffle partitions."""
    if _is_connect(spark):
        return int(spark.conf.get("spark.sql.shuffle.partitions") or 1)
    return int(spark.sparkContext.defaultParallelism)


def _is_connect(spark: SparkSession) -> bool:
    return type(spark).__module__.startswith("pyspark.sql.connect")


def _users_table(user_ids: Sequence[str], users: np.ndarray, exclude: sp.csr_matrix) -> pa.Table:
    """One row per user: id, input position, vector ``list<float>``, watched columns ``list<int64>``."""
    n_users, dim = users.shape
    vector_offsets = pa.array(np.arange(0, n_users * dim + 1, dim, dtype=np.int32))
    watched_offsets = pa.array(exclude.indptr.astype(np.int32))
    return pa.table(
        {
            USER_ID: pa.array(list(user_ids), pa.string()),
            ROW: pa.array(np.arange(n_users, dtype=np.int64)),
            VECTOR: pa.ListArray.from_arrays(vector_offsets, pa.array(users.ravel())),
            WATCHED: pa.ListArray.from_arrays(watched_offsets, pa.array(exclude.indices.astype(np.int64))),
        }
    )


@dataclass(frozen=True)
class _Inline:
    """A value shipped inside the function (Spark Connect), read like a broadcast variable."""

    value: Any


@contextlib.contextmanager
def _broadcast(spark: SparkSession, value: object) -> Iterator[Any]:
    """``value`` as a broadcast variable for the job run inside the block (``.value`` on executors)."""
    if _is_connect(spark):
        yield _Inline(value)
        return
    variable = spark.sparkContext.broadcast(value)
    try:
        yield variable
    finally:
        variable.destroy()


def _rank_batches(
    batches: Iterable[pa.RecordBatch], catalog: Any, k: int, quota: int, block_size: int
) -> Iterator[pa.RecordBatch]:
    """Executor side: each Arrow batch of users -> their top ``k``, one core per task.

    A task owns one core (``spark.task.cpus``), so the top-k threads and BLAS run single-threaded here.
    """
    from threadpoolctl import threadpool_limits

    os.environ["REELREC_TOPK_THREADS"] = "1"  # read when models.topk first makes its thread pool
    videos, fresh = catalog.value
    with threadpool_limits(1):
        for batch in batches:
            yield _rank_batch(batch, videos, fresh, k, quota, block_size)


def _rank_batch(
    batch: pa.RecordBatch, videos: np.ndarray, fresh: np.ndarray, k: int, quota: int, block_size: int
) -> pa.RecordBatch:
    n_users, n_items = batch.num_rows, videos.shape[0]
    flat = pc.list_flatten(batch.column(VECTOR)).to_numpy(zero_copy_only=False)
    users = np.ascontiguousarray(flat, dtype=np.float32).reshape(n_users, videos.shape[1])  # (B, D)
    watched = batch.column(WATCHED)
    indptr = np.concatenate([[0], np.cumsum(pc.list_value_length(watched).to_numpy(zero_copy_only=False))])
    indices = pc.list_flatten(watched).to_numpy(zero_copy_only=False)
    exclude = sp.csr_matrix((np.ones(len(indices), np.float32), indices, indptr), shape=(n_users, n_items))
    items, scores = local_top_k(users, exclude, videos, k, fresh, quota, block_size)
    offsets = pa.array(np.arange(0, n_users * k + 1, k, dtype=np.int32))
    return pa.RecordBatch.from_arrays(
        [
            batch.column(USER_ID),
            batch.column(ROW),
            pa.ListArray.from_arrays(offsets, pa.array(items.ravel())),
            pa.ListArray.from_arrays(offsets, pa.array(scores.ravel())),
        ],
        names=[USER_ID, ROW, ITEMS, SCORES],
    )


def _in_input_order(result: pa.Table, user_ids: list[str], k: int) -> ScoredUsers:
    """The collected rows sorted back into ``user_ids`` order, checked to be each user exactly once."""
    n_users = len(user_ids)
    rows = result.column(ROW).to_numpy()
    if len(rows) != n_users or not np.array_equal(np.sort(rows), np.arange(n_users)):
        raise RuntimeError(f"spark_top_k: the job returned {len(rows)} rows, not {n_users} users once each")
    order = np.argsort(rows)
    if np.asarray(result.column(USER_ID).to_pylist(), dtype=object)[order].tolist() != user_ids:
        raise RuntimeError("spark_top_k: a returned row's user_id does not match its input row")
    items = pc.list_flatten(result.column(ITEMS)).to_numpy().reshape(n_users, k)[order]
    scores = pc.list_flatten(result.column(SCORES)).to_numpy().reshape(n_users, k)[order]
    return ScoredUsers(user_ids, items.astype(np.int64), scores.astype(np.float32))
