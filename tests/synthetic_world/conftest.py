"""One tiny world of three days, generated once for the whole package and read back from its files."""

from __future__ import annotations

import pytest

from synthetic_world import generate
from tests.synthetic_world.landed import (
    DATES,
    DAYS,
    START,
    CheckedLines,
    Events,
    World,
    checked_lines,
    good_events,
    home,
)


@pytest.fixture(scope="package")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    settings = home(tmp_path_factory, "world")
    return settings, generate(settings, "tiny", START, DAYS)


@pytest.fixture(scope="package")
def checked(world: World) -> CheckedLines:
    settings, _ = world
    return {date: checked_lines(settings, date) for date in DATES}


@pytest.fixture(scope="package")
def events(world: World) -> Events:
    settings, _ = world
    return {date: good_events(settings, date) for date in DATES}
