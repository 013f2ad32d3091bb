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


def format_recommendations(rec: dict[str, Any], sources: dict[str, str] | None = None) -> str:
    """Render one :func:`~reelrec.serving.recommend` result: a header, then rank, video id and score lines.

    ``sources`` (video id -> the candidate sources that proposed it) adds a provenance column.
    """
    found = rec.get("found", rec.get("model_version") is not None)
    if not found and not rec.get("fallback"):
        return f"user {rec['user_id']}: no candidates in the online store"
    header = (
        f"user {rec['user_id']}"
        if found
        else f"user {rec['user_id']}: no list of their own, the default list"
    )
    lines = [
        header,
        f"  model_version  {rec['model_version']}",
        f"  generated_at   {rec['generated_at']}",
        (
            f"  {'rank':>4}  {'video_id':<12}  {'score':<10}" + ("  sources (name#rank)" if sources else "")
        ).rstrip(),
    ]
    lines += [
        (
            f"  {rank:>4}  {item['video_id']:<12}  {item['score']:<10.4g}"
            + (f"  {sources.get(item['video_id'], '-')}" if sources else "")
        ).rstrip()
        for rank, item in enumerate(rec["items"], start=1)
    ]
    return "\n".join(lines)


def _figure(metrics: dict[str, Any], name: str) -> str:
    value = metrics.get(name)
    return f"{value:.4f}" if isinstance(value, int | float) else "-"


def _gate_word(release: dict[str, Any]) -> str:
    if release.get("forced"):
        return "forced"
    if release.get("published_at") is not None:
        return "published"
    return "held"


def format_releases(rows: list[dict[str, Any]]) -> str:
    """Render ``reelrec models list``: one line per release, oldest night first, ``*`` on the serving one.

    Each row is a :class:`~reelrec.releases.Release` dict plus ``serving: bool``.
    """
    if not rows:
        return "no model versions recorded yet (the nightly publish records one per night)"
    header = ("", "version", "night", "components", "ndcg@10", "recall@100", "gate", "reason")
    table = [
        (
            "*" if r.get("serving") else "",
            r["version"],
            r["night"],
            ", ".join(f"{k}={v}" for k, v in sorted(r.get("components", {}).items())) or "-",
            _figure(r.get("metrics", {}), "ndcg@10"),
            _figure(r.get("metrics", {}), "recall@100"),
            _gate_word(r),
            _cell(r.get("gate", {}).get("reason"), width=80),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in [header, *table]) for i in range(len(header) - 1)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
        for row in [header, *table]
    ]
    lines.append("(* = the serving version)")
    return "\n".join(line.rstrip() for line in lines)


def format_serving(release: dict[str, Any] | None, pointer: dict[str, Any] | None) -> str:
    """The first line of ``reelrec recommend``: which model version the online store serves."""
    if release is None:
        return "serving: no model version recorded (no night published through the release registry yet)"
    stamp = release.get("published_at")
    when = f"published {stamp}" if stamp else "held by the gate that night"
    line = f"serving: {release['version']} (night {release['night']}, {when})"
    if pointer and pointer.get("reason") in ("rollback", "forced"):
        line += f"; {pointer['reason']} at {pointer.get('since')}"
    return line


def format_rollback(facts: dict[str, Any]) -> str:
    """Render a :func:`~reelrec.rollback.rollback` result: the version, night and what each view got."""
    lines = [
        f"rolled back to {facts['version']} (night {facts['night']}; was {facts['previous'] or 'none'})",
        f"  online timestamp {facts['online_timestamp']}",
    ]
    for table, t in facts["tables"].items():
        travel = " (time travel)" if t["time_travel"] else ""
        lines.append(
            f"  gold.{table} @ Delta version {t['delta_version']}{travel} -> {t['view']}: "
            f"{t['rows']} rows written, {t['cleared']} cleared"
        )
    return "\n".join(lines)
