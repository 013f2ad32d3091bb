"""The evaluation's user sample: deterministic, bounded, the same for every release of a night."""

from __future__ import annotations

from models.evaluate import sampled


def test_sampled_keeps_at_most_the_limit_deterministically_and_sorted() -> None:
    users = [f"u{i:05d}" for i in range(1000)]
    first = sampled(users, "2026-11-03", 100)
    assert len(first) == 100 and first == sorted(first) and set(first) <= set(users)
    assert sampled(list(reversed(users)), "2026-11-03", 100) == first  # input order does not matter
    assert sampled(users, "2026-11-04", 100) != first  # another day, another sample
    assert sampled(users[:50], "2026-11-03", 100) == users[:50]  # under the limit: every user
