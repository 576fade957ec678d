"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, settings

from syncengine.sim.server import SimHandle, running_simulator

# What these property tests measure is behaviour, not how fast Hypothesis can
# generate input: in a fresh checkout its first text strategy builds Unicode
# tables for a second or two, which would otherwise fail the health check.
settings.register_profile("syncengine", suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("syncengine")


@pytest.fixture
async def sim() -> AsyncIterator[SimHandle]:
    """A simulator with admin endpoints on a free loopback port."""
    async with running_simulator(port=0, admin=True) as handle:
        yield handle
