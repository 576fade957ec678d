"""The bundled CRM simulator: a faithful, fault-injectable stand-in for Zoho CRM v2.

Token endpoint, records API (insert, update, upsert, delete), module schemas,
limits, seeded latency and faults, and admin endpoints, following
`docs/crm-api.md`. Start it with `syncengine sim` (or `python -m
syncengine.sim`), or in-process with `running_simulator()`.
"""

from syncengine.sim.config import SimConfig
from syncengine.sim.server import SimHandle, create_app, running_simulator

__all__ = ["SimConfig", "SimHandle", "create_app", "running_simulator"]
