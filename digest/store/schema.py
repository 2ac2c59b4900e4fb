"""Tables, the versioned migration list, engines and transactions.

SQLite by default (WAL mode, a file in the data directory); nothing SQLite-only in the
queries, so a PostgreSQL URL works the same way.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DatabaseError, OperationalError

from digest.errors import ConfigError, StoreError


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A moment in time: stored in UTC, always read back as an aware datetime in UTC.

    SQLite has no time zones: it kept the wall-clock time of an aware datetime and dropped
    its offset (09:00+09:00 came back as 09:00, nine hours late), and read back naive
    datetimes. PostgreSQL's timestamptz keeps the instant but reads it back in the
    session's time zone. Both now give the same aware UTC value. A naive value is taken
    as UTC, as the store always wrote it.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return moment.replace(tzinfo=None) if dialect.name == "sqlite" else moment

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = sa.MetaData()

schema_version = sa.Table(
    "schema_version", metadata, sa.Column("version", sa.Integer, nullable=False)
)

sources = sa.Table(
    "sources",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("location", sa.Text, nullable=False),
    sa.Column("last_status", sa.String(20)),
    sa.Column("last_error", sa.Text),
    sa.Column("consecutive_failures", sa.Integer, nullable=False, default=0),
    sa.Column("last_checked_at", UTCDateTime()),
    sa.Column("etag", sa.Text),
    sa.Column("last_modified", sa.Text),
    # Added by _v3_source_health: what the last collection found, for `digest sources`.
    sa.Column("last_http_status", sa.Integer),
    sa.Column("last_success_at", UTCDateTime()),
    sa.Column("last_new", sa.Integer),
    sa.Column("last_seen", sa.Integer),
)

articles = sa.Table(
    "articles",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("source_id", sa.ForeignKey("sources.id"), nullable=False),
    sa.Column("url", sa.String(2000), unique=True),
    sa.Column("guid", sa.String(2000)),
    sa.Column("fingerprint", sa.String(64), nullable=False, unique=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("subtitle", sa.Text),
    sa.Column("byline", sa.Text),
    sa.Column("paragraphs", sa.JSON, nullable=False),
    sa.Column("tags", sa.JSON, nullable=False),
    sa.Column("published_at", UTCDateTime()),
    sa.Column("collected_at", UTCDateTime(), nullable=False),
    # Added by _v3_source_health: GUIDs are looked up per source on every collection.
    sa.Index("ix_articles_source_guid", "source_id", "guid"),
)

digests = sa.Table(
    "digests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    # One digest per key ("daily/2026-11-28"): the unique constraint is what stops two
    # schedulers, a restart or a manual re-run from composing a second one.
    sa.Column("key", sa.String(200), nullable=False, unique=True),
    sa.Column("list_name", sa.String(100), nullable=False),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("html", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

digest_items = sa.Table(
    "digest_items",
    metadata,
    sa.Column("digest_id", sa.ForeignKey("digests.id"), primary_key=True),
    sa.Column("article_id", sa.ForeignKey("articles.id"), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("lead", sa.Text, nullable=False),
    sa.Column("quotes", sa.JSON, nullable=False),
)

subscribers = sa.Table(
    "subscribers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email", sa.String(320), nullable=False, unique=True),
    sa.Column("name", sa.String(200)),
    sa.Column("topics", sa.JSON, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("status_changed_at", UTCDateTime(), nullable=False),
    # Added by _v8_reader_preferences: which lists the reader takes (both, as before the
    # preferences page, unless they chose), and the end of a pause they asked for.
    sa.Column("wants_daily", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("wants_weekly", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("paused_until", UTCDateTime()),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("digest_id", sa.ForeignKey("digests.id"), primary_key=True),
    sa.Column("subscriber_id", sa.ForeignKey("subscribers.id"), primary_key=True),
    # pending | sent | failed | skipped; after a bounce report: bounced | soft_bounced
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("message_id", sa.String(300)),
    sa.Column("error", sa.Text),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    # Added by _v5_delivery_claims: which worker is sending a pending row, and until when
    # its claim holds unless renewed (see store/claims.py).
    sa.Column("claimed_by", sa.String(200)),
    sa.Column("claimed_until", UTCDateTime()),
    sa.Index("ix_deliveries_pending", "digest_id", "status"),
)

# A named lease with an expiry: one process at a time runs the pipeline (see digest/lease.py).
leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("acquired_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
)


# Every status change of a subscriber, and each confirmation email sent, with its time:
# who subscribed, confirmed, unsubscribed or bounced, and when.
subscriber_events = sa.Table(
    "subscriber_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("subscriber_id", sa.ForeignKey("subscribers.id"), nullable=False, index=True),
    sa.Column("event", sa.String(40), nullable=False),  # a status, or "confirmation_sent"
    sa.Column("at", UTCDateTime(), nullable=False),
)


# Sign-up requests per client address, in the database so every web host counts them.
signup_attempts = sa.Table(
    "signup_attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("client", sa.String(64), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Index("ix_signup_attempts_client_at", "client", "at"),
)


# Failed operator sign-ins per client address, in the database so that a lock-out on one
# web host holds on every other.
signin_failures = sa.Table(
    "signin_failures",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("client", sa.String(64), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Index("ix_signin_failures_client_at", "client", "at"),
)


# Each failure a bounce report named, once per report and subscriber: the unique key is what
# makes reading the same report twice change nothing.
bounces = sa.Table(
    "bounces",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("report_id", sa.String(300), nullable=False),
    sa.Column("subscriber_id", sa.ForeignKey("subscribers.id"), nullable=False, index=True),
    sa.Column("digest_id", sa.ForeignKey("digests.id")),
    sa.Column("hard", sa.Boolean, nullable=False),
    sa.Column("address", sa.String(320), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # "5.1.1", or "" when not given
    sa.Column("diagnostic", sa.Text, nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("report_id", "subscriber_id", name="uq_bounces_report_subscriber"),
)

# The first click of each reader on each story of a digest (with click tracking on): the
# primary key is what makes a second click, or a prefetching scanner's, change nothing.
clicks = sa.Table(
    "clicks",
    metadata,
    sa.Column("digest_id", sa.ForeignKey("digests.id"), primary_key=True),
    sa.Column("article_id", sa.ForeignKey("articles.id"), primary_key=True),
    sa.Column("subscriber_id", sa.ForeignKey("subscribers.id"), primary_key=True),
    sa.Column("at", UTCDateTime(), nullable=False),
)

# A bounce names the message by its Message-ID; this finds the delivery without a scan.
_deliveries_by_message_id = sa.Index("ix_deliveries_message_id", deliveries.c.message_id)


def _v1_initial(conn: Connection) -> None:
    for table in metadata.sorted_tables:
        if table.name != "schema_version":
            table.create(conn, checkfirst=True)


def _v2_leases(conn: Connection) -> None:
    leases.create(conn, checkfirst=True)


def _add_missing_columns(conn: Connection, table: sa.Table) -> None:
    # A database created after a column joined `metadata` already has it (v1 creates the
    # tables as they are now), so each column is added only where it is missing.
    present = {c["name"] for c in sa.inspect(conn).get_columns(table.name)}
    for column in table.columns:
        if column.name not in present:
            ddl = sa.schema.CreateColumn(column).compile(dialect=conn.dialect)
            conn.execute(sa.text(f"ALTER TABLE {table.name} ADD COLUMN {ddl}"))


def _v3_source_health(conn: Connection) -> None:
    _add_missing_columns(conn, sources)
    for index in articles.indexes:
        index.create(conn, checkfirst=True)


def _v4_subscriber_events(conn: Connection) -> None:
    subscriber_events.create(conn, checkfirst=True)


def _v5_delivery_claims(conn: Connection) -> None:
    _add_missing_columns(conn, deliveries)


def _v6_bounces(conn: Connection) -> None:
    bounces.create(conn, checkfirst=True)
    _deliveries_by_message_id.create(conn, checkfirst=True)


def _v7_signup_attempts(conn: Connection) -> None:
    signup_attempts.create(conn, checkfirst=True)


def _v8_reader_preferences(conn: Connection) -> None:
    _add_missing_columns(conn, subscribers)


def _v9_clicks(conn: Connection) -> None:
    clicks.create(conn, checkfirst=True)


def _v10_signin_failures(conn: Connection) -> None:
    signin_failures.create(conn, checkfirst=True)


def _v11_ledger_for_bulk_compose(conn: Connection) -> None:
    """Composing writes a ledger row per subscriber: keep per-row work off that path.

    On PostgreSQL a foreign key is checked by a trigger per inserted row: composing for
    1,000,000 subscribers spent 12-17 of its 27 s there. digest never deletes a subscriber
    (a purge anonymises the row) or a digest, and compose takes its rows from subscribers
    in the same statement, locked FOR KEY SHARE (see create_digest), so the checks guard
    nothing digest does; they go. SQLite checks its keys cheaply and keeps them.
    A ledger row has a Message-ID only once sent: indexing the NULLs of fresh rows cost
    2 s more, and a lookup by Message-ID never asks for NULL.
    """
    if conn.dialect.name == "postgresql":
        for key in sa.inspect(conn).get_foreign_keys("deliveries"):
            conn.execute(sa.text(f'ALTER TABLE deliveries DROP CONSTRAINT "{key["name"]}"'))
    # Plain DDL: an sa.Index on the table's column would join `metadata`, and _v1 would
    # then create the index twice on a new database.
    conn.execute(sa.text("DROP INDEX IF EXISTS ix_deliveries_message_id"))
    conn.execute(
        sa.text(
            "CREATE INDEX ix_deliveries_message_id ON deliveries (message_id) "
            "WHERE message_id IS NOT NULL"
        )
    )


def _v12_claims_by_owner(conn: Connection) -> None:
    """A sender renews its claims every 15 s, finding them by owner among pending rows.

    Without an index that was a scan of the whole ledger, every digest ever sent: 76 ms at
    1,000,000 rows on PostgreSQL and growing with each issue; with this one, 11 ms. Only
    claimed pending rows are in it, so composing a digest adds nothing to it. (Plain DDL
    for the reason given in _v11; the query names 'pending' as a literal, which SQLite
    needs to use a partial index.)
    """
    conn.execute(
        sa.text(
            "CREATE INDEX IF NOT EXISTS ix_deliveries_claimed ON deliveries (claimed_by) "
            "WHERE status = 'pending' AND claimed_by IS NOT NULL"
        )
    )


# Append a function here to change the schema; never edit one that has shipped.
MIGRATIONS: Sequence[Callable[[Connection], None]] = (
    _v1_initial,
    _v2_leases,
    _v3_source_health,
    _v4_subscriber_events,
    _v5_delivery_claims,
    _v6_bounces,
    _v7_signup_attempts,
    _v8_reader_preferences,
    _v9_clicks,
    _v10_signin_failures,
    _v11_ledger_for_bulk_compose,
    _v12_claims_by_owner,
)


def insert_or_merge(conn: Connection, table: sa.Table) -> sqlite.Insert | postgresql.Insert:
    """INSERT that can say ON CONFLICT: SQLite and PostgreSQL spell it alike, each in its dialect.

    One statement decides atomically on both stores. Catching IntegrityError instead needs a
    savepoint around each insert on PostgreSQL (an error aborts the whole transaction
    there), and leaves an error in the server's log for every conflict.
    """
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise ConfigError(f"database_url: {conn.dialect.name} is not supported; use PostgreSQL.")


def _new_id(result: sa.CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def now() -> datetime:
    return datetime.now(UTC)


def _sqlite_path(url: str) -> Path | None:
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        return Path(url.removeprefix("sqlite:///"))
    return None


def _wal(cursor: Any) -> None:
    """Switch the file to WAL, waiting out another connection doing the same.

    Turning a new file into WAL takes an exclusive lock that SQLite does not wait for
    (no busy handler): a second process opening a fresh folder at that instant is told
    "database is locked" at once. It waits a moment and tries again instead.
    """
    for attempt in range(100):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 99:
                raise
            time.sleep(0.05)


def open_engine(url: str) -> Engine:
    """Create the engine; SQLite gets WAL, foreign keys and a busy timeout."""
    path = _sqlite_path(url)
    if path is not None:
        from digest.subscribers import ensure_data_dir

        ensure_data_dir(path.parent)
    options: dict[str, Any] = {}
    try:
        if sa.make_url(url).drivername == "postgresql+psycopg":
            # psycopg prepares a statement on the server after five runs, and PostgreSQL
            # then may keep one generic plan for it. Planned while a table was still small
            # (an import fills it within one transaction), that plan scans the whole table
            # on every lookup: importing 100,000 subscribers took 162 s instead of 13 s.
            options["connect_args"] = {"prepare_threshold": None}
        engine = sa.create_engine(url, **options)
    except ModuleNotFoundError as exc:
        extra = {
            "psycopg": " (pip install 'digest[postgres]')",
            "psycopg2": "; digest uses psycopg 3: begin the URL with postgresql+psycopg://",
        }.get(exc.name or "", "")
        raise ConfigError(
            f"database_url needs the Python package {exc.name}, which is not installed{extra}."
        ) from None
    except sa.exc.ArgumentError:
        raise ConfigError(
            "database_url is not a database URL; use e.g. postgresql+psycopg://user@host/db."
        ) from None
    if engine.dialect.name == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA busy_timeout=10000")
            _wal(cursor)
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

    return engine


# Any constant both hosts agree on: the key of PostgreSQL's advisory lock for schema changes.
_SCHEMA_LOCK = 0x6469676573  # "diges"


def lock_schema(conn: Connection) -> None:
    """Hold the schema lock until this transaction ends; call it first in the transaction.

    Two processes starting at once on a new database would both see a table missing and
    both create it. On PostgreSQL even CREATE TABLE IF NOT EXISTS then fails (on the unique
    index of type names): an advisory lock serializes them. Python's sqlite3 opens a
    transaction only at the first write, after the check; BEGIN IMMEDIATE takes the
    file's write lock before it.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_SCHEMA_LOCK)))
    elif conn.dialect.name == "sqlite":
        dbapi: Any = conn.connection.dbapi_connection
        if not dbapi.in_transaction:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def migrate(engine: Engine) -> int:
    """Bring the schema to the newest version; return that version."""
    where = engine.url.render_as_string(hide_password=True)
    try:
        with engine.begin() as conn:
            lock_schema(conn)
            inspector = sa.inspect(conn)
            tables = set(inspector.get_table_names())
            if tables and "schema_version" not in tables:
                raise StoreError(
                    f"The database {where} holds tables that are not digest's; point "
                    "database_url (or data_dir) at a new or a digest database."
                )
            schema_version.create(conn, checkfirst=True)
            current = conn.scalar(sa.select(sa.func.max(schema_version.c.version))) or 0
            if current > len(MIGRATIONS):
                raise StoreError(
                    f"The database {where} was made by a newer digest (schema {current}); "
                    "upgrade digest to use it."
                )
            for version, step in enumerate(MIGRATIONS[current:], start=current + 1):
                step(conn)
                conn.execute(schema_version.delete())
                conn.execute(schema_version.insert().values(version=version))
    except OperationalError as exc:
        raise StoreError(
            f"Cannot open the database ({exc.orig}); check database_url and data_dir."
        ) from None
    except DatabaseError as exc:
        raise StoreError(
            f"The database {where} cannot be read as one ({exc.orig}); point database_url "
            "(or data_dir) at a digest database, or move the file away."
        ) from None
    return len(MIGRATIONS)


def connect(url: str) -> Engine:
    engine = open_engine(url)
    migrate(engine)
    return engine


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    with engine.begin() as conn:
        yield conn
