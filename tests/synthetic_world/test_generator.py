"""generate(): same seed, same bytes; one date at a time continues the world; arguments are checked."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from reelrec.settings import Settings
from synthetic_world import PRESETS, generate
from tests.synthetic_world.landed import (
    DATES,
    DAYS,
    START,
    World,
    defect,
    files,
    good_events,
    home,
    raw_lines,
)


def test_same_seed_gives_byte_identical_files(world: World, tmp_path_factory: pytest.TempPathFactory) -> None:
    settings, _ = world
    again = home(tmp_path_factory, "again")
    generate(again, "tiny", START, DAYS)
    assert files(again.landing) == files(settings.landing)
    assert files(again.truth) == files(settings.truth)

    other = home(tmp_path_factory, "other-seed")
    generate(other, "tiny", START, DAYS, seed=8)
    assert raw_lines(other, DATES[0]) != raw_lines(settings, DATES[0])


def test_one_date_at_a_time_continues_the_same_world(
    world: World, tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings, _ = world
    nightly = home(tmp_path_factory, "nightly")
    summaries = [generate(nightly, "tiny", date, 1) for date in DATES]
    assert [s["new_world"] for s in summaries] == [True, False, False]
    assert {s["anchor"] for s in summaries} == {START}
    assert files(nightly.landing) == files(settings.landing)


def test_regenerating_a_date_replaces_its_folders(tmp_path_factory: pytest.TempPathFactory) -> None:
    settings = home(tmp_path_factory, "rerun")
    generate(settings, "tiny", START, 2)
    before = files(settings.landing)
    stray = settings.landing / "events" / f"dt={DATES[1]}" / "part-00099.jsonl"
    stray.write_text('{"event_id": "stale"}\n')
    (settings.landing / "videos" / f"dt={DATES[1]}" / "_SUCCESS").unlink()

    summary = generate(settings, "tiny", DATES[1], 1)

    assert summary["new_world"] is False
    assert not stray.exists()
    assert files(settings.landing) == before
    assert not list(settings.landing.glob("*/_tmp-*"))


def test_corruption_does_not_change_the_good_events(
    world: World, tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings, summary = world
    clean = home(tmp_path_factory, "clean")
    clean_summary = generate(clean, "tiny", START, 1, corrupt_rate=0.0)
    assert clean_summary["dates"][START]["bad_rows_total"] == 0
    assert all(defect(line, START) is None for line in raw_lines(clean, START))
    assert good_events(clean, START) == good_events(settings, START)
    assert summary["dates"][START]["bad_rows_total"] > 0


def test_another_seed_starts_a_new_world(tmp_path_factory: pytest.TempPathFactory) -> None:
    settings = home(tmp_path_factory, "reseed")
    generate(settings, "tiny", START, 1)
    summary = generate(settings, "tiny", DATES[1], 1, seed=8)
    meta = json.loads((settings.truth / "world.json").read_text())
    assert summary["new_world"] is True
    assert (meta["seed"], meta["anchor"], meta["dates"]) == (8, DATES[1], [DATES[1]])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"preset": "huge"}, "unknown preset 'huge'"),
        ({"start": "2026-13-01"}, "start date '2026-13-01'"),
        ({"days": 0}, "days must be >= 1"),
        ({"corrupt_rate": 1.5}, "corrupt_rate"),
    ],
)
def test_bad_arguments_are_named(settings: Settings, kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"preset": "tiny", "start": START, "days": 1} | kwargs
    with pytest.raises(ValueError, match=re.escape(message)):
        generate(settings, **args)
    assert not settings.landing.exists()


def test_preset_sizes_are_ordered() -> None:
    tiny, small, medium = PRESETS["tiny"], PRESETS["small"], PRESETS["medium"]
    assert tiny.users < small.users < medium.users
    assert tiny.videos < small.videos < medium.videos
    assert tiny.uploads_per_day < small.uploads_per_day < medium.uploads_per_day
