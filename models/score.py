"""Score night D: candidates and embeddings of every active user, for serving on D+1.

* **users**: every active user, i.e. every row of silver.user_features for D (an event in the 28
  days ending at D), embedded with D's features and recent watch history;
* **videos**: every video of D's catalog snapshot, fresh uploads of D included (embedded from
  content), with its age at D+1 00:00, when the lists start being served;
* **retrieval**: exact top-N by blocked matrix multiply (:func:`models.topk.top_k_with_quota`, no
  per-user loop), videos the user watched up to D removed, ``fresh_slots`` of N reserved for
  fresh uploads;
* **outputs**: gold.candidates, gold.user_embeddings, gold.video_embeddings (partition ``dt=D``,
  every row with ``model_version`` and ``generated_at``), and a faiss HNSW index of the video
  embeddings for online nearest-neighbour services, next to the model
  (``<model>/ann/dt=D.faiss`` + ``dt=D.video_ids.json``).

``generated_at`` is the wall-clock time the lists were produced: it is metadata for the consumer
("how old is this list"), never an input to any computation.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from models.interactions import pairs_matrix
from models.topk import top_k_with_quota
from models.training_set import positive_histories
from models.two_tower import embed
from models.two_tower.artifacts import TrainedModel, load
from models.two_tower.inputs import ContentLookup
from reelrec import lake
from reelrec.catalog import (
    CANDIDATES,
    DT,
    EMBEDDING,
    EVENT_TIMESTAMP,
    GENERATED_AT,
    MODEL_VERSION,
    SCORES,
    USER_EMBEDDINGS,
    USER_ID,
    VIDEO_EMBEDDINGS,
    VIDEO_ID,
    VIDEO_IDS,
)
from reelrec.dates import day_bounds, feature_timestamp
from reelrec.errors import DataError
from reelrec.history import watched
from reelrec.jobs import run_job
from reelrec.settings import Settings

HNSW_NEIGHBOURS = 32  # graph degree of the faiss HNSW index
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 256  # inner product over biased (non-unit) video vectors needs a wider search


class NothingToScoreError(DataError):
    """Night D has no active users or no catalog to score."""


def build_ann_index(vectors: np.ndarray, video_ids: list[str], folder: Path, date: str) -> dict[str, Any]:
    """Write a faiss HNSW inner-product index of unit ``vectors`` (I, D) and its id list.

    Returns:
        Facts: path, vectors, dimension, bytes, build seconds.
    """
    import faiss

    started = time.perf_counter()
    index = faiss.IndexHNSWFlat(vectors.shape[1], HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    index.hnsw.efSearch = HNSW_EF_SEARCH  # stored in the file: the default a service searches with
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"dt={date}.faiss"
    faiss.write_index(index, str(path))
    (folder / f"dt={date}.video_ids.json").write_text(json.dumps(video_ids))
    return {
        "path": str(path),
        "vectors": int(index.ntotal),
        "dimension": int(vectors.shape[1]),
        "bytes": path.stat().st_size,
        "seconds": round(time.perf_counter() - started, 3),
    }


def ann_recall(
    index_path: str, users: np.ndarray, videos: np.ndarray, k: int = 100, sample: int = 500
) -> float:
    """Share of the exact top-k (no exclusions) that the HNSW index returns, over a user sample."""
    import faiss

    index = faiss.read_index(index_path)
    queries = np.ascontiguousarray(users[:sample], dtype=np.float32)
    k = min(k, len(videos))
    _, approx = index.search(queries, k)
    exact = np.argsort(-(queries @ videos.T), axis=1)[:, :k]
    hits = sum(len(set(a) & set(e)) for a, e in zip(approx.tolist(), exact.tolist(), strict=True))
    return hits / max(exact.size, 1)


def _list_rows(items: np.ndarray, scores: np.ndarray, video_ids: np.ndarray) -> tuple[pa.Array, pa.Array]:
    """(U, N) item indices / scores (-1 padded) -> list<string> ids and list<float32> scores."""
    valid = items >= 0
    lengths = valid.sum(axis=1)
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int32)
    ids = pa.ListArray.from_arrays(pa.array(offsets), pa.array(video_ids[items[valid]], pa.string()))
    values = pa.ListArray.from_arrays(pa.array(offsets), pa.array(scores[valid], pa.float32()))
    return ids, values


def _embedding_column(vectors: np.ndarray) -> pa.Array:
    n, dim = vectors.shape
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1), pa.float32())
    return pa.ListArray.from_arrays(pa.array(np.arange(0, n * dim + 1, dim, dtype=np.int32)), flat)


def score(date: str, settings: Settings, trained: TrainedModel | None = None) -> dict[str, Any]:
    """Write night D's candidates, user and video embeddings and ANN index.

    Raises:
        NothingToScoreError: when D has no active users or an empty catalog.
        FileNotFoundError: when night D has no trained model.
    """
    started = time.perf_counter()
    trained = trained or load(date, settings)
    cfg = trained.cfg
    serve_from = day_bounds(date)[1]  # lists are served from D+1 00:00
    catalog = embed.load_catalog(settings, date, date, requested_at=serve_from)
    users = embed.load_users(settings, date)
    user_ids = users.column(USER_ID).to_pylist()
    if not user_ids or not catalog.video_ids:
        raise NothingToScoreError(
            f"score dt={date}: {len(user_ids)} active users in silver.user_features and "
            f"{len(catalog.video_ids)} videos in the bronze.videos snapshot; nothing to score"
        )
    items = {v: i for i, v in enumerate(catalog.video_ids)}
    fresh = catalog.uploaded_on(date)
    content = ContentLookup.from_lake(settings)

    embed_started = time.perf_counter()
    user_vectors = embed.embed_users(
        trained, users, content, positive_histories(settings, date, cfg.training_set)
    )
    video_vectors = embed.embed_videos(trained, catalog, content)
    embed_seconds = time.perf_counter() - embed_started

    exclude = watched_matrix(settings, date, user_ids, items)
    retrieve_started = time.perf_counter()
    top, top_scores = top_k_with_quota(
        lambda rows: user_vectors[rows] @ video_vectors.T,
        len(user_ids),
        cfg.top_n,
        fresh,
        cfg.fresh_slots,
        exclude,
        cfg.block_size,
    )
    retrieve_seconds = time.perf_counter() - retrieve_started

    generated_at = datetime.now(UTC)
    write_started = time.perf_counter()
    versions = write_outputs(
        settings,
        date,
        Provenance(trained.version, generated_at),
        ScoredNight(user_ids, catalog.video_ids, user_vectors, video_vectors, top, top_scores),
    )
    write_seconds = time.perf_counter() - write_started
    ann = build_ann_index(video_vectors, catalog.video_ids, trained.path / "ann", date)
    ann["recall@100_vs_exact"] = round(ann_recall(ann["path"], user_vectors, video_vectors), 4)
    n_users = len(user_ids)
    lengths = (top >= 0).sum(axis=1)
    return {
        "date": date,
        "model_version": trained.version,
        "users": n_users,
        "videos": len(catalog.video_ids),
        "fresh_videos": int(fresh.sum()),
        "candidates_per_user": {"min": int(lengths.min()), "mean": round(float(lengths.mean()), 2)},
        "fresh_candidates_per_user": round(float(fresh[np.maximum(top, 0)][top >= 0].sum() / n_users), 2),
        "watched_pairs_excluded": int(exclude.nnz),
        "embed_seconds": round(embed_seconds, 3),
        "retrieve_seconds": round(retrieve_seconds, 3),
        "users_per_second": round(n_users / max(embed_seconds + retrieve_seconds, 1e-9)),
        "write_seconds": round(write_seconds, 3),
        "versions": versions,
        "ann_index": ann,
        "generated_at": generated_at.isoformat(),
        "seconds": round(time.perf_counter() - started, 2),
    }


def watched_matrix(
    settings: Settings, date: str, user_ids: list[str], items: dict[str, int]
) -> sp.csr_matrix:
    """(U, I) binary: the catalog videos each user watched up to ``date`` (never recommended again)."""
    seen = watched(settings, until=date)
    return pairs_matrix(
        seen.column(USER_ID).to_pylist(),
        seen.column(VIDEO_ID).to_pylist(),
        {u: i for i, u in enumerate(user_ids)},
        items,
    )


@dataclass
class Provenance:
    """What every gold row of a night carries: which model produced it, and when."""

    model_version: str
    generated_at: datetime

    def columns(self, date: str, n: int) -> dict[str, pa.Array]:
        """``model_version, generated_at, event_timestamp, dt`` columns of ``n`` rows of night ``date``."""
        return {
            MODEL_VERSION: pa.array([self.model_version] * n, pa.string()),
            GENERATED_AT: pa.array([self.generated_at] * n, pa.timestamp("us", tz="UTC")),
            EVENT_TIMESTAMP: pa.array([feature_timestamp(date)] * n, pa.timestamp("us", tz="UTC")),
            DT: pa.array([date] * n, pa.string()),
        }


@dataclass
class ScoredNight:
    """The night's retrieval results, in the row orders of ``user_ids`` and ``video_ids``."""

    user_ids: list[str]
    video_ids: list[str]
    user_vectors: np.ndarray  # (U, D)
    video_vectors: np.ndarray  # (I, D)
    top: np.ndarray  # (U, N) item indices, -1 padded
    top_scores: np.ndarray  # (U, N)


def write_outputs(
    settings: Settings, date: str, provenance: Provenance, night: ScoredNight
) -> dict[str, int]:
    """Replace night ``date``'s partitions of gold.candidates, user_embeddings and video_embeddings.

    Returns:
        The Delta version written, per table.
    """
    n_users, n_videos = len(night.user_ids), len(night.video_ids)
    ids, values = _list_rows(night.top, night.top_scores, np.asarray(night.video_ids, dtype=object))
    users = pa.array(night.user_ids)
    candidates = {USER_ID: users, VIDEO_IDS: ids, SCORES: values}
    user_embeddings = {USER_ID: users, EMBEDDING: _embedding_column(night.user_vectors)}
    video_embeddings = {
        VIDEO_ID: pa.array(night.video_ids),
        EMBEDDING: _embedding_column(night.video_vectors),
    }
    rows = (
        (CANDIDATES, candidates, n_users),
        (USER_EMBEDDINGS, user_embeddings, n_users),
        (VIDEO_EMBEDDINGS, video_embeddings, n_videos),
    )
    return {
        f"{table.layer}.{table.name}": lake.write_partition(
            table, settings, pa.table({**columns, **provenance.columns(date, n)}), date
        )
        for table, columns, n in rows
    }


def main(date: str, settings: Settings) -> dict[str, Any]:
    """Entry point of the DAG task and of ``python -m models.score --date D``."""
    return score(date, settings)


if __name__ == "__main__":
    raise SystemExit(run_job(main, "Score every active user of night D: candidates, embeddings, ANN index."))
