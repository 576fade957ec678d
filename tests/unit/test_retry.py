"""The backoff schedule and Retry-After parsing (syncengine.backoff)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncengine.backoff import backoff_ceiling_s, backoff_s, parse_retry_after_s

attempts = st.integers(min_value=1, max_value=10**6)
bases = st.floats(min_value=1e-3, max_value=100.0)
caps = st.floats(min_value=0.0, max_value=86_400.0)


@given(attempt=attempts, base_s=bases, cap_s=caps, seed=st.integers(0, 2**32))
def test_backoff_stays_within_full_jitter_bounds(
    attempt: int, base_s: float, cap_s: float, seed: int
) -> None:
    """Every delay lies in [0, min(cap, base * 2**(attempt-1))], even for huge attempts."""
    delay_s = backoff_s(attempt, base_s=base_s, cap_s=cap_s, rng=random.Random(seed))
    assert 0.0 <= delay_s <= cap_s
    if attempt < 900:
        assert delay_s <= base_s * 2.0 ** (attempt - 1)


@given(attempt=st.integers(1, 60), base_s=bases, cap_s=caps)
def test_ceiling_grows_then_stays_at_cap(attempt: int, base_s: float, cap_s: float) -> None:
    """The ceiling doubles per attempt until it reaches the cap, and never decreases."""
    now = backoff_ceiling_s(attempt, base_s=base_s, cap_s=cap_s)
    after = backoff_ceiling_s(attempt + 1, base_s=base_s, cap_s=cap_s)
    assert after >= now
    assert after == min(cap_s, now * 2) or after == cap_s


def test_ceiling_exact_values() -> None:
    """With base 1 s and cap 60 s the ceilings are 1, 2, 4, ... 32, 60, 60."""
    ceilings = [backoff_ceiling_s(n, base_s=1.0, cap_s=60.0) for n in range(1, 9)]
    assert ceilings == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]


def test_huge_attempt_does_not_overflow() -> None:
    """An attempt number far past float range yields the cap instead of raising."""
    assert backoff_ceiling_s(10**9, base_s=1.0, cap_s=5.0) == 5.0
    assert backoff_ceiling_s(1025, base_s=1e300, cap_s=7.0) == 7.0


def test_jitter_is_reproducible_with_a_seeded_rng() -> None:
    """The same seed gives the same schedule, so tests and simulations repeat."""
    first = [backoff_s(n, base_s=1, cap_s=60, rng=random.Random(7)) for n in range(1, 6)]
    second = [backoff_s(n, base_s=1, cap_s=60, rng=random.Random(7)) for n in range(1, 6)]
    assert first == second


@pytest.mark.parametrize(
    ("attempt", "base_s", "cap_s"), [(0, 1.0, 1.0), (1, 0.0, 1.0), (1, 1.0, -1.0)]
)
def test_invalid_arguments_are_refused(attempt: int, base_s: float, cap_s: float) -> None:
    """Attempts count from 1; base must be positive and cap non-negative."""
    with pytest.raises(ValueError):
        backoff_s(attempt, base_s=base_s, cap_s=cap_s, rng=random.Random(0))


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("120", 120.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        ("soon", None),
        ("nan", None),
        ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
    ],
)
def test_retry_after_parsing(header: str | None, expected: float | None) -> None:
    """Retry-After accepts delta seconds or an HTTP date; junk is ignored."""
    now = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    assert parse_retry_after_s(header, now_epoch_s=now) == expected
