"""Claims on pending deliveries: several workers, on one host or many, share a digest.

A worker claims a batch of pending rows for itself until a moment a little ahead, renews
its claims while it sends, and records each row as sent or failed. Rows under a live claim
are nobody else's; a worker that dies stops renewing, and its rows are claimed again once
the claim expires (the pattern of Oban, good_job and procrastinate).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from digest.models import Subscriber
from digest.store.people import _subscriber_from_row
from digest.store.schema import deliveries, digests, now, subscribers


def claim_deliveries(
    conn: Connection, digest_id: int, owner: str, limit: int, ttl: float, after: int = 0
) -> list[Subscriber]:
    """Claim up to `limit` pending deliveries of the digest that no live claim holds.

    Returns the claimed subscribers who are still active, by id. On PostgreSQL the rows
    are picked FOR UPDATE SKIP LOCKED: a worker claiming at the same moment passes over
    the rows this one is taking instead of waiting for them (or taking them too). SQLite
    has one writer at a time, so the single UPDATE is atomic there by itself.

    `after` is the last subscriber id this sender claimed: both stores walk the ledger's
    key in subscriber order and filter by status, so without it each claim steps over
    every row sent before (0.3 s a batch half-way through 1,000,000, quadratic in all).
    """
    stamp = now()
    free = sa.or_(deliveries.c.claimed_until.is_(None), deliveries.c.claimed_until < stamp)
    pick = (
        sa.select(deliveries.c.subscriber_id)
        .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
        .where(deliveries.c.digest_id == digest_id, deliveries.c.status == "pending", free)
        # Only active readers: a batch of people who left meanwhile would come back empty,
        # which a sender takes for the end of the digest.
        .where(subscribers.c.status == "active")
        # Said of both tables: PostgreSQL carries equalities across a join, not ranges, and
        # would merge-join the subscribers from the first one.
        .where(deliveries.c.subscriber_id > after, subscribers.c.id > after)
        .order_by(deliveries.c.subscriber_id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True, of=deliveries)
    # WITH picked AS (...) UPDATE ... FROM picked: the rows are chosen once. As a sub-select
    # of `IN`, PostgreSQL took all 30 pending rows of a test ledger despite its LIMIT 10.
    picked = pick.cte("picked")
    claimed = (
        conn.execute(
            deliveries.update()
            .where(deliveries.c.digest_id == digest_id)
            .where(deliveries.c.subscriber_id == picked.c.subscriber_id)
            .values(claimed_by=owner, claimed_until=stamp + timedelta(seconds=ttl))
            .returning(deliveries.c.subscriber_id)
        )
        .scalars()
        .all()
    )
    if not claimed:
        return []
    query = (
        sa.select(subscribers)
        .where(subscribers.c.id.in_(claimed), subscribers.c.status == "active")
        .order_by(subscribers.c.id)
    )
    return [_subscriber_from_row(row) for row in conn.execute(query)]


def renew_claims(conn: Connection, owner: str, ttl: float) -> int:
    """Push the expiry of the owner's claims on rows still pending; return how many.

    On PostgreSQL the rows another transaction holds are passed over (SKIP LOCKED): they
    are the sender's own rows being recorded as sent, which need no renewal. Waiting for
    them deadlocked with that recording, which takes the same rows in another order (seen
    at 1,000,000 with two workers); a row whose recording failed is renewed next time.
    """
    # 'pending' as a literal: the partial index of claims (_v12) names it so.
    pending = deliveries.c.status == sa.literal_column("'pending'")
    mine = sa.and_(deliveries.c.claimed_by == owner, pending)
    update = deliveries.update().values(claimed_until=now() + timedelta(seconds=ttl))
    if conn.dialect.name == "postgresql":
        free = (
            sa.select(deliveries.c.digest_id, deliveries.c.subscriber_id)
            .where(mine)
            .with_for_update(skip_locked=True)
            .cte("free")
        )
        update = update.where(
            deliveries.c.digest_id == free.c.digest_id,
            deliveries.c.subscriber_id == free.c.subscriber_id,
        )
    else:
        update = update.where(mine)
    result = conn.execute(update)
    return int(result.rowcount or 0)


def live_senders(conn: Connection, window: float = 60.0) -> list[dict[str, Any]]:
    """Senders holding live claims: owner, digest key, rows claimed, rows sent lately.

    `sent` counts the owner's rows recorded as sent in the last `window` seconds (a row
    keeps its claimant when it is sent), for a rate.
    """
    stamp = now()
    claimed = (
        sa.select(
            deliveries.c.claimed_by.label("owner"),
            digests.c.key,
            sa.func.count().label("claimed"),
        )
        .join(digests, digests.c.id == deliveries.c.digest_id)
        .where(deliveries.c.status == "pending", deliveries.c.claimed_until >= stamp)
        .group_by(deliveries.c.claimed_by, digests.c.key)
        .order_by(deliveries.c.claimed_by, digests.c.key)
    )
    senders = [dict(row) for row in conn.execute(claimed).mappings()]
    if not senders:
        return []
    recent = (
        sa.select(deliveries.c.claimed_by, sa.func.count())
        .where(deliveries.c.status == "sent")
        .where(deliveries.c.updated_at >= stamp - timedelta(seconds=window))
        .where(deliveries.c.claimed_by.in_({s["owner"] for s in senders}))
        .group_by(deliveries.c.claimed_by)
    )
    sent = {owner: int(count) for owner, count in conn.execute(recent)}
    return [{**s, "sent": sent.get(s["owner"], 0)} for s in senders]


def release_claims(conn: Connection, owner: str) -> int:
    """Give back the owner's claims on rows still pending (a clean stop); return how many."""
    result = conn.execute(
        deliveries.update()
        .where(deliveries.c.claimed_by == owner, deliveries.c.status == "pending")
        .values(claimed_by=None, claimed_until=None)
    )
    return int(result.rowcount or 0)
