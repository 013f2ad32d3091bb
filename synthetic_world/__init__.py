"""The synthetic short-video world: the upstream app played in demos and tests.

:func:`generate` writes the landing zone for a range of logical dates exactly as the data contract
(``docs/data-contract.md``) describes it, as an upstream app would deliver it, through the core's
landing layout (:mod:`reelrec.landing`), and keeps the hidden truth of the world (topics, latent
quality, user tastes, injected corruption) under ``REELREC_HOME/truth``, which nothing in the pipeline
reads; :func:`truth_day` reads one date's record back.

This package may import the core (``reelrec``); nothing in the pipeline imports it, except the
``reelrec generate`` and ``reelrec demo`` commands, lazily.

Modules, in the order the world is made:

- :mod:`~synthetic_world.topics`: the 16 topics and the captions and hashtags drawn from them;
- :mod:`~synthetic_world.world`: presets, random streams, users, creators and videos, grown daily;
- :mod:`~synthetic_world.day`: one day of feeds, watches and engagement;
- :mod:`~synthetic_world.event_log`: the day's JSON lines, with duplicates and injected bad lines;
- :mod:`~synthetic_world.landing_writer`: the drops, written atomically into the landing layout;
- :mod:`~synthetic_world.truth`: the hidden truth;
- :mod:`~synthetic_world.generator`: :func:`generate`, tying them together date by date.
"""

from synthetic_world.event_log import CORRUPTION_KINDS
from synthetic_world.generator import generate
from synthetic_world.truth import truth_day
from synthetic_world.world import COUNTRIES, PRESETS, Preset

__all__ = ["CORRUPTION_KINDS", "COUNTRIES", "PRESETS", "Preset", "generate", "truth_day"]
