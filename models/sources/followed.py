"""Source ``followed``: new uploads of the creators each user follows, newest first.

Follow edges come from bronze.follows partitions up to ``as_of`` (one row per new edge; unfollows are
not recorded). Uploads are the catalog videos of D uploaded within ``followed_days`` days up to D
(D's own uploads included: they are in D's catalog). Score: hours from the start of that upload
window to the upload (later is better), so the newest upload ranks first.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from models.interactions import index_of
from models.sources.base import Night, SourceCandidates, top_k_candidates
from models.sources.config import SourcesConfig
from models.topk import ScoreBlock
from reelrec import lake
from reelrec.catalog import CREATOR_ID, FOLLOWS, UPLOAD_TS, USER_ID, VIDEO_ID, VIDEOS
from reelrec.dates import add_days, day_bounds

NAME = "followed"


def followed_block(follows: sp.csr_matrix, video_creator: np.ndarray, recency: np.ndarray) -> ScoreBlock:
    """``slice -> (B, I)``: ``recency`` of videos whose creator the user follows, ``-inf`` elsewhere.

    Args:
        follows: ``(U, C)`` binary CSR, user follows creator.
        video_creator: ``(I,)`` creator column of each video, -1 for videos not eligible.
        recency: ``(I,)`` float32 score of each video (higher: newer).
    """
    eligible = np.flatnonzero(video_creator >= 0)
    by_creator = sp.csr_matrix(
        (np.ones(len(eligible), np.float32), (video_creator[eligible], eligible)),
        shape=(follows.shape[1], len(video_creator)),
    )  # (C, I)

    def block(rows: slice) -> np.ndarray:
        reached = np.asarray((follows[rows] @ by_creator).toarray()) > 0  # (B, I)
        return np.where(reached, recency[None, :], -np.inf).astype(np.float32)

    return block


def load_follows(night: Night) -> tuple[sp.csr_matrix, dict[str, int]]:
    """``(U, C)`` binary follows of the night's users (partitions up to ``as_of``) and the creator index."""
    dates = sorted(d for d in lake.partition_dates(FOLLOWS, night.settings) if d <= night.as_of)
    edges = lake.read(FOLLOWS, night.settings, dates=dates, columns=[USER_ID, CREATOR_ID]) if dates else None
    if edges is None:
        return sp.csr_matrix((len(night.user_ids), 0), dtype=np.float32), {}
    creators = {c: i for i, c in enumerate(sorted(set(edges.column(CREATOR_ID).to_pylist())))}
    rows = index_of(edges.column(USER_ID).to_pylist(), night.users)
    cols = index_of(edges.column(CREATOR_ID).to_pylist(), creators)
    keep = (rows >= 0) & (cols >= 0)
    matrix = sp.csr_matrix(
        (np.ones(int(keep.sum()), np.float32), (rows[keep], cols[keep])),
        shape=(len(night.user_ids), len(creators)),
    )
    matrix.data[:] = 1.0  # a repeated edge counts once
    return matrix, creators


def load_uploads(night: Night, creators: dict[str, int], days: int) -> tuple[np.ndarray, np.ndarray]:
    """``(I,)`` creator column (-1: not a recent upload or creator nobody follows) and recency hours."""
    videos = lake.read(VIDEOS, night.settings, dates=[night.date], columns=[VIDEO_ID, CREATOR_ID, UPLOAD_TS])
    cols = index_of(videos.column(VIDEO_ID).to_pylist(), night.items)
    start = day_bounds(add_days(night.date, 1 - days))[0]
    start_us = pa.scalar(start, videos.schema.field(UPLOAD_TS).type).cast(pa.int64()).as_py()
    upload_us = pc.cast(videos.column(UPLOAD_TS), pa.int64()).to_numpy(zero_copy_only=False)
    creator = index_of(videos.column(CREATOR_ID).to_pylist(), creators)
    recent = (cols >= 0) & (upload_us >= start_us)
    video_creator = np.full(len(night.video_ids), -1, np.int64)
    recency = np.full(len(night.video_ids), -np.inf, np.float32)
    video_creator[cols[recent]] = creator[recent]
    recency[cols[recent]] = ((upload_us[recent] - start_us) / 3.6e9).astype(np.float32)
    return video_creator, recency


def retrieve(night: Night, k: int, cfg: SourcesConfig | None = None) -> SourceCandidates:
    """The ``k`` newest uploads (``followed_days`` up to D) of creators each user follows."""
    cfg = cfg or SourcesConfig()
    follows, creators = load_follows(night)
    video_creator, recency = load_uploads(night, creators, cfg.followed_days)
    return top_k_candidates(NAME, followed_block(follows, video_creator, recency), night, k)
