"""Bounce reports: which delivery they name, and what they change for the subscriber."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from digest.store.people import record_event, update_subscriber
from digest.store.schema import bounces, deliveries, insert_or_merge, now, subscribers

BounceOutcome = Literal["duplicate", "recorded", "marked_bounced"]


@dataclass(frozen=True, slots=True)
class BouncedDelivery:
    """The delivery (or, without one, only the subscriber) a bounce is about."""

    subscriber_id: int
    digest_id: int | None


def delivery_by_message_id(conn: Connection, message_id: str) -> BouncedDelivery | None:
    """The delivery that sent the message with this Message-ID."""
    row = conn.execute(
        sa.select(deliveries.c.subscriber_id, deliveries.c.digest_id)
        .where(deliveries.c.message_id == message_id)
        .limit(1)
    ).first()
    return BouncedDelivery(row.subscriber_id, row.digest_id) if row else None


def delivery_by_address(conn: Connection, address: str) -> BouncedDelivery | None:
    """The subscriber with this address (any case) and their latest delivered digest."""
    subscriber_id = conn.scalar(
        sa.select(subscribers.c.id).where(sa.func.lower(subscribers.c.email) == address.lower())
    )
    return None if subscriber_id is None else latest_delivery(conn, int(subscriber_id))


def latest_delivery(conn: Connection, subscriber_id: int) -> BouncedDelivery | None:
    """The subscriber and their latest delivered digest (None if they are not there)."""
    if conn.scalar(sa.select(subscribers.c.id).where(subscribers.c.id == subscriber_id)) is None:
        return None
    digest_id = conn.scalar(
        sa.select(deliveries.c.digest_id)
        .where(deliveries.c.subscriber_id == subscriber_id)
        .where(deliveries.c.status.in_(("sent", "soft_bounced", "bounced")))
        .order_by(deliveries.c.updated_at.desc(), deliveries.c.digest_id.desc())
        .limit(1)
    )
    return BouncedDelivery(subscriber_id, digest_id)


def record_bounce(
    conn: Connection,
    *,
    report_id: str,
    target: BouncedDelivery,
    hard: bool,
    address: str,
    status: str,
    diagnostic: str,
    soft_threshold: int,
) -> BounceOutcome:
    """Record one failure of a report on the delivery and the subscriber's history.

    A hard failure marks an active subscriber bounced at once; soft ones do when
    `soft_threshold` digests have soft-bounced since the subscriber last became active.
    A report already recorded for this subscriber changes nothing.
    """
    inserted = conn.execute(
        insert_or_merge(conn, bounces)
        .values(
            report_id=report_id,
            subscriber_id=target.subscriber_id,
            digest_id=target.digest_id,
            hard=hard,
            address=address[:320],
            status=status,
            diagnostic=diagnostic,
            at=now(),
        )
        .on_conflict_do_nothing(index_elements=[bounces.c.report_id, bounces.c.subscriber_id])
        .returning(bounces.c.id)
    ).scalar()
    if inserted is None:
        return "duplicate"
    if target.digest_id is not None:
        row = deliveries.update().where(
            deliveries.c.digest_id == target.digest_id,
            deliveries.c.subscriber_id == target.subscriber_id,
        )
        if not hard:  # a later soft report never hides an earlier hard one
            row = row.where(deliveries.c.status != "bounced")
        error = " ".join(part for part in ("bounce", status, diagnostic) if part)
        conn.execute(
            row.values(status="bounced" if hard else "soft_bounced", error=error, updated_at=now())
        )
    record_event(conn, target.subscriber_id, "hard_bounce" if hard else "soft_bounce")
    current = conn.execute(
        sa.select(subscribers.c.status, subscribers.c.status_changed_at).where(
            subscribers.c.id == target.subscriber_id
        )
    ).one()
    if current.status != "active":
        return "recorded"
    if not hard:
        soft = _soft_bounces_since(conn, target.subscriber_id, current.status_changed_at)
        if soft < soft_threshold:
            return "recorded"
    update_subscriber(conn, target.subscriber_id, status="bounced")
    return "marked_bounced"


def _soft_bounces_since(conn: Connection, subscriber_id: int, since: datetime) -> int:
    # A delay warning and the final report of the same digest are one soft bounce, not two;
    # reports that name no digest count one each.
    per_digest = sa.func.coalesce(bounces.c.digest_id, -bounces.c.id)
    count = conn.scalar(
        sa.select(sa.func.count(sa.distinct(per_digest))).where(
            bounces.c.subscriber_id == subscriber_id,
            bounces.c.hard.is_(False),
            bounces.c.at >= since,
        )
    )
    return int(count or 0)


def subscriber_bounces(conn: Connection, subscriber_id: int) -> list[dict[str, object]]:
    """A subscriber's recorded bounces, oldest first."""
    query = (
        sa.select(bounces.c.report_id, bounces.c.digest_id, bounces.c.hard, bounces.c.status)
        .where(bounces.c.subscriber_id == subscriber_id)
        .order_by(bounces.c.at, bounces.c.id)
    )
    return [dict(row) for row in conn.execute(query).mappings()]
