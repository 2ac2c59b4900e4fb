"""The database: SQLAlchemy Core tables, a versioned migration list, and the queries.

SQLite by default (WAL mode, a file in the data directory); the queries use nothing
SQLite-only, so a PostgreSQL URL works the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
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


def _v1_initial(conn: Connection) -> None:
    for table in metadata.sorted_tables:
        if table.name != "schema_version":
            table.create(conn, checkfirst=True)


# Append a function here to change the schema; never edit one that has shipped.
MIGRATIONS: Sequence[Callable[[Connection], None]] = (_v1_initial,)


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


def record_source_health(conn: Connection, source_id: int, error: str | None) -> None:
    values: dict[str, Any] = {"last_checked_at": now(), "last_error": error}
    if error is None:
        values |= {"last_status": "ok", "consecutive_failures": 0}
    else:
        values |= {
            "last_status": "error",
            "consecutive_failures": sources.c.consecutive_failures + 1,
        }
    conn.execute(sources.update().where(sources.c.id == source_id).values(**values))


def source_health(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(sa.select(sources).order_by(sources.c.name)).mappings()
    return [dict(row) for row in rows]


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


def pending_deliveries(conn: Connection, digest_id: int, limit: int) -> list[Subscriber]:
    """The next batch of subscribers still waiting for this digest and still active."""
    query = (
        sa.select(subscribers)
        .join(deliveries, deliveries.c.subscriber_id == subscribers.c.id)
        .where(deliveries.c.digest_id == digest_id, deliveries.c.status == "pending")
        .where(subscribers.c.status == "active")
        .order_by(subscribers.c.id)
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
    return _new_id(result)


def update_subscriber(conn: Connection, subscriber_id: int, **values: Any) -> None:
    if "status" in values:
        values["status_changed_at"] = now()
    conn.execute(subscribers.update().where(subscribers.c.id == subscriber_id).values(**values))


def list_subscribers(conn: Connection, status: str | None = None) -> list[Subscriber]:
    query = sa.select(subscribers).order_by(subscribers.c.email)
    if status:
        query = query.where(subscribers.c.status == status)
    return [_subscriber_from_row(row) for row in conn.execute(query)]


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
