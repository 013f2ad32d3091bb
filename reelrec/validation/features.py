"""Suite "features": the silver feature tables of one logical date.

On top of the catalog checks (columns, non-null columns, key, volume; see
:mod:`reelrec.validation.rules`): every row valid from the end of the day, counts never negative,
windowed counts that never shrink as the window grows, shares (probabilities) in ``[0, 1]``, and
``engagement_rate_7d``, engagements per view (a ratio, not a share), non-negative with no upper
bound.
"""

from __future__ import annotations

from reelrec.catalog import (
    AGE_HOURS,
    CREATOR_FEATURES,
    EVENT_TIMESTAMP,
    FOLLOWERS_TOTAL,
    USER_FEATURES,
    VIDEO_FEATURES,
    Table,
    windowed_names,
)
from reelrec.validation.rules import Rules, monotone

FEATURES = "features"

FEATURE_TABLES: tuple[Table, ...] = (USER_FEATURES, VIDEO_FEATURES, CREATOR_FEATURES)

FEATURE_RULES: dict[str, Rules] = {
    USER_FEATURES.name: Rules(
        at_end_of_day=(EVENT_TIMESTAMP,),
        non_negative=windowed_names("impressions") + windowed_names("views") + windowed_names("watch_ms"),
        unit_interval=("completion_rate_7d", "completion_rate_28d", "like_rate_28d"),
        bounded={"active_days_28d": (0, 28)},
        not_greater=monotone("impressions") + monotone("views") + monotone("watch_ms"),
    ),
    VIDEO_FEATURES.name: Rules(
        at_end_of_day=(EVENT_TIMESTAMP,),
        non_negative=(
            *windowed_names("impressions"),
            *windowed_names("views"),
            "avg_watch_fraction_1d",  # may pass 1 when a short video loops
            "avg_watch_fraction_7d",
            AGE_HOURS,
        ),
        unit_interval=("completion_rate_7d", "like_rate_7d", "share_rate_7d"),
        not_greater=monotone("impressions") + monotone("views"),
    ),
    CREATOR_FEATURES.name: Rules(
        at_end_of_day=(EVENT_TIMESTAMP,),
        non_negative=(
            FOLLOWERS_TOTAL,
            "new_followers_7d",
            "uploads_7d",
            "uploads_28d",
            "views_7d",
            # engagements per view, not a share of viewers: a view followed by a like and a share
            # counts two engagements, so the ratio may pass 1 (see spark_jobs.creator_features)
            "engagement_rate_7d",
        ),
        not_greater=(("uploads_7d", "uploads_28d"), ("new_followers_7d", FOLLOWERS_TOTAL)),
    ),
}
"""Value rules of each silver feature table."""
