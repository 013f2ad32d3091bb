"""From feature rows to tower inputs: the one encoding shared by training, evaluation and scoring.

Training reads Feast's point-in-time rows (columns ``<view>__<feature>``); evaluation and scoring
read the silver Delta partitions of one night (plain column names). Both go through
:func:`user_numeric` / :func:`video_numeric` and a :class:`FeatureSpace` fitted on the training
set (video id vocabulary, standardisation), so a feature is encoded the same way everywhere.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from models.two_tower.config import TwoTowerConfig
from models.two_tower.model import PAD_ID, UNKNOWN_ID, UserInputs, VideoInputs
from reelrec.catalog import (
    AGE_HOURS,
    CREATOR_ID,
    FRAME_EMBEDDING,
    FRAME_EMBEDDING_DIM,
    RECENT_HISTORY_LEN,
    TEXT_EMBEDDING,
    TEXT_EMBEDDING_DIM,
    TRENDING_SCORE,
    VIDEO_ID,
    WATCH_MS,
    windowed_names,
)
from reelrec.settings import Settings

USER_COUNTS = (
    *windowed_names("impressions"),
    *windowed_names("views"),
    *windowed_names(WATCH_MS),
    "active_days_28d",
)
USER_RATES = ("completion_rate_7d", "completion_rate_28d", "like_rate_28d")
REQUEST_AGE = "video_age_hours"  # hours from upload to the moment of the request (training: impression)
VIDEO_COUNTS = (*windowed_names("impressions"), *windowed_names("views"), AGE_HOURS)
VIDEO_FRESHNESS = (REQUEST_AGE,)
VIDEO_RATES = (
    "completion_rate_7d",
    "like_rate_7d",
    "share_rate_7d",
    "avg_watch_fraction_1d",
    "avg_watch_fraction_7d",
)
VIDEO_SIGNED = (TRENDING_SCORE,)
USER_VIEW = "user_daily_engagement"
VIDEO_VIEW = "video_daily_performance"
CONTENT_VIEW = "video_static_content"

Columns = Mapping[str, Any]  # column name -> Arrow array / list / numpy array


def _float(columns: Columns, name: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(values with nulls as 0, null mask) of a numeric column; an absent column is all null."""
    if name not in columns:
        return np.zeros(n, np.float64), np.ones(n, bool)
    column = columns[name]  # Arrow from the lake; a list, numpy or pandas (Feast's frames) otherwise
    array = column if isinstance(column, pa.Array | pa.ChunkedArray) else pa.array(column, from_pandas=True)
    values = pc.fill_null(array.cast(pa.float64()), np.nan).to_numpy(zero_copy_only=False)
    missing = np.isnan(values)  # null in Delta, NaN from Feast's pandas frames: no row yet
    return np.where(missing, 0.0, values), missing


def numeric_block(
    columns: Columns,
    counts: Sequence[str],
    rates: Sequence[str],
    signed: Sequence[str],
    n: int,
    always: Sequence[str] = (),
) -> np.ndarray:
    """(N, len(always) + len(counts) + len(rates) + len(signed) + 1).

    log1p of ``always`` (known for every row, not part of the missing flag), log1p counts, rates,
    signed log1p, and a flag for rows whose daily features are missing.
    """
    out, missing = [], np.zeros(n, bool)
    for name in always:
        v, _ = _float(columns, name, n)
        out.append(np.log1p(np.maximum(v, 0.0)))
    for name in counts:
        v, m = _float(columns, name, n)
        out.append(np.log1p(np.maximum(v, 0.0)))
        missing |= m
    for name in rates:
        v, m = _float(columns, name, n)
        out.append(v)
        missing |= m
    for name in signed:
        v, m = _float(columns, name, n)
        out.append(np.sign(v) * np.log1p(np.abs(v)))
        missing |= m
    out.append(missing.astype(np.float64))  # no feature row yet: a brand-new user or video
    return np.stack(out, axis=1).astype(np.float32)


def user_numeric(columns: Columns, n: int) -> np.ndarray:
    """(N, n_user_features) raw user features: plain silver column names."""
    return numeric_block(columns, USER_COUNTS, USER_RATES, (), n)


def video_numeric(columns: Columns, n: int) -> np.ndarray:
    """(N, n_video_features) raw video features: plain silver column names plus ``video_age_hours``."""
    return numeric_block(columns, VIDEO_COUNTS, VIDEO_RATES, VIDEO_SIGNED, n, always=VIDEO_FRESHNESS)


def unprefixed(table: pa.Table, view: str) -> dict[str, pa.ChunkedArray]:
    """Columns ``<view>__<name>`` of a Feast training frame, renamed to ``<name>``."""
    prefix = f"{view}__"
    return {c[len(prefix) :]: table.column(c) for c in table.column_names if c.startswith(prefix)}


def creator_bucket(creator_ids: Sequence[str | None], buckets: int) -> np.ndarray:
    """(N,) int64 hashed creator bucket (crc32, stable across processes); None -> bucket 0."""
    return np.fromiter(
        (zlib.crc32(c.encode()) % buckets if c else 0 for c in creator_ids),
        dtype=np.int64,
        count=len(creator_ids),
    )


def _matrix(values: Sequence[Any], dim: int) -> np.ndarray:
    """(N, dim) float32 from a list column; null or wrong-length rows become zeros."""
    out = np.zeros((len(values), dim), np.float32)
    for i, v in enumerate(values):
        if v is not None and len(v) == dim:
            out[i] = v
    return out


@dataclass
class ContentLookup:
    """Content embeddings of every known video, by video id (from silver.video_content)."""

    index: dict[str, int]
    text: np.ndarray  # (N, 384) float32
    frame: np.ndarray  # (N, 32) float32
    creator: list[str]

    @classmethod
    def from_table(cls, table: pa.Table) -> ContentLookup:
        ids = table.column(VIDEO_ID).to_pylist()
        return cls(
            index={v: i for i, v in enumerate(ids)},
            text=_matrix(table.column(TEXT_EMBEDDING).to_pylist(), TEXT_EMBEDDING_DIM),
            frame=_matrix(table.column(FRAME_EMBEDDING).to_pylist(), FRAME_EMBEDDING_DIM),
            creator=table.column(CREATOR_ID).to_pylist(),
        )

    @classmethod
    def from_lake(cls, settings: Settings) -> ContentLookup:
        """Every encoded video of silver.video_content, one row each (:func:`models.content.load_content`)."""
        from models.content import load_content

        return cls.from_table(load_content(settings))

    def rows(self, video_ids: Sequence[str]) -> np.ndarray:
        """(N,) row of each id, -1 when the video has no content row."""
        return np.fromiter((self.index.get(v, -1) for v in video_ids), dtype=np.int64, count=len(video_ids))


@dataclass
class FeatureSpace:
    """What training learned about the inputs: id vocabulary and standardisation statistics."""

    vocabulary: list[str]  # video ids with an own embedding; index i -> id i + 2 (0 pad, 1 unknown)
    user_mean: list[float]
    user_std: list[float]
    video_mean: list[float]
    video_std: list[float]
    users: list[str] = field(default_factory=list)  # user ids with an own embedding, same indexing

    def __post_init__(self) -> None:
        self._ids = {v: i + 2 for i, v in enumerate(self.vocabulary)}
        self._user_ids = {u: i + 2 for i, u in enumerate(self.users)}

    @property
    def n_user_ids(self) -> int:
        return len(self.users) + 2

    def user_ids(self, user_ids: Sequence[str | None]) -> np.ndarray:
        """(N,) int64 id index of each user; UNKNOWN_ID for users without training positives."""
        lookup = self._user_ids
        return np.fromiter(
            (lookup.get(u, UNKNOWN_ID) if u is not None else UNKNOWN_ID for u in user_ids),
            dtype=np.int64,
            count=len(user_ids),
        )

    @property
    def n_ids(self) -> int:
        return len(self.vocabulary) + 2

    def ids(self, video_ids: Sequence[str | None]) -> np.ndarray:
        """(N,) int64 id index of each video; UNKNOWN_ID outside the vocabulary."""
        return np.fromiter(
            (self._ids.get(v, UNKNOWN_ID) if v is not None else UNKNOWN_ID for v in video_ids),
            dtype=np.int64,
            count=len(video_ids),
        )

    def history(self, histories: Sequence[Sequence[str] | None]) -> np.ndarray:
        """(N, RECENT_HISTORY_LEN) int64 id indices of the recent watch history, PAD_ID-padded."""
        out = np.full((len(histories), RECENT_HISTORY_LEN), PAD_ID, np.int64)
        for i, history in enumerate(histories):
            if history:
                ids = self.ids(list(history)[:RECENT_HISTORY_LEN])
                out[i, : len(ids)] = ids
        return out

    def to_json(self) -> str:
        return json.dumps(
            {
                "vocabulary": self.vocabulary,
                "user_mean": self.user_mean,
                "user_std": self.user_std,
                "video_mean": self.video_mean,
                "video_std": self.video_std,
                "users": self.users,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> FeatureSpace:
        return cls(**json.loads(text))

    @classmethod
    def fit(
        cls,
        video_ids: Sequence[str],
        user_x: np.ndarray,
        video_x: np.ndarray,
        cfg: TwoTowerConfig,
        user_ids: Sequence[str] = (),
    ) -> FeatureSpace:
        """Vocabularies (videos with >= ``min_video_positives`` positives, users with any) and stats."""
        ids, counts = np.unique(np.asarray(video_ids, dtype=object), return_counts=True)
        vocabulary = sorted(str(v) for v in ids[counts >= cfg.min_video_positives])
        return cls(
            users=sorted({str(u) for u in user_ids}),
            vocabulary=vocabulary,
            user_mean=user_x.mean(0).tolist(),
            user_std=np.maximum(user_x.std(0), 1e-3).tolist(),
            video_mean=video_x.mean(0).tolist(),
            video_std=np.maximum(video_x.std(0), 1e-3).tolist(),
        )

    def standardise_users(self, x: np.ndarray) -> np.ndarray:
        return ((x - np.asarray(self.user_mean, np.float32)) / np.asarray(self.user_std, np.float32)).astype(
            np.float32
        )

    def standardise_videos(self, x: np.ndarray) -> np.ndarray:
        return (
            (x - np.asarray(self.video_mean, np.float32)) / np.asarray(self.video_std, np.float32)
        ).astype(np.float32)


def history_text(histories: Sequence[Sequence[str] | None], content: ContentLookup) -> np.ndarray:
    """(N, 384) mean text embedding of each history (zeros for an empty history)."""
    out = np.zeros((len(histories), TEXT_EMBEDDING_DIM), np.float32)
    for i, history in enumerate(histories):
        if history:
            rows = content.rows(list(history)[:RECENT_HISTORY_LEN])
            rows = rows[rows >= 0]
            if len(rows):
                out[i] = content.text[rows].mean(0)
    return out


def user_inputs(
    user_x: np.ndarray,
    histories: Sequence[Sequence[str] | None],
    space: FeatureSpace,
    content: ContentLookup,
    user_ids: Sequence[str | None] | None = None,
    positives: Sequence[Sequence[str] | None] | None = None,
) -> UserInputs:
    """Tower inputs of N users from raw numeric features, recent watch histories, ids and positives."""
    return UserInputs(
        numeric=torch.from_numpy(space.standardise_users(user_x)),
        history_ids=torch.from_numpy(space.history(histories)),
        history_text=torch.from_numpy(history_text(histories, content)),
        ids=None if user_ids is None else torch.from_numpy(space.user_ids(user_ids)),
        positive_ids=None if positives is None else torch.from_numpy(space.history(positives)),
        positive_text=None if positives is None else torch.from_numpy(history_text(positives, content)),
    )


def video_inputs(
    video_ids: Sequence[str],
    video_x: np.ndarray,
    space: FeatureSpace,
    content: ContentLookup,
    cfg: TwoTowerConfig,
    joined: Columns | None = None,
) -> VideoInputs:
    """Tower inputs of N videos: id, hashed creator, content embeddings and numeric features.

    ``video_x`` is the raw output of :func:`video_numeric`; its last column flags a missing feature row.

    Content comes from ``joined`` (the training set's point-in-time ``video_static_content``
    columns: ``creator_id``, ``text_embedding``, ``frame_embedding``) when given, else from
    ``content`` (evaluation and scoring read the table directly).
    """
    if joined is not None:
        text = _matrix(list(joined[TEXT_EMBEDDING]), TEXT_EMBEDDING_DIM)
        frame = _matrix(list(joined[FRAME_EMBEDDING]), FRAME_EMBEDDING_DIM)
        creators = list(joined[CREATOR_ID])
    else:
        rows = content.rows(video_ids)
        safe = np.maximum(rows, 0)
        text, frame = content.text[safe].copy(), content.frame[safe].copy()
        text[rows < 0], frame[rows < 0] = 0.0, 0.0
        creators = [content.creator[r] if r >= 0 else None for r in rows]
    # A video without a feature row yet (a fresh upload) has no id either: it is placed by its content,
    # in training (impressions on its upload day) exactly as when it is scored.
    ids = space.ids(video_ids)
    ids[video_x[:, -1] > 0] = UNKNOWN_ID
    return VideoInputs(
        ids=torch.from_numpy(ids),
        creator=torch.from_numpy(creator_bucket(creators, cfg.creator_buckets)),
        text=torch.from_numpy(text),
        frame=torch.from_numpy(frame),
        numeric=torch.from_numpy(space.standardise_videos(video_x)),
    )
