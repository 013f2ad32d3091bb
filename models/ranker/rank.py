"""Rank every merged candidate of a night with a trained ranker, then apply the final-list rules.

:func:`rank` builds each (user, candidate) feature vector from the silver partitions of
``night.as_of`` (:func:`models.ranker.features.serving_entities`), the user's recent positives and
the merge's provenance, with the feed position fixed at ``serving_position``; the heads'
probabilities are blended into one score (``RankerConfig`` docstring).

:func:`final_lists` turns the scored candidates into each user's feed of ``top_n``:

1. watched videos (``night.exclude``) are removed;
2. ``fresh_slots`` of the ``top_n`` are kept for videos uploaded on D (``night.fresh``): the best
   ``min(fresh_slots, fresh candidates)`` fresh ones plus the best others fill the list (others
   short: more fresh ones), merged by score descending, equal scores by lower catalog index;
3. at most ``max_per_creator_top10`` videos of one creator in positions 1..10: a creator's further
   videos leave the top 10 and the next allowed ones move up; the pushed ones follow position 10 in
   their previous order (pushed down, never dropped).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from models.ranker import features
from models.ranker.artifacts import TrainedRanker
from models.ranker.config import RankerConfig
from models.ranker.model import blend, predict
from models.sources.base import Night
from models.sources.merge import Merged
from models.two_tower.inputs import ContentLookup
from reelrec.dates import add_days, day_bounds
from reelrec.settings import Settings

TOP = 10  # the positions the creator cap applies to
USER_BLOCK = 2048  # users whose candidates are featurised and scored at once


@dataclass
class RankedLists:
    """Every merged candidate of every user with the heads' probabilities and the blended score."""

    user_ids: list[str]
    video_ids: list[str]
    heads: tuple[str, ...]
    items: np.ndarray  # (U, M) int64 catalog column, -1 padded (the merge's order)
    probabilities: np.ndarray  # (U, M, H) float32, NaN where items == -1
    scores: np.ndarray  # (U, M) float32 blended score, -inf where items == -1


@dataclass
class ServingContext:
    """What every user block of a night shares: entity rows, tastes and video texts."""

    entities: features.ServingEntities
    tastes: np.ndarray  # (U, 384)
    history_len: np.ndarray  # (U,)
    texts: np.ndarray  # (I, 384)


def serving_context(night: Night, settings: Settings, content: ContentLookup) -> ServingContext:
    """Entity features of ``night.as_of`` for the night's users and catalog, requested the next midnight."""
    creators, upload_ts = features.video_catalog(settings, night.date, night.video_ids)
    requested_at = pa.scalar(day_bounds(add_days(night.as_of, 1))[0], upload_ts.type)
    age_us = pc.subtract(requested_at.cast(pa.int64()), upload_ts.cast(pa.int64()))
    request_age = np.maximum(pc.fill_null(age_us, 0).to_numpy(zero_copy_only=False) / 3.6e9, 0.0)
    entities = features.serving_entities(
        settings, night.as_of, night.user_ids, night.video_ids, request_age, list(creators)
    )
    histories = [night.histories.get(u, []) for u in night.user_ids]
    return ServingContext(
        entities=entities,
        tastes=features.taste_vectors(histories, content),
        history_len=np.array([len(h) for h in histories], np.float64),
        texts=features.video_texts(night.video_ids, content),
    )


def candidate_features(
    merged: Merged, context: ServingContext, rows: slice, cfg: RankerConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw features of the candidates of users ``rows``: ``(x (N, F), user row (N,), slot (N,))``."""
    u, m = np.nonzero(merged.items[rows] >= 0)
    u = u + rows.start
    cols = merged.items[u, m]
    ent = context.entities
    entities = np.concatenate([ent.users[u], ent.videos[cols], ent.creators[cols]], axis=1)
    content_x = features.content_block(context.tastes, context.texts, context.history_len, u, cols)
    sources = features.source_block(
        merged.source_scores[u, m], merged.source_ranks[u, m], merged.sources, cfg.sources
    )
    position = np.full(len(u), cfg.serving_position, np.float32)
    return features.assemble(entities, content_x, sources, position), u, m


def rank(
    merged: Merged,
    night: Night,
    trained: TrainedRanker,
    settings: Settings,
    content: ContentLookup | None = None,
) -> RankedLists:
    """Score every merged candidate of every user (module docstring)."""
    cfg = trained.cfg
    torch.set_num_threads(cfg.threads)
    content = content or ContentLookup.from_lake(settings)
    context = serving_context(night, settings, content)
    n_users, width, n_heads = merged.items.shape[0], merged.items.shape[1], len(cfg.heads)
    probabilities = np.full((n_users, width, n_heads), np.nan, np.float32)
    for start in range(0, n_users, USER_BLOCK):
        x, u, m = candidate_features(merged, context, slice(start, min(start + USER_BLOCK, n_users)), cfg)
        probabilities[u, m] = predict(trained.model, x)
    valid = merged.items >= 0
    scores = np.where(valid, blend(np.nan_to_num(probabilities), cfg.blend_weights), -np.inf).astype(
        np.float32
    )
    return RankedLists(
        merged.user_ids, merged.video_ids, cfg.heads, merged.items.copy(), probabilities, scores
    )


def _sorted_by_score(items: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows ordered by score descending, equal scores by lower item, -1 items last."""
    valid = items >= 0
    key_item = np.where(valid, items, np.iinfo(np.int64).max)
    key_score = np.where(valid, -scores.astype(np.float64), np.inf)
    order = np.lexsort((key_item, key_score), axis=1)
    return np.take_along_axis(items, order, axis=1), np.take_along_axis(scores, order, axis=1)


def _fresh_quota(items: np.ndarray, fresh: np.ndarray, top_n: int, slots: int) -> np.ndarray:
    """(U, M) bool: the entries of score-sorted rows that make the list (rule 2)."""
    valid = items >= 0
    is_fresh = valid & fresh[np.maximum(items, 0)]
    other = valid & ~is_fresh
    quota = np.minimum(is_fresh.sum(axis=1), slots)[:, None]  # (U, 1)
    primary = (is_fresh & (np.cumsum(is_fresh, axis=1) <= quota)) | (
        other & (np.cumsum(other, axis=1) <= top_n - quota)
    )
    # Short of others: the remaining slots go to the next valid entries (fresh ones) in score order.
    spare = top_n - primary.sum(axis=1, keepdims=True)
    secondary = valid & ~primary & (np.cumsum(valid & ~primary, axis=1) <= spare)
    return primary | secondary


def _creator_cap(items: np.ndarray, creator_codes: np.ndarray, cap: int) -> np.ndarray:
    """(U, N) new column order of each row applying rule 3 (``creator_codes`` (I,), -1 unknown: no cap)."""
    n_users, n = items.shape
    valid = items >= 0
    code = np.where(valid, creator_codes[np.maximum(items, 0)], -1)
    # Occurrence of each entry's creator before it in its row: rank within (row, creator) groups.
    row = np.repeat(np.arange(n_users), n)
    pos = np.tile(np.arange(n), n_users)
    flat = code.ravel()
    order = np.lexsort((pos, flat, row))
    group_start = np.r_[True, (row[order][1:] != row[order][:-1]) | (flat[order][1:] != flat[order][:-1])]
    starts = np.flatnonzero(group_start)
    occurrence = np.empty(len(order), np.int64)
    occurrence[order] = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    allowed = valid & ((occurrence.reshape(n_users, n) < cap) | (code < 0))
    in_top = allowed & (np.cumsum(allowed, axis=1) <= TOP)
    key = np.where(in_top, 0, n) + np.arange(n)[None, :]
    return np.argsort(key, axis=1, kind="stable")


def final_lists(
    ranked: RankedLists, night: Night, video_creators: np.ndarray, cfg: RankerConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Each user's final ``top_n`` list (module docstring rules 1-3).

    Args:
        ranked: :func:`rank`'s output for ``night``.
        night: gives ``exclude`` (watched) and ``fresh`` (uploaded on D).
        video_creators: (I,) creator id of each catalog video (None: unknown, never capped).
        cfg: ``top_n``, ``fresh_slots``, ``max_per_creator_top10``.

    Returns:
        ``(items (U, top_n) int64 -1 padded, scores (U, top_n) float32 -inf padded)``.
    """
    items, scores = ranked.items.copy(), ranked.scores.copy()
    u, m = np.nonzero(items >= 0)
    watched = np.asarray(night.exclude[u, items[u, m]]).ravel() > 0 if len(u) else np.zeros(0, bool)
    items[u[watched], m[watched]] = -1
    scores = np.where(items >= 0, scores, -np.inf).astype(np.float32)
    items, scores = _sorted_by_score(items, scores)
    chosen = _fresh_quota(items, np.asarray(night.fresh, bool), cfg.top_n, cfg.fresh_slots)
    items, scores = _sorted_by_score(np.where(chosen, items, -1), np.where(chosen, scores, -np.inf))
    width = cfg.top_n
    if items.shape[1] < width:
        pad = width - items.shape[1]
        items = np.pad(items, ((0, 0), (0, pad)), constant_values=-1)
        scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
    items, scores = items[:, :width], scores[:, :width]
    known = np.array([c is not None for c in video_creators], bool)
    _, codes = np.unique(np.where(known, video_creators, "").astype(str), return_inverse=True)
    codes = np.where(known, codes, -1)
    order = _creator_cap(items, codes, cfg.max_per_creator_top10)
    return np.take_along_axis(items, order, axis=1), np.take_along_axis(scores, order, axis=1).astype(
        np.float32
    )
