"""Loading and validating the one TOML configuration file (interface.md).

`load_config` is the only way in: it reads the file, replaces `${NAME}` with
environment variables, resolves relative paths against the file's folder, and
checks every key (unknown keys, types, ranges, URLs) into frozen dataclasses,
one per table. It is pure apart from reading the file: no network, no
database; clients and the journal are opened later by the pipeline.

Every problem raises `ConfigError` with one line that names the file and the
dotted key (`limits.concurency: unknown key; did you mean 'concurrency'?`).
Secret values (`crm.client_id`, `crm.client_secret`, `crm.refresh_token`,
`source.dsn`, which may hold a password) never appear in an error or a repr.
"""

from __future__ import annotations

import codecs
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from syncengine.config_table import ConfigTable
from syncengine.errors import ConfigError
from syncengine.model import Operation

SourceType = Literal["jsonl", "csv", "sqlite", "postgres"]

_SOURCE_TYPES = ("jsonl", "csv", "sqlite", "postgres")
_TRIGGERS = ("workflow", "approval", "blueprint")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: A PostgreSQL table or view, optionally schema-qualified; at most 63 bytes a part.
_QUALIFIED = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?")
_PG_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_DSN_SCHEMES = ("postgres", "postgresql")
_API_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_TABLES = ("source", "crm", "limits", "journal", "daemon")
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_PASSWORD_PARAMETER = re.compile(r"(?i)([?&]password=)[^&]*")


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """`[source]`: where changes come from."""

    type: SourceType
    path: Path | None = None  # every type but postgres (the config checks it)
    table: str | None = None  # sqlite and postgres (schema.table for postgres)
    cursor: str | None = None  # sqlite and postgres
    encoding: str = "utf-8"  # what nearly every exporter writes
    csv_delimiter: str = ","  # RFC 4180
    dsn: str | None = field(default=None, repr=False)  # postgres only; holds the password
    channel: str | None = None  # postgres only: LISTEN/NOTIFY channel that wakes the daemon
    cursor_commit_ordered: bool = False  # postgres only: a sequence-filled cursor is commit-ordered
    exclude_columns: tuple[str, ...] = ()  # sqlite and postgres: columns not sent as fields
    key: str | None = None  # the member or column holding each record's source key


#: The write APIs `migrate --api` and `[crm] write_api` name (`syncengine.bulk`).
WRITE_APIS: tuple[str, ...] = ("records", "bulk", "auto")


@dataclass(frozen=True, slots=True)
class CrmConfig:
    """`[crm]`: the org to write to, how to authenticate, and record defaults."""

    api_domain: str
    accounts_url: str
    client_id: str = field(repr=False)
    client_secret: str = field(repr=False)
    refresh_token: str = field(repr=False)
    module: str = "Leads"  # the module most feeds update
    operation: Operation = Operation.UPDATE  # safe to repeat, needs no duplicate rules
    trigger: tuple[str, ...] = ()  # a bulk sync should not fire automation by default
    duplicate_check_fields: tuple[str, ...] | None = None  # None: the module's system field
    apply_layout_rules: bool = False  # the API's own default
    connect_timeout_s: float = 10.0  # a TCP+TLS handshake well past any sane RTT
    timeout_s: float = 60.0  # a 100-record write seldom takes more than seconds
    token_timeout_s: float = 30.0  # token calls must not hang a run (crm-api.md §5)
    proxy: str | None = field(default=None, repr=False)  # may hold proxy credentials
    skip_unchanged: bool = False  # a person's edit in the CRM must not be masked by default
    validate: bool = True  # refuse locally what the CRM would certainly refuse: saves credits
    unknown_fields: Literal["warn", "fail"] = "warn"  # the CRM ignores them: a warning is enough
    #: `migrate`'s write API: records | bulk | auto; None is auto (run and daemon use records).
    write_api: str | None = None
    #: `auto` may choose bulk write although `trigger` asks for automation bulk write skips.
    bulk_without_triggers: bool = False


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """`[limits]`: how hard to push the CRM, and how long to keep trying."""

    concurrency: int = 10  # 100-record writes are heavy calls: 10 at once in every edition
    requests_per_minute: float | None = None  # Zoho documents no per-minute rate for v2
    max_attempts: int = 8  # with 1 s..60 s backoff: several minutes of retries
    reserve_credits: int = 0  # keep API credits for other integrations; 0 = use all
    retry_base_s: float = 1.0  # first backoff step
    retry_cap_s: float = 60.0  # longest single backoff
    grace_s: float = 30.0  # in-flight requests finish within this after SIGINT/SIGTERM
    credits_per_call: int = 1  # Zoho: 1 credit per call unless listed (crm-api.md §3.1)
    records_per_credit: int = 10  # Zoho: insert/update/upsert cost 1 credit per 10 records
    bulk_job_credits: int = 500  # Zoho: one bulk-write job, whatever its rows (Kaizen #103)
    bulk_poll_s: float = 10.0  # first wait between a bulk job's status reads, doubling to 60 s
    bulk_jobs_in_flight: int = 2  # one job is built and uploaded while another runs
    #: PostgreSQL DSN where processes of one org share slots, credits and token; holds a password.
    shared: str | None = field(default=None, repr=False)
    shared_schema: str = "syncengine"  # the schema of the shared tables


@dataclass(frozen=True, slots=True)
class JournalConfig:
    """`[journal]`: where checkpoints, outcomes and the token cache live.

    An SQLite file at `path` (the default), or, with `url`, the tables of
    PostgreSQL schema `schema` (`syncengine.journal.pg_database`).
    """

    path: Path
    commit_timeout_s: float = 60.0  # a group commit not made by then ends the pass (exit 3)
    #: PostgreSQL DSN of a journal kept in a database; holds a password. None: the SQLite file.
    url: str | None = field(default=None, repr=False)
    schema: str = "syncengine_journal"  # the PostgreSQL schema of the journal's tables (with `url`)

    @property
    def where(self) -> str:
        """The journal as messages name it: its file, or its masked DSN and schema."""
        if self.url is None:
            return str(self.path)
        return f"{mask_dsn(self.url)} (schema {self.schema})"


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    """`[daemon]`: the long-running mode's knobs."""

    linger_ms: int = 500  # a partial chunk waits this long for company
    grace_s: float = 30.0  # as limits.grace_s, for the daemon's stop
    metrics_port: int | None = None  # no metrics endpoint unless asked
    poll_interval_s: float = 1.0  # how often a quiet feed is checked for growth
    reference_wait_s: float = 300.0  # a `$ref` to a record with no id yet fails after this


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration; `path` is the file it came from (absolute)."""

    path: Path
    source: SourceConfig
    crm: CrmConfig
    limits: LimitsConfig
    journal: JournalConfig
    daemon: DaemonConfig


#: Each table's keys are exactly its dataclass's fields.
_TABLE_CLASSES: dict[str, type[Any]] = {
    "source": SourceConfig,
    "crm": CrmConfig,
    "limits": LimitsConfig,
    "journal": JournalConfig,
    "daemon": DaemonConfig,
}


def _interpolate(value: Any, dotted: str, file: Path, environ: Mapping[str, str]) -> Any:
    """`value` with every `${NAME}` in its strings replaced from `environ`."""
    if isinstance(value, str):
        return _ENV_REFERENCE.sub(lambda m: _lookup(m.group(1), dotted, file, environ), value)
    if isinstance(value, dict):
        return {
            key: _interpolate(item, f"{dotted}.{key}" if dotted else key, file, environ)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_interpolate(item, f"{dotted}[{i}]", file, environ) for i, item in enumerate(value)]
    return value


def _lookup(name: str, dotted: str, file: Path, environ: Mapping[str, str]) -> str:
    try:
        return environ[name]
    except KeyError:
        raise ConfigError(f"{file}: {dotted}: environment variable {name} is not set") from None


def load_config(path: Path, *, environ: Mapping[str, str] | None = None) -> Config:
    """Read, interpolate and validate the TOML file at `path`.

    `environ` defaults to `os.environ`. Raises `ConfigError` (one line naming
    the file, and the key or line) for anything unusable.
    """
    path = path.expanduser().absolute()
    raw = _read_toml(path)
    data = _interpolate(raw, "", path, os.environ if environ is None else environ)
    root = ConfigTable(data, "", path)
    root.reject_unknown(_TABLES)
    tables = {name: root.table(name) for name in _TABLES}
    for name, table in tables.items():
        table.reject_unknown([item.name for item in fields(_TABLE_CLASSES[name])])
    base = path.parent
    source = _source(tables["source"], base)
    crm = _crm(tables["crm"])
    limits = _limits(tables["limits"])
    journal = _journal(tables["journal"], base)
    # The journal and the shared limits each keep a `tokens` table, of different shapes.
    both = journal.url is not None and limits.shared is not None
    if both and journal.schema == limits.shared_schema:
        raise tables["journal"].error(
            "schema",
            f"{journal.schema!r} is also limits.shared_schema: "
            "give the journal and the shared limits a schema each",
        )
    return Config(
        path=path,
        source=source,
        crm=crm,
        limits=limits,
        journal=journal,
        daemon=_daemon(tables["daemon"]),
    )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: invalid TOML: the file is not UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror or exc}") from None


def _present(**values: Any) -> dict[str, Any]:
    """The keyword arguments that were given, so absent keys take the dataclass default."""
    return {name: value for name, value in values.items() if value is not None}


def _source(table: ConfigTable, base: Path) -> SourceConfig:
    kind = table.required("type", table.choice("type", _SOURCE_TYPES))
    if kind == "postgres":
        return _postgres_source(table)
    for key in ("dsn", "channel", "cursor_commit_ordered"):
        if table.get(key) is not None:
            raise table.error(key, "applies only to type 'postgres'")
    table_name = table.matching("table", _IDENTIFIER)
    cursor = table.matching("cursor", _IDENTIFIER)
    excluded: tuple[str, ...] | None = None
    if kind == "sqlite":
        table.required("table", table_name)
        cursor = table.required("cursor", cursor)
        excluded = _exclude_columns(table, _IDENTIFIER, cursor, fold_case=True)
    elif table_name is not None or cursor is not None:
        raise table.error("table" if table_name else "cursor", "applies only to type 'sqlite'")
    elif table.get("exclude_columns") is not None:
        raise table.error("exclude_columns", "applies only to types 'sqlite' and 'postgres'")
    encoding = table.string("encoding")
    if encoding is not None:
        _check_encoding(table, encoding)
    delimiter = table.string("csv_delimiter")
    if delimiter is not None and (len(delimiter) != 1 or delimiter in '"\r\n'):
        raise table.error("csv_delimiter", "must be one character, not a quote or newline")
    return SourceConfig(
        type=cast(SourceType, kind),
        path=table.required("path", table.path("path", base)),
        **_present(
            table=table_name,
            cursor=cursor,
            encoding=encoding,
            csv_delimiter=delimiter,
            exclude_columns=excluded,
            key=_key_column(table, _IDENTIFIER, cursor),
        ),
    )


def _postgres_source(table: ConfigTable) -> SourceConfig:
    """`[source]` for a PostgreSQL change table: dsn, table, cursor and an optional channel.

    Names are checked against a strict identifier pattern (they are quoted
    into SQL, exactly as written, so case matters). The DSN is never echoed:
    it may hold the password.
    """
    for key in ("path", "encoding", "csv_delimiter"):
        if table.get(key) is not None:
            raise table.error(key, "does not apply to type 'postgres'")
    dsn = table.required("dsn", table.string("dsn"))
    try:
        parts = urlsplit(dsn)
    except ValueError as exc:  # an unclosed [IPv6] bracket, for one
        raise table.error("dsn", f"is not a valid URL ({exc}): {mask_dsn(dsn)}") from None
    if parts.scheme not in _DSN_SCHEMES:
        raise table.error("dsn", "must be a postgresql:// URL (the value is not shown)")
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        raise table.error("dsn", "has an invalid port (the value is not shown)") from None
    cursor = table.required("cursor", table.matching("cursor", _PG_IDENTIFIER))
    return SourceConfig(
        type="postgres",
        table=table.required("table", table.matching("table", _QUALIFIED)),
        cursor=cursor,
        dsn=dsn,
        **_present(
            channel=table.matching("channel", _PG_IDENTIFIER),
            cursor_commit_ordered=table.boolean("cursor_commit_ordered"),
            exclude_columns=_exclude_columns(table, _PG_IDENTIFIER, cursor, fold_case=False),
            key=_key_column(table, _PG_IDENTIFIER, cursor),
        ),
    )


def _postgres_dsn(table: ConfigTable, key: str) -> str | None:
    """A `postgresql://` URL at `key`, or None when absent; never echoed unmasked."""
    dsn = table.string(key)
    if dsn is None:
        return None
    try:
        parts = urlsplit(dsn)
    except ValueError as exc:  # an unclosed [IPv6] bracket, for one
        raise table.error(key, f"is not a valid URL ({exc}): {mask_dsn(dsn)}") from None
    if parts.scheme not in _DSN_SCHEMES:
        raise table.error(key, "must be a postgresql:// URL (the value is not shown)")
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        raise table.error(key, "has an invalid port (the value is not shown)") from None
    return dsn


def _key_column(table: ConfigTable, pattern: re.Pattern[str], cursor: str | None) -> str | None:
    """`key`: the member or column whose value is each record's source key (never a field)."""
    name = table.matching("key", pattern)
    if name is None:
        return None
    if name in ("_module", "_operation", "id") or name == cursor:
        raise table.error("key", f"{name!r} has a meaning of its own; name another column")
    return name


def mask_dsn(dsn: str) -> str:
    """`dsn` with everything that may be a password shown as `***`, even when it does not parse.

    Masks from the first `:` after the user name to the last `@` (a password
    may hold `@` or `/` unescaped, so over-masking is the safe error), and
    every `password=` parameter. Pure text work: no URL parser to trip over.
    """
    scheme, separator, rest = dsn.partition("://")
    if not separator:
        return "***"
    authority_end = rest.rfind("@")
    user, colon, _password = rest[: max(authority_end, 0)].partition(":")
    if authority_end >= 0 and colon:
        rest = f"{user}:***{rest[authority_end:]}"
    masked = _PASSWORD_PARAMETER.sub(lambda match: f"{match.group(1)}***", rest)
    return f"{scheme}://{masked}"


def _exclude_columns(
    table: ConfigTable, pattern: re.Pattern[str], cursor: str, *, fold_case: bool
) -> tuple[str, ...] | None:
    """`exclude_columns`: column names a table feed reads but does not send as fields.

    The cursor and the `_module`/`_operation` columns are never sent as
    fields, and they keep their meaning, so naming one is an error rather than
    a silent no-op. SQLite names are compared without case, PostgreSQL names
    (quoted) exactly. Whether each name is a column is checked when the feed
    is opened: only the database knows.
    """
    names = table.string_list("exclude_columns", pattern=pattern)
    for name in names or ():
        if name == cursor or (fold_case and name.lower() == cursor.lower()):
            raise table.error("exclude_columns", f"{name!r} is the cursor, which is never sent")
        if name in ("_module", "_operation"):
            raise table.error(
                "exclude_columns", f"{name!r} overrides [crm] per row and is never sent"
            )
    return names


def _check_encoding(table: ConfigTable, encoding: str) -> None:
    """Feeds are cut at newline bytes, so the encoding must keep ASCII as ASCII."""
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise table.error("encoding", f"unknown encoding {encoding!r}") from None
    probe = '\n",{}'.encode(encoding, errors="replace").removeprefix(codecs.BOM_UTF8)
    if probe != b'\n",{}':
        raise table.error("encoding", f"{encoding!r} is not ASCII-compatible; use utf-8")


def _crm(table: ConfigTable) -> CrmConfig:
    operation = table.choice("operation", tuple(Operation))
    return CrmConfig(
        api_domain=table.url("api_domain"),
        accounts_url=table.url("accounts_url"),
        client_id=table.required("client_id", table.string("client_id")),
        client_secret=table.required("client_secret", table.string("client_secret")),
        refresh_token=table.required("refresh_token", table.string("refresh_token")),
        **_present(
            module=table.matching("module", _API_NAME),
            operation=None if operation is None else Operation(operation),
            trigger=table.string_list("trigger", choices=_TRIGGERS),
            duplicate_check_fields=table.string_list("duplicate_check_fields", pattern=_API_NAME),
            apply_layout_rules=table.boolean("apply_layout_rules"),
            connect_timeout_s=table.number("connect_timeout_s"),
            timeout_s=table.number("timeout_s"),
            token_timeout_s=table.number("token_timeout_s"),
            proxy=table.proxy_url("proxy"),
            skip_unchanged=table.boolean("skip_unchanged"),
            validate=table.boolean("validate"),
            unknown_fields=table.choice("unknown_fields", ("warn", "fail")),
            write_api=table.choice("write_api", WRITE_APIS),
            bulk_without_triggers=table.boolean("bulk_without_triggers"),
        ),
    )


def _limits(table: ConfigTable) -> LimitsConfig:
    limits = LimitsConfig(
        **_present(
            concurrency=table.integer("concurrency", low=1, high=100),
            requests_per_minute=table.number("requests_per_minute"),
            max_attempts=table.integer("max_attempts", low=1),
            reserve_credits=table.integer("reserve_credits", low=0),
            retry_base_s=table.number("retry_base_s"),
            retry_cap_s=table.number("retry_cap_s"),
            grace_s=table.number("grace_s", positive=False),
            credits_per_call=table.integer("credits_per_call", low=1),
            records_per_credit=table.integer("records_per_credit", low=1, high=100),
            bulk_job_credits=table.integer("bulk_job_credits", low=0),
            bulk_poll_s=table.number("bulk_poll_s"),
            bulk_jobs_in_flight=table.integer("bulk_jobs_in_flight", low=1, high=10),
            shared=_postgres_dsn(table, "shared"),
            shared_schema=table.matching("shared_schema", _PG_IDENTIFIER),
        )
    )
    if limits.shared is None and table.get("shared_schema") is not None:
        raise table.error("shared_schema", "applies only with limits.shared")
    if limits.retry_cap_s < limits.retry_base_s:
        raise table.error("retry_cap_s", "must be >= limits.retry_base_s")
    return limits


def _journal(table: ConfigTable, base: Path) -> JournalConfig:
    """The journal's path with its folder resolved but its last part kept as written.

    Resolving the last part would turn a link planted at the journal's name
    into its target, and the journal would silently be opened there; kept,
    the journal's own open sees the link and refuses it.
    """
    # Next to the config by default, so each config gets its own journal.
    written_path = table.string("path")
    url = _postgres_dsn(table, "url")
    if url is not None and written_path is not None:
        raise table.error("url", "and journal.path exclude each other: keep one")
    if url is None and table.get("schema") is not None:
        raise table.error("schema", "applies only with journal.url")
    written = Path(written_path or "syncengine.db").expanduser()
    path = base / written
    return JournalConfig(
        path=path.parent.resolve() / path.name,
        **_present(
            commit_timeout_s=table.number("commit_timeout_s"),
            url=url,
            schema=table.matching("schema", _PG_IDENTIFIER),
        ),
    )


def _daemon(table: ConfigTable) -> DaemonConfig:
    return DaemonConfig(
        **_present(
            linger_ms=table.integer("linger_ms", low=0),
            grace_s=table.number("grace_s", positive=False),
            metrics_port=table.integer("metrics_port", low=0, high=65535),
            poll_interval_s=table.number("poll_interval_s"),
            reference_wait_s=table.number("reference_wait_s"),
        )
    )
