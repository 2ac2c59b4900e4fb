"""The database: SQLAlchemy Core tables, a versioned migration list, and the queries.

SQLite by default (WAL mode, a file in the data directory); the queries use nothing
SQLite-only, so a PostgreSQL URL works the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from digest.errors import DigestError
from digest.models import Article, Quote, Subscriber, Summary

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
    sa.Column("last_checked_at", sa.DateTime(timezone=True)),
    sa.Column("etag", sa.Text),
    sa.Column("last_modified", sa.Text),
    # Added by _v3_source_health: what the last collection found, for `digest sources`.
    sa.Column("last_http_status", sa.Integer),
    sa.Column("last_success_at", sa.DateTime(timezone=True)),
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
    sa.Column("published_at", sa.DateTime(timezone=True)),
    sa.Column("collected_at", sa.DateTime(timezone=True), nullable=False),
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
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
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
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=False),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("digest_id", sa.ForeignKey("digests.id"), primary_key=True),
    sa.Column("subscriber_id", sa.ForeignKey("subscribers.id"), primary_key=True),
    sa.Column("status", sa.String(20), nullable=False),  # pending | sent | failed
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("message_id", sa.String(300)),
    sa.Column("error", sa.Text),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_deliveries_pending", "digest_id", "status"),
)

# A named lease with an expiry: one process at a time runs the pipeline (see digest/lease.py).
leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
)


# Every status change of a subscriber, and each confirmation email sent, with its time:
# who subscribed, confirmed, unsubscribed or bounced, and when.
subscriber_events = sa.Table(
    "subscriber_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("subscriber_id", sa.ForeignKey("subscribers.id"), nullable=False, index=True),
    sa.Column("event", sa.String(40), nullable=False),  # a status, or "confirmation_sent"
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)


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


# Append a function here to change the schema; never edit one that has shipped.
MIGRATIONS: Sequence[Callable[[Connection], None]] = (
    _v1_initial,
    _v2_leases,
    _v3_source_health,
    _v4_subscriber_events,
)


def _new_id(result: sa.CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def now() -> datetime:
    return datetime.now(UTC)


def open_engine(url: str) -> Engine:
    """Create the engine; SQLite gets WAL, foreign keys and a busy timeout."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url)
    if engine.dialect.name == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.close()

    return engine


def migrate(engine: Engine) -> int:
    """Bring the schema to the newest version; return that version."""
    try:
        with engine.begin() as conn:
            schema_version.create(conn, checkfirst=True)
            current = conn.scalar(sa.select(sa.func.max(schema_version.c.version))) or 0
            for version, step in enumerate(MIGRATIONS[current:], start=current + 1):
                step(conn)
                conn.execute(schema_version.delete())
                conn.execute(schema_version.insert().values(version=version))
    except OperationalError as exc:
        raise DigestError(
            f"Cannot open the database ({exc.orig}); check database_url and data_dir."
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


# -- sources ---------------------------------------------------------------------------


def ensure_source(conn: Connection, name: str, kind: str, location: str) -> int:
    row = conn.execute(sa.select(sources.c.id).where(sources.c.name == name)).first()
    if row is not None:
        conn.execute(
            sources.update().where(sources.c.id == row.id).values(kind=kind, location=location)
        )
        return int(row.id)
    result = conn.execute(
        sources.insert().values(name=name, kind=kind, location=location, consecutive_failures=0)
    )
    return _new_id(result)


def record_source_health(
    conn: Connection,
    source_id: int,
    error: str | None,
    *,
    status: str | None = None,
    new: int = 0,
    seen: int = 0,
    http_status: int | None = None,
    validators: tuple[str | None, str | None] | None = None,
) -> None:
    """Record one collection of a source; `error` set means it failed.

    `status` defaults to "ok" or "error"; a source can also be "not modified" (HTTP 304) or
    "partial" (some entries or pages failed: `error` then says which, but it did not fail).
    `validators` is the (ETag, Last-Modified) pair for the next conditional GET; None keeps
    the stored pair.
    """
    failed = status == "error" or (status is None and error is not None)
    stamp = now()
    values: dict[str, Any] = {
        "last_checked_at": stamp,
        "last_error": error,
        "last_status": status or ("error" if failed else "ok"),
        "last_http_status": http_status,
        "last_new": new,
        "last_seen": seen,
    }
    if failed:
        values["consecutive_failures"] = sources.c.consecutive_failures + 1
    else:
        values |= {"consecutive_failures": 0, "last_success_at": stamp}
    if validators is not None:
        values |= {"etag": validators[0], "last_modified": validators[1]}
    conn.execute(sources.update().where(sources.c.id == source_id).values(**values))


def source_validators(conn: Connection, source_id: int) -> tuple[str | None, str | None]:
    """The stored (ETag, Last-Modified) of a source, for a conditional GET."""
    row = conn.execute(
        sa.select(sources.c.etag, sources.c.last_modified).where(sources.c.id == source_id)
    ).first()
    return (row.etag, row.last_modified) if row else (None, None)


def source_health(conn: Connection) -> list[dict[str, Any]]:
    """Every source row with its health columns and how many articles it has given."""
    counts = (
        sa.select(articles.c.source_id, sa.func.count().label("articles"))
        .group_by(articles.c.source_id)
        .subquery()
    )
    query = (
        sa.select(sources, sa.func.coalesce(counts.c.articles, 0).label("articles"))
        .outerjoin(counts, counts.c.source_id == sources.c.id)
        .order_by(sources.c.name)
    )
    return [dict(row) for row in conn.execute(query).mappings()]


# -- articles --------------------------------------------------------------------------


def add_article(conn: Connection, source_id: int, article: Article, fingerprint: str) -> bool:
    """Store an article unless its URL, feed GUID or fingerprint is already known."""
    seen = [articles.c.fingerprint == fingerprint]
    if article.url:
        seen.append(articles.c.url == article.url)
    if article.guid:
        seen.append(sa.and_(articles.c.guid == article.guid, articles.c.source_id == source_id))
    if conn.execute(sa.select(articles.c.id).where(sa.or_(*seen)).limit(1)).first():
        return False
    conn.execute(
        articles.insert().values(
            source_id=source_id,
            url=article.url,
            guid=article.guid,
            fingerprint=fingerprint,
            title=article.title,
            subtitle=article.subtitle,
            byline=article.byline,
            paragraphs=list(article.paragraphs),
            tags=list(article.tags),
            published_at=article.published_at,
            collected_at=now(),
        )
    )
    return True


@dataclass(frozen=True, slots=True)
class AddCounts:
    """What `add_articles` did with one source's batch."""

    new: int = 0
    seen: int = 0
    updated: int = 0


def known_articles(
    conn: Connection, source_id: int, urls: Iterable[str], guids: Iterable[str]
) -> tuple[set[str], set[str]]:
    """Which of these URLs (any source) and GUIDs (this source) are already stored."""
    urls, guids = list(set(urls)), list(set(guids))
    known_urls: set[str] = set()
    known_guids: set[str] = set()
    for chunk in _chunks(urls):
        known_urls.update(conn.scalars(sa.select(articles.c.url).where(articles.c.url.in_(chunk))))
    for chunk in _chunks(guids):
        query = sa.select(articles.c.guid).where(
            articles.c.source_id == source_id, articles.c.guid.in_(chunk)
        )
        known_guids.update(g for g in conn.scalars(query) if g is not None)
    return known_urls, known_guids


def _chunks(values: Sequence[str], size: int = 400) -> Iterator[Sequence[str]]:
    # Bound the number of bind parameters per query (old SQLite builds allow 999).
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _article_values(article: Article, fingerprint: str) -> dict[str, Any]:
    return {
        "fingerprint": fingerprint,
        "title": article.title,
        "subtitle": article.subtitle,
        "byline": article.byline,
        "paragraphs": list(article.paragraphs),
        "published_at": article.published_at,
    }


def add_articles(
    conn: Connection, source_id: int, found: Sequence[tuple[Article, str]]
) -> AddCounts:
    """Store one source's batch of (article, fingerprint); one query to find what is known.

    An article is known when its canonical URL (any source), its GUID (same source) or its
    fingerprint (any source) is stored. A known story is never new again, whatever its new
    timestamp. When its own source sends it with a changed title or body, the stored text
    is refreshed (counted as updated), so a story not yet in a digest goes out in its
    latest version; one already sent is not sent again.
    """
    rows: list[Any] = []
    cols = (articles.c.id, articles.c.source_id, articles.c.url, articles.c.guid)
    for start in range(0, len(found), 300):  # at most ~900 bind parameters per query
        batch = found[start : start + 300]
        urls = [a.url for a, _ in batch if a.url]
        guids = [a.guid for a, _ in batch if a.guid]
        query = sa.select(*cols, articles.c.fingerprint).where(
            sa.or_(
                articles.c.fingerprint.in_([fp for _, fp in batch]),
                articles.c.url.in_(urls),
                sa.and_(articles.c.source_id == source_id, articles.c.guid.in_(guids)),
            )
        )
        rows += conn.execute(query)
    by_url = {r.url: r for r in rows if r.url}
    by_guid = {r.guid: r for r in rows if r.guid and r.source_id == source_id}
    taken = {r.fingerprint for r in rows}
    batch_urls: set[str] = set()  # keys of this batch, so a feed's duplicates count as seen
    batch_guids: set[str] = set()
    new_rows: list[dict[str, Any]] = []
    new = seen = updated = 0
    stamp = now()
    for article, fp in found:
        match = (by_url.get(article.url) if article.url else None) or (
            by_guid.get(article.guid) if article.guid else None
        )
        if match is not None:
            seen += 1
            if match.source_id == source_id and match.fingerprint != fp and fp not in taken:
                conn.execute(
                    articles.update()
                    .where(articles.c.id == match.id)
                    .values(**_article_values(article, fp))
                )
                taken.add(fp)
                updated += 1
            continue
        if (
            fp in taken
            or (article.url and article.url in batch_urls)
            or (article.guid and article.guid in batch_guids)
        ):
            seen += 1
            continue
        new += 1
        taken.add(fp)
        if article.url:
            batch_urls.add(article.url)
        if article.guid:
            batch_guids.add(article.guid)
        new_rows.append(
            {
                **_article_values(article, fp),
                "source_id": source_id,
                "url": article.url,
                "guid": article.guid,
                "tags": list(article.tags),
                "collected_at": stamp,
            }
        )
    if new_rows:
        try:
            with conn.begin_nested():
                conn.execute(articles.insert(), new_rows)
        except IntegrityError:
            # Another collector stored some of these meanwhile: fall back to one at a time.
            new = 0
            for row in new_rows:
                try:
                    with conn.begin_nested():
                        conn.execute(articles.insert().values(**row))
                    new += 1
                except IntegrityError:
                    seen += 1
    return AddCounts(new, seen, updated)


def _article_from_row(row: Any) -> Article:
    return Article(
        id=row.id,
        title=row.title,
        subtitle=row.subtitle,
        byline=row.byline,
        paragraphs=tuple(row.paragraphs),
        tags=tuple(row.tags),
        url=row.url,
        guid=row.guid,
        published_at=row.published_at,
        source=row.source_name,
    )


def unsent_articles(conn: Connection, list_name: str, limit: int) -> list[Article]:
    """Articles not yet in any digest of this list, oldest collected first."""
    taken = (
        sa.select(digest_items.c.article_id)
        .join(digests, digests.c.id == digest_items.c.digest_id)
        .where(digests.c.list_name == list_name)
    )
    query = (
        sa.select(articles, sources.c.name.label("source_name"))
        .join(sources, sources.c.id == articles.c.source_id)
        .where(articles.c.id.not_in(taken))
        .order_by(articles.c.collected_at, articles.c.id)
        .limit(limit)
    )
    return [_article_from_row(row) for row in conn.execute(query)]


# -- digests and the deliveries ledger -------------------------------------------------


def find_digest(conn: Connection, key: str) -> dict[str, Any] | None:
    row = conn.execute(sa.select(digests).where(digests.c.key == key)).mappings().first()
    return dict(row) if row else None


def create_digest(
    conn: Connection,
    *,
    key: str,
    list_name: str,
    day: date,
    subject: str,
    html: str,
    text: str,
    items: Iterable[tuple[int, Summary]],
) -> int | None:
    """Insert the digest, its items and one pending delivery per active subscriber.

    Returns None when a digest with this key already exists (someone else composed it).
    """
    try:
        with conn.begin_nested():
            digest_id = _new_id(
                conn.execute(
                    digests.insert().values(
                        key=key,
                        list_name=list_name,
                        day=day,
                        subject=subject,
                        html=html,
                        text=text,
                        created_at=now(),
                    )
                )
            )
    except IntegrityError:
        return None
    item_rows = [
        {
            "digest_id": digest_id,
            "article_id": article_id,
            "position": position,
            "lead": summary.lead,
            "quotes": [{"text": q.text, "speaker": q.speaker} for q in summary.quotes],
        }
        for position, (article_id, summary) in enumerate(items)
    ]
    if item_rows:
        conn.execute(digest_items.insert(), item_rows)
    conn.execute(
        deliveries.insert().from_select(
            ["digest_id", "subscriber_id", "status", "attempts", "updated_at"],
            sa.select(
                sa.literal(digest_id),
                subscribers.c.id,
                sa.literal("pending"),
                sa.literal(0),
                sa.literal(now(), sa.DateTime(timezone=True)),
            ).where(subscribers.c.status == "active"),
        )
    )
    return digest_id


def sent_digests(conn: Connection, list_name: str, limit: int = 500) -> list[dict[str, Any]]:
    """Digests of a list that went out to at least one subscriber, newest first."""
    went_out = sa.exists().where(
        deliveries.c.digest_id == digests.c.id, deliveries.c.status == "sent"
    )
    query = (
        sa.select(digests.c.key, digests.c.day, digests.c.subject, digests.c.created_at)
        .where(digests.c.list_name == list_name, went_out)
        .order_by(digests.c.day.desc(), digests.c.id.desc())
        .limit(limit)
    )
    return [dict(row) for row in conn.execute(query).mappings()]


def pending_deliveries(
    conn: Connection, digest_id: int, limit: int, after: int = 0
) -> list[Subscriber]:
    """The next batch of subscribers still waiting for this digest and still active.

    `after` is the last subscriber id already taken: batches still in flight are pending
    too, so a sender with several batches out pages past them by id. Filtering and
    ordering by the deliveries' own key lets the database walk its primary key index and
    stop after `limit` rows, instead of sorting every pending row for each batch.
    """
    query = (
        sa.select(subscribers)
        .join(deliveries, deliveries.c.subscriber_id == subscribers.c.id)
        .where(deliveries.c.digest_id == digest_id, deliveries.c.status == "pending")
        .where(deliveries.c.subscriber_id > after, subscribers.c.status == "active")
        .order_by(deliveries.c.subscriber_id)
        .limit(limit)
    )
    return [_subscriber_from_row(row) for row in conn.execute(query)]


def record_deliveries(
    conn: Connection, digest_id: int, results: Sequence[tuple[int, str, str | None, str | None]]
) -> None:
    """Write (subscriber_id, status, message_id, error) for one batch."""
    if not results:
        return
    stmt = (
        deliveries.update()
        .where(deliveries.c.digest_id == digest_id)
        .where(deliveries.c.subscriber_id == sa.bindparam("sid"))
        .values(
            status=sa.bindparam("new_status"),
            message_id=sa.bindparam("mid"),
            error=sa.bindparam("err"),
            attempts=deliveries.c.attempts + 1,
            updated_at=now(),
        )
    )
    conn.execute(
        stmt,
        [
            {"sid": sid, "new_status": status, "mid": mid, "err": err}
            for sid, status, mid, err in results
        ],
    )


def skip_inactive_deliveries(conn: Connection, digest_id: int) -> int:
    """Mark pending deliveries of people who left meanwhile as skipped."""
    inactive = sa.select(subscribers.c.id).where(subscribers.c.status != "active")
    result = conn.execute(
        deliveries.update()
        .where(deliveries.c.digest_id == digest_id, deliveries.c.status == "pending")
        .where(deliveries.c.subscriber_id.in_(inactive))
        .values(status="skipped", updated_at=now())
    )
    return int(result.rowcount or 0)


def delivery_counts(conn: Connection, digest_id: int) -> dict[str, int]:
    query = (
        sa.select(deliveries.c.status, sa.func.count())
        .where(deliveries.c.digest_id == digest_id)
        .group_by(deliveries.c.status)
    )
    return {status: int(count) for status, count in conn.execute(query)}


def mark_bounced(conn: Connection, subscriber_ids: Sequence[int], threshold: int) -> list[int]:
    """Mark bounced those of these subscribers whose last `threshold` deliveries all failed.

    Failures count since the subscriber's latest sent delivery, so one good delivery
    resets the count. Returns the ids that were marked.
    """
    if not subscriber_ids:
        return []
    later = deliveries.alias("later")
    last_sent = (
        sa.select(sa.func.max(later.c.updated_at))
        .where(later.c.subscriber_id == deliveries.c.subscriber_id, later.c.status == "sent")
        .scalar_subquery()
    )
    query = (
        sa.select(deliveries.c.subscriber_id)
        .where(deliveries.c.subscriber_id.in_(list(subscriber_ids)))
        .where(deliveries.c.status == "failed")
        .where(sa.or_(last_sent.is_(None), deliveries.c.updated_at > last_sent))
        .group_by(deliveries.c.subscriber_id)
        .having(sa.func.count() >= threshold)
    )
    ids = [int(sid) for sid in conn.execute(query).scalars()]
    if ids:
        conn.execute(
            subscribers.update()
            .where(subscribers.c.id.in_(ids), subscribers.c.status == "active")
            .values(status="bounced", status_changed_at=now())
        )
    return ids


def latest_digest(conn: Connection, list_name: str) -> dict[str, Any] | None:
    """The most recently composed digest of this list, or None."""
    row = (
        conn.execute(
            sa.select(digests)
            .where(digests.c.list_name == list_name)
            .order_by(digests.c.created_at.desc(), digests.c.id.desc())
            .limit(1)
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


def digest_articles(conn: Connection, digest_id: int) -> list[tuple[Article, Summary]]:
    query = (
        sa.select(
            articles,
            sources.c.name.label("source_name"),
            digest_items.c.lead,
            digest_items.c.quotes,
        )
        .join(digest_items, digest_items.c.article_id == articles.c.id)
        .join(sources, sources.c.id == articles.c.source_id)
        .where(digest_items.c.digest_id == digest_id)
        .order_by(digest_items.c.position)
    )
    return [
        (
            _article_from_row(row),
            Summary(row.lead, tuple(Quote(q["text"], q["speaker"]) for q in row.quotes)),
        )
        for row in conn.execute(query)
    ]


# -- subscribers -----------------------------------------------------------------------


def _subscriber_from_row(row: Any) -> Subscriber:
    return Subscriber(
        id=row.id, email=row.email, name=row.name, topics=tuple(row.topics), status=row.status
    )


def find_subscriber(conn: Connection, email: str) -> Subscriber | None:
    row = conn.execute(sa.select(subscribers).where(subscribers.c.email == email)).first()
    return _subscriber_from_row(row) if row else None


def get_subscriber(conn: Connection, subscriber_id: int) -> Subscriber | None:
    row = conn.execute(sa.select(subscribers).where(subscribers.c.id == subscriber_id)).first()
    return _subscriber_from_row(row) if row else None


def insert_subscriber(
    conn: Connection, email: str, name: str | None, topics: Sequence[str], status: str
) -> int:
    stamp = now()
    result = conn.execute(
        subscribers.insert().values(
            email=email,
            name=name,
            topics=list(topics),
            status=status,
            created_at=stamp,
            status_changed_at=stamp,
        )
    )
    subscriber_id = _new_id(result)
    record_event(conn, subscriber_id, status)
    return subscriber_id


def update_subscriber(conn: Connection, subscriber_id: int, **values: Any) -> None:
    if "status" in values:
        values["status_changed_at"] = now()
        record_event(conn, subscriber_id, values["status"])
    conn.execute(subscribers.update().where(subscribers.c.id == subscriber_id).values(**values))


def record_event(conn: Connection, subscriber_id: int, event: str) -> None:
    conn.execute(
        subscriber_events.insert().values(subscriber_id=subscriber_id, event=event, at=now())
    )


def subscriber_history(conn: Connection, subscriber_id: int) -> list[tuple[str, datetime]]:
    """(event, when) for one subscriber, oldest first."""
    query = (
        sa.select(subscriber_events.c.event, subscriber_events.c.at)
        .where(subscriber_events.c.subscriber_id == subscriber_id)
        .order_by(subscriber_events.c.at, subscriber_events.c.id)
    )
    return [(row.event, row.at) for row in conn.execute(query)]


def last_event_at(conn: Connection, subscriber_id: int, event: str) -> datetime | None:
    query = sa.select(sa.func.max(subscriber_events.c.at)).where(
        subscriber_events.c.subscriber_id == subscriber_id, subscriber_events.c.event == event
    )
    value = conn.scalar(query)
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # SQLite hands back naive datetimes
    return value if isinstance(value, datetime) else None


def list_subscribers(conn: Connection, status: str | None = None) -> list[Subscriber]:
    query = sa.select(subscribers).order_by(subscribers.c.email)
    if status:
        query = query.where(subscribers.c.status == status)
    return [_subscriber_from_row(row) for row in conn.execute(query)]


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


# -- the schedule: leases, digests left half-sent --------------------------------------


def acquire_lease(conn: Connection, name: str, owner: str, ttl: float) -> dict[str, Any]:
    """Take the named lease if it is free or expired; return whoever holds it now."""
    stamp = now()
    expires = stamp + timedelta(seconds=ttl)
    taken = conn.execute(
        leases.update()
        .where(leases.c.name == name, leases.c.expires_at < stamp)
        .values(owner=owner, acquired_at=stamp, expires_at=expires)
    )
    if not taken.rowcount:
        try:
            with conn.begin_nested():
                conn.execute(
                    leases.insert().values(
                        name=name, owner=owner, acquired_at=stamp, expires_at=expires
                    )
                )
        except IntegrityError:
            pass  # someone else holds it
    row = conn.execute(sa.select(leases).where(leases.c.name == name)).mappings().one()
    return dict(row)


def renew_lease(conn: Connection, name: str, owner: str, ttl: float) -> bool:
    """Push the expiry of our lease forward; False if it is no longer ours."""
    result = conn.execute(
        leases.update()
        .where(leases.c.name == name, leases.c.owner == owner)
        .values(expires_at=now() + timedelta(seconds=ttl))
    )
    return bool(result.rowcount)


def release_lease(conn: Connection, name: str, owner: str) -> None:
    conn.execute(leases.delete().where(leases.c.name == name, leases.c.owner == owner))


def lease_holder(conn: Connection, name: str) -> dict[str, Any] | None:
    """The unexpired holder of the named lease, if any."""
    query = sa.select(leases).where(leases.c.name == name, leases.c.expires_at >= now())
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def unfinished_digests(conn: Connection, list_name: str) -> list[dict[str, Any]]:
    """Digests of the list that still have pending deliveries, oldest first."""
    pending = sa.select(deliveries.c.digest_id).where(deliveries.c.status == "pending")
    query = (
        sa.select(digests.c.id, digests.c.key, digests.c.day)
        .where(digests.c.list_name == list_name, digests.c.id.in_(pending))
        .order_by(digests.c.day, digests.c.id)
    )
    return [dict(row) for row in conn.execute(query).mappings()]


def subscribers_by_email(conn: Connection, emails: Sequence[str]) -> dict[str, Subscriber]:
    """The subscribers among these addresses, by address: one query for a whole chunk."""
    if not emails:
        return {}
    rows = conn.execute(sa.select(subscribers).where(subscribers.c.email.in_(list(emails))))
    found = (_subscriber_from_row(row) for row in rows)
    return {s.email: s for s in found}


def insert_subscribers(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Add many subscribers in one statement (email, name, topics, status per row)."""
    if not rows:
        return
    stamp = now()
    conn.execute(
        subscribers.insert(),
        [{**row, "created_at": stamp, "status_changed_at": stamp} for row in rows],
    )
    conn.execute(
        subscriber_events.insert().from_select(
            ["subscriber_id", "event", "at"],
            sa.select(subscribers.c.id, subscribers.c.status, subscribers.c.created_at).where(
                subscribers.c.email.in_([row["email"] for row in rows])
            ),
        )
    )


def iter_subscribers(
    conn: Connection, status: str | None = None, topic: str | None = None, batch: int = 1000
) -> Iterator[Subscriber]:
    """Subscribers by address, streamed in batches so a long list never sits in memory."""
    after = ""
    while True:
        query = sa.select(subscribers).where(subscribers.c.email > after)
        if status:
            query = query.where(subscribers.c.status == status)
        rows = conn.execute(query.order_by(subscribers.c.email).limit(batch)).all()
        if not rows:
            return
        for row in rows:
            subscriber = _subscriber_from_row(row)
            if topic is None or topic.lower() in subscriber.topics:
                yield subscriber
        after = rows[-1].email


def subscriber_counts(conn: Connection) -> dict[str, int]:
    query = sa.select(subscribers.c.status, sa.func.count()).group_by(subscribers.c.status)
    return {status: int(count) for status, count in conn.execute(query)}


def subscriber_delivery_counts(conn: Connection, subscriber_id: int) -> dict[str, int]:
    query = (
        sa.select(deliveries.c.status, sa.func.count())
        .where(deliveries.c.subscriber_id == subscriber_id)
        .group_by(deliveries.c.status)
    )
    return {status: int(count) for status, count in conn.execute(query)}
