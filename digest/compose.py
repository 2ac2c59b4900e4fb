"""Compose: which articles go into a digest, and in what order. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime
from zoneinfo import ZoneInfo

from digest.models import Article, Digest, DigestItem, Summary


def digest_key(list_name: str, moment: datetime, timezone: str) -> tuple[str, date]:
    """The digest's unique key and date, e.g. ("daily/2026-11-28", date(2026, 11, 28)).

    The date is taken in the configured time zone: 07:00 in Seoul is still the previous
    day in UTC, and the key must follow the reader's calendar.
    """
    day = moment.astimezone(ZoneInfo(timezone)).date()
    return f"{list_name}/{day.isoformat()}", day


def compose_digest(
    *,
    key: str,
    name: str,
    day: date,
    items: Sequence[tuple[Article, Summary]],
    source_order: Sequence[str] = (),
    intro: str = "",
) -> Digest:
    """Group articles by source (in configured order), newest first within a source."""
    rank = {source: i for i, source in enumerate(source_order)}

    def order(pair: tuple[Article, Summary]) -> tuple[int, str, float]:
        article = pair[0]
        stamp = article.published_at.timestamp() if article.published_at else 0.0
        return (rank.get(article.source, len(rank)), article.source, -stamp)

    ordered = sorted(items, key=order)
    return Digest(
        key=key,
        name=name,
        day=day,
        items=tuple(DigestItem(article, summary) for article, summary in ordered),
        intro=intro,
    )


def for_topics(digest: Digest, topics: Sequence[str]) -> Digest:
    """The digest a subscriber with these topics receives; no topics means everything.

    Topics are source tags: an article is in when one of its tags is among the topics.
    """
    if not topics:
        return digest
    wanted = {t.lower() for t in topics}
    items = tuple(i for i in digest.items if wanted & {t.lower() for t in i.article.tags})
    return replace(digest, items=items)
