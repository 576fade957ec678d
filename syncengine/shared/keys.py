"""How an org and a credential set are named in the shared database (pure).

Slots and the token's refresh lock are PostgreSQL advisory locks in the
two-key form `(class, number)`: the class is 32 bits of a SHA-256 of the org
(or of the credential key), the number says which lock of that class. Names
are hashes so no client id or token reaches the database's lock table.
"""

from __future__ import annotations

import hashlib

#: The lock number of the token's refresh lock within its credential class.
TOKEN_LOCK = -1
#: Heavy-call slots are numbered from here (ordinary slots are 0..concurrency-1 ≤ 100).
HEAVY_BASE = 1_000


def org_key(client_id: str, api_domain: str) -> str:
    """The org's name in the shared tables: a hex SHA-256 of client id and API domain."""
    material = "\0".join((client_id, api_domain.rstrip("/").lower()))
    return hashlib.sha256(material.encode()).hexdigest()


def lock_class(key: str) -> int:
    """The signed 32-bit advisory-lock class for a hex key (an org or credential key)."""
    return int.from_bytes(bytes.fromhex(key[:8]), "big", signed=True)


def release_channel(key: str) -> str:
    """The NOTIFY channel on which the org's processes announce freed slots."""
    return f"syncengine_slots_{key[:16]}"


def free_numbers(count: int, held: frozenset[int], *, base: int = 0) -> list[int]:
    """Lock numbers `base..base+count-1` this process does not hold yet, in order.

    Advisory locks are re-entrant within one session, so a number already held
    here would be "taken" again: it must never be offered.
    """
    return [number for number in range(base, base + count) if number not in held]
