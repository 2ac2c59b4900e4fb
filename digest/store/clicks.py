"""Clicks on story links: the stored URL a click goes to, one row per reader and story."""

from __future__ import annotations

from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from digest.store.schema import (
    articles,
    clicks,
    digest_items,
    insert_or_merge,
    now,
    subscribers,
)


class StoryClicks(NamedTuple):
    """One story of a digest and how many readers clicked it."""

    article_id: int
    title: str
    url: str | None
    clicks: int


def story_url(conn: Connection, digest_id: int, article_id: int) -> str | None:
    """The URL of this story as stored for this digest; None when it is not in the digest."""
    return conn.execute(
        sa.select(articles.c.url)
        .join(digest_items, digest_items.c.article_id == articles.c.id)
        .where(digest_items.c.digest_id == digest_id, digest_items.c.article_id == article_id)
    ).scalar_one_or_none()


def record_click(conn: Connection, digest_id: int, article_id: int, subscriber_id: int) -> bool:
    """Count this reader's click on this story once; True when it was their first.

    A reader deleted since (or the made-up reader of a test copy) counts nothing.
    """
    known = sa.select(subscribers.c.id).where(subscribers.c.id == subscriber_id)
    if conn.execute(known).first() is None:
        return False
    statement = (
        insert_or_merge(conn, clicks)
        .values(digest_id=digest_id, article_id=article_id, subscriber_id=subscriber_id, at=now())
        .on_conflict_do_nothing(index_elements=["digest_id", "article_id", "subscriber_id"])
    )
    return bool(conn.execute(statement).rowcount)


def story_clicks(conn: Connection, digest_id: int) -> list[StoryClicks]:
    """The stories of a digest that were clicked, most clicked first."""
    count = sa.func.count(clicks.c.subscriber_id).label("clicks")
    rows = conn.execute(
        sa.select(articles.c.id, articles.c.title, articles.c.url, count)
        .join(clicks, clicks.c.article_id == articles.c.id)
        .where(clicks.c.digest_id == digest_id)
        .group_by(articles.c.id, articles.c.title, articles.c.url)
        .order_by(count.desc(), articles.c.id)
    ).all()
    return [StoryClicks(int(i), str(t), u, int(n)) for i, t, u, n in rows]


def readers_who_clicked(conn: Connection, digest_id: int) -> int:
    """How many readers of the digest clicked at least one story."""
    query = sa.select(sa.func.count(sa.distinct(clicks.c.subscriber_id))).where(
        clicks.c.digest_id == digest_id
    )
    return int(conn.execute(query).scalar_one())
