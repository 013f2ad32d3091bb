"""The ranker's feature vector of a (user, video) pair: one assembly for training and serving.

Training reads the entity features of every impression from Feast's point-in-time join on the
service ``ranker_v1`` (columns ``<view>__<feature>``); serving reads the same rows from the silver
partitions of ``as_of`` (:func:`serving_entities`), exactly the rows Feast serves the next day.
Both hand plain column names to :func:`entity_block`, and every other block (content similarity,
retrieval-source provenance, feed position) is built by the same functions here, so training and
serving cannot drift. Columns, in order (:func:`feature_names`):

* user engagement and video performance, encoded as the two-tower encodes them
  (:func:`models.two_tower.inputs.user_numeric`, :func:`~models.two_tower.inputs.video_numeric`:
  log1p counts, rates, a missing-row flag; the video's age at the request);
* creator audience (log1p counts, engagement rate, missing flag);
* content: cosine of the video's text embedding to the mean text embedding of the user's recent
  positives, and log1p of that history's length;
* per retrieval source (``RankerConfig.sources``): its score (0 absent), ``1 / (1 + rank)`` (0
  absent) and a flag; then the number of sources that returned the pair;
* the feed position (training: where it was shown; serving: ``RankerConfig.serving_position``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from models.two_tower.inputs import (
    REQUEST_AGE,
    USER_COUNTS,
    USER_RATES,
    VIDEO_COUNTS,
    VIDEO_FRESHNESS,
    VIDEO_RATES,
    VIDEO_SIGNED,
    ContentLookup,
    numeric_block,
    user_numeric,
    video_numeric,
)
from reelrec import lake
from reelrec.catalog import (
    CREATOR_FEATURES,
    CREATOR_ID,
    DT,
    FOLLOWERS_TOTAL,
    RECENT_HISTORY_LEN,
    UPLOAD_TS,
    USER_FEATURES,
    USER_ID,
    VIDEO_FEATURES,
    VIDEO_ID,
    VIDEOS,
)
from reelrec.settings import Settings

FEATURE_SERVICE = "ranker_v1"
USER_VIEW = "user_daily_engagement"
VIDEO_VIEW = "video_daily_performance"
CREATOR_VIEW = "creator_daily_audience"
CREATOR_COUNTS = (FOLLOWERS_TOTAL, "new_followers_7d", "uploads_7d", "uploads_28d", "views_7d")
CREATOR_RATES = ("engagement_rate_7d",)
SIMILARITY_CHUNK = 65_536  # pairs per chunk of the row-wise dot product (chunk x 384 floats)

Columns = Mapping[str, Any]  # column name -> Arrow array / list / numpy array / pandas Series


def creator_numeric(columns: Columns, n: int) -> np.ndarray:
    """(N, 7) raw creator features: log1p counts, engagement rate, missing-row flag."""
    return numeric_block(columns, CREATOR_COUNTS, CREATOR_RATES, (), n)


def entity_block(user: Columns, video: Columns, creator: Columns, n: int) -> np.ndarray:
    """(N, 14 + 15 + 7) user, video (``video_age_hours`` included) and creator features of N rows."""
    return np.concatenate(
        [user_numeric(user, n), video_numeric(video, n), creator_numeric(creator, n)], axis=1
    )


def unprefixed(frame: Any, view: str) -> dict[str, Any]:
    """Columns ``<view>__<name>`` of a Feast frame (pandas or Arrow), renamed ``<name>``."""
    prefix = f"{view}__"
    names = frame.column_names if isinstance(frame, pa.Table) else list(frame.columns)
    return {
        c[len(prefix) :]: (frame.column(c) if isinstance(frame, pa.Table) else frame[c])
        for c in names
        if c.startswith(prefix)
    }


def feast_entity_block(frame: Any, request_age: np.ndarray) -> np.ndarray:
    """:func:`entity_block` of a Feast ``ranker_v1`` frame; ``request_age`` (N,) hours since upload."""
    n = len(request_age)
    video = {**unprefixed(frame, VIDEO_VIEW), REQUEST_AGE: np.asarray(request_age, np.float64)}
    return entity_block(unprefixed(frame, USER_VIEW), video, unprefixed(frame, CREATOR_VIEW), n)


@dataclass
class ServingEntities:
    """Entity feature rows read from the silver partitions of one night, for pairs to index into."""

    users: np.ndarray  # (U, 14) raw user features, rows in the requested user order
    videos: np.ndarray  # (I, 15) raw video features, rows in the requested video order
    creators: np.ndarray  # (I, 7) raw features of each video's creator


def _rows_by_key(table: pa.Table, key: str, ids: Sequence[str | None]) -> pa.Table:
    """Rows of ``table`` in ``ids`` order (nulls where an id has no row)."""
    position = {k: i for i, k in enumerate(table.column(key).to_pylist())}
    return table.take(pa.array([position.get(k) if k is not None else None for k in ids], pa.int64()))


def serving_entities(
    settings: Settings,
    as_of: str,
    user_ids: Sequence[str],
    video_ids: Sequence[str],
    request_age: np.ndarray,
    creator_ids: Sequence[str | None],
) -> ServingEntities:
    """Entity features as of the end of ``as_of``: what Feast serves for any moment of the next day.

    Args:
        user_ids, video_ids: the row orders of the result.
        request_age: (I,) hours from each video's upload to the request.
        creator_ids: (I,) the creator of each video (None: unknown).
    """
    numeric = {*USER_COUNTS, *USER_RATES}
    users = lake.read(USER_FEATURES, settings, dates=[as_of], columns=[USER_ID, *sorted(numeric)])
    videos = lake.read(VIDEO_FEATURES, settings, dates=[as_of]).drop_columns([DT])
    creators = lake.read(CREATOR_FEATURES, settings, dates=[as_of]).drop_columns([DT])
    u = _rows_by_key(users, USER_ID, user_ids)
    v = _rows_by_key(videos, VIDEO_ID, video_ids)
    c = _rows_by_key(creators, CREATOR_ID, creator_ids)
    video_columns = {
        **{n: v.column(n) for n in (*VIDEO_COUNTS, *VIDEO_RATES, *VIDEO_SIGNED) if n in v.column_names},
        REQUEST_AGE: np.asarray(request_age, np.float64),
    }
    assert VIDEO_FRESHNESS == (REQUEST_AGE,)
    return ServingEntities(
        users=user_numeric({n: u.column(n) for n in u.column_names}, u.num_rows),
        videos=video_numeric(video_columns, v.num_rows),
        creators=creator_numeric({n: c.column(n) for n in c.column_names}, c.num_rows),
    )


def video_catalog(settings: Settings, date: str, video_ids: list[str]) -> tuple[np.ndarray, pa.Array]:
    """(creator id of each video (object array, None unknown), its upload_ts) from bronze.videos ``date``."""
    videos = lake.read(VIDEOS, settings, dates=[date], columns=[VIDEO_ID, CREATOR_ID, UPLOAD_TS])
    position = {v: i for i, v in enumerate(videos.column(VIDEO_ID).to_pylist())}
    rows = pa.array([position.get(v) for v in video_ids], pa.int64())
    creators = np.asarray(videos.column(CREATOR_ID).take(rows).to_pylist(), dtype=object)
    return creators, videos.column(UPLOAD_TS).take(rows)


def taste_vectors(histories: Sequence[Sequence[str] | None], content: ContentLookup) -> np.ndarray:
    """(K, 384) unit mean text embedding of each history's (newest RECENT_HISTORY_LEN) videos; 0 if none."""
    out = np.zeros((len(histories), content.text.shape[1]), np.float32)
    for i, history in enumerate(histories):
        if history:
            rows = content.rows(list(history)[:RECENT_HISTORY_LEN])
            rows = rows[rows >= 0]
            if len(rows):
                out[i] = content.text[rows].mean(0)
    return _unit(out)


def video_texts(video_ids: Sequence[str], content: ContentLookup) -> np.ndarray:
    """(I, 384) unit text embedding of each video; 0 for a video without content."""
    rows = content.rows(video_ids)
    text = content.text[np.maximum(rows, 0)].copy()
    text[rows < 0] = 0.0
    return _unit(text)


def _unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.where(norm > 0, x / np.maximum(norm, 1e-12), 0.0).astype(np.float32)


def content_block(
    tastes: np.ndarray,
    texts: np.ndarray,
    history_len: np.ndarray,
    taste_rows: np.ndarray,
    video_rows: np.ndarray,
) -> np.ndarray:
    """(N, 2): cosine of each pair's video text to its user's taste, and log1p of the history length.

    ``taste_rows`` (N,) index ``tastes`` (K, d) and ``history_len`` (K,); ``video_rows`` (N,) index ``texts``.
    """
    n = len(taste_rows)
    cosine = np.zeros(n, np.float32)
    for start in range(0, n, SIMILARITY_CHUNK):
        part = slice(start, start + SIMILARITY_CHUNK)
        cosine[part] = np.einsum("nd,nd->n", tastes[taste_rows[part]], texts[video_rows[part]])
    return np.stack([cosine, np.log1p(history_len[taste_rows]).astype(np.float32)], axis=1)


def source_block(
    scores: np.ndarray, ranks: np.ndarray, names: Sequence[str], wanted: Sequence[str]
) -> np.ndarray:
    """(N, 3 len(wanted) + 1): per wanted source score, 1/(1+rank), flag; then the number of sources.

    Args:
        scores: (N, S) float, NaN where source ``names[s]`` did not return the pair.
        ranks: (N, S) int, 0-based rank, -1 where absent.
        names: the sources of the columns of ``scores`` / ``ranks``.
        wanted: the ranker's sources (a source not in ``names`` contributes zeros).
    """
    n = scores.shape[0]
    out = []
    for name in wanted:
        if name in names:
            s = list(names).index(name)
            present = ranks[:, s] >= 0
            out.append(np.where(present, np.nan_to_num(scores[:, s], nan=0.0), 0.0))
            out.append(np.where(present, 1.0 / (1.0 + np.maximum(ranks[:, s], 0)), 0.0))
            out.append(present.astype(np.float64))
        else:
            out.extend([np.zeros(n)] * 3)
    out.append((ranks >= 0).sum(axis=1).astype(np.float64) if ranks.size else np.zeros(n))
    return np.stack(out, axis=1).astype(np.float32)


def assemble(
    entities: np.ndarray, content: np.ndarray, sources: np.ndarray, position: np.ndarray
) -> np.ndarray:
    """(N, F) raw feature matrix in :func:`feature_names` order."""
    return np.concatenate(
        [entities, content, sources, np.asarray(position, np.float32).reshape(-1, 1)], axis=1
    ).astype(np.float32)


def feature_names(sources: Sequence[str]) -> list[str]:
    """The name of every column of :func:`assemble`'s matrix."""
    user = [*(f"user.{c}" for c in (*USER_COUNTS, *USER_RATES)), "user.missing"]
    video = [
        *(f"video.{c}" for c in (*VIDEO_FRESHNESS, *VIDEO_COUNTS, *VIDEO_RATES, *VIDEO_SIGNED)),
        "video.missing",
    ]
    creator = [*(f"creator.{c}" for c in (*CREATOR_COUNTS, *CREATOR_RATES)), "creator.missing"]
    source = [f"source.{s}.{k}" for s in sources for k in ("score", "reciprocal_rank", "flag")]
    return [
        *user,
        *video,
        *creator,
        "content.cosine",
        "content.history_len",
        *source,
        "source.count",
        "position",
    ]
