"""Seeded latency and fault decisions, reproducible per request sequence.

Each kind of decision (jitter, 500, drop, stall, a locked, blueprint-held or
unapproved record) draws from its own `random.Random` stream seeded from
`SimConfig.seed` and the decision's name, never from the global generator.
The same seed and the same sequence of requests therefore give the same
latencies and faults, and turning one fault on does not shift the others.
A stream is drawn only while its knob is non-zero, so fault-free runs pay
nothing per record.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field

from syncengine.sim.config import SimConfig

STREAMS = (
    "jitter",
    "fault_500",
    "fault_drop",
    "fault_stall",
    "fault_locked",
    "fault_429",
    "fault_drop_after",
    "fault_blueprint",
    "fault_not_approved",
)


class Fault(enum.StrEnum):
    """What happens to a whole request."""

    NONE = "none"
    THROTTLE = "429"  # 429 TOO_MANY_REQUESTS at once, nothing applied, no credits
    ERROR_500 = "500"  # 500 INTERNAL_ERROR, nothing applied
    DROP = "drop"  # connection closed with no response, nothing applied
    STALL = "stall"  # applied, then the answer waits `stall_s`
    DROP_AFTER = "drop_after"  # applied, then the connection closed with no response


@dataclass(frozen=True, slots=True)
class Decision:
    """The fate of one request: its fault and its latency in seconds."""

    fault: Fault
    delay_s: float


@dataclass(slots=True)
class FaultPlan:
    """The decision streams; `reseed` restarts them from a seed."""

    seed: int = 0
    streams: dict[str, random.Random] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.reseed(self.seed)

    def reseed(self, seed: int) -> None:
        """Restart every stream, so the same requests meet the same fate again."""
        self.seed = seed
        self.streams = {name: random.Random(f"{seed}:{name}") for name in STREAMS}

    def _hit(self, name: str, probability: float) -> bool:
        return probability > 0.0 and self.streams[name].random() < probability

    def decide(self, config: SimConfig, record_count: int) -> Decision:
        """Latency (base + uniform jitter + per-record cost) and the request's fault."""
        delay_ms = config.latency_ms + config.per_record_ms * record_count
        if config.jitter_ms > 0.0:
            delay_ms += self.streams["jitter"].uniform(0.0, config.jitter_ms)
        # Draw every enabled stream once per request so each stays aligned.
        hits = [
            (Fault.THROTTLE, self._hit("fault_429", config.fault_429)),
            (Fault.ERROR_500, self._hit("fault_500", config.fault_500)),
            (Fault.DROP, self._hit("fault_drop", config.fault_drop)),
            (Fault.STALL, self._hit("fault_stall", config.fault_stall)),
            (Fault.DROP_AFTER, self._hit("fault_drop_after", config.fault_drop_after)),
        ]
        fault = next((kind for kind, hit in hits if hit), Fault.NONE)
        return Decision(fault=fault, delay_s=delay_ms / 1000.0)

    def locked(self, config: SimConfig) -> bool:
        """Whether the next record of an update is answered `RECORD_LOCKED`."""
        return self._hit("fault_locked", config.fault_locked)

    def in_blueprint(self, config: SimConfig) -> bool:
        """Whether the next existing record written is answered `RECORD_IN_BLUEPRINT`."""
        return self._hit("fault_blueprint", config.fault_blueprint)

    def not_approved(self, config: SimConfig) -> bool:
        """Whether the next existing record written is answered `NOT_APPROVED`."""
        return self._hit("fault_not_approved", config.fault_not_approved)
