"""Text that ``reelrec features`` and ``reelrec recommend`` print (with ``--json`` they print the dicts)."""

from __future__ import annotations

from typing import Any


def _cell(value: Any, width: int = 60) -> str:
    """One feature value in at most ``width`` characters (lists show their first five items and length)."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        head = ", ".join(str(v) for v in value[:5])
        text = f"[{head}{', ...' if len(value) > 5 else ''}] ({len(value)})"
    else:
        text = str(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def format_features(d: dict[str, Any]) -> str:
    """Render an :func:`~reelrec.feast_store.online_features` result as aligned text, one block per view."""
    lines = [f"project {d.get('project')} ({d.get('online_store')} online store)"]
    views: dict[str, Any] = d.get("views", {})
    if not views:
        lines.append(
            "  no feature view serves " + ", ".join(f"{k}={v}" for k, v in d.get("entities", {}).items())
        )
    for name, view in views.items():
        entity = ", ".join(f"{k}={v}" for k, v in view["entity"].items())
        if not view["found"]:
            lines.append(f"\n{name}  {entity}: not in the online store")
            continue
        stamp = view["event_timestamp"]
        lines.append(f"\n{name}  {entity}  (as of {stamp})")
        width = max(len(f) for f in view["features"])
        for feature, value in view["features"].items():
            lines.append(f"  {feature:<{width}}  {_cell(value)}")
    return "\n".join(lines)


def format_recommendations(rec: dict[str, Any]) -> str:
    """Render one :func:`~reelrec.serving.recommend` result: a header, then rank, video id and score lines."""
    if not rec.get("found", rec.get("model_version") is not None):
        return f"user {rec['user_id']}: no candidates in the online store"
    lines = [
        f"user {rec['user_id']}",
        f"  model_version  {rec['model_version']}",
        f"  generated_at   {rec['generated_at']}",
        f"  {'rank':>4}  {'video_id':<12}  score",
    ]
    lines += [
        f"  {rank:>4}  {item['video_id']:<12}  {item['score']:.4g}"
        for rank, item in enumerate(rec["items"], start=1)
    ]
    return "\n".join(lines)
