"""The promotion gate: does tonight's candidate replace the serving version in the online store?

Before night D is published, the candidate (the new model versions' final lists) and the serving
version are scored on the same held-out day with the same protocol (:mod:`models.evaluate`), next to
the baselines. :func:`decide` then applies these rules to one metric (``GateConfig.metric``,
NDCG@10 of the final lists by default):

- publish when the candidate reaches **both** floors: ``serving - tolerance`` (a small absolute
  slack, so that day-to-day noise does not freeze serving on one lucky night) and the **best
  baseline** (no slack: a model that cannot beat popularity must not serve);
- the first night (no serving version yet) is compared with the best baseline only;
- with no baseline figures, only the serving floor applies (and with neither, the night publishes:
  there is nothing to compare with, and the reason says so);
- a candidate whose metric is NaN is held (a broken evaluation is not a pass);
- ``force=True`` (the DAG's ``force_publish`` param) publishes whatever the rules say, with
  ``forced=True`` and a reason naming what was overridden.

Ties publish (``>=``). A held night raises :class:`HeldError` in the DAG, which skips the output tasks:
the serving version stays, nothing is written to the online store.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from reelrec.errors import NothingToDoError


@dataclass(frozen=True)
class GateConfig:
    """How the gate compares the candidate with the serving version and the baselines."""

    metric: str = "ndcg@10"  # key in the metric dicts of models.evaluate
    tolerance: float = 0.005  # absolute: the candidate may trail the serving version by this much


@dataclass(frozen=True)
class Decision:
    """The gate's verdict on one night, with the figures behind it."""

    publish: bool
    reason: str  # names the figures, e.g. "held: final list NDCG@10 0.1203 < serving V's 0.1350 - 0.005"
    candidate: float
    serving: float | None  # the serving version's figure on the same day; None on the first night
    best_baseline: float | None  # None when no baseline figure was given
    baseline_name: str | None
    forced: bool = False
    metric: str = "ndcg@10"
    tolerance: float = 0.005
    serving_version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (run manifest, XCom, the release record)."""
        return asdict(self)


class HeldError(NothingToDoError):
    """The gate held night D: the serving version stays and the output tasks are skipped.

    A :class:`~reelrec.errors.NothingToDoError`: the DAG marks the task skipped, not failed.
    """

    def __init__(self, decision: Decision | str, date: str | None = None) -> None:
        self.decision = decision if isinstance(decision, Decision) else None
        self.date = date
        where = f"dt={date}: " if date else ""
        reason = decision.reason if isinstance(decision, Decision) else decision
        super().__init__(f"{where}{reason}")


def _figure(metrics: Mapping[str, Any], metric: str, whose: str) -> float:
    """``metrics[metric]`` as a float.

    Raises:
        KeyError: naming whose metrics lack ``metric`` and what they hold.
    """
    if metric not in metrics:
        raise KeyError(f"promotion gate: the {whose} metrics lack {metric!r}; they hold {sorted(metrics)}")
    return float(metrics[metric])


def _best_baseline(
    baseline_metrics: Mapping[str, Mapping[str, Any]], metric: str
) -> tuple[str | None, float | None]:
    """Name and figure of the baseline with the highest ``metric`` (NaN figures ignored)."""
    figures = {
        name: float(m[metric])
        for name, m in baseline_metrics.items()
        if metric in m and not math.isnan(float(m[metric]))
    }
    if not figures:
        return None, None
    name = max(sorted(figures), key=lambda n: figures[n])
    return name, figures[name]


def _verdict(
    candidate: float,
    serving: float | None,
    baseline: tuple[str | None, float | None],
    cfg: GateConfig,
    serving_version: str | None,
) -> tuple[bool, str]:
    """Whether the rules publish, and the reason naming every figure compared."""
    label = f"final list {cfg.metric.upper()} {candidate:.4f}"
    name, best = baseline
    who = f"serving {serving_version}'s" if serving_version else "serving version's"
    if math.isnan(candidate):
        return False, f"held: {label} is NaN (the candidate's evaluation is broken)"
    failures: list[str] = []
    passes: list[str] = []
    if serving is not None:
        floor = f"{who} {serving:.4f} - {cfg.tolerance:g}"
        (passes if candidate >= serving - cfg.tolerance else failures).append(floor)
    if best is not None:
        floor = f"best baseline {name}'s {best:.4f}"
        (passes if candidate >= best else failures).append(floor)
    if failures:
        return False, f"held: {label} < {' and < '.join(failures)}"
    if not passes:
        return True, f"published: {label}; no serving version and no baseline figure to compare with"
    first = "" if serving is not None else " (first night: no serving version)"
    return True, f"published: {label} >= {' and >= '.join(passes)}{first}"


def decide(
    candidate_metrics: Mapping[str, Any],
    serving_metrics: Mapping[str, Any] | None,
    baseline_metrics: Mapping[str, Mapping[str, Any]],
    cfg: GateConfig | None = None,
    force: bool = False,
    serving_version: str | None = None,
) -> Decision:
    """Decide whether the candidate is published (rules in the module docstring).

    Args:
        candidate_metrics: the candidate's final-list metrics on the held-out day.
        serving_metrics: the serving version's metrics on the same day; ``None`` on the first night.
        baseline_metrics: ``{baseline name: metrics}`` on the same day (may be empty).
        cfg: metric and tolerance (``GateConfig()`` when ``None``).
        force: publish regardless (the DAG's ``force_publish`` param); recorded as forced.
        serving_version: the serving version's name, for the reason string.

    Returns:
        The decision, its reason naming the candidate's figure and every floor it was compared with.

    Raises:
        KeyError: when the candidate's (or the given serving version's) metrics lack ``cfg.metric``.
    """
    cfg = cfg or GateConfig()
    candidate = _figure(candidate_metrics, cfg.metric, "candidate's")
    serving = None if serving_metrics is None else _figure(serving_metrics, cfg.metric, "serving version's")
    if serving is not None and math.isnan(serving):
        serving = None  # the serving version could not be scored today: compare with the baselines only
    baseline = _best_baseline(baseline_metrics, cfg.metric)
    publish, reason = _verdict(candidate, serving, baseline, cfg, serving_version)
    if force:
        overridden = reason.removeprefix("held: ").removeprefix("published: ")
        reason = (
            f"forced (force_publish): the gate would have held it: {overridden}"
            if not publish
            else f"forced (force_publish): the gate would have published it anyway: {overridden}"
        )
    return Decision(
        publish=publish or force,
        reason=reason,
        candidate=candidate,
        serving=serving,
        best_baseline=baseline[1],
        baseline_name=baseline[0],
        forced=force,
        metric=cfg.metric,
        tolerance=cfg.tolerance,
        serving_version=serving_version,
    )
