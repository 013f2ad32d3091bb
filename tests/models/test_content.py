"""models.content: video texts, the real all-MiniLM-L6-v2 encoder, and the stage on a hand-built lake."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from models import content
from models.content import (
    TEXT_ENCODER,
    MissingVideoSnapshotError,
    encode_texts,
    load_content,
    main,
    new_videos,
    transform_content,
    video_text,
)
from reelrec import lake
from reelrec.catalog import TEXT_EMBEDDING_DIM, VIDEO_CONTENT, VIDEOS
from reelrec.errors import DataError
from reelrec.jobs import run_job
from reelrec.settings import Settings
from tests.spark_jobs.tiny import arrow, ts, video

D1, D2, D3 = "2026-11-10", "2026-11-11", "2026-11-12"


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _old_videos(dt: str) -> list[dict[str, Any]]:
    """The three videos of the first night, as they appear in the snapshot of ``dt``."""
    return [
        video("v1", "c1", "2026-11-10T08:00:00", 15_000, dt, caption="pasta with garlic", hashtags=["#food"]),
        video("v2", "c1", "2026-11-10T09:30:00", 30_000, dt, caption=None, hashtags=["#gym", "#legs"]),
        video("v3", "c2", "2026-11-10T23:59:59", 9_000, dt, caption="sunset", hashtags=None),
    ]


_NO_CONTENT: dict[str, Any] = {"caption": None, "hashtags": None, "frame_embedding": None}


def _new_on_d2(dt: str) -> list[dict[str, Any]]:
    """Two uploads of the second night; v5 has no text and no frame embedding."""
    return [
        video("v4", "c2", "2026-11-11T10:00:00", 12_000, dt, caption="kitten plays piano", hashtags=[]),
        video("v5", "c3", "2026-11-11T11:00:00", 20_000, dt, **_NO_CONTENT),
    ]


def _write_snapshot(settings: Settings, date: str, rows: list[dict[str, Any]]) -> None:
    lake.write_partition(VIDEOS, settings, arrow(VIDEOS, rows), date)


def _embeddings(rows: pa.Table) -> np.ndarray:
    return np.array(rows.column("text_embedding").to_pylist(), dtype=np.float32)


# ---------------------------------------------------------------- video_text
@pytest.mark.parametrize(
    ("caption", "hashtags", "expected"),
    [
        ("Pasta night ", ["#food", "#italian"], "Pasta night #food #italian"),
        (None, ["#gym", "#legs"], "#gym #legs"),
        ("  sunset over the bay", None, "sunset over the bay"),
        ("kitten", [], "kitten"),
        ("", [""], ""),
        (None, None, ""),
    ],
)
def test_video_text_joins_caption_and_hashtags(
    caption: str | None, hashtags: list[str] | None, expected: str
) -> None:
    assert video_text(caption, hashtags) == expected


# ---------------------------------------------------------------- encode_texts (real model)
@pytest.mark.torch
def test_encode_texts_gives_unit_float32_rows() -> None:
    embeddings = encode_texts(["pasta with garlic", "#gym #legs", ""], batch_size=2)

    assert embeddings.shape == (3, TEXT_EMBEDDING_DIM)
    assert embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(embeddings[0], embeddings[1])


@pytest.mark.torch
def test_encode_texts_of_nothing_is_an_empty_matrix() -> None:
    embeddings = encode_texts([])

    assert embeddings.shape == (0, TEXT_EMBEDDING_DIM)
    assert embeddings.dtype == np.float32


@pytest.mark.torch
def test_encode_texts_is_deterministic_and_independent_of_batching() -> None:
    texts = ["a cat on a skateboard", "street food tour in Bangkok", "how to tie a tie"]

    alone = np.vstack([encode_texts([text]) for text in texts])
    batched = encode_texts(texts, batch_size=3)

    np.testing.assert_allclose(batched, alone, atol=1e-5)


@pytest.mark.torch
def test_encode_texts_places_related_videos_closer() -> None:
    pasta, spaghetti, deadlift = encode_texts(
        ["pasta recipe with garlic sauce", "homemade spaghetti dinner", "heavy deadlift workout at the gym"]
    )

    assert _cosine(pasta, spaghetti) > _cosine(pasta, deadlift) + 0.2


@pytest.mark.torch
def test_text_model_is_loaded_once_per_process() -> None:
    assert content.text_model() is content.text_model()


# ---------------------------------------------------------------- transform_content
def test_transform_content_fits_the_catalog_schema() -> None:
    videos = arrow(VIDEOS, _old_videos(D1))
    embeddings = np.eye(3, TEXT_EMBEDDING_DIM, dtype=np.float32)

    rows = transform_content(videos, embeddings, D1)

    assert rows.schema == VIDEO_CONTENT.schema
    assert rows.column("video_id").to_pylist() == ["v1", "v2", "v3"]
    np.testing.assert_array_equal(_embeddings(rows), embeddings)
    assert rows.column("event_timestamp").to_pylist() == videos.column("upload_ts").to_pylist()
    assert rows.column("frame_embedding").to_pylist() == videos.column("frame_embedding").to_pylist()
    assert set(rows.column("text_encoder").to_pylist()) == {TEXT_ENCODER}
    assert set(rows.column("dt").to_pylist()) == {D1}


def test_transform_content_refuses_misaligned_embeddings() -> None:
    videos = arrow(VIDEOS, _old_videos(D1))

    with pytest.raises(ValueError, match=r"3 videos need embeddings of shape \(3, 384\)"):
        transform_content(videos, np.zeros((2, TEXT_EMBEDDING_DIM), dtype=np.float32), D1)


# ---------------------------------------------------------------- the stage on a tiny lake
@pytest.mark.torch
def test_main_encodes_each_video_once_and_reruns_replace(settings: Settings) -> None:
    _write_snapshot(settings, D1, _old_videos(D1))
    first = main(D1, settings)

    assert first["new_videos"] == 3
    assert first["encoded_before"] == 0
    assert first["catalog_videos"] == 3
    assert first["table"] == "silver.video_content"
    assert first["text_encoder"] == TEXT_ENCODER
    json.dumps(first)  # facts travel through XCom

    _write_snapshot(settings, D2, _old_videos(D2) + _new_on_d2(D2))
    assert new_videos(D2, settings).column("video_id").to_pylist() == ["v4", "v5"]
    second = main(D2, settings)
    rerun = main(D2, settings)

    for facts in (second, rerun):
        assert (facts["new_videos"], facts["encoded_before"], facts["catalog_videos"]) == (2, 3, 5)
    assert rerun["version"] == second["version"] + 1
    assert lake.partition_row_count(VIDEO_CONTENT, settings, D1) == 3
    assert lake.partition_row_count(VIDEO_CONTENT, settings, D2) == 2
    assert lake.read(VIDEO_CONTENT, settings).num_rows == 5  # no duplicates after the rerun

    rows = load_content(settings)
    ids = rows.column("video_id").to_pylist()
    assert ids == ["v1", "v2", "v3", "v4", "v5"]
    assert rows.column("dt").to_pylist() == [D1, D1, D1, D2, D2]
    embeddings = _embeddings(rows)
    assert embeddings.shape == (5, TEXT_EMBEDDING_DIM)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)

    # Each row carries its own video's text embedding (no misalignment between videos and vectors).
    snapshot = {row["video_id"]: row for row in _old_videos(D2) + _new_on_d2(D2)}
    texts = [video_text(snapshot[i]["caption"], snapshot[i]["hashtags"]) for i in ids]
    np.testing.assert_allclose(embeddings, encode_texts(texts), atol=1e-5)

    assert rows.column("event_timestamp").to_pylist() == [snapshot[i]["upload_ts"] for i in ids]
    assert rows.column("event_timestamp").to_pylist()[2] == ts("2026-11-10T23:59:59")
    assert rows.column("frame_embedding").to_pylist()[4] is None
    assert rows.column("frame_embedding").to_pylist()[0] == pytest.approx(snapshot["v1"]["frame_embedding"])


@pytest.mark.torch
def test_main_succeeds_without_an_empty_commit_when_nothing_is_new(settings: Settings) -> None:
    _write_snapshot(settings, D1, _old_videos(D1))
    first = main(D1, settings)
    _write_snapshot(settings, D2, _old_videos(D2))

    facts = main(D2, settings)

    assert (facts["new_videos"], facts["encoded_before"], facts["videos_per_second"]) == (0, 3, 0.0)
    # an empty partition written over an empty one is no commit (lake.write_partition: no empty commits)
    assert facts["version"] == first["version"]
    assert lake.partition_row_count(VIDEO_CONTENT, settings, D2) == 0
    assert load_content(settings).num_rows == 3


@pytest.mark.torch
def test_load_content_filters_ids(settings: Settings) -> None:
    _write_snapshot(settings, D1, _old_videos(D1))
    main(D1, settings)

    rows = load_content(settings, video_ids=["v3", "v1", "never-encoded"])

    assert rows.column("video_id").to_pylist() == ["v1", "v3"]
    assert load_content(settings, video_ids=[]).num_rows == 0


@pytest.mark.torch
def test_load_content_keeps_the_earliest_night_when_nights_ran_out_of_order(settings: Settings) -> None:
    _write_snapshot(settings, D1, _old_videos(D1))
    _write_snapshot(settings, D2, _old_videos(D2) + _new_on_d2(D2))
    main(D2, settings)  # D1 has not run yet: all five are new on D2
    main(D1, settings)  # v1..v3 now sit in D1 and D2

    assert lake.read(VIDEO_CONTENT, settings).num_rows == 8
    rows = load_content(settings)

    assert rows.column("video_id").to_pylist() == ["v1", "v2", "v3", "v4", "v5"]
    assert rows.column("dt").to_pylist() == [D1, D1, D1, D2, D2]


def test_main_without_the_snapshot_names_table_and_date(settings: Settings) -> None:
    with pytest.raises(MissingVideoSnapshotError, match=rf"bronze\.videos has no rows for dt={D1}"):
        main(D1, settings)  # bronze.videos was never written

    _write_snapshot(settings, D1, _old_videos(D1))
    with pytest.raises(DataError, match=rf"bronze\.videos has no rows for dt={D3}.*ingest_catalogs"):
        main(D3, settings)
    assert not lake.exists(VIDEO_CONTENT, settings)


@pytest.mark.torch
def test_cli_prints_the_facts(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    _write_snapshot(settings, D1, _old_videos(D1))

    code = run_job(main, content.__doc__ or "", ["--date", D1, "--home", str(settings.home)])

    assert code == 0
    facts = json.loads(capsys.readouterr().out)
    assert (facts["date"], facts["new_videos"]) == (D1, 3)
    assert lake.partition_row_count(VIDEO_CONTENT, settings, D1) == 3
