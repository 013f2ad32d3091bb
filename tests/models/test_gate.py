"""The promotion gate's rules on hand-picked figures: both floors, the first night, ties, NaN, force."""

from __future__ import annotations

import math

import pytest

from models.gate import Decision, GateConfig, HeldError, decide
from reelrec.errors import NothingToDoError

BASELINES = {"popularity": {"ndcg@10": 0.0900}, "trending": {"ndcg@10": 0.1100}, "random": {"ndcg@10": 0.01}}
SERVING = "two_tower_v1-20261101-aaaa"


def _decide(candidate: float, serving: float | None, **kwargs: object) -> Decision:
    return decide(
        {"ndcg@10": candidate, "recall@100": 0.4},
        None if serving is None else {"ndcg@10": serving},
        BASELINES,
        serving_version=SERVING,
        **kwargs,  # type: ignore[arg-type]
    )


def test_a_candidate_below_the_serving_floor_is_held_and_the_reason_names_both_figures() -> None:
    d = _decide(0.1203, 0.1350)
    assert d.publish is False and d.forced is False
    assert d.reason == f"held: final list NDCG@10 0.1203 < serving {SERVING}'s 0.1350 - 0.005"
    assert (d.candidate, d.serving, d.best_baseline, d.baseline_name) == (0.1203, 0.1350, 0.1100, "trending")


def test_within_the_tolerance_publishes_and_just_outside_it_holds() -> None:
    assert _decide(0.1301, 0.1350).publish is True  # 0.0049 behind: noise
    assert _decide(0.1299, 0.1350).publish is False  # 0.0051 behind
    assert _decide(0.1299, 0.1350, cfg=GateConfig(tolerance=0.01)).publish is True


def test_a_tie_with_both_floors_publishes() -> None:
    d = _decide(0.1100, 0.1150)  # exactly serving - tolerance and exactly the best baseline
    assert d.publish is True
    assert d.reason == (
        f"published: final list NDCG@10 0.1100 >= serving {SERVING}'s 0.1150 - 0.005 "
        "and >= best baseline trending's 0.1100"
    )


def test_beating_serving_but_not_the_best_baseline_is_held() -> None:
    d = _decide(0.1050, 0.1000)  # serving has sunk below trending: the candidate must still beat trending
    assert d.publish is False
    assert d.reason == "held: final list NDCG@10 0.1050 < best baseline trending's 0.1100"


def test_the_first_night_is_compared_with_the_best_baseline_only() -> None:
    assert _decide(0.1100, None).publish is True
    held = _decide(0.1099, None)
    assert held.publish is False and held.serving is None
    assert held.reason == "held: final list NDCG@10 0.1099 < best baseline trending's 0.1100"
    assert "first night" in _decide(0.2, None).reason


def test_failing_both_floors_names_both() -> None:
    d = _decide(0.05, 0.1350)
    assert d.reason == (
        f"held: final list NDCG@10 0.0500 < serving {SERVING}'s 0.1350 - 0.005 "
        "and < best baseline trending's 0.1100"
    )


def test_a_nan_candidate_is_held_and_nan_baselines_are_ignored() -> None:
    assert _decide(math.nan, 0.1).publish is False
    d = decide({"ndcg@10": 0.05}, None, {"broken": {"ndcg@10": math.nan}, "pop": {"ndcg@10": 0.04}})
    assert (d.publish, d.baseline_name, d.best_baseline) == (True, "pop", 0.04)


def test_with_nothing_to_compare_the_night_publishes_and_says_so() -> None:
    d = decide({"ndcg@10": 0.05}, None, {})
    assert d.publish is True and d.best_baseline is None and "nothing" not in d.reason
    assert "no serving version and no baseline" in d.reason


def test_force_publishes_a_held_night_and_records_what_it_overrode() -> None:
    d = _decide(0.05, 0.1350, force=True)
    assert d.publish is True and d.forced is True
    assert d.reason.startswith(
        "forced (force_publish): the gate would have held it: final list NDCG@10 0.0500 <"
    )
    passing = _decide(0.2, 0.1350, force=True)
    assert passing.forced is True and "would have published it anyway" in passing.reason


def test_missing_metric_names_whose_and_what_they_hold() -> None:
    with pytest.raises(KeyError, match=r"candidate's metrics lack 'ndcg@10'; they hold \['recall@100'\]"):
        decide({"recall@100": 0.3}, None, BASELINES)
    with pytest.raises(KeyError, match="serving version's metrics lack"):
        decide({"ndcg@10": 0.3}, {"recall@100": 0.3}, BASELINES)


def test_held_error_is_a_skip_carrying_the_decision() -> None:
    d = _decide(0.1203, 0.1350)
    err = HeldError(d, date="2026-11-03")
    assert isinstance(err, NothingToDoError)
    assert err.decision is d and str(err) == f"dt=2026-11-03: {d.reason}"
    assert HeldError("dt=2026-11-03 held: why").decision is None  # a plain message works too
    assert str(HeldError("dt=2026-11-03 held: why")) == "dt=2026-11-03 held: why"
    assert d.to_dict()["publish"] is False and d.to_dict()["metric"] == "ndcg@10"
