"""Merge the candidate sources into one list per user, keeping each candidate's provenance.

The union of every source's candidates, watched videos removed, is cut to ``max_candidates`` per
user by the best reciprocal rank any source gives the video (a video some source ranks first beats
one no source ranks above tenth); ties go to the video more sources returned, then to the lower
catalog index, so the result is deterministic. For each kept video the merge records, per source,
its score (NaN where that source did not return it) and its 0-based rank (-1 where absent): the
ranking stage downstream learns from these.

All steps are array operations over the flattened ``(user, video, source)`` entries: one sort, no
loop over users or candidates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.sources import covisit, ease, followed, fresh_content, trending, two_tower
from models.sources.base import Night, SourceCandidates, check_candidates
from models.sources.config import SOURCE_NAMES, SourcesConfig

RETRIEVERS = {
    two_tower.NAME: two_tower.retrieve,
    covisit.NAME: covisit.retrieve,
    trending.NAME: trending.retrieve,
    followed.NAME: followed.retrieve,
    fresh_content.NAME: fresh_content.retrieve,
    ease.NAME: ease.retrieve,
}


@dataclass
class Merged:
    """Every user's merged candidates with, per source, the score and rank it gave each of them."""

    user_ids: list[str]
    video_ids: list[str]
    sources: list[str]  # source names, column order of the provenance arrays
    items: np.ndarray  # (U, M) int64, -1 padded, ordered by best reciprocal rank
    source_scores: np.ndarray  # (U, M, S) float32, NaN where the source did not return the item
    source_ranks: np.ndarray  # (U, M, S) int32, 0-based rank in that source, -1 where absent

    def order_by_best_source(self) -> np.ndarray:
        """``(U, M)`` items by best rank over sources, then more sources, then lower index; -1 last."""
        present = self.source_ranks >= 0
        big = np.iinfo(np.int32).max
        best = np.where(present, self.source_ranks, big).min(axis=2, initial=big)  # (U, M)
        count = present.sum(axis=2)
        valid = self.items >= 0
        item_key = np.where(valid, self.items, np.iinfo(np.int64).max)
        order = np.lexsort((item_key, -count, np.where(valid, best, big), ~valid), axis=1)
        return np.take_along_axis(self.items, order, axis=1)

    def source_only(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(items, scores)`` ``(U, M)``: the merged candidates source ``name`` returned, in its order.

        Raises:
            KeyError: when ``name`` is not one of ``sources``.
        """
        if name not in self.sources:
            raise KeyError(f"source {name!r} is not merged here; merged: {', '.join(self.sources)}")
        s = self.sources.index(name)
        ranks = self.source_ranks[:, :, s]
        key = np.where(ranks >= 0, ranks, np.iinfo(np.int32).max)
        order = np.argsort(key, axis=1, kind="stable")
        present = np.take_along_axis(ranks, order, axis=1) >= 0
        items = np.where(present, np.take_along_axis(self.items, order, axis=1), -1)
        scores = np.where(present, np.take_along_axis(self.source_scores[:, :, s], order, axis=1), np.nan)
        return items, scores.astype(np.float32)


def merge(results: list[SourceCandidates], night: Night, max_candidates: int) -> Merged:
    """The union of ``results`` per user, watched removed, cut to ``max_candidates`` (module docstring).

    Args:
        results: One :class:`SourceCandidates` per source (distinct names), rows in ``night.user_ids`` order.
        night: The night they were retrieved for.
        max_candidates: Candidates kept per user (``M`` is the largest kept count, at most this).

    Returns:
        The :class:`Merged` candidates with provenance.

    Raises:
        ValueError: when a result does not fit the night, names repeat or ``max_candidates < 1``.
    """
    if max_candidates < 1:
        raise ValueError(f"max_candidates must be >= 1, got {max_candidates}")
    names = [r.name for r in results]
    if len(set(names)) != len(names):
        raise ValueError(f"source names repeat: {names}")
    for result in results:
        check_candidates(result, night)
    entries = _Entries.of(results, night)
    pairs = _pairs(entries)
    chosen = _choose(pairs, entries.item.shape, max_candidates)  # (U, M) pair index, -1 padded
    n_users, width = chosen.shape
    items = np.where(chosen >= 0, pairs.item[np.maximum(chosen, 0)], -1)
    position = np.full(len(pairs.item), -1, np.int64)  # slot of each pair in its user's row
    users, slots = np.nonzero(chosen >= 0)
    position[chosen[users, slots]] = slots
    source_scores = np.full((n_users, width, len(names)), np.nan, np.float32)
    source_ranks = np.full((n_users, width, len(names)), -1, np.int32)
    slot = position[pairs.of_entry]
    kept = slot >= 0
    at = (entries.user[kept], slot[kept], entries.source[kept])
    source_scores[at] = entries.score[kept]
    source_ranks[at] = entries.rank[kept]
    return Merged(list(night.user_ids), list(night.video_ids), names, items, source_scores, source_ranks)


@dataclass
class _Entries:
    """Every returned, unwatched candidate, flattened user-major, sorted by (user, item, source)."""

    user: np.ndarray  # (N,)
    item: np.ndarray  # (U, T) items, each row sorted; ``I`` (a sentinel) where no candidate
    valid: np.ndarray  # (U, T) bool
    source: np.ndarray  # (N,) of the valid entries, row-major
    rank: np.ndarray  # (N,)
    score: np.ndarray  # (N,)

    @classmethod
    def of(cls, results: list[SourceCandidates], night: Night) -> _Entries:
        n_users, n_items = len(night.user_ids), len(night.video_ids)
        widths = [r.items.shape[1] for r in results]
        items = np.concatenate([r.items for r in results] or [np.zeros((n_users, 0), np.int64)], axis=1)
        scores = np.concatenate([r.scores for r in results] or [np.zeros((n_users, 0), np.float32)], axis=1)
        source_of = np.repeat(np.arange(len(results)), widths)  # (T,)
        rank_of = np.concatenate([np.arange(w) for w in widths] or [np.zeros(0, np.int64)])  # (T,)
        items = np.where(items >= 0, items, n_items)
        order = np.argsort(items, axis=1, kind="stable")  # by item, equal items in source order
        items = np.take_along_axis(items, order, axis=1)
        valid = items < n_items
        watched = _watched(night, items, valid)
        items[watched] = n_items
        valid &= ~watched
        users = np.nonzero(valid)[0]
        return cls(
            users,
            items,
            valid,
            source_of[order][valid],
            rank_of[order][valid],
            np.take_along_axis(scores, order, axis=1)[valid],
        )


def _watched(night: Night, items: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``(U, T)`` bool: entries naming a video the user watched (one sorted search, no per-user loop)."""
    exclude = night.exclude.tocsr()
    n_items = len(night.video_ids)
    watched_keys = np.repeat(np.arange(exclude.shape[0], dtype=np.int64), np.diff(exclude.indptr)) * n_items
    watched_keys = np.sort(watched_keys + exclude.indices)
    out = np.zeros(items.shape, bool)
    if not len(watched_keys):
        return out
    rows, cols = np.nonzero(valid)
    keys = rows * n_items + items[rows, cols]
    at = np.minimum(np.searchsorted(watched_keys, keys), len(watched_keys) - 1)
    out[rows, cols] = watched_keys[at] == keys
    return out


@dataclass
class _Pairs:
    """Distinct (user, item) candidates with their best rank and number of sources."""

    user: np.ndarray  # (P,)
    column: np.ndarray  # (P,) index of the pair among its user's pairs (item order)
    item: np.ndarray  # (P,)
    best: np.ndarray  # (P,) lowest rank any source gave it
    count: np.ndarray  # (P,) sources that returned it
    of_entry: np.ndarray  # (N,) pair of each entry


def _pairs(entries: _Entries) -> _Pairs:
    """Runs of equal items within each user's sorted row become one pair each."""
    items, valid = entries.item, entries.valid
    first = valid.copy()
    first[:, 1:] &= items[:, 1:] != items[:, :-1]  # (U, T): first entry of each (user, item) run
    column = np.cumsum(first, axis=1) - 1
    starts = np.flatnonzero(first[valid])  # run starts among the valid entries
    if not len(starts):
        empty = np.zeros(0, np.int64)
        return _Pairs(empty, empty, empty, empty, empty, empty)
    users, cols = np.nonzero(first)
    return _Pairs(
        users,
        column[users, cols],
        items[users, cols],
        np.minimum.reduceat(entries.rank, starts),
        np.diff(np.r_[starts, len(entries.rank)]),
        np.cumsum(first[valid]) - 1,
    )


def _choose(pairs: _Pairs, shape: tuple[int, ...], max_candidates: int) -> np.ndarray:
    """``(U, M)`` pair indices per user by best rank, then more sources, then lower item; -1 padded."""
    n_users, width = shape
    sentinel = np.iinfo(np.int64).max
    keys = np.full((n_users, max(width, 1)), sentinel, np.int64)  # (U, T), columns in item order
    n_sources = int(pairs.count.max(initial=0))
    keys[pairs.user, pairs.column] = pairs.best * (n_sources + 1) + (n_sources - pairs.count)
    index = np.full(keys.shape, -1, np.int64)
    index[pairs.user, pairs.column] = np.arange(len(pairs.user))
    order = np.argsort(keys, axis=1, kind="stable")[:, :max_candidates]  # stable: lower item on ties
    chosen = np.where(
        np.take_along_axis(keys, order, axis=1) < sentinel, np.take_along_axis(index, order, axis=1), -1
    )
    kept = int((chosen >= 0).sum(axis=1).max(initial=0))
    return chosen[:, :kept]


def retrieve_all(night: Night, cfg: SourcesConfig | None = None) -> tuple[list[SourceCandidates], Merged]:
    """Every source's candidates (in :data:`SOURCE_NAMES` order) and their merge.

    Sources that cannot run on this night (two_tower without vectors) return empty lists and still
    appear, so provenance columns are the same every night.
    """
    cfg = cfg or SourcesConfig()
    results = [check_candidates(RETRIEVERS[name](night, cfg.k_of(name)), night) for name in SOURCE_NAMES]
    return results, merge(results, night, cfg.max_candidates)
