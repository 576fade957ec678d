"""Retry policy: how long to wait before the next try, as pure functions.

The engine (transient record and request failures) and the CRM client (429s,
whose retries are not record attempts) both ask this module for delays, so the
schedule lives in one place and is property-tested. Randomness comes from an
injected `random.Random` so tests are reproducible.
"""

from __future__ import annotations

import math
import random
from email.utils import parsedate_to_datetime

#: Exponents past this are already far above any sane cap; stop computing.
_MAX_EXPONENT = 1000


def backoff_ceiling_s(attempt: int, *, base_s: float, cap_s: float) -> float:
    """The upper bound of the jittered delay: min(cap_s, base_s * 2 ** (attempt - 1)).

    Overflow-safe: a huge attempt number yields `cap_s` instead of raising.
    Raises ValueError for attempt < 1, base_s <= 0 or cap_s < 0.
    """
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    if base_s <= 0 or cap_s < 0:
        raise ValueError("base_s must be > 0 and cap_s >= 0")
    exponent = attempt - 1
    if exponent > _MAX_EXPONENT:
        return cap_s
    try:
        grown_s = math.ldexp(base_s, exponent)
    except OverflowError:
        return cap_s
    return min(cap_s, grown_s)


def backoff_s(attempt: int, *, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Delay in seconds before try number `attempt + 1`, with full jitter.

    Formula (keep in sync with the README)::

        delay_s = uniform(0, min(cap_s, base_s * 2 ** (attempt - 1)))

    `attempt` is the number of tries made so far (1 after the first failure).
    Full jitter spreads senders that failed together so they do not come back
    together (the thundering herd that keeps an org throttled). Raises
    ValueError for attempt < 1, base_s <= 0 or cap_s < 0.
    """
    ceiling_s = backoff_ceiling_s(attempt, base_s=base_s, cap_s=cap_s)
    return rng.uniform(0.0, ceiling_s)


def parse_retry_after_s(value: str | None, *, now_epoch_s: float) -> float | None:
    """Seconds to wait from a `Retry-After` header, or None when absent or unusable.

    Accepts delta-seconds (`"120"`) or an HTTP date; a date in the past gives 0.
    Zoho does not document the header, but honouring it costs nothing.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    seconds: float | None
    try:
        seconds = float(text)
    except ValueError:
        seconds = _http_date_delay_s(text, now_epoch_s=now_epoch_s)
    if seconds is None or not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _http_date_delay_s(text: str, *, now_epoch_s: float) -> float | None:
    """The delay until an HTTP date, or None when `text` is not one."""
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return when.timestamp() - now_epoch_s
