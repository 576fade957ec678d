"""What `syncengine check` predicts a pass would fail, from the feed alone. Pure.

Input: the feed's items in order (changes and unusable lines) and each
module's field rules. Output: one `Refusal` per record a pass would leave
`failed`, with the position and code `failures` would show, and the field
names the modules lack.

It folds a record's changes as the pass does (interface.md, "What `synced`
and `failed` mean"): the CRM's verdict on a record is its verdict on the
fold of all its changes (a rejected change stays owed and merges into the
next; a later fix heals the record), so each record is judged once, on that
fold, and blamed at the change that supplied the refused field
(`engine.owed.blamed_position`). Records are judged in the order of their
first change, which is the order a pass sends them in; a unique value is
held by the first record judged valid that sets it (`UniqueHolders`).

Holds every record's fold until the end: memory grows with the number of
distinct records in the part of the feed checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from syncengine.crm.field_rules import ModuleRules, inspect_record
from syncengine.engine.local_validation import UniqueHolders, UnknownFieldsMode, judge, own_id
from syncengine.engine.owed import absorb_owed, blamed_position
from syncengine.model import BadInput, Change, Operation

#: The CRM's code for a mandatory field missing on insert (crm-api.md §1.6).
MANDATORY_NOT_FOUND = "MANDATORY_NOT_FOUND"

Display = int | str


@dataclass(frozen=True, slots=True)
class Refusal:
    """A record a pass would fail: where, why (the CRM's code and details), which record."""

    module: str | None
    id: str | None
    position: Display | None
    positions: list[Display]
    code: str
    message: str
    details: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        """The object `check --json` prints for it (interface.md)."""
        api_name = self.details.get("api_name")
        return {
            "module": self.module,
            "id": self.id,
            "position": self.position,
            "positions": self.positions,
            "code": self.code,
            "field": api_name if isinstance(api_name, str) else None,
            "message": self.message,
            "details": self.details,
        }


@dataclass(slots=True)
class UnknownField:
    """A field name a module lacks, how many changes carry it, and the first of them."""

    module: str
    field: str
    changes: int
    first_position: Display

    def as_json(self) -> dict[str, Any]:
        """The object `check --json` prints for it (interface.md)."""
        return {
            "module": self.module,
            "field": self.field,
            "changes": self.changes,
            "first_position": self.first_position,
        }


@dataclass(slots=True)
class CheckResult:
    """Everything `check` reports."""

    read: int
    refusals: list[Refusal]
    unknown_fields: list[UnknownField]
    #: Records of modules whose rules could not be had: not judged.
    unchecked: int = 0


@dataclass(slots=True)
class _Unit:
    """One record's fold (or one unusable line), kept in order of first appearance."""

    change: Change | None = None
    bad: BadInput | None = None
    rules: ModuleRules | None = None
    refused_module: str | None = None  # the CRM's code refusing the module, if it did


@dataclass(slots=True)
class FeedCheck:
    """Collects a feed's items (`add_change`, `add_bad_input`), then judges them (`finish`)."""

    unknown_mode: UnknownFieldsMode = "warn"
    #: `[crm] module`, which a pass journals for an unusable line that names none.
    default_module: str | None = None
    _units: list[_Unit] = field(default_factory=list)
    _by_key: dict[str, _Unit] = field(default_factory=dict)
    _unknown: dict[tuple[str, str], UnknownField] = field(default_factory=dict)
    _read: int = 0
    _known: set[str] | frozenset[str] = frozenset()

    def add_bad_input(self, bad: BadInput) -> None:
        """A line the feed could not turn into a change: failed as it stands."""
        self._read += 1
        self._units.append(_Unit(bad=bad))

    def add_change(
        self, change: Change, rules: ModuleRules | None, *, refused_module: str | None = None
    ) -> None:
        """A change and its module's rules (None: not known; `refused_module` says why, if the
        CRM refused the module itself). Folds into the record's earlier changes."""
        self._read += 1
        if rules is not None:
            self._note_unknown(change, rules)
        key = change.key
        held = None if key is None else self._by_key.get(key)
        if held is None or held.change is None:
            unit = _Unit(change=change, rules=rules, refused_module=refused_module)
            self._units.append(unit)
            if key is not None:
                self._by_key[key] = unit
            return
        absorb_owed(held.change, change)
        held.change = change

    def _note_unknown(self, change: Change, rules: ModuleRules) -> None:
        fields = rules.fields
        for name in change.record:
            if name in fields or name == "id" or name.startswith("$"):
                continue
            seen = self._unknown.get((change.module, name))
            if seen is None:
                first = change.positions[0].display if change.positions else ""
                self._unknown[(change.module, name)] = UnknownField(change.module, name, 1, first)
            else:
                seen.changes += 1

    def keys_to_ask(self) -> list[str]:
        """Keys of the upserts read: whether each names a record the journal knows synced."""
        return [
            unit.change.key
            for unit in self._units
            if unit.change is not None
            and unit.change.key is not None
            and unit.change.operation is Operation.UPSERT
        ]

    def finish(self, known: set[str] | frozenset[str] = frozenset()) -> CheckResult:
        """Judge every record, in order of its first change.

        An upsert whose key is not in `known` (the records the journal holds as
        synced) is taken to create its record, so it needs the fields an insert
        needs: `check` lists it as the pass would see it fail when no record
        matches. A pass itself sends such an upsert (a match may exist).
        """
        self._known = known
        holders = UniqueHolders(max_values=len(self._units) + 1)
        refusals: list[Refusal] = []
        unchecked = 0
        for unit in self._units:
            if unit.bad is not None:
                refusals.append(_bad_input(unit.bad, self.default_module))
                continue
            change = unit.change
            if change is None:
                continue
            if unit.refused_module is not None:
                refusals.append(_refusal(change, unit.refused_module, "the module is refused", {}))
                continue
            if unit.rules is None:
                unchecked += 1
                continue
            refusal = self._judge(change, unit.rules, holders)
            if refusal is not None:
                refusals.append(refusal)
        return CheckResult(self._read, refusals, list(self._unknown.values()), unchecked)

    def _judge(self, change: Change, rules: ModuleRules, holders: UniqueHolders) -> Refusal | None:
        rejection, _unknown = judge(
            rules, change.operation, change.record, holders=holders, unknown_mode=self.unknown_mode
        )
        if (
            rejection is None
            and change.operation is Operation.UPSERT
            and change.key not in self._known
        ):
            as_insert, _ = inspect_record(rules, Operation.INSERT, change.record)
            if as_insert is not None and as_insert.code == MANDATORY_NOT_FOUND:
                rejection = as_insert
        if rejection is not None:
            return _refusal(change, rejection.code, rejection.message, rejection.details)
        holder = own_id(change.operation, change.record) or change.key or f"@{id(change)}"
        holders.accept(rules, change.record, holder)
        return None


def _refusal(change: Change, code: str, message: str, details: dict[str, Any]) -> Refusal:
    """The `failures` row a pass would write for `change` refused with `code`."""
    return Refusal(
        module=change.module,
        id=change.record_id,
        position=blamed_position(change, details.get("api_name")),
        positions=list(change.owed_positions),
        code=code,
        message=message,
        details=dict(details),
    )


def _bad_input(bad: BadInput, default_module: str | None) -> Refusal:
    return Refusal(
        module=bad.module or default_module,
        id=bad.record_id,
        position=bad.position.display,
        positions=[bad.position.display],
        code=bad.code,
        message=bad.reason,
        details={},
    )


def format_result(result: CheckResult, *, source: str) -> str:
    """The readable report: one line per refusal, then unknown fields, then a summary."""
    lines = []
    for refusal in result.refusals:
        record = refusal.id if refusal.id is not None else "(no id)"
        api_name = refusal.details.get("api_name")
        field_note = f" [{api_name}]" if isinstance(api_name, str) else ""
        extra = ", ".join(
            f"{key}: {value}" for key, value in refusal.details.items() if key != "api_name"
        )
        lines.append(
            f"position {refusal.position}: {refusal.module} {record}: {refusal.code}{field_note}"
            + (f" ({extra})" if extra else "")
        )
    for unknown in result.unknown_fields:
        lines.append(
            f"unknown field {unknown.module}.{unknown.field}: in {unknown.changes} change(s), "
            f"first at position {unknown.first_position} (the CRM ignores it)"
        )
    lines.append(
        f"check: {result.read} change(s) read from {source}; "
        f"{len(result.refusals)} would fail, {len(result.unknown_fields)} unknown field(s)"
    )
    return "\n".join(lines)
