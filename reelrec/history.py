"""What users have already watched: the one definition that scoring, evaluation and validation share.

A video is *watched* by a user once the user has a ``view`` event for it (a watch of at least a
second; skips are not views). Candidate lists never contain watched videos, the evaluation removes
them from the ranking, and the "outputs" validation suite checks both against this definition.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc

from reelrec import lake
from reelrec.catalog import DT, EVENT_TYPE, EVENTS, USER_ID, VIDEO_ID
from reelrec.settings import Settings

WATCHED_EVENT_TYPE = "view"


def watched(
    settings: Settings,
    until: str,
    since: str | None = None,
    users: Iterable[str] | None = None,
) -> pa.Table:
    """Distinct ``(user_id, video_id)`` pairs with a view event in ``dt`` partitions ``[since, until]``.

    Args:
        settings: where the lake lives.
        until: last logical date included (``YYYY-MM-DD``); later partitions are never read.
        since: first logical date included; ``None`` reads from the first partition.
        users: only these users (``None``: everyone).

    Returns:
        Arrow table with columns ``user_id``, ``video_id`` (strings), one row per pair.
    """
    flt = (pc.field(DT) <= until) & (pc.field(EVENT_TYPE) == WATCHED_EVENT_TYPE)
    if since is not None:
        flt &= pc.field(DT) >= since
    if users is not None:
        flt &= pc.field(USER_ID).isin(pa.array(sorted(set(users)), pa.string()))
    dataset = lake.open_table(EVENTS, settings).to_pyarrow_dataset()
    pairs = dataset.to_table(columns=[USER_ID, VIDEO_ID], filter=flt)
    return pairs.group_by([USER_ID, VIDEO_ID]).aggregate([])
