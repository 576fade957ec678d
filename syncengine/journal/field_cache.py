"""The field-metadata cache in the journal: `FieldCache` for `crm.field_metadata`.

One row per module: the `fields` list as the CRM served it and when it was
read. A run started every minute finds it here instead of spending a credit
on it; rows older than the expiry are read again from the CRM and replaced.
"""

from __future__ import annotations

from typing import Any

import orjson

from syncengine.journal.store import Journal

_LOAD = "SELECT fields FROM field_metadata WHERE module = ? AND fetched_at > ?"

_SAVE = """
INSERT INTO field_metadata (module, fields, fetched_at) VALUES (?, ?, ?)
ON CONFLICT (module) DO UPDATE SET fields = excluded.fields, fetched_at = excluded.fetched_at
"""


class JournalFieldCache:
    """Persists each module's field metadata in the journal's `field_metadata` table.

    Shares the journal's connection: use it while the journal is open.
    """

    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    async def load(self, module: str, *, fresh_after: float) -> list[dict[str, Any]] | None:
        """The module's fields read after `fresh_after` (epoch seconds), else None."""
        row = await self._journal._fetch_one(_LOAD, (module, fresh_after))
        if row is None:
            return None
        fields = orjson.loads(row[0])
        return fields if isinstance(fields, list) else None

    async def save(self, module: str, fields: list[dict[str, Any]], *, fetched_at: float) -> None:
        """Store the module's fields, replacing what was there (one autocommit write)."""
        await self._journal._write(_SAVE, (module, orjson.dumps(fields), fetched_at))
