"""`syncengine ids`: the id map, (module, source key) → CRM id, written out.

The map is what a migration hands back to its source: each inserted row's
new CRM id, to store beside the row (README, "The id map"). It is streamed
from the journal page by page, so a map of millions of records never sits
in memory, in text (tab-separated), JSON (an array of objects) or CSV (a
`module,key,id` header, RFC 4180 quoting).
"""

from __future__ import annotations

import csv
from typing import Literal, TextIO

import orjson

from syncengine.journal import Journal

IdsFormat = Literal["text", "json", "csv"]


async def write_ids(journal: Journal, out: TextIO, *, module: str | None, fmt: IdsFormat) -> int:
    """Writes the map (of `module`, or all) to `out`; returns how many entries."""
    count = 0
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(("module", "key", "id"))
        async for entry in journal.id_map(module):
            writer.writerow(entry)
            count += 1
        return count
    if fmt == "json":
        out.write("[")
        async for mapped_module, key, crm_id in journal.id_map(module):
            document = {"module": mapped_module, "key": key, "id": crm_id}
            out.write(("," if count else "") + orjson.dumps(document).decode())
            count += 1
        out.write("]\n")
        return count
    async for entry in journal.id_map(module):
        out.write("\t".join(entry) + "\n")
        count += 1
    return count
