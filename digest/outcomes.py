"""How each issue did: what went out, who left in the week after it, what was clicked.

Counted from the ledger (sent, failed, pending) and from the subscribers' status history:
a reader of an issue who bounced, complained or unsubscribed within seven days of it is
counted against that issue, however the news arrived (a reply to the one-click link, a
provider webhook, a bounce report). With click tracking on, each story's clicks are the
readers who followed its link at least once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from digest import store
from digest.store import StoryClicks
from digest.store.schema import deliveries, digests, subscriber_events

AFTERMATH = timedelta(days=7)
LEFT = ("bounced", "complained", "unsubscribed")


@dataclass(frozen=True, slots=True)
class IssueOutcome:
    key: str
    composed_at: datetime
    deliveries: dict[str, int] = field(default_factory=dict)  # sent, failed, pending ...
    left: dict[str, int] = field(default_factory=dict)  # bounced, complained, unsubscribed
    stories: tuple[StoryClicks, ...] = ()  # the clicked stories, most clicked first
    clickers: int = 0  # readers who clicked at least one story

    @property
    def sent(self) -> int:
        return self.deliveries.get("sent", 0)

    @property
    def clicks(self) -> int:
        """Clicks on all stories, each reader counted once per story."""
        return sum(story.clicks for story in self.stories)


def issue_outcomes(engine: Engine, list_name: str, last: int = 5) -> list[IssueOutcome]:
    """The last `last` issues of a list, newest first, with their figures."""
    with store.transaction(engine) as conn:
        rows = conn.execute(
            sa.select(digests.c.id, digests.c.key, digests.c.created_at)
            .where(digests.c.list_name == list_name)
            .order_by(digests.c.created_at.desc(), digests.c.id.desc())
            .limit(last)
        ).all()
        return [_outcome(conn, *row) for row in rows]


def issue_outcome(engine: Engine, key: str) -> IssueOutcome | None:
    """The figures of the digest with this key; None when there is none."""
    with store.transaction(engine) as conn:
        row = store.find_digest(conn, key)
        return None if row is None else _outcome(conn, row.id, row.key, row.created_at)


def _outcome(conn: Connection, digest_id: int, key: str, composed_at: datetime) -> IssueOutcome:
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
    return IssueOutcome(
        key,
        composed_at,
        counts,
        {event: int(n) for event, n in left},
        tuple(store.story_clicks(conn, digest_id)),
        store.readers_who_clicked(conn, digest_id),
    )
