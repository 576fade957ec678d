"""`syncengine check`: what a pass would fail, found before any credit is spent on writes.

Reads the feed from the journal's checkpoint (or all of it), reads each
module's field metadata (`crm.field_metadata`: one read credit per module,
cached in the journal), and judges every record as a pass would
(`feed_check`). It writes nothing a pass relies on: no record rows, no
checkpoint; only the caches of a token and of field metadata. It takes no
process lock, so it may run beside a pass.
"""

from __future__ import annotations

import time
from contextlib import AsyncExitStack, aclosing
from dataclasses import dataclass
from typing import Any

from syncengine.config import Config
from syncengine.crm.auth import TokenProvider
from syncengine.crm.client import CrmClient, make_session
from syncengine.crm.field_metadata import FieldRulesSource
from syncengine.crm.field_rules import ModuleRules
from syncengine.engine.replay import read_start
from syncengine.errors import ConfigError, FatalError
from syncengine.feed_check import CheckResult, FeedCheck, format_result
from syncengine.journal import Journal
from syncengine.journal.field_cache import JournalFieldCache
from syncengine.journal.token_cache import JournalTokenStore
from syncengine.limits import Limiter
from syncengine.logs import register_secret
from syncengine.model import BadInput
from syncengine.sources import open_source

#: The CRM's answer for a module it does not know (crm-api.md §1.7).
INVALID_MODULE = "INVALID_MODULE"
#: Answers meaning the token may not read settings (crm-api.md §1.7).
_SCOPE_CODES = frozenset({"OAUTH_SCOPE_MISMATCH", "NO_PERMISSION", "AUTHORIZATION_FAILED"})


@dataclass(frozen=True, slots=True)
class CheckReport:
    """The result, and which feed (from where) was checked."""

    result: CheckResult
    source: str


async def run_check(config: Config, *, whole_feed: bool) -> CheckReport:
    """Judge the feed (from the checkpoint, or `whole_feed`) against the org's field metadata.

    Raises ConfigError when a module's metadata cannot be read for a reason
    a person must fix (a scope the token lacks, say), FatalError when the
    CRM refuses `[crm] module` itself or the credentials.
    """
    crm = config.crm
    for secret in (crm.client_secret, crm.refresh_token):
        register_secret(secret)
    source = open_source(config)
    async with AsyncExitStack() as stack:
        journal = await Journal.open(config.journal)
        stack.push_async_callback(journal.close)
        session = make_session(concurrency=1, connect_timeout_s=crm.connect_timeout_s)
        stack.push_async_callback(session.close)
        tokens = TokenProvider(
            session=session,
            accounts_url=crm.accounts_url,
            client_id=crm.client_id,
            client_secret=crm.client_secret,
            refresh_token=crm.refresh_token,
            store=JournalTokenStore(journal),
            timeout_s=crm.token_timeout_s,
            proxy=crm.proxy,
        )
        client = CrmClient(
            session=session,
            api_domain=crm.api_domain,
            tokens=tokens,
            limiter=Limiter(concurrency=1),
            total_timeout_s=crm.timeout_s,
            proxy=crm.proxy,
            configured_module=crm.module,
        )
        rules = FieldRulesSource(client.read_fields, JournalFieldCache(journal), clock=time.time)
        start = None
        if not whole_feed:
            source_id = source.source_id
            start = read_start(
                await journal.checkpoint(source_id), await journal.high_water(source_id)
            )
        check = FeedCheck(unknown_mode=crm.unknown_fields, default_module=crm.module)
        async with aclosing(source.read(start)) as batches:
            async for batch in batches:
                for item in batch:
                    if isinstance(item, BadInput):
                        check.add_bad_input(item)
                        continue
                    module_rules, refused = await _rules_for(rules, item.module, crm.module)
                    check.add_change(item, module_rules, refused_module=refused)
        known = await journal.synced_keys(check.keys_to_ask())
    return CheckReport(check.finish(known), source.source_id)


async def _rules_for(
    rules: FieldRulesSource, module: str, configured: str
) -> tuple[ModuleRules | None, str | None]:
    """(the module's rules, the CRM's code when it refuses the module itself).

    A pass stops on a refused `[crm] module` (exit 3) and fails the records
    of any other refused module with the CRM's code; anything else that keeps
    the metadata out of reach is a configuration to fix (exit 2).
    """
    found = await rules.rules(module)
    if found is not None:
        return found, None
    code = rules.unavailable.get(module, "")
    if code == INVALID_MODULE:
        if module == configured:
            raise FatalError(f"the CRM refused the module {module} ([crm] module): {code}")
        return None, code
    hint = (
        "; the token needs the ZohoCRM.settings.fields.READ scope" if code in _SCOPE_CODES else ""
    )
    raise ConfigError(f"cannot read the field metadata of {module} ({code}){hint}")


def check_document(report: CheckReport) -> dict[str, Any]:
    """The object `check --json` prints (interface.md)."""
    result = report.result
    return {
        "source": report.source,
        "read": result.read,
        "refused": [refusal.as_json() for refusal in result.refusals],
        "unknown_fields": [unknown.as_json() for unknown in result.unknown_fields],
    }


def check_text(report: CheckReport) -> str:
    """The readable report."""
    return format_result(report.result, source=report.source)
