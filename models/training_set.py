"""Training examples from impressions, with features joined point-in-time by Feast.

One example is one (user, video, day) impression. Its label comes from what the user did with the
video that day:

* **positive**: a view that reached ``completion_threshold`` of the video's duration, or a like or a
  share: the videos the retrieval model should put in front of the user;
* **hard negative**: a skip, or a view below ``hard_negative_fraction`` of the duration: shown and
  rejected, kept for the ranking model that comes after retrieval;
* anything in between (a half-watched view) is neither and is dropped.

Features are joined by Feast (:func:`reelrec.feast_store.historical_features`) on the versioned
service ``two_tower_v1`` at the moment of the first impression, so an example only ever sees the
daily features of earlier nights and content known at upload; never anything from after the
impression. Heavy users are capped at ``max_examples_per_user`` positives (a deterministic sample),
so a few very active users do not dominate training, and the days a user behaved like a bot
(:func:`models.interactions.bot_user_days`) give no example, label or history at all.

``build(D)`` writes the examples of the ``train_days`` nights before D (never D itself: D is the
evaluation day; only nights whose previous night has features, so the platform's first night,
served without any, never becomes training data) to
``REELREC_HOME/models/training_sets/dt=D/examples.parquet`` and records the Delta versions it read
next to it.
"""

from __future__ import annotations

import json
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from models.interactions import bot_user_days, without_bot_days
from reelrec import lake
from reelrec.catalog import (
    DT,
    DURATION_MS,
    EVENT_TIMESTAMP,
    EVENT_TS,
    EVENT_TYPE,
    EVENTS,
    IMPRESSION,
    LIKE,
    POSITION,
    RECENT_HISTORY_LEN,
    SHARE,
    SKIP,
    UPLOAD_TS,
    USER_FEATURES,
    USER_ID,
    VIDEO_CONTENT,
    VIDEO_FEATURES,
    VIDEO_ID,
    VIDEOS,
    VIEW,
    WATCH_MS,
)
from reelrec.dates import add_days, date_range
from reelrec.errors import NothingToDoError
from reelrec.jobs import run_job
from reelrec.settings import Settings

FEATURE_SERVICE = "two_tower_v1"
LABEL = "label"  # 1 positive, 0 hard negative
EXAMPLES_FILE = "examples.parquet"
POSITIVE_HISTORY = "positive_history"  # the user's positives of the nights before, newest first
VIDEO_AGE = "video_age_hours"  # hours from upload to the impression: freshness, known for every video
WATCH_FRACTION = "watch_fraction"  # longest view / duration
LIKED = "liked"
SHARED = "shared"
EXAMPLE_COLUMNS = (USER_ID, VIDEO_ID, DT, EVENT_TIMESTAMP, LABEL, VIDEO_AGE, WATCH_FRACTION, LIKED, SHARED)


@dataclass(frozen=True)
class TrainingSetConfig:
    """What becomes a training example and how it is labelled; shared by every model trained on it."""

    train_days: int = 3  # nights before D whose impressions become examples (recent tastes and trends)
    completion_threshold: float = 0.8  # a view of >= 80 % of the duration is a positive
    hard_negative_fraction: float = 0.2  # a skip or a view < 20 % is a hard negative
    history_days: int = 7  # nights of a user's positives pooled as their taste (user tower)
    max_examples_per_user: int = 150  # per label, over the window: heavy users do not dominate


class NoTrainingDataError(NothingToDoError):
    """There are no labelled impressions before the evaluation date to learn from."""


def training_set_dir(settings: Settings, date: str) -> Path:
    """Folder of the training set built for evaluation date ``date``."""
    return settings.models / "training_sets" / f"dt={date}"


def _sample_rank(keys: pa.Array) -> np.ndarray:
    """A deterministic pseudo-random number per key (crc32), for reproducible sampling."""
    return np.fromiter((zlib.crc32(k.encode()) for k in keys.to_pylist()), dtype=np.int64, count=len(keys))


def labels(settings: Settings, dates: list[str], cfg: TrainingSetConfig) -> pa.Table:
    """Label every (user, video, dt) impression of ``dates`` from bronze.events.

    Returns:
        Arrow table with ``user_id, video_id, dt, event_timestamp`` (first impression),
        ``label`` (int8: 1 positive, 0 hard negative), ``watch_fraction``, ``liked``, ``shared``;
        middling views are dropped.
    """
    events = lake.read(
        EVENTS, settings, dates=dates, columns=[USER_ID, VIDEO_ID, EVENT_TYPE, EVENT_TS, WATCH_MS, DT]
    )
    events = without_bot_days(events)
    if not events.num_rows:
        return pa.table({c: [] for c in EXAMPLE_COLUMNS})
    durations = lake.read(VIDEOS, settings, dates=dates, columns=[VIDEO_ID, DURATION_MS, UPLOAD_TS, DT])
    impressions = _impressions(events).join(durations, keys=[VIDEO_ID, DT], join_type="left outer")
    return _label_impressions(impressions, cfg)


def _impressions(events: pa.Table) -> pa.Table:
    """One row per impressed (user, video, dt): first impression time, longest view, what else happened.

    Columns ``impression_ts_min``, ``view_ms_max`` and ``is_<type>_any`` for impression, view, skip,
    like and share.
    """
    kind = events.column(EVENT_TYPE)
    flags = {
        "is_impression": pc.equal(kind, IMPRESSION),
        "is_view": pc.equal(kind, VIEW),
        "is_skip": pc.equal(kind, SKIP),
        "is_like": pc.equal(kind, LIKE),
        "is_share": pc.equal(kind, SHARE),
    }
    for name, flag in flags.items():
        events = events.append_column(name, flag)
    events = events.append_column(
        "impression_ts",
        pc.if_else(
            flags["is_impression"],
            events.column(EVENT_TS),
            pa.scalar(None, events.schema.field(EVENT_TS).type),
        ),
    )
    events = events.append_column("view_ms", pc.if_else(flags["is_view"], events.column(WATCH_MS), 0))
    grouped = events.group_by([USER_ID, VIDEO_ID, DT]).aggregate(
        [
            ("impression_ts", "min"),
            ("view_ms", "max"),
            ("is_impression", "any"),
            ("is_view", "any"),
            ("is_skip", "any"),
            ("is_like", "any"),
            ("is_share", "any"),
        ]
    )
    return grouped.filter(pc.field("is_impression_any"))


def _label_impressions(grouped: pa.Table, cfg: TrainingSetConfig) -> pa.Table:
    """Examples (:data:`EXAMPLE_COLUMNS`) of :func:`_impressions` rows joined to the night's catalog."""
    duration = pc.fill_null(grouped.column(DURATION_MS), 1).to_numpy(zero_copy_only=False).astype(np.float64)
    fraction = grouped.column("view_ms_max").to_numpy(zero_copy_only=False).astype(np.float64) / np.maximum(
        duration, 1.0
    )
    viewed = grouped.column("is_view_any").to_numpy(zero_copy_only=False)
    liked = grouped.column("is_like_any").to_numpy(zero_copy_only=False)
    shared = grouped.column("is_share_any").to_numpy(zero_copy_only=False)
    skipped = grouped.column("is_skip_any").to_numpy(zero_copy_only=False)
    positive = (viewed & (fraction >= cfg.completion_threshold)) | liked | shared
    # An impression with neither a view nor a skip (the session ended, the view was quarantined) says
    # nothing: without `viewed &` its fraction of 0 would make it a hard negative.
    hard_negative = ~positive & (skipped | (viewed & (fraction < cfg.hard_negative_fraction)))
    # A video missing from that night's catalog snapshot has no duration (nor upload time): no label.
    in_catalog = grouped.column(DURATION_MS).is_valid().to_numpy(zero_copy_only=False)
    keep = (positive | hard_negative) & in_catalog
    age_us = pc.subtract(
        grouped.column("impression_ts_min").cast(pa.int64()), grouped.column(UPLOAD_TS).cast(pa.int64())
    )
    age_hours = pc.fill_null(age_us, 0).to_numpy(zero_copy_only=False) / 3.6e9
    out = pa.table(
        {
            USER_ID: grouped.column(USER_ID),
            VIDEO_ID: grouped.column(VIDEO_ID),
            DT: grouped.column(DT),
            EVENT_TIMESTAMP: grouped.column("impression_ts_min"),
            LABEL: pa.array(positive.astype(np.int8)),
            VIDEO_AGE: pa.array(np.maximum(age_hours, 0.0).astype(np.float32)),
            WATCH_FRACTION: pa.array(fraction.astype(np.float32)),
            LIKED: pa.array(liked),
            SHARED: pa.array(shared),
        }
    ).filter(pa.array(keep))
    return out.sort_by([(DT, "ascending"), (USER_ID, "ascending"), (EVENT_TIMESTAMP, "ascending")])


def impression_outcomes(settings: Settings, dates: list[str], cfg: TrainingSetConfig) -> pa.Table:
    """Every impressed (user, video, dt) of ``dates`` with what the user did: the ranker's multi-task labels.

    Unlike :func:`labels` nothing is dropped (half-watched views included): a ranker predicts each
    outcome of every impression. Videos missing from the night's catalog snapshot are dropped, and
    so are a bot's impressions of the days it is flagged (:func:`models.interactions.bot_user_days`).

    Returns:
        Arrow table sorted by ``dt, user_id, event_timestamp`` with ``user_id, video_id, dt``,
        ``event_timestamp`` (first impression), ``position`` (lowest feed position it was shown at),
        ``video_age_hours``, ``watch_fraction`` (longest view / duration) and int8 outcomes
        ``completion`` (a view >= ``completion_threshold``), ``like``, ``share``, ``skip``.
    """
    events = lake.read(
        EVENTS,
        settings,
        dates=dates,
        columns=[USER_ID, VIDEO_ID, EVENT_TYPE, EVENT_TS, WATCH_MS, POSITION, DT],
    )
    events = without_bot_days(events)
    durations = lake.read(VIDEOS, settings, dates=dates, columns=[VIDEO_ID, DURATION_MS, UPLOAD_TS, DT])
    shown = events.filter(pc.equal(events.column(EVENT_TYPE), IMPRESSION))
    positions = shown.group_by([USER_ID, VIDEO_ID, DT]).aggregate([(POSITION, "min")])
    grouped = (
        _impressions(events.drop_columns([POSITION]))
        .join(positions, keys=[USER_ID, VIDEO_ID, DT], join_type="left outer")
        .join(durations, keys=[VIDEO_ID, DT], join_type="inner")
    )
    duration = grouped.column(DURATION_MS).to_numpy(zero_copy_only=False).astype(np.float64)
    fraction = grouped.column("view_ms_max").to_numpy(zero_copy_only=False) / np.maximum(duration, 1.0)
    viewed = grouped.column("is_view_any").to_numpy(zero_copy_only=False)
    age_us = pc.subtract(
        grouped.column("impression_ts_min").cast(pa.int64()), grouped.column(UPLOAD_TS).cast(pa.int64())
    )
    age_hours = np.maximum(pc.fill_null(age_us, 0).to_numpy(zero_copy_only=False) / 3.6e9, 0.0)

    def flag(values: np.ndarray) -> pa.Array:
        return pa.array(np.asarray(values, bool).astype(np.int8))

    out = pa.table(
        {
            USER_ID: grouped.column(USER_ID),
            VIDEO_ID: grouped.column(VIDEO_ID),
            DT: grouped.column(DT),
            EVENT_TIMESTAMP: grouped.column("impression_ts_min"),
            POSITION: pc.fill_null(grouped.column(f"{POSITION}_min"), 0),
            VIDEO_AGE: pa.array(age_hours.astype(np.float32)),
            WATCH_FRACTION: pa.array(fraction.astype(np.float32)),
            "completion": flag(viewed & (fraction >= cfg.completion_threshold)),
            "like": flag(grouped.column("is_like_any").to_numpy(zero_copy_only=False)),
            "share": flag(grouped.column("is_share_any").to_numpy(zero_copy_only=False)),
            "skip": flag(grouped.column("is_skip_any").to_numpy(zero_copy_only=False)),
        }
    )
    return out.sort_by([(DT, "ascending"), (USER_ID, "ascending"), (EVENT_TIMESTAMP, "ascending")])


def positive_histories(settings: Settings, until: str, cfg: TrainingSetConfig) -> dict[str, list[str]]:
    """Each user's positive videos of the ``history_days`` nights ending at ``until``, newest first.

    The strongest taste signal a user has: what they watched to the end, liked or shared lately
    (``recent_video_ids`` also holds every half-watched view). At most ``RECENT_HISTORY_LEN`` videos.
    """
    available = lake.partition_dates(EVENTS, settings)
    dates = [d for d in date_range(until, cfg.history_days) if d in available]
    return histories_of(labels(settings, dates, cfg) if dates else None, until, cfg.history_days)


def histories_of(examples: pa.Table | None, until: str, days: int) -> dict[str, list[str]]:
    """:func:`positive_histories` from already labelled ``examples`` (only nights ``until-days+1..until``)."""
    if examples is None or not examples.num_rows:
        return {}
    nights = pa.array(date_range(until, days), pa.string())
    positives = examples.filter(
        pc.and_(pc.equal(examples.column(LABEL), 1), pc.is_in(examples.column(DT), value_set=nights))
    ).sort_by([(USER_ID, "ascending"), (EVENT_TIMESTAMP, "descending")])
    histories: dict[str, list[str]] = {}
    for user, video in zip(
        positives.column(USER_ID).to_pylist(), positives.column(VIDEO_ID).to_pylist(), strict=True
    ):
        history = histories.setdefault(user, [])
        if len(history) < RECENT_HISTORY_LEN and video not in history:
            history.append(video)
    return histories


def cap_per_user(examples: pa.Table, cap: int) -> pa.Table:
    """Keep at most ``cap`` positives per user (deterministic sample); hard negatives likewise."""
    if not examples.num_rows:
        return examples
    keys = pc.binary_join_element_wise(
        examples.column(USER_ID), examples.column(VIDEO_ID), examples.column(DT), "|"
    )
    rank = _sample_rank(keys)
    users = examples.column(USER_ID).to_numpy(zero_copy_only=False)
    label = examples.column(LABEL).to_numpy()
    order = np.lexsort((rank, label, users))
    group = np.r_[True, (users[order][1:] != users[order][:-1]) | (label[order][1:] != label[order][:-1])]
    starts = np.flatnonzero(group)
    position = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    kept = np.sort(order[position < cap])
    return examples.take(pa.array(kept))


def table_versions(settings: Settings) -> dict[str, int | None]:
    """Delta version of every table the model plane reads (recorded with what it produced)."""
    return {
        f"{t.layer}.{t.name}": lake.version(t, settings)
        for t in (EVENTS, VIDEOS, USER_FEATURES, VIDEO_FEATURES, VIDEO_CONTENT)
    }


def build(date: str, settings: Settings, cfg: TrainingSetConfig | None = None) -> dict[str, Any]:
    """Write the training set for evaluation date ``D``: examples of the nights before D.

    Returns:
        Facts: path, dates, positives, hard negatives, users, videos, Feast seconds, seconds.

    Raises:
        NoTrainingDataError: when no night before D has labelled impressions (the first night).
    """
    cfg = cfg or TrainingSetConfig()
    started = time.perf_counter()
    dates = training_nights(date, settings, cfg)
    # Labels of the training nights and of the nights their positive histories reach back to, once.
    available = lake.partition_dates(EVENTS, settings)
    labelled_nights = [
        d for d in date_range(add_days(date, -1), cfg.train_days + cfg.history_days) if d in available
    ]
    labelled = labels(settings, labelled_nights, cfg) if dates else None
    examples = _capped_examples(date, labelled, dates, cfg)
    assert labelled is not None  # there are examples, so there were labels
    examples = with_positive_histories(examples, labelled, dates, cfg)
    feast_started = time.perf_counter()
    joined = _with_features(examples, settings)
    feast_seconds = time.perf_counter() - feast_started
    out = training_set_dir(settings, date)
    _write_examples(joined, out)
    facts = {
        "date": date,
        "path": str(out / EXAMPLES_FILE),
        "dates": dates,
        "feature_service": FEATURE_SERVICE,
        "examples": joined.num_rows,
        "positives": int(pc.sum(joined.column(LABEL)).as_py()),
        "hard_negatives": int(joined.num_rows - pc.sum(joined.column(LABEL)).as_py()),
        "users": len(pc.unique(joined.column(USER_ID))),
        "bot_user_days": bot_user_days(lake.read(EVENTS, settings, dates=dates, columns=[USER_ID, DT]))
        .select([USER_ID, DT])
        .to_pylist(),
        "videos": len(pc.unique(joined.column(VIDEO_ID))),
        "inputs": table_versions(settings),
        "feast_seconds": round(feast_seconds, 2),
        "seconds": round(time.perf_counter() - started, 2),
    }
    (out / "facts.json").write_text(json.dumps(facts, indent=2))
    return facts


def training_nights(date: str, settings: Settings, cfg: TrainingSetConfig) -> list[str]:
    """The ``train_days`` nights before ``date`` with events in bronze and features the night before.

    A night's impressions were served with the features of the night before: without those (the
    platform's first night) every example would look like a brand-new user and video.
    """
    available = lake.partition_dates(EVENTS, settings)
    featured = lake.partition_dates(USER_FEATURES, settings)
    return [
        d
        for d in date_range(add_days(date, -1), cfg.train_days)
        if d in available and add_days(d, -1) in featured
    ]


def _capped_examples(
    date: str, labelled: pa.Table | None, dates: list[str], cfg: TrainingSetConfig
) -> pa.Table:
    """The labelled impressions of the training ``dates``, capped per user.

    Raises:
        NoTrainingDataError: when they hold no positive.
    """
    examples = None
    if labelled is not None:
        in_window = pc.is_in(labelled.column(DT), value_set=pa.array(dates, pa.string()))
        examples = cap_per_user(labelled.filter(in_window), cfg.max_examples_per_user)
    if examples is None or not pc.sum(examples.column(LABEL)).as_py():
        raise NoTrainingDataError(
            f"training set for dt={date}: no night in [{add_days(date, -cfg.train_days)}, "
            f"{add_days(date, -1)}] has both labelled "
            "impressions in bronze.events and the features of the night before in silver.user_features; "
            "the model plane needs two earlier nights"
        )
    return examples


def with_positive_histories(
    examples: pa.Table, labelled: pa.Table, dates: list[str], cfg: TrainingSetConfig
) -> pa.Table:
    """``examples`` plus :data:`POSITIVE_HISTORY`: the user's positives of the nights before the example's.

    Point in time, like the features: an example of night d sees the ``history_days`` nights up to d-1.
    """
    histories = {d: histories_of(labelled, add_days(d, -1), cfg.history_days) for d in dates}
    return examples.append_column(
        POSITIVE_HISTORY,
        pa.array(
            [
                histories[d].get(u, [])
                for u, d in zip(
                    examples.column(USER_ID).to_pylist(), examples.column(DT).to_pylist(), strict=True
                )
            ],
            pa.list_(pa.string()),
        ),
    )


def _with_features(examples: pa.Table, settings: Settings) -> pa.Table:
    """``examples`` plus the ``<view>__<feature>`` columns of :data:`FEATURE_SERVICE`, joined by Feast."""
    from reelrec.feast_store import historical_features

    entity_df = examples.select([USER_ID, VIDEO_ID, EVENT_TIMESTAMP]).to_pandas()
    features = historical_features(settings, entity_df, FEATURE_SERVICE)
    feature_columns = [c for c in features.columns if "__" in c]
    joined = examples
    for column in feature_columns:
        joined = joined.append_column(column, pa.array(features[column].tolist(), from_pandas=True))
    return joined


def _write_examples(examples: pa.Table, folder: Path) -> None:
    """Replace ``folder/examples.parquet`` atomically (write a temporary file, then rename)."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{EXAMPLES_FILE}.tmp"
    pq.write_table(examples, tmp)
    tmp.replace(folder / EXAMPLES_FILE)


def load(date: str, settings: Settings) -> pa.Table:
    """The training set built for ``date``.

    Raises:
        FileNotFoundError: naming the path and the command that builds it.
    """
    path = training_set_dir(settings, date) / EXAMPLES_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"no training set for dt={date} at {path}; run python -m models.training_set --date {date}"
        )
    return pq.read_table(path)


def main(date: str, settings: Settings) -> dict[str, Any]:
    """Entry point of the DAG task and of ``python -m models.training_set --date D``."""
    return build(date, settings)


if __name__ == "__main__":
    raise SystemExit(run_job(main, "Build the point-in-time training set for evaluation date D."))
