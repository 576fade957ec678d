"""The records API's limits: concurrency slots and the rolling credit ledger.

Over any limit the simulator answers 429 `TOO_MANY_REQUESTS` at once and never
queues (crm-api.md §3.3), so the slots are plain counters tried without
waiting: a request takes an edition slot, and a write carrying more than
`heavy_records` records also takes one of `heavy_concurrency` heavy slots.
Credits are charged per call that reaches validation and come back
`credit_window_s` later (rolling 24 hours).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from syncengine.sim.config import SimConfig, effective_concurrency, effective_credits


@dataclass(slots=True)
class Limits:
    """Slots in use and credits spent; reads the limits from the live config."""

    active: int = 0
    heavy_active: int = 0
    ledger: deque[tuple[float, int]] = field(default_factory=deque)
    used: int = 0

    def reset(self) -> None:
        """Forget spent credits (slots in use are left to their requests)."""
        self.ledger.clear()
        self.used = 0

    def try_enter(self, config: SimConfig, *, heavy: bool) -> bool:
        """Take a slot (and a heavy one for big writes); False means answer 429."""
        if self.active >= effective_concurrency(config):
            return False
        if heavy and self.heavy_active >= config.heavy_concurrency:
            return False
        self.active += 1
        if heavy:
            self.heavy_active += 1
        return True

    def leave(self, *, heavy: bool) -> None:
        """Give back what `try_enter` took."""
        self.active -= 1
        if heavy:
            self.heavy_active -= 1

    def _expire(self, config: SimConfig, now: float) -> None:
        ledger = self.ledger
        cutoff = now - config.credit_window_s
        while ledger and ledger[0][0] <= cutoff:
            self.used -= ledger.popleft()[1]

    def remaining(self, config: SimConfig, now: float) -> int | None:
        """Credits left in the window, None when unlimited."""
        total = effective_credits(config)
        if total is None:
            return None
        self._expire(config, now)
        return max(0, total - self.used)

    def can_afford(self, config: SimConfig, cost: int, now: float) -> bool:
        """Whether a call costing `cost` credits may run now."""
        left = self.remaining(config, now)
        return left is None or left >= cost

    def charge(self, cost: int, now: float) -> None:
        """Spend `cost` credits at `now`; they return one window later."""
        self.ledger.append((now, cost))
        self.used += cost

    def header(self, config: SimConfig, now: float) -> str | None:
        """`X-API-CREDITS-REMAINING` value once half the credits are used, else None."""
        total = effective_credits(config)
        if total is None:
            return None
        left = self.remaining(config, now)
        if left is None or self.used * 2 < total:
            return None
        return str(left)
