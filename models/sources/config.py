"""How many candidates each source proposes and what the fitted sources learn from."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourcesConfig:
    """Per-source list lengths, the merged cap and the fitting windows of the candidate sources.

    Lengths were tuned on the small home (2026-11-06, held-out day): the merged cap keeps videos by
    their best rank in any source, so long lists of the weaker sources (covisit, EASE, trending) push
    two-tower videos out; 100/50/100 instead of 150/100/150 lifted the merged recall@300.
    """

    two_tower: int = 200  # the learned model: the broadest, personalised source
    covisit: int = 100  # item-to-item co-visitation from the user's history
    trending: int = 50  # the same rising videos for everyone (cold users included)
    followed: int = 50  # new uploads of followed creators
    fresh_content: int = 100  # content look-alikes among the newest uploads (no interactions yet)
    ease: int = 100  # EASE item-item linear model
    max_candidates: int = 300  # merged candidates per user (union capped by best reciprocal rank)
    window_days: int = 3  # nights of positives ending at as_of that fit covisit, EASE and popularity
    # EASE inverts an (n, n) float64 Gram matrix: about 3 * n**2 * 8 bytes at peak (Gram, inverse,
    # weights), i.e. ~216 MB for 3000 items; the n most-watched items of the window are modelled.
    ease_items: int = 3000
    ease_lambda: float = 500.0  # L2 on the item-item weights; small home: 500 > 200, 1000, 2000 on recall@100
    followed_days: int = 3  # uploads of followed creators within this many days up to D
    fresh_days: int = 1  # fresh_content ranks videos uploaded within this many days up to D

    def k_of(self, name: str) -> int:
        """The list length of source ``name``.

        Raises:
            KeyError: when no source has that name.
        """
        if name not in SOURCE_NAMES:
            raise KeyError(f"no candidate source named {name!r}; known: {', '.join(SOURCE_NAMES)}")
        value: int = getattr(self, name)
        return value


SOURCE_NAMES = ("two_tower", "covisit", "trending", "followed", "fresh_content", "ease")
