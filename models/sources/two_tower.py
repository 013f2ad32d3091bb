"""Source ``two_tower``: the learned model's nearest videos, by dot product of user and video vectors.

Exact by default (blocked matrix multiply, :func:`models.topk.blocked_top_k`), in this process or, when
the settings choose Spark for the night's size (:func:`models.spark_scoring.use_spark`), as a Spark job
partitioned by users with the same result. When the night names a
faiss index built over the same video vectors (:func:`models.score.build_ann_index`), it is searched
the way an online service searches it: over-fetch ``k`` plus the user's watched count, drop watched
videos, keep the first ``k``.
"""

from __future__ import annotations

import numpy as np

from models.sources.base import Night, SourceCandidates, candidates, empty_candidates, top_k_candidates
from models.spark_scoring import spark_top_k, use_spark
from models.topk import DotScores

NAME = "two_tower"
ANN_BATCH = 4096  # queries per faiss search call


def retrieve(night: Night, k: int) -> SourceCandidates:
    """The ``k`` best videos per user by ``user_vectors @ video_vectors.T``; ``(U, 0)`` without vectors."""
    users, videos = night.user_vectors, night.video_vectors
    if users is None or videos is None:
        return empty_candidates(NAME, len(night.user_ids))
    if users.shape[0] != len(night.user_ids) or videos.shape[0] != len(night.video_ids):
        raise ValueError(
            f"two_tower: vectors {users.shape} x {videos.shape} do not match "
            f"{len(night.user_ids)} users x {len(night.video_ids)} videos"
        )
    if night.ann_index is not None:
        return _ann(night, night.ann_index, users, k)
    if use_spark(night.settings, len(night.user_ids)) and k >= 1 and len(night.video_ids):
        return _on_spark(night, users, videos, k)
    return top_k_candidates(NAME, DotScores(users, videos), night, k)  # fused sgemm + top-k


def _on_spark(night: Night, users: np.ndarray, videos: np.ndarray, k: int) -> SourceCandidates:
    """The exact path as a Spark job over the night's users (same result as in this process)."""
    from reelrec.spark import get_spark

    scored = spark_top_k(get_spark(night.settings), night.user_ids, users, night.exclude, videos, k)
    return candidates(NAME, scored.items, scored.scores)


def _ann(night: Night, index_path: str, users: np.ndarray, k: int) -> SourceCandidates:
    """Search the faiss index, over-fetching each batch by its largest watched count, then drop watched."""
    import faiss

    index = faiss.read_index(index_path)
    n_items = len(night.video_ids)
    if index.ntotal != n_items:
        raise ValueError(f"two_tower: faiss index {index_path} holds {index.ntotal} vectors, not {n_items}")
    n_users = len(night.user_ids)
    items = np.full((n_users, k), -1, np.int64)
    scores = np.full((n_users, k), -np.inf, np.float32)
    watched_counts = np.diff(night.exclude.indptr)
    for start in range(0, n_users, ANN_BATCH):
        stop = min(start + ANN_BATCH, n_users)
        fetch = min(n_items, k + int(watched_counts[start:stop].max(initial=0)))
        if fetch == 0:
            continue
        found_scores, found = index.search(np.ascontiguousarray(users[start:stop], np.float32), fetch)
        items[start:stop], scores[start:stop] = _drop_watched(found, found_scores, night, start, k)
    return candidates(NAME, items, scores)


def _drop_watched(
    found: np.ndarray, found_scores: np.ndarray, night: Night, start: int, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The first ``k`` found items per row that the user has not watched (faiss pads with -1)."""
    rows = np.arange(found.shape[0])[:, None] + start
    ok = found >= 0
    seen = np.zeros(found.shape, bool)
    seen[ok] = np.asarray(night.exclude[np.broadcast_to(rows, found.shape)[ok], found[ok]]).ravel() > 0
    keep = ok & ~seen
    # Stable partition: kept items first in their search order; then cut to k.
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
    out_items = np.where(
        np.take_along_axis(keep, order, axis=1), np.take_along_axis(found, order, axis=1), -1
    )
    out_scores = np.where(out_items >= 0, np.take_along_axis(found_scores, order, axis=1), -np.inf)
    pad = k - out_items.shape[1]
    if pad > 0:
        out_items = np.pad(out_items, ((0, 0), (0, pad)), constant_values=-1)
        out_scores = np.pad(out_scores, ((0, 0), (0, pad)), constant_values=-np.inf)
    return out_items, out_scores.astype(np.float32)
