"""What every candidate source reads (:class:`Night`) and returns (:class:`SourceCandidates`).

A candidate source proposes, for every user of a night, up to ``k`` videos of the night's catalog,
best first, each with the source's own score. Sources are fitted on data up to ``night.as_of`` only
(point in time) and never return a video the user already watched (``night.exclude``).

Sources score in one of two shapes, and both are ranked here by :func:`models.topk.blocked_top_k`
(exact, blocked over users, no per-user loop): a dense ``(U, I)`` score block where ``-inf`` means
"not a candidate" (:func:`top_k_candidates`), or a sparse ``(U, I)`` pattern of candidates with their
scores (:func:`sparse_top_k`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from models.interactions import pairs_matrix
from models.topk import DEFAULT_BLOCK_SIZE, ScoreBlock, blocked_top_k
from reelrec.settings import Settings


@dataclass
class Night:
    """What every candidate source reads for one night's lists."""

    settings: Settings
    date: str  # catalog night D: lists rank D's catalog snapshot
    as_of: str  # last night whose events/features may be used: D-1 (evaluation of D), D (scoring D)
    user_ids: list[str]  # row order of every result
    video_ids: list[str]  # column order (catalog of D, sorted)
    fresh: np.ndarray  # (I,) bool: uploaded on D
    exclude: sp.csr_matrix  # (U, I) videos each user watched up to as_of (never returned)
    histories: dict[str, list[str]]  # user -> positives of the history window up to as_of, newest first
    user_vectors: np.ndarray | None = None  # (U, d) two-tower users (None: source two_tower unavailable)
    video_vectors: np.ndarray | None = None  # (I, d)
    ann_index: str | None = None  # path of a faiss index over video_vectors (serving path), None: exact
    # What several sources read alike, computed once a night (e.g. the window's positives, which
    # covisit and EASE both fit on): key -> value, filled by the readers (models.sources.night).
    memo: dict[object, object] = field(default_factory=dict, repr=False, compare=False)

    @property
    def items(self) -> dict[str, int]:
        """Column of each catalog video."""
        return {v: i for i, v in enumerate(self.video_ids)}

    @property
    def users(self) -> dict[str, int]:
        """Row of each user."""
        return {u: i for i, u in enumerate(self.user_ids)}

    def history_matrix(self) -> sp.csr_matrix:
        """``(U, I)`` binary CSR of each user's history videos that are in the catalog."""
        pairs = [(u, v) for u in self.user_ids for v in self.histories.get(u, [])]
        return pairs_matrix([u for u, _ in pairs], [v for _, v in pairs], self.users, self.items)


@dataclass
class SourceCandidates:
    """One source's candidates for every user of a night, rows in ``night.user_ids`` order."""

    name: str
    items: np.ndarray  # (U, K) int64 catalog column index, -1 padded, best first
    scores: np.ndarray  # (U, K) float32, the source's own score, NaN where items == -1


def candidates(name: str, items: np.ndarray, scores: np.ndarray) -> SourceCandidates:
    """A :class:`SourceCandidates` from top-k output: ``-inf``/padding slots become item -1, score NaN."""
    items = np.asarray(items, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float32)
    empty = (items < 0) | ~np.isfinite(scores)
    return SourceCandidates(
        name, np.where(empty, -1, items), np.where(empty, np.float32(np.nan), scores).astype(np.float32)
    )


def empty_candidates(name: str, n_users: int) -> SourceCandidates:
    """No candidate for anyone: ``(U, 0)`` arrays."""
    return SourceCandidates(name, np.zeros((n_users, 0), np.int64), np.zeros((n_users, 0), np.float32))


def check_candidates(result: SourceCandidates, night: Night) -> SourceCandidates:
    """``result`` after checking it fits ``night``: shapes, dtypes, index range, padding, no repeats.

    Raises:
        ValueError: naming the source and what is wrong.
    """
    items, scores, name = result.items, result.scores, result.name
    n_users, n_items = len(night.user_ids), len(night.video_ids)
    if items.ndim != 2 or items.shape[0] != n_users or scores.shape != items.shape:
        raise ValueError(
            f"source {name}: items {items.shape} and scores {scores.shape} must both be (U={n_users}, K)"
        )
    if items.dtype != np.int64 or scores.dtype != np.float32:
        raise ValueError(
            f"source {name}: items must be int64 and scores float32, got {items.dtype}, {scores.dtype}"
        )
    if items.size and (items.min() < -1 or items.max() >= n_items):
        raise ValueError(f"source {name}: item indices outside [-1, {n_items})")
    padded = items < 0
    if not np.array_equal(padded, np.isnan(scores)):
        raise ValueError(f"source {name}: scores must be NaN exactly where items are -1")
    if items.size:
        ordered = np.sort(np.where(padded, -1 - np.arange(items.shape[1]), items), axis=1)
        if (ordered[:, 1:] == ordered[:, :-1]).any():
            raise ValueError(f"source {name}: an item appears twice in one user's candidates")
    return result


def top_k_candidates(
    name: str,
    score_block: ScoreBlock,
    night: Night,
    k: int,
    columns: np.ndarray | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> SourceCandidates:
    """The ``k`` best of a dense score block per user, ``night.exclude`` removed, ``-inf`` never returned.

    Args:
        name: The source's name.
        score_block: ``slice(a, b) -> (b - a, C)`` scores; ``-inf`` / NaN mean "not a candidate".
        night: The night (users, exclusions).
        k: Candidates per user.
        columns: ``(C,)`` catalog column of each scored column when the block scores a subset of the
            catalog (fresh uploads, EASE's item set); ``None``: the block scores the whole catalog.
        block_size: Users per block.

    Returns:
        ``(U, k)`` candidates, ``-1``/NaN padded; ``(U, 0)`` when ``k`` or the scored columns are 0.
    """
    n_users = len(night.user_ids)
    exclude = night.exclude if columns is None else night.exclude[:, columns]
    width = len(night.video_ids) if columns is None else len(columns)
    if k < 1 or width == 0 or n_users == 0:
        return empty_candidates(name, n_users)
    top, scores = blocked_top_k(score_block, n_users, k, exclude=exclude, block_size=block_size)
    if columns is not None:
        top = np.where(top >= 0, np.asarray(columns, np.int64)[np.maximum(top, 0)], -1)
    return candidates(name, top, scores)


def sparse_top_k(
    name: str, scores: sp.csr_matrix, night: Night, k: int, block_size: int = DEFAULT_BLOCK_SIZE
) -> SourceCandidates:
    """The ``k`` best stored entries of a ``(U, I)`` sparse score matrix per user (absent: no candidate).

    Stored entries are candidates whatever their value (zero and negative included).
    """
    scores = sp.csr_matrix(scores, dtype=np.float32)
    scores.sort_indices()

    def block(rows: slice) -> np.ndarray:
        part = scores[rows]
        dense = np.full(part.shape, -np.inf, dtype=np.float32)  # (B, I)
        r, c = _stored(part)
        dense[r, c] = part.data
        return dense

    return top_k_candidates(name, block, night, k, block_size=block_size)


def _stored(part: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of every stored entry of a CSR (explicit zeros included), in ``data`` order."""
    rows = np.repeat(np.arange(part.shape[0]), np.diff(part.indptr))
    return rows, part.indices
