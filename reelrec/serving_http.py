"""Read published recommendations over HTTP, through Feast's feature server.

``feast -c $REELREC_HOME/feast serve`` answers ``POST /get-online-features``; :func:`feature_server_request`
builds the body for a list of users (the default list's key appended, as :mod:`reelrec.serving` reads
it) and :func:`parse_feature_server_response` turns the reply into :func:`reelrec.serving.recommend`'s
dicts. The HTTP path reads the list only (``recommendations_v1``), not the user's embedding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from reelrec.catalog import DEFAULT_LIST_KEY, USER_ID
from reelrec.serving import (
    FEATURE_SERVICE,
    GENERATED,
    PRESENT,
    SCORES,
    VERSION,
    VIDEO_IDS,
    _assemble,
    _check_ids,
    _check_k,
)


def feature_server_request(user_ids: Sequence[str]) -> dict[str, Any]:
    """JSON body of a ``POST /get-online-features`` to Feast's feature server for ``user_ids``.

    The default list's key (:data:`DEFAULT_LIST_KEY`) is appended to the users, so the one request
    also fetches the list of users without one; :func:`parse_feature_server_response` drops it.
    """
    _check_ids(user_ids)
    return {
        "feature_service": FEATURE_SERVICE,
        "entities": {USER_ID: [*user_ids, DEFAULT_LIST_KEY]},
        "full_feature_names": True,
    }


def parse_feature_server_response(
    body: Mapping[str, Any], k: int | None = None, user_ids: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Turn the feature server's reply to :func:`feature_server_request` into :func:`recommend`'s dicts.

    Feast 0.67 answers column-wise: ``metadata.feature_names`` names the columns (the ``user_id``
    entity first, then ``<view>__<feature>`` in no fixed order) and ``results[i]`` holds column i
    as ``values`` (one per requested user, in request order), ``statuses`` (``PRESENT``,
    ``NOT_FOUND``, ...) and ``event_timestamps``. Timestamps arrive as epoch seconds.

    The last row, :data:`DEFAULT_LIST_KEY` (appended by :func:`feature_server_request`), is the
    default list: it answers the users without a list and is not a result. A reply to a request
    without that key (its last ``user_id`` is another) is decoded without a default list.

    Args:
        body: the decoded JSON reply.
        k: keep at most the ``k`` best items per user (all when ``None``).
        user_ids: the users the request asked for, to check the reply against (optional).

    Raises:
        ValueError: when ``k < 1``, the reply lacks a column of ``recommendations_v1`` (e.g. the
            request did not ask for full feature names), or its users are not ``user_ids``.
    """
    _check_k(k)
    names = body.get("metadata", {}).get("feature_names", [])
    if isinstance(names, Mapping):  # protobuf's {"val": [...]} form, which Feast also accepts
        names = names.get("val", [])
    results = dict(zip(names, body.get("results", []), strict=True))
    missing = [name for name in (USER_ID, VIDEO_IDS, SCORES, VERSION, GENERATED) if name not in results]
    if missing:
        raise ValueError(
            f"feature server reply lacks column(s) {missing} of {FEATURE_SERVICE}; got {sorted(results)} "
            "(request with full_feature_names=true)"
        )
    columns = {name: result["values"] for name, result in results.items()}
    present = [status == PRESENT for status in results[VIDEO_IDS]["statuses"]]
    users = list(columns[USER_ID])
    with_default = bool(users) and users[-1] == DEFAULT_LIST_KEY
    if user_ids is not None and users != [*user_ids, DEFAULT_LIST_KEY] and users != list(user_ids):
        raise ValueError(
            f"feature server reply is for users {users}, not {list(user_ids)} (+ {DEFAULT_LIST_KEY})"
        )
    return _assemble(users, columns, present, k, with_default)
