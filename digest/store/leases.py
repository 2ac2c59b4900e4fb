"""Leases (one process delivering at a time) and digests left half-sent."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from digest.store.schema import (
    deliveries,
    digests,
    insert_or_merge,
    leases,
    now,
)

# -- the schedule: leases, digests left half-sent --------------------------------------


def acquire_lease(conn: Connection, name: str, owner: str, ttl: float) -> dict[str, Any]:
    """Take the named lease if it is free or expired; return whoever holds it now."""
    stamp = now()
    claim = insert_or_merge(conn, leases).values(
        name=name, owner=owner, acquired_at=stamp, expires_at=stamp + timedelta(seconds=ttl)
    )
    conn.execute(
        claim.on_conflict_do_update(
            index_elements=[leases.c.name],
            set_={c: claim.excluded[c] for c in ("owner", "acquired_at", "expires_at")},
            where=leases.c.expires_at < stamp,  # a held lease stays with its holder
        )
    )
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
