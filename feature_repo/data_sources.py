"""Feast data sources: the silver feature tables and the gold model outputs, all Delta.

Each source is one Delta table of the catalog, read by Feast's DuckDB offline store through
DuckDB's ``delta`` extension (``delta_scan``), which honours the Delta log: files that a partition
overwrite removed are never read. Feast's default ``file`` offline store would read every parquet
file in the folder, stale ones included, so it must not be used with these sources.

Paths come from :class:`reelrec.settings.Settings` (``REELREC_HOME``) when this module is imported;
:func:`delta_source` builds the same source for any other settings (:mod:`feature_repo.registry`
does that so one process can serve several homes, e.g. in tests).
"""

from __future__ import annotations

from feast import FileSource
from feast.data_format import DeltaFormat

from reelrec.catalog import (
    CANDIDATES,
    CREATOR_FEATURES,
    EVENT_TIMESTAMP,
    USER_EMBEDDINGS,
    USER_FEATURES,
    VIDEO_CONTENT,
    VIDEO_EMBEDDINGS,
    VIDEO_FEATURES,
    Table,
)
from reelrec.settings import Settings

OWNER = "recsys-features@reelrec.dev"


def source_name(table: Table) -> str:
    """Registry name of the source reading ``table`` (``user_features_source``)."""
    return f"{table.name}_source"


def delta_source(table: Table, settings: Settings) -> FileSource:
    """A Feast source over the Delta table ``table`` in ``settings``' lake.

    ``event_timestamp`` (end of ``dt``) drives point-in-time joins; the ``dt`` partition column is
    not a feature and is never selected. The ``table`` tag names the catalog table, which is how
    :mod:`feature_repo.materialize` finds a registered view's rows in the lake.
    """
    return FileSource(
        name=source_name(table),
        path=table.uri(settings),
        file_format=DeltaFormat(),
        timestamp_field=EVENT_TIMESTAMP,
        description=f"{table.layer}.{table.name} (Delta): {table.description}",
        owner=OWNER,
        tags={"layer": table.layer, "table": table.name, "format": "delta"},
    )


_settings = Settings.from_env()

user_features_source = delta_source(USER_FEATURES, _settings)
video_features_source = delta_source(VIDEO_FEATURES, _settings)
creator_features_source = delta_source(CREATOR_FEATURES, _settings)
video_content_source = delta_source(VIDEO_CONTENT, _settings)
candidates_source = delta_source(CANDIDATES, _settings)
user_embeddings_source = delta_source(USER_EMBEDDINGS, _settings)
video_embeddings_source = delta_source(VIDEO_EMBEDDINGS, _settings)
