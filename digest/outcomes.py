"""How each issue did: what went out, and who left in the week after it.

Counted from the ledger (sent, failed, pending) and from the subscribers' status history:
a reader of an issue who bounced, complained or unsubscribed within seven days of it is
counted against that issue, however the news arrived (a reply to the one-click link, a
provider webhook, a bounce report).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from digest import store
from digest.store.schema import deliveries, digests, subscriber_events

AFTERMATH = timedelta(days=7)
LEFT = ("bounced", "complained", "unsubscribed")


@dataclass(frozen=True, slots=True)
class IssueOutcome:
    key: str
    composed_at: datetime
    deliveries: dict[str, int] = field(default_factory=dict)  # sent, failed, pending ...
    left: dict[str, int] = field(default_factory=dict)  # bounced, complained, unsubscribed

    @property
    def sent(self) -> int:
        return self.deliveries.get("sent", 0)


def issue_outcomes(engine: Engine, list_name: str, last: int = 5) -> list[IssueOutcome]:
    """The last `last` issues of a list, newest first, with their figures."""
    with store.transaction(engine) as conn:
        rows = conn.execute(
            sa.select(digests.c.id, digests.c.key, digests.c.created_at)
            .where(digests.c.list_name == list_name)
            .order_by(digests.c.created_at.desc(), digests.c.id.desc())
            .limit(last)
        ).all()
        outcomes = []
        for digest_id, key, composed_at in rows:
            counts = store.delivery_counts(conn, digest_id)
            readers = sa.select(deliveries.c.subscriber_id).where(
                deliveries.c.digest_id == digest_id,
                deliveries.c.status.notin_(("pending", "skipped")),
            )
            left = conn.execute(
                sa.select(
                    subscriber_events.c.event,
                    sa.func.count(sa.distinct(subscriber_events.c.subscriber_id)),
                )
                .where(
                    subscriber_events.c.subscriber_id.in_(readers),
                    subscriber_events.c.event.in_(LEFT),
                    subscriber_events.c.at >= composed_at,
                    subscriber_events.c.at < composed_at + AFTERMATH,
                )
                .group_by(subscriber_events.c.event)
            ).all()
            outcomes.append(
                IssueOutcome(key, composed_at, counts, {event: int(n) for event, n in left})
            )
    return outcomes
