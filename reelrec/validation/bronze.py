"""Suite "bronze": the landed, typed and deduplicated tables of one logical date.

On top of the catalog checks (columns, non-null columns, key, volume; see
:mod:`reelrec.validation.rules`): event times inside the day, snapshot times not after it,
durations and positions in range, the contract's categorical sets, and ``watch_ms`` present on the
event types that carry a watch time (:data:`reelrec.catalog.TIMED_EVENT_TYPES`).
"""

from __future__ import annotations

from reelrec.catalog import (
    AGE_BUCKET,
    AGE_BUCKETS,
    CREATORS,
    DURATION_MS,
    EVENT_TS,
    EVENT_TYPE,
    EVENT_TYPES,
    EVENTS,
    FOLLOWED_AT,
    FOLLOWS,
    JOINED_TS,
    POSITION,
    SIGNUP_TS,
    SURFACE,
    SURFACES,
    TIMED_EVENT_TYPES,
    UPLOAD_TS,
    USERS,
    VIDEOS,
    WATCH_MS,
    Table,
)
from reelrec.validation.rules import Rules

BRONZE = "bronze"

BRONZE_TABLES: tuple[Table, ...] = (EVENTS, VIDEOS, USERS, CREATORS, FOLLOWS)

BRONZE_RULES: dict[str, Rules] = {
    EVENTS.name: Rules(
        within_day=(EVENT_TS,),
        non_negative=(WATCH_MS, POSITION),
        value_sets={EVENT_TYPE: EVENT_TYPES, SURFACE: SURFACES},
        not_null_when=((WATCH_MS, EVENT_TYPE, TIMED_EVENT_TYPES),),
    ),
    VIDEOS.name: Rules(not_after_day=(UPLOAD_TS,), positive=(DURATION_MS,)),
    USERS.name: Rules(not_after_day=(SIGNUP_TS,), value_sets={AGE_BUCKET: AGE_BUCKETS}),
    CREATORS.name: Rules(not_after_day=(JOINED_TS,)),
    FOLLOWS.name: Rules(within_day=(FOLLOWED_AT,), may_be_empty=True),
}
"""Value rules of each bronze table."""
