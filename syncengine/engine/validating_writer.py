"""A writer that fails, without sending them, the records the CRM would certainly refuse.

It wraps the CRM client (the senders' `Writer`): each request's records are
judged first (`engine.local_validation`); those refused get a REJECT
outcome with the CRM's own code and details, exactly where the CRM's answer
would have been, and only the rest are sent. The engine then journals them
as it journals any CRM rejection: failed, keeping their owed state, listed
by `failures` (interface.md, "What synced and failed mean").

When a module's field metadata cannot be had (`crm.field_metadata`), its
records are sent unjudged: validation only ever saves credits, it never
stands between a record and the CRM's own verdict.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

import structlog

from syncengine.crm.field_rules import ModuleRules
from syncengine.crm.write_request import WriteRequest
from syncengine.engine.local_validation import (
    UniqueHolders,
    UnknownFieldsMode,
    all_plainly_valid,
    judge,
    own_id,
    touches_unique,
)
from syncengine.model import Operation, Record, RecordOutcome, Verdict

log = structlog.get_logger(__name__)

#: Said after the CRM's message, so a reader knows the CRM never saw the record.
NOT_SENT_NOTE = " (found before sending; not sent)"


class Writer(Protocol):
    """What is wrapped: one outcome per record of a request, in order."""

    async def write(self, request: WriteRequest) -> list[RecordOutcome]:
        """One outcome per record of `request`, in order."""
        ...


class RulesLookup(Protocol):
    """A module's compiled field rules, or None when they cannot be had."""

    async def rules(self, module: str) -> ModuleRules | None:
        """The module's rules, or None."""
        ...


class ValidatingWriter:
    """Judges each record before `inner` sends it; one instance per pass (it keeps run state)."""

    def __init__(
        self, inner: Writer, rules: RulesLookup, *, unknown_fields: UnknownFieldsMode
    ) -> None:
        self._inner = inner
        self._rules = rules
        #: The field metadata judged by, for the bulk phase to judge alike.
        self.rules = rules
        self._unknown_mode: UnknownFieldsMode = unknown_fields
        self._holders = UniqueHolders()
        #: (module, field) pairs already warned about in this run.
        self._warned: set[tuple[str, str]] = set()
        #: Records refused here, never sent.
        self.refused = 0

    async def write(self, request: WriteRequest) -> list[RecordOutcome]:
        """One outcome per record of `request`, in order; the refused ones are not sent."""
        if request.operation is Operation.DELETE:
            return await self._inner.write(request)  # ids only: no field to judge
        rules = await self._rules.rules(request.module)
        if rules is None:
            return await self._inner.write(request)
        records = request.records
        if all_plainly_valid(rules, request.operation, records):
            return await self._inner.write(request)  # the common request: nothing to say
        local = [self._judge(rules, request.operation, record) for record in records]
        sending = [index for index, outcome in enumerate(local) if outcome is None]
        if len(sending) == len(records):
            sent = await self._send(rules, request)
        elif sending:
            subset = replace(request, records=[records[index] for index in sending])
            sent = await self._send(rules, subset)
        else:
            sent = []
        for index, outcome in zip(sending, sent, strict=True):
            local[index] = outcome
        return [_filled(outcome) for outcome in local]

    def _judge(
        self, rules: ModuleRules, operation: Operation, record: Record
    ) -> RecordOutcome | None:
        rejection, unknown = judge(
            rules, operation, record, holders=self._holders, unknown_mode=self._unknown_mode
        )
        if unknown:
            for name in unknown:
                self._warn_unknown(rules.module, name)
        if rejection is None:
            return None
        self.refused += 1
        return RecordOutcome(
            Verdict.REJECT, rejection.code, rejection.message + NOT_SENT_NOTE, rejection.details
        )

    def _warn_unknown(self, module: str, name: str) -> None:
        if (module, name) not in self._warned:
            self._warned.add((module, name))
            log.warning(
                "validation.unknown_field",
                module=module,
                field=name,
                action="failed" if self._unknown_mode == "fail" else "ignored by the CRM",
            )

    async def _send(self, rules: ModuleRules, request: WriteRequest) -> list[RecordOutcome]:
        """Sends `request`; the unique values of what the CRM took are then held by its records."""
        if not rules.unique:
            return await self._inner.write(request)
        module, holders, operation = rules.module, self._holders, request.operation
        # Only a record whose change sets a unique field may be giving a value up.
        touching = [touches_unique(rules, record) for record in request.records]
        if not any(touching):
            return await self._inner.write(request)
        busy = [
            record_id
            for record, touches in zip(request.records, touching, strict=True)
            if touches and (record_id := own_id(operation, record)) is not None
        ]
        for record_id in busy:
            holders.begin(module, record_id)
        try:
            outcomes = await self._inner.write(request)
        finally:
            for record_id in busy:
                holders.end(module, record_id)
        for record, touches, outcome in zip(request.records, touching, outcomes, strict=True):
            if touches and outcome.verdict is Verdict.SYNCED:
                holder = outcome.crm_id or own_id(operation, record)
                if holder is not None:
                    holders.accept(rules, record, holder)
        return outcomes


def _filled(outcome: RecordOutcome | None) -> RecordOutcome:
    """Every record has an outcome once judged and sent; a gap is a bug here."""
    if outcome is None:
        raise AssertionError("a record was left without an outcome")
    return outcome
