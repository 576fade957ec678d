"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from syncengine.sim.server import SimHandle, running_simulator


@pytest.fixture
async def sim() -> AsyncIterator[SimHandle]:
    """A simulator with admin endpoints on a free loopback port."""
    async with running_simulator(port=0, admin=True) as handle:
        yield handle
