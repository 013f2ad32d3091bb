"""Training examples of the ranker: every impression of the nights before D, with four outcomes.

One example is one (user, video, night) impression of the ``train_days`` nights before D (never D:
D is the evaluation day), labelled by :func:`models.training_set.impression_outcomes` with
``completion``, ``like``, ``share`` and ``skip``; heavy users are capped at
``max_examples_per_user`` impressions (a deterministic crc32 sample), and a night keeps the
impressions of at most ``max_users_per_night`` users (another crc32 sample), so that the ranker's
training time does not grow with the user base.

Candidate negatives: the ranker ranks every merged candidate of a user (~300), most of which the old
feed never showed, while the impressions alone teach it ``p(outcome | impressed)``; on the small
home such a ranker ordered the merged candidates far worse than the sources did (NDCG@10 0.05 against
0.16). So for each training night d and impressed user, up to ``negatives_per_user`` merged
candidates of night d that the user was *not* shown on d (a seeded uniform sample) join the
examples, labelled 0 on every head, requested at d's midnight (``event_timestamp``, the age of the
video then, ``serving_position``) exactly as serving requests them. The heads then estimate
``p(outcome)`` of a merged candidate, which is what the evaluation's relevance (a positive on D)
rewards. The held-out metrics on D's impressions (``cap=False``) use impressions only.

Features (:mod:`models.ranker.features`), all point in time:

* user, video and creator features from Feast's service ``ranker_v1`` at the impression;
* content similarity of the video to the user's positives of the nights before the impression's;
* the retrieval sources' view of the pair: for night d, the :class:`~models.sources.base.Night` of d's
  impressed users with ``as_of = d - 1`` and the two-tower model trained for night d when one exists
  (fitted on nights < d, so out of sample), run through :func:`models.sources.merge.retrieve_all`;
  a pair no source returned gets zeros (which is what a candidate looks like to no source);
* the feed position the video was shown at.

The same :func:`night_pair_features` builds the non-Feast blocks of the evaluation day's impressions
(held-out metrics) from a night with ``as_of = D - 1``.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from models import training_set
from models.interactions import pairs_matrix
from models.ranker import features
from models.ranker.config import RankerConfig
from models.sources.base import Night
from models.sources.config import SourcesConfig
from models.sources.merge import Merged, retrieve_all
from models.sources.night import build_night
from models.two_tower import artifacts as two_tower_artifacts
from reelrec import lake
from reelrec.catalog import (
    CREATOR_ID,
    DT,
    EVENT_TIMESTAMP,
    POSITION,
    USER_ID,
    VIDEO_ID,
    VIDEOS,
)
from reelrec.dates import add_days, day_bounds
from reelrec.settings import Settings


@dataclass
class Examples:
    """Impressions with their raw feature matrix and labels."""

    impressions: pa.Table  # training_set.impression_outcomes rows (+ creator_id)
    x: np.ndarray  # (N, F) raw features, models.ranker.features.feature_names order
    y: np.ndarray  # (N, H) float32 0/1 outcome of each head
    seconds: dict[str, float]  # time per step (outcomes, sources, feast)
    negatives: int = 0  # sampled never-shown candidates among the rows (after the impressions of each night)


def cap_per_user(impressions: pa.Table, cap: int) -> pa.Table:
    """At most ``cap`` impressions per user (deterministic crc32 sample of user|video|dt), order kept."""
    if not impressions.num_rows:
        return impressions
    keys = pc.binary_join_element_wise(
        impressions.column(USER_ID), impressions.column(VIDEO_ID), impressions.column(DT), "|"
    ).to_pylist()
    rank = np.fromiter((zlib.crc32(k.encode()) for k in keys), np.int64, count=len(keys))
    users = impressions.column(USER_ID).to_numpy(zero_copy_only=False)
    order = np.lexsort((rank, users))
    starts = np.flatnonzero(np.r_[True, users[order][1:] != users[order][:-1]])
    position = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    return impressions.take(pa.array(np.sort(order[position < cap])))


def sampled(user_ids: list[str], date: str, limit: int) -> list[str]:
    """At most ``limit`` of ``user_ids``: those with the smallest crc32 of ``user|date``, sorted.

    The one user sample of a night: the ranker's training nights here, the evaluated users of
    :mod:`models.evaluate`.
    """
    if len(user_ids) <= limit:
        return sorted(user_ids)
    return sorted(sorted(user_ids, key=lambda u: zlib.crc32(f"{u}|{date}".encode()))[:limit])


def sample_users(impressions: pa.Table, per_night: int) -> pa.Table:
    """The impressions of at most ``per_night`` users of each night, order kept.

    The users kept on night d are :func:`sampled`'s (the smallest crc32 of ``user|d``): deterministic, a
    different sample each night, and every impression of a kept user stays (negatives are then drawn
    for exactly these users). A night with fewer users keeps them all.
    """
    users = impressions.column(USER_ID).to_pylist()
    days = [str(d) for d in impressions.column(DT).to_pylist()]
    by_day: dict[str, set[str]] = {}
    for user, day in zip(users, days, strict=True):
        by_day.setdefault(day, set()).add(user)
    if all(len(of_day) <= per_night for of_day in by_day.values()):
        return impressions
    kept = {(u, day) for day, of_day in by_day.items() for u in sampled(list(of_day), day, per_night)}
    mask = np.fromiter((pair in kept for pair in zip(users, days, strict=True)), bool, len(users))
    return impressions.filter(pa.array(mask))


def merged_lookup(
    merged: Merged, user_rows: np.ndarray, item_cols: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Provenance of pairs (user row, catalog column): ((N, S) scores NaN absent, (N, S) ranks -1 absent)."""
    n_items = len(merged.video_ids)
    u, m = np.nonzero(merged.items >= 0)
    keys = u.astype(np.int64) * n_items + merged.items[u, m]
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    wanted = user_rows.astype(np.int64) * n_items + item_cols
    at = np.minimum(np.searchsorted(keys, wanted), max(len(keys) - 1, 0))
    found = (user_rows >= 0) & (item_cols >= 0) & (len(keys) > 0)
    if len(keys):
        found &= keys[at] == wanted
    n_sources = len(merged.sources)
    scores = np.full((len(wanted), n_sources), np.nan, np.float32)
    ranks = np.full((len(wanted), n_sources), -1, np.int32)
    src_u, src_m = u[order][at[found]], m[order][at[found]]
    scores[found] = merged.source_scores[src_u, src_m]
    ranks[found] = merged.source_ranks[src_u, src_m]
    return scores, ranks


def night_pair_features(
    night: Night,
    merged: Merged,
    user_ids: list[str],
    video_ids: list[str],
    content: features.ContentLookup,
    cfg: RankerConfig,
) -> np.ndarray:
    """(N, 2 + 3S + 1) content and source blocks of pairs of ``night`` (users and videos by id)."""
    users, items = night.users, night.items
    user_rows = np.fromiter((users.get(u, -1) for u in user_ids), np.int64, count=len(user_ids))
    item_cols = np.fromiter((items.get(v, -1) for v in video_ids), np.int64, count=len(video_ids))
    scores, ranks = merged_lookup(merged, user_rows, item_cols)
    histories = [night.histories.get(u, []) for u in night.user_ids]
    tastes = features.taste_vectors(histories, content)
    lengths = np.array([len(h) for h in histories], np.float64)
    texts = features.video_texts(night.video_ids, content)
    content_x = features.content_block(
        tastes, texts, lengths, np.maximum(user_rows, 0), np.maximum(item_cols, 0)
    )
    content_x[(user_rows < 0) | (item_cols < 0)] = 0.0
    return np.concatenate(
        [content_x, features.source_block(scores, ranks, merged.sources, cfg.sources)], axis=1
    )


def impressions_of(
    settings: Settings, dates: list[str], cfg: RankerConfig, cap: bool, max_users: int | None = None
) -> tuple[pa.Table, pa.Table]:
    """``(examples, every impression)`` of ``dates``: the outcomes (when ``cap``, of at most
    ``cfg.max_users_per_night`` users a night, each capped; else of at most ``max_users`` a night
    when given) plus each video's creator, and every (user, video, dt) impression (what negatives
    must avoid)."""
    outcomes = training_set.impression_outcomes(settings, dates, cfg.training_set)
    shown = outcomes.select([USER_ID, VIDEO_ID, DT])
    if cap:
        outcomes = cap_per_user(sample_users(outcomes, cfg.max_users_per_night), cfg.max_examples_per_user)
    elif max_users is not None:
        outcomes = sample_users(outcomes, max_users)
    creators = lake.read(VIDEOS, settings, dates=dates, columns=[VIDEO_ID, CREATOR_ID, DT])
    joined = outcomes.join(creators, keys=[VIDEO_ID, DT], join_type="left outer")
    ordered = joined.sort_by([(DT, "ascending"), (USER_ID, "ascending"), (EVENT_TIMESTAMP, "ascending")])
    return ordered, shown


def sample_negatives(
    merged: Merged, impressed: sp.csr_matrix, per_user: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``per_user`` merged candidates per user that were not impressed to that user.

    Args:
        merged: The night's merged candidates (rows: users).
        impressed: (U, I) what each user was shown that night (nonzero: shown).
        per_user: Negatives kept per user (a uniform sample of the eligible candidates).
        seed: Seeds the sample: the same inputs and seed give the same negatives.

    Returns:
        ``(user rows, catalog columns)`` of the negatives, by user then catalog column.
    """
    u, m = np.nonzero(merged.items >= 0)
    cols = merged.items[u, m]
    if len(u):
        eligible = np.asarray(impressed[u, cols]).ravel() == 0
        u, cols = u[eligible], cols[eligible]
    key = np.random.default_rng(seed).random(len(u))
    order = np.lexsort((key, u))
    u, cols = u[order], cols[order]
    starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]]) if len(u) else np.zeros(0, np.int64)
    within = np.arange(len(u)) - np.repeat(starts, np.diff(np.r_[starts, len(u)]))
    keep = within < per_user
    u, cols = u[keep], cols[keep]
    order = np.lexsort((cols, u))
    return u[order], cols[order]


def negative_rows(
    settings: Settings, night: Night, user_rows: np.ndarray, item_cols: np.ndarray, cfg: RankerConfig
) -> pa.Table:
    """Example rows of sampled negatives of night ``night.date``: every head 0, requested at its midnight.

    ``event_timestamp`` is the start of the night's day (Feast joins the features of the night before,
    as for serving), ``video_age_hours`` the age then (0 for videos uploaded later that day) and
    ``position`` the serving position.
    """
    creators, upload_ts = features.video_catalog(settings, night.date, night.video_ids)
    start = day_bounds(night.date)[0]
    requested = pa.scalar(start, upload_ts.type)
    age_us = pc.subtract(requested.cast(pa.int64()), upload_ts.cast(pa.int64()))
    age = np.maximum(pc.fill_null(age_us, 0).to_numpy(zero_copy_only=False) / 3.6e9, 0.0)
    n = len(user_rows)
    columns: dict[str, pa.Array] = {
        USER_ID: pa.array([night.user_ids[i] for i in user_rows], pa.string()),
        VIDEO_ID: pa.array([night.video_ids[i] for i in item_cols], pa.string()),
        DT: pa.array([night.date] * n, pa.string()),
        EVENT_TIMESTAMP: pa.array([start] * n, pa.timestamp("us", tz="UTC")),
        POSITION: pa.array(np.full(n, cfg.serving_position, np.int64)),
        training_set.VIDEO_AGE: pa.array(age[item_cols].astype(np.float32)),
        CREATOR_ID: pa.array(list(creators[item_cols]) if n else [], pa.string()),
    }
    for head in cfg.heads:
        columns[head] = pa.array(np.zeros(n, np.int8))
    return pa.table(columns)


def with_negatives(impressions: pa.Table, negatives: pa.Table) -> pa.Table:
    """``impressions`` then ``negatives`` in the impressions' schema (missing columns null)."""
    if not negatives.num_rows:
        return impressions
    schema = impressions.schema
    arrays = [
        negatives.column(f.name).cast(f.type)
        if f.name in negatives.column_names
        else pa.nulls(negatives.num_rows, f.type)
        for f in schema
    ]
    return pa.concat_tables([impressions, pa.Table.from_arrays(arrays, schema=schema)])


def labels_of(impressions: pa.Table, cfg: RankerConfig) -> np.ndarray:
    """(N, H) float32 outcome of every head."""
    return np.stack([impressions.column(h).to_numpy().astype(np.float32) for h in cfg.heads], axis=1)


def feast_entities(settings: Settings, impressions: pa.Table) -> np.ndarray:
    """(N, 36) entity block of the impressions, joined point in time by Feast (``ranker_v1``)."""
    from reelrec.feast_store import historical_features

    entity_df = impressions.select([USER_ID, VIDEO_ID, CREATOR_ID, EVENT_TIMESTAMP]).to_pandas()
    frame = historical_features(settings, entity_df, features.FEATURE_SERVICE)
    age = impressions.column(training_set.VIDEO_AGE).to_numpy(zero_copy_only=False)
    return features.feast_entity_block(frame, age)


def night_examples(
    settings: Settings,
    d: str,
    rows: pa.Table,
    shown: pa.Table,
    content: features.ContentLookup,
    cfg: RankerConfig,
    source_cfg: SourcesConfig | None,
    negatives: bool,
) -> tuple[pa.Table, np.ndarray]:
    """Night ``d``'s examples (its impressions ``rows``, then sampled negatives when ``negatives``) and
    their content and source blocks; the sources run for d's impressed users as of d - 1."""
    users = sorted(set(rows.column(USER_ID).to_pylist()))
    trained = None
    if two_tower_artifacts.pointer_path(settings, d).exists():
        trained = two_tower_artifacts.load(d, settings)
    night = build_night(settings, d, add_days(d, -1), users, trained)
    _, merged = retrieve_all(night, source_cfg or SourcesConfig())
    if negatives and cfg.negatives_per_user > 0:
        day = shown.filter(pc.equal(shown.column(DT), d))
        impressed = pairs_matrix(
            day.column(USER_ID).to_pylist(), day.column(VIDEO_ID).to_pylist(), night.users, night.items
        )
        seed = cfg.seed * 1_000_003 + zlib.crc32(d.encode())
        user_rows, item_cols = sample_negatives(merged, impressed, cfg.negatives_per_user, seed)
        rows = with_negatives(rows, negative_rows(settings, night, user_rows, item_cols, cfg))
    pairs = night_pair_features(
        night, merged, rows.column(USER_ID).to_pylist(), rows.column(VIDEO_ID).to_pylist(), content, cfg
    )
    return rows, pairs


def build_examples(
    settings: Settings,
    dates: list[str],
    cfg: RankerConfig,
    cap: bool = True,
    source_cfg: SourcesConfig | None = None,
    negatives: bool | None = None,
    max_users: int | None = None,
) -> Examples:
    """Examples of ``dates`` with features (each night's sources as of the night before) and labels.

    Args:
        cap: Cap each user's impressions at ``cfg.max_examples_per_user`` (training).
        max_users: Without ``cap``, keep every impression of at most this many users a night
            (:func:`sample_users`; the held-out metrics of a large day).
        negatives: Add ``cfg.negatives_per_user`` never-impressed merged candidates per impressed user
            and night, labelled 0 on every head (training). None: the same as ``cap``, so the
            held-out call ``cap=False`` gets the impressions only.
    """
    negatives = cap if negatives is None else negatives
    started = time.perf_counter()
    impressions, shown = impressions_of(settings, dates, cfg, cap, max_users)
    seconds = {"outcomes": time.perf_counter() - started}
    content = features.ContentLookup.from_lake(settings)
    tables, pair_blocks = [], []
    t0 = time.perf_counter()
    for d in sorted(dates):
        rows = impressions.filter(pc.equal(impressions.column(DT), d))
        table, pairs = night_examples(settings, d, rows, shown, content, cfg, source_cfg, negatives)
        tables.append(table)
        pair_blocks.append(pairs)
    examples = pa.concat_tables(tables) if tables else impressions
    seconds["sources"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    entities = feast_entities(settings, examples)
    seconds["feast"] = time.perf_counter() - t0
    position = examples.column(POSITION).to_numpy(zero_copy_only=False).astype(np.float32)
    pairs = (
        np.concatenate(pair_blocks) if pair_blocks else np.zeros((0, 3 * len(cfg.sources) + 3), np.float32)
    )
    x = features.assemble(entities, pairs[:, :2], pairs[:, 2:], position)
    timings = {k: round(v, 2) for k, v in seconds.items()}
    n_negatives = examples.num_rows - impressions.num_rows
    return Examples(examples, x, labels_of(examples, cfg), timings, n_negatives)
