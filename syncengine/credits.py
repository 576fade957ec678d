"""What API credits a pass spends, and what it saves: the cost model and the tally.

A Zoho org's credits are the budget every integration of the org shares
(crm-api.md §3.1: e.g. Enterprise 50,000 + 1,000 per user per rolling 24 h).
Zoho prices a call at 1 credit unless listed otherwise, and its current
limits page (as secondary summaries quote it) prices insert, update and
upsert at 1 credit per 10 records: a full 100-record chunk costs 10. The
model takes both numbers from the config (`[limits] credits_per_call`,
`records_per_credit`) because Zoho has changed them before.

The tally is an estimate from the calls the CRM answered (whether refused or
throttled calls cost credits is not documented; the simulator, like this
model, charges calls that reached validation). When the CRM sends
`X-API-CREDITS-REMAINING` (past half the day's credits) the last value seen
is reported beside it, as the org's own word.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CreditModel:
    """The price of calls: `credits_per_call` at least, writes by their records."""

    credits_per_call: int = 1
    records_per_credit: int = 10

    def write_cost(self, records: int) -> int:
        """Credits one insert, update or upsert call of `records` records costs."""
        return max(self.credits_per_call, math.ceil(records / self.records_per_credit))

    def call_cost(self) -> int:
        """Credits any other call costs (a delete, a metadata read, a record read)."""
        return self.credits_per_call

    def records_cost(self, records: int) -> float:
        """What `records` records cost inside full chunks: for what a pass saved."""
        return records / self.records_per_credit


@dataclass(slots=True)
class CreditTally:
    """Credits one pass spent, by the model, and saved, by cause (records not sent)."""

    spent: int = 0
    #: Changes folded into another change to the same record before sending.
    coalesced_records: int = 0
    #: Changes whose every field the CRM already holds (`[crm] skip_unchanged`).
    unchanged_records: int = 0
    #: Changes failed locally that the CRM would have rejected (`[crm] validate`).
    validated_records: int = 0
    #: The CRM's own `X-API-CREDITS-REMAINING`, last seen (None when never sent).
    remaining: int | None = None
    #: Of `spent`, what bulk-write jobs cost (`[limits] bulk_job_credits` per job created).
    bulk_spent: int = 0

    def as_dict(self, model: CreditModel) -> dict[str, float | int | None]:
        """The figures `status --json` and the summary line show, rounded to 0.1 credit."""
        return {
            "spent": self.spent,
            "saved_by_coalescing": round(model.records_cost(self.coalesced_records), 1),
            "saved_by_skip_unchanged": round(model.records_cost(self.unchanged_records), 1),
            "saved_by_validation": round(model.records_cost(self.validated_records), 1),
            "remaining": self.remaining,
            "spent_by_bulk": self.bulk_spent,
        }
