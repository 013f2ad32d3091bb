"""The table catalog: one schema per table, the single source of column names.

Every Delta table reelrec writes is declared here with its layer, Arrow schema, partitioning and
key. Jobs ``select`` into these schemas at their end (see :func:`reelrec.lake.write_partition`), so a
drifting column fails loudly at write time instead of surprising a consumer.

Time: every timestamp is UTC with microsecond precision. ``dt`` is the logical date
``YYYY-MM-DD`` (a string partition column). Feature rows carry ``event_timestamp``, the instant
the features are valid from (end of ``dt``), which Feast uses for point-in-time joins.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from reelrec.settings import Settings

TS = pa.timestamp("us", tz="UTC")

# Column names shared across stages (the recsys vocabulary of the project).
EVENT_ID = "event_id"
EVENT_TYPE = "event_type"
EVENT_TS = "event_ts"
USER_ID = "user_id"
VIDEO_ID = "video_id"
CREATOR_ID = "creator_id"
WATCH_MS = "watch_ms"
SURFACE = "surface"
POSITION = "position"
DT = "dt"
EVENT_TIMESTAMP = "event_timestamp"

EVENT_TYPES = ("impression", "view", "like", "share", "follow", "skip")
SURFACES = ("spotlight", "discover", "stories")
FRAME_EMBEDDING_DIM = 32
TEXT_EMBEDDING_DIM = 384  # all-MiniLM-L6-v2 sentence embeddings
RECENT_HISTORY_LEN = 50
MODEL_VERSION = "model_version"
GENERATED_AT = "generated_at"


@dataclass(frozen=True)
class Table:
    """A Delta table: where it lives, its schema and how it is partitioned."""

    name: str
    layer: str  # bronze | silver | gold | quarantine
    schema: pa.Schema
    key: tuple[str, ...]
    partition_by: tuple[str, ...] = (DT,)
    description: str = ""

    @property
    def columns(self) -> list[str]:
        """Column names in schema order."""
        return list(self.schema.names)

    def path(self, settings: Settings) -> Path:
        """Folder of the Delta table under ``REELREC_HOME/lake``."""
        return settings.lake / self.layer / self.name

    def uri(self, settings: Settings) -> str:
        """String form of :meth:`path`, as delta-rs and DuckDB want it."""
        return str(self.path(settings))


# ---------------------------------------------------------------- bronze: landed, typed, deduplicated
EVENTS = Table(
    name="events",
    layer="bronze",
    key=(EVENT_ID,),
    description="One row per app event, deduplicated by event_id, partitioned by the UTC date of event_ts.",
    schema=pa.schema(
        [
            pa.field(EVENT_ID, pa.string(), nullable=False),
            pa.field(EVENT_TYPE, pa.string(), nullable=False),
            pa.field(USER_ID, pa.string(), nullable=False),
            pa.field(VIDEO_ID, pa.string(), nullable=False),
            pa.field(EVENT_TS, TS, nullable=False),
            pa.field(WATCH_MS, pa.int64()),
            pa.field(SURFACE, pa.string(), nullable=False),
            pa.field(POSITION, pa.int32(), nullable=False),
            pa.field(DT, pa.string(), nullable=False),
        ]
    ),
)

VIDEOS = Table(
    name="videos",
    layer="bronze",
    key=(VIDEO_ID, DT),
    description="Daily snapshot of the video catalog as of the end of dt.",
    schema=pa.schema(
        [
            pa.field(VIDEO_ID, pa.string(), nullable=False),
            pa.field(CREATOR_ID, pa.string(), nullable=False),
            pa.field("upload_ts", TS, nullable=False),
            pa.field("duration_ms", pa.int64(), nullable=False),
            pa.field("caption", pa.string()),
            pa.field("hashtags", pa.list_(pa.string())),
            pa.field("frame_embedding", pa.list_(pa.float32())),
            pa.field(DT, pa.string(), nullable=False),
        ]
    ),
)

USERS = Table(
    name="users",
    layer="bronze",
    key=(USER_ID, DT),
    description="Daily snapshot of the user catalog as of the end of dt.",
    schema=pa.schema(
        [
            pa.field(USER_ID, pa.string(), nullable=False),
            pa.field("signup_ts", TS, nullable=False),
            pa.field("country", pa.string()),
            pa.field("age_bucket", pa.string()),
            pa.field(DT, pa.string(), nullable=False),
        ]
    ),
)

CREATORS = Table(
    name="creators",
    layer="bronze",
    key=(CREATOR_ID, DT),
    description="Daily snapshot of the creator catalog as of the end of dt.",
    schema=pa.schema(
        [
            pa.field(CREATOR_ID, pa.string(), nullable=False),
            pa.field("joined_ts", TS, nullable=False),
            pa.field("country", pa.string()),
            pa.field(DT, pa.string(), nullable=False),
        ]
    ),
)

FOLLOWS = Table(
    name="follows",
    layer="bronze",
    key=(USER_ID, CREATOR_ID),
    description="Follow edges created on dt (one row per new edge).",
    schema=pa.schema(
        [
            pa.field(USER_ID, pa.string(), nullable=False),
            pa.field(CREATOR_ID, pa.string(), nullable=False),
            pa.field("followed_at", TS, nullable=False),
            pa.field(DT, pa.string(), nullable=False),
        ]
    ),
)

QUARANTINE = Table(
    name="quarantine",
    layer="bronze",
    key=("source", "record"),
    partition_by=(DT, "source"),
    description="Landed rows that broke the data contract, with the reason, file and line.",
    schema=pa.schema(
        [
            pa.field("source", pa.string(), nullable=False),  # landing feed: events, videos, ...
            pa.field("file", pa.string(), nullable=False),
            pa.field("line", pa.int64()),  # 1-based line (JSONL) or row (parquet)
            pa.field("reason", pa.string(), nullable=False),
            pa.field("record", pa.string(), nullable=False),  # the raw row as JSON text
            pa.field(DT, pa.string(), nullable=False),
        ]
    ),
)

# ---------------------------------------------------------------- silver: features as of the end of dt
_WINDOWS = (1, 7, 28)


def _windowed(prefix: str, dtype: pa.DataType, windows: tuple[int, ...] = _WINDOWS) -> list[pa.Field]:
    return [pa.field(f"{prefix}_{w}d", dtype) for w in windows]


USER_FEATURES = Table(
    name="user_features",
    layer="silver",
    key=(USER_ID, DT),
    description="Per-user activity as of the end of dt (windows end at dt inclusive).",
    schema=pa.schema(
        [
            pa.field(USER_ID, pa.string(), nullable=False),
            *_windowed("impressions", pa.int64()),
            *_windowed("views", pa.int64()),
            *_windowed("watch_ms", pa.int64()),
            pa.field("completion_rate_7d", pa.float64()),
            pa.field("completion_rate_28d", pa.float64()),
            pa.field("like_rate_28d", pa.float64()),
            pa.field("active_days_28d", pa.int64()),
            pa.field("recent_video_ids", pa.list_(pa.string())),  # newest first, at most 50
            pa.field(EVENT_TIMESTAMP, TS, nullable=False),
            pa.field(DT, pa.string(), nullable=False),
        ]
    ),
)

VIDEO_FEATURES = Table(
    name="video_features",
    layer="silver",
    key=(VIDEO_ID, DT),
    description="Per-video performance as of the end of dt; every catalog video has a row.",
    schema=pa.schema(
        [
            pa.field(VIDEO_ID, pa.string(), nullable=False),
            pa.field(CREATOR_ID, pa.string(), nullable=False),
            *_windowed("impressions", pa.int64()),
            *_windowed("views", pa.int64()),
            pa.field("completion_rate_7d", pa.float64()),
            pa.field("like_rate_7d", pa.float64()),
            pa.field("share_rate_7d", pa.float64()),
            pa.field("avg_watch_fraction_1d", pa.float64()),
            pa.field("avg_watch_fraction_7d", pa.float64()),
            pa.field("age_hours", pa.float64()),
            pa.field("trending_score", pa.float64()),
            pa.field(EVENT_TIMESTAMP, TS, nullable=False),
            pa.field(DT, pa.string(), nullable=False),
        ]
    ),
)

CREATOR_FEATURES = Table(
    name="creator_features",
    layer="silver",
    key=(CREATOR_ID, DT),
    description="Per-creator audience and output as of the end of dt.",
    schema=pa.schema(
        [
            pa.field(CREATOR_ID, pa.string(), nullable=False),
            pa.field("followers_total", pa.int64()),
            pa.field("new_followers_7d", pa.int64()),
            pa.field("uploads_7d", pa.int64()),
            pa.field("uploads_28d", pa.int64()),
            pa.field("views_7d", pa.int64()),
            pa.field("engagement_rate_7d", pa.float64()),
            pa.field(EVENT_TIMESTAMP, TS, nullable=False),
            pa.field(DT, pa.string(), nullable=False),
        ]
    ),
)

VIDEO_CONTENT = Table(
    name="video_content",
    layer="silver",
    key=(VIDEO_ID,),
    description="Content embeddings of every video, written once, on the night dt it is first seen. "
    "event_timestamp is the upload time: the content is known from the moment of upload.",
    schema=pa.schema(
        [
            pa.field(VIDEO_ID, pa.string(), nullable=False),
            pa.field(CREATOR_ID, pa.string(), nullable=False),
            pa.field("text_embedding", pa.list_(pa.float32()), nullable=False),  # unit norm, 384-d
            pa.field("frame_embedding", pa.list_(pa.float32())),  # upstream, 32-d, may be missing
            pa.field("text_encoder", pa.string(), nullable=False),  # model that made text_embedding
            pa.field(EVENT_TIMESTAMP, TS, nullable=False),
            pa.field(DT, pa.string(), nullable=False),
        ]
    ),
)

# ---------------------------------------------------------------- gold: model outputs of the night dt
CANDIDATES = Table(
    name="candidates",
    layer="gold",
    key=(USER_ID, DT),
    description="Top-N retrieval candidates per active user, best first, unwatched videos only.",
    schema=pa.schema(
        [
            pa.field(USER_ID, pa.string(), nullable=False),
            pa.field("video_ids", pa.list_(pa.string()), nullable=False),
            pa.field("scores", pa.list_(pa.float32()), nullable=False),
            pa.field(MODEL_VERSION, pa.string(), nullable=False),
            pa.field(GENERATED_AT, TS, nullable=False),
            pa.field(EVENT_TIMESTAMP, TS, nullable=False),
            pa.field(DT, pa.string(), nullable=False),
        ]
    ),
)


def _embedding_table(name: str, key: str, description: str) -> Table:
    """A gold table of one model-output embedding per ``key`` and night."""
    return Table(
        name=name,
        layer="gold",
        key=(key, DT),
        description=description,
        schema=pa.schema(
            [
                pa.field(key, pa.string(), nullable=False),
                pa.field("embedding", pa.list_(pa.float32()), nullable=False),
                pa.field(MODEL_VERSION, pa.string(), nullable=False),
                pa.field(GENERATED_AT, TS, nullable=False),
                pa.field(EVENT_TIMESTAMP, TS, nullable=False),
                pa.field(DT, pa.string(), nullable=False),
            ]
        ),
    )


USER_EMBEDDINGS = _embedding_table(
    "user_embeddings", USER_ID, "User-tower embedding of every active user (unit norm)."
)
VIDEO_EMBEDDINGS = _embedding_table(
    "video_embeddings",
    VIDEO_ID,
    "Video-tower embedding of every eligible video (unit direction + bounded bias coordinate), "
    "fresh uploads included.",
)

BRONZE_TABLES = (EVENTS, VIDEOS, USERS, CREATORS, FOLLOWS, QUARANTINE)
SILVER_TABLES = (USER_FEATURES, VIDEO_FEATURES, CREATOR_FEATURES, VIDEO_CONTENT)
GOLD_TABLES = (CANDIDATES, USER_EMBEDDINGS, VIDEO_EMBEDDINGS)
ALL_TABLES = BRONZE_TABLES + SILVER_TABLES + GOLD_TABLES
TABLES = {t.name: t for t in ALL_TABLES}


def table(name: str) -> Table:
    """Look a table up by name, naming the known tables when it is not there."""
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r}; known tables: {sorted(TABLES)}") from None
