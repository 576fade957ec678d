"""The org's field metadata per module: read once, cached in the journal, compiled to rules.

`FieldRulesSource.rules(module)` gives the `ModuleRules` that local
validation checks records against (`crm.field_rules`), or None when the
metadata cannot be had; validation then steps aside and the CRM judges, as
it always did. The metadata comes from `GET /crm/v2/settings/fields?module=`
(crm-api.md §1.8) at most once per module per `ttl_s`: a fresh copy in the
journal's cache is used first, so a cron job started every minute reads it
once an hour, not once a run. Within one pass each module is looked up once.

Why an expiry at all: an admin may add a field, lengthen one or add a
picklist value; rules older than that would refuse values the CRM now
takes. An hour bounds that window at one credit per module per hour.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol

import orjson
import structlog

from syncengine.crm.field_rules import ModuleRules, compile_rules

log = structlog.get_logger(__name__)

#: How long cached metadata is trusted, in seconds (see the module docstring).
FIELD_METADATA_TTL_S: Final = 3600.0

#: How soon a metadata read that got no usable answer (no connection, 5xx) is tried again.
RETRY_UNANSWERED_S: Final = 60.0

#: 4xx answers that say nothing lasting about the metadata: tried again soon too.
_PASSING_CODES: Final = frozenset({"INVALID_TOKEN", "TOO_MANY_REQUESTS"})

#: Reads one module's metadata: (HTTP status, body), or None when unanswered.
FetchFields = Callable[[str], Awaitable[tuple[int, bytes] | None]]


class MetadataUnavailable(Exception):
    """The fields endpoint gave no usable list; `code` is its error code (or the engine's)."""

    def __init__(self, code: str, status: int) -> None:
        super().__init__(f"{code} (HTTP {status})")
        self.code = code
        self.status = status


def parse_fields_answer(status: int, body: bytes) -> list[dict[str, Any]]:
    """The `fields` list of a 200 answer; raises `MetadataUnavailable` for anything else.

    Error bodies carry the CRM's `code` (`INVALID_MODULE`, `OAUTH_SCOPE_MISMATCH`
    for a token without a `ZohoCRM.settings.fields` scope, ...).
    """
    try:
        document = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        document = None
    if status == 200 and isinstance(document, dict):
        fields = document.get("fields")
        if isinstance(fields, list):
            return [item for item in fields if isinstance(item, dict)]
    code = document.get("code") if isinstance(document, dict) else None
    raise MetadataUnavailable(code if isinstance(code, str) else "BAD_RESPONSE", status)


class FieldCache(Protocol):
    """Where fetched metadata is kept between runs (the journal's `field_metadata` table)."""

    async def load(self, module: str, *, fresh_after: float) -> list[dict[str, Any]] | None:
        """The module's fields stored after `fresh_after` (epoch seconds), else None."""
        ...

    async def save(self, module: str, fields: list[dict[str, Any]], *, fetched_at: float) -> None:
        """Store the module's fields, replacing older ones."""
        ...


class FieldRulesSource:
    """Compiled rules per module for one pass: memory, then the journal, then the CRM."""

    def __init__(
        self,
        fetch: FetchFields,
        cache: FieldCache | None,
        *,
        clock: Callable[[], float],
        ttl_s: float = FIELD_METADATA_TTL_S,
    ) -> None:
        self._fetch = fetch
        self._cache = cache
        self._clock = clock
        self._ttl_s = ttl_s
        #: module -> (its rules or None, until when that answer holds)
        self._rules: dict[str, tuple[ModuleRules | None, float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        #: Modules whose metadata could not be had, with the reason's code.
        self.unavailable: dict[str, str] = {}

    async def rules(self, module: str) -> ModuleRules | None:
        """The module's rules, or None (logged) when its metadata cannot be had.

        Looked up again once `ttl_s` old, so a daemon follows the org's changes.
        """
        known = self._rules.get(module)
        if known is not None and self._clock() < known[1]:
            return known[0]
        # Single flight: ten senders meeting a module at once make one read.
        async with self._locks.setdefault(module, asyncio.Lock()):
            known = self._rules.get(module)
            if known is not None and self._clock() < known[1]:
                return known[0]
            return await self._look_up(module)

    async def _look_up(self, module: str) -> ModuleRules | None:
        looked_up_at = self._clock()
        try:
            fields = await self._fields(module)
        except MetadataUnavailable as exc:
            self.unavailable[module] = exc.code
            log.warning("validation.no_metadata", module=module, code=exc.code, status=exc.status)
            # A refusal stands for the expiry; a read that got no answer is tried again soon.
            refused = 400 <= exc.status < 500 and exc.code not in _PASSING_CODES
            wait_s = self._ttl_s if refused else min(self._ttl_s, RETRY_UNANSWERED_S)
            self._rules[module] = (None, looked_up_at + wait_s)
            return None
        rules = compile_rules(module, fields)
        self.unavailable.pop(module, None)
        self._rules[module] = (rules, looked_up_at + self._ttl_s)
        return rules

    async def _fields(self, module: str) -> list[dict[str, Any]]:
        now = self._clock()
        if self._cache is not None:
            cached = await self._cache.load(module, fresh_after=now - self._ttl_s)
            if cached is not None:
                return cached
        answer = await self._fetch(module)
        if answer is None:
            raise MetadataUnavailable("CONNECTION_ERROR", 0)
        fields = parse_fields_answer(*answer)
        if self._cache is not None:
            await self._cache.save(module, fields, fetched_at=now)
        log.info("validation.metadata_read", module=module, fields=len(fields))
        return fields
