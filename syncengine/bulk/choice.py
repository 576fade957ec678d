"""Which write API a group of changes goes by: the one that costs fewer credits; pure.

Zoho prices a bulk-write job at 500 credits whatever its rows (up to 25,000
per file) and the records API at one credit per `records_per_credit`
records (crm-bulk-write.md §5, crm-api.md §3.1), so bulk write pays from
about 5,000 records of one (module, operation) on. `auto` compares the two
per group; `bulk` and `records` are the user's word. Bulk write runs no
workflow, approval or assignment rule (it has no `trigger`), so a config that
asks for triggers keeps `auto` on the records API unless
`[crm] bulk_without_triggers` says the user accepts that.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from syncengine.crm.bulk_csv import MAX_ROWS_PER_FILE
from syncengine.model import Operation


class WriteApi(enum.StrEnum):
    """`migrate --api` and `[crm] write_api`."""

    RECORDS = "records"
    BULK = "bulk"
    AUTO = "auto"


@dataclass(frozen=True, slots=True)
class GroupChoice:
    """One (module, operation) group of eligible rows, priced both ways, and the pick."""

    module: str
    operation: Operation
    rows: int
    bulk_credits: int
    records_credits: int
    bulk: bool


def bulk_cost(rows: int, job_credits: int, *, rows_per_job: int = MAX_ROWS_PER_FILE) -> int:
    """Credits `rows` rows cost as bulk-write jobs of at most `rows_per_job` rows."""
    return math.ceil(rows / rows_per_job) * job_credits


def records_cost(rows: int, records_per_credit: int) -> int:
    """Credits `rows` rows cost through the records API (`credits.CreditModel`)."""
    return math.ceil(rows / records_per_credit)


def choose(
    module: str,
    operation: Operation,
    rows: int,
    *,
    api: WriteApi,
    job_credits: int,
    records_per_credit: int,
    triggers_wanted: bool,
    bulk_without_triggers: bool,
) -> GroupChoice:
    """The pick for one group: `bulk` always, `records` never, `auto` when cheaper by bulk."""
    by_bulk = bulk_cost(rows, job_credits)
    by_records = records_cost(rows, records_per_credit)
    if api is WriteApi.BULK:
        goes_bulk = rows > 0
    elif api is WriteApi.RECORDS or (triggers_wanted and not bulk_without_triggers):
        goes_bulk = False
    else:
        goes_bulk = rows > 0 and by_bulk < by_records
    return GroupChoice(module, operation, rows, by_bulk, by_records, goes_bulk)


def api_for(command: str, option: str | None, configured: str | None) -> WriteApi:
    """The write API of a pass: `migrate --api`, else `[crm] write_api`, else auto.

    `run` and the daemon always use the records API: a bulk job takes
    minutes, and they exist to keep up with a feed. `migrate` is a one-off
    load, where credits count most: by default each group goes the cheaper
    way. The bulk phase's memory is bounded as the records path's is (a
    fixed census, a job under way holds only its file), so `auto` costs a
    migration no more than a constant over the records path.
    """
    if command != "migrate":
        return WriteApi.RECORDS
    return WriteApi(option or configured or WriteApi.AUTO)
