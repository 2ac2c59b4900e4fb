"""Digests, one per key, and the deliveries ledger: one row per digest and subscriber."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from digest.models import Article, DeliveryResult, Quote, StoredDigest, Subscriber, Summary
from digest.store.articles import _article_from_row
from digest.store.people import _subscriber_from_row, record_event
from digest.store.schema import (
    UTCDateTime,
    articles,
    deliveries,
    digest_items,
    digests,
    insert_or_merge,
    now,
    sources,
    subscribers,
)

# -- digests and the deliveries ledger -------------------------------------------------


def _stored(row: Any) -> StoredDigest | None:
    return StoredDigest(**row) if row else None


def find_digest(conn: Connection, key: str) -> StoredDigest | None:
    return _stored(conn.execute(sa.select(digests).where(digests.c.key == key)).mappings().first())


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
    audience: str = "daily",
) -> int | None:
    """Insert the digest, its items and one pending delivery per reader of it.

    Its readers are the active subscribers who take this list (`audience`: daily or
    weekly) and are not pausing. Returns None when a digest with this key already exists
    (someone else composed it).
    """
    # A second composer of the same key (another host, a moment later) waits here until the
    # first commits, then inserts nothing.
    inserted = conn.execute(
        insert_or_merge(conn, digests)
        .values(
            key=key,
            list_name=list_name,
            day=day,
            subject=subject,
            html=html,
            text=text,
            created_at=now(),
        )
        .on_conflict_do_nothing(index_elements=[digests.c.key])
        .returning(digests.c.id)
    )
    digest_id: int | None = inserted.scalar()
    if digest_id is None:
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
                sa.literal(now(), UTCDateTime()),
            )
            .where(*readers_of(audience, now()))
            # The rows a ledger names stay until this commits: on PostgreSQL the ledger
            # has no foreign keys (one check per row cost most of composing at 1,000,000),
            # and one lock in the scan costs a fraction of that.
            .with_for_update(read=True, key_share=True),
        )
    )
    if conn.dialect.name == "postgresql":
        # Planned on the statistics of a ledger without these rows, the first claim and the
        # skip of leavers each scanned all of them (2 s each at 1,000,000); sampling them
        # takes 0.1 s. It sees this transaction's rows, and skips with a warning for a
        # role that does not own the table.
        conn.exec_driver_sql("ANALYZE deliveries")
    return digest_id


def readers_of(audience: str, moment: datetime) -> tuple[sa.ColumnElement[bool], ...]:
    """Who a digest of this list, composed at `moment`, goes to."""
    wants = subscribers.c.wants_weekly if audience == "weekly" else subscribers.c.wants_daily
    paused_until = subscribers.c.paused_until
    return (
        subscribers.c.status == "active",
        wants,
        sa.or_(paused_until.is_(None), paused_until <= sa.literal(moment, UTCDateTime())),
    )


def _went_out(list_name: str) -> Any:
    went_out = sa.exists().where(
        deliveries.c.digest_id == digests.c.id, deliveries.c.status == "sent"
    )
    return sa.and_(digests.c.list_name == list_name, went_out)


def sent_digests(
    conn: Connection, list_name: str, limit: int = 500, offset: int = 0
) -> list[dict[str, Any]]:
    """Digests of a list that went out to at least one subscriber, newest first."""
    query = (
        sa.select(
            digests.c.id, digests.c.key, digests.c.day, digests.c.subject, digests.c.created_at
        )
        .where(_went_out(list_name))
        .order_by(digests.c.day.desc(), digests.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [dict(row) for row in conn.execute(query).mappings()]


def count_sent_digests(conn: Connection, list_name: str) -> int:
    """How many digests of a list went out (for the archive's pages)."""
    query = sa.select(sa.func.count()).select_from(digests).where(_went_out(list_name))
    return int(conn.scalar(query) or 0)


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


def record_deliveries(conn: Connection, digest_id: int, results: Sequence[DeliveryResult]) -> None:
    """Write each subscriber's new delivery state for one batch."""
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


def latest_digest(conn: Connection, list_name: str) -> StoredDigest | None:
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
    return _stored(row)


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


def mark_left(conn: Connection, statuses: dict[int, str]) -> None:
    """Set the status a provider reported for these subscribers (unsubscribed ...).

    Only active subscribers change: someone who left meanwhile keeps their own status.
    """
    for subscriber_id, status in statuses.items():
        changed = conn.execute(
            subscribers.update()
            .where(subscribers.c.id == subscriber_id, subscribers.c.status == "active")
            .values(status=status, status_changed_at=now())
        )
        if changed.rowcount:
            record_event(conn, subscriber_id, status)
