"""Sources and their health; articles, stored once each."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from digest.models import Article
from digest.store.schema import (
    articles,
    digest_items,
    digests,
    insert_or_merge,
    now,
    sources,
)

# -- sources ---------------------------------------------------------------------------


def ensure_source(conn: Connection, name: str, kind: str, location: str) -> int:
    """The id of the named source, added or updated to this kind and location."""
    # One statement: two hosts collecting a new source at once must not both insert it.
    add = insert_or_merge(conn, sources).values(
        name=name, kind=kind, location=location, consecutive_failures=0
    )
    conn.execute(
        add.on_conflict_do_update(
            index_elements=[sources.c.name], set_={"kind": kind, "location": location}
        )
    )
    return int(conn.execute(sa.select(sources.c.id).where(sources.c.name == name)).scalar_one())


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
            **_article_values(article, fingerprint),
            source_id=source_id,
            url=article.url,
            guid=article.guid,
            tags=list(article.tags),
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


def _no_nul(text: str | None) -> str | None:
    # PostgreSQL's text cannot hold NUL, which SQLite stores; scraped text may carry one
    # (a .txt file, a JSON Feed's "\u0000"), and it is never part of what a reader sees.
    return text.replace("\x00", "") if text else text


def _article_values(article: Article, fingerprint: str) -> dict[str, Any]:
    return {
        "fingerprint": fingerprint,
        "title": _no_nul(article.title),
        "subtitle": _no_nul(article.subtitle),
        "byline": _no_nul(article.byline),
        "paragraphs": [_no_nul(p) for p in article.paragraphs],
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
    known = _Known(_known_rows(conn, source_id, found), source_id)
    fresh: list[tuple[Article, str]] = []
    seen = 0
    refresh: list[tuple[int, Article, str]] = []
    for article, fp in found:
        verdict = known.sort(article, fp)
        if verdict == "new":
            fresh.append((article, fp))
        else:
            seen += 1
            if isinstance(verdict, int):
                refresh.append((verdict, article, fp))
    for article_id, article, fp in refresh:
        conn.execute(
            articles.update()
            .where(articles.c.id == article_id)
            .values(**_article_values(article, fp))
        )
    new, lost = _insert_new(conn, source_id, fresh)
    return AddCounts(new, seen + lost, len(refresh))


def _known_rows(
    conn: Connection, source_id: int, found: Sequence[tuple[Article, str]]
) -> list[Any]:
    """Stored articles sharing a URL, a GUID (same source) or a fingerprint with `found`."""
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
    return rows


class _Known:
    """What is stored, plus what this batch has added so far: tells new from seen."""

    def __init__(self, rows: list[Any], source_id: int) -> None:
        self.source_id = source_id
        self.by_url = {r.url: r for r in rows if r.url}
        self.by_guid = {r.guid: r for r in rows if r.guid and r.source_id == source_id}
        self.taken = {r.fingerprint for r in rows}
        # Keys of this batch, so a feed's own duplicates count as seen.
        self.urls: set[str] = set()
        self.guids: set[str] = set()

    def sort(self, article: Article, fp: str) -> Literal["new", "seen"] | int:
        """'new', 'seen', or the id of a stored article of this source to refresh."""
        match = (self.by_url.get(article.url) if article.url else None) or (
            self.by_guid.get(article.guid) if article.guid else None
        )
        if match is not None:
            changed = match.source_id == self.source_id and match.fingerprint != fp
            if changed and fp not in self.taken:
                self.taken.add(fp)
                return int(match.id)
            return "seen"
        if (
            fp in self.taken
            or (article.url and article.url in self.urls)
            or (article.guid and article.guid in self.guids)
        ):
            return "seen"
        self.taken.add(fp)
        if article.url:
            self.urls.add(article.url)
        if article.guid:
            self.guids.add(article.guid)
        return "new"


def _insert_new(
    conn: Connection, source_id: int, fresh: Sequence[tuple[Article, str]]
) -> tuple[int, int]:
    """Insert the new articles; (inserted, lost to another collector meanwhile)."""
    stamp = now()
    rows = [
        {
            **_article_values(article, fp),
            "source_id": source_id,
            "url": article.url,
            "guid": article.guid,
            "tags": list(article.tags),
            "collected_at": stamp,
        }
        for article, fp in fresh
    ]
    if not rows:
        return 0, 0
    try:
        with conn.begin_nested():
            conn.execute(articles.insert(), rows)
        return len(rows), 0
    except IntegrityError:
        pass
    # Another collector stored some of these meanwhile: one at a time, keeping the rest.
    inserted = 0
    for row in rows:
        try:
            with conn.begin_nested():
                conn.execute(articles.insert().values(**row))
            inserted += 1
        except IntegrityError:
            pass
    return inserted, len(rows) - inserted


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
