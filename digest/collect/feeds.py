"""Feed sources: RSS, Atom and JSON Feed through feedparser, from a file or a URL."""

from __future__ import annotations

import calendar
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser
import httpx

from digest import __version__
from digest.collect.dedupe import canonical_url
from digest.collect.html import html_paragraphs
from digest.errors import DigestError
from digest.models import Article

USER_AGENT = f"digest/{__version__} (+https://example.org/digest; newsletter digest generator)"
MAX_BYTES = 10 * 1024 * 1024


def fetch_feed(location: str, timeout: float = 20.0) -> bytes:
    """The raw feed document, from a local path or over HTTP(S)."""
    if location.startswith(("http://", "https://")):
        try:
            response = httpx.get(
                location,
                timeout=timeout,
                follow_redirects=True,
                headers={"User-Agent": USER_AGENT},
            )
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise DigestError(f"Could not fetch {location}: {exc}") from None
        if len(response.content) > MAX_BYTES:
            raise DigestError(f"Feed {location} is larger than {MAX_BYTES} bytes; skipped.")
        return response.content
    path = Path(location)
    if not path.is_file():
        raise DigestError(f"Feed file {path} does not exist; fix its location in the config.")
    return path.read_bytes()


def _published(entry: Any) -> datetime | None:
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    if not parsed:
        return None
    return datetime.fromtimestamp(calendar.timegm(parsed), UTC)


def _body_html(entry: Any) -> str:
    contents = entry.get("content") or []
    best = max((c.get("value", "") for c in contents), key=len, default="")
    return best or entry.get("summary", "")


def parse_feed(data: bytes, source: str, tags: Sequence[str] = ()) -> Iterator[Article]:
    """Yield an article per feed entry; a malformed feed yields whatever could be parsed."""
    parsed = feedparser.parse(data)
    if parsed.bozo and not parsed.entries:
        raise DigestError(f"Feed of {source} could not be parsed ({parsed.get('bozo_exception')}).")
    for entry in parsed.entries:
        paragraphs = tuple(html_paragraphs(_body_html(entry)))
        title = " ".join((entry.get("title") or "").split())
        if not paragraphs or not title:
            continue
        link = entry.get("link")
        yield Article(
            title=title,
            paragraphs=paragraphs,
            source=source,
            url=canonical_url(link) if link else None,
            guid=entry.get("id") or link,
            byline=entry.get("author") or None,
            published_at=_published(entry),
            tags=tuple(tags),
        )
