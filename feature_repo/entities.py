"""Feast entities: the things reelrec keeps features about.

Entities are singular and join on a string ``<entity>_id`` key, the same column names the table
catalog uses (:mod:`reelrec.catalog`), so a silver row joins without any renaming.
"""

from __future__ import annotations

from feast import Entity, ValueType

from reelrec.catalog import CREATOR_ID, USER_ID, VIDEO_ID

user = Entity(
    name="user",
    join_keys=[USER_ID],
    value_type=ValueType.STRING,
    description="A viewer of the feed (ids look like u000123).",
    tags={"domain": "audience"},
)

video = Entity(
    name="video",
    join_keys=[VIDEO_ID],
    value_type=ValueType.STRING,
    description="A short video in the catalog (ids look like v0001234).",
    tags={"domain": "catalog"},
)

creator = Entity(
    name="creator",
    join_keys=[CREATOR_ID],
    value_type=ValueType.STRING,
    description="An account that uploads videos (ids look like c00042).",
    tags={"domain": "catalog"},
)

ENTITIES = [user, video, creator]
