"""Feed sources: RSS 0.9x/1.0/2.0 and Atom through feedparser, JSON Feed through pydantic.

Parsing is pure (bytes in, entries out); fetching lives in fetch.py. feedparser's own
HTML sanitizer is switched off because every piece of HTML goes through nh3 in html.py
anyway, and nh3 is much faster.
"""

from __future__ import annotations

import calendar
import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import feedparser

from digest.collect.dedupe import canonical_url
from digest.collect.html import html_paragraphs, plain_text
from digest.collect.jsonfeed import looks_like_json, parse_json_feed
from digest.errors import SourceError
from digest.models import Article
from digest.settings import CollectSettings

# The one default User-Agent (collect.user_agent), for callers outside a collection run.
USER_AGENT: str = CollectSettings.model_fields["user_agent"].default
TEASER_WORDS = 80
# Feed chrome after a teaser: "Read more", "Continue reading →", "[…]", WordPress's footer.
# Only whole lines of such phrases: a real last paragraph ("More than 200 came.") stays.
_MORE = re.compile(
    r"^(?:\[?(?:…|\.\.\.)\]?|\(more(?:…|\.\.\.)?\)"
    r"|(?:read more|read on|full story|more|(?:read the (?:full|rest|whole)|continue reading"
    r"|keep reading)\b.{0,60})\s*[»›→>….]*"
    r"|the post .{1,300} appeared first on .{1,120})$",
    re.IGNORECASE,
)
_CUT = re.compile(r"(?:…|\.\.\.|\[…\]|\[\.\.\.\])[\s\"'”’)\]]*$")
# Harmless bozo reasons: the feed was read completely, only its declared type was off.
_BENIGN = ("CharacterEncodingOverride", "NonXMLContentType")
_MAX_KEY = 2000  # the url and guid columns' size


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One entry, as plain text; `teaser` when the body looks like a cut-off excerpt."""

    title: str
    paragraphs: tuple[str, ...]
    link: str | None
    guid: str | None
    byline: str | None
    published_at: datetime | None
    teaser: bool

    def article(self, source: str, tags: Sequence[str] = ()) -> Article:
        return Article(
            title=self.title,
            paragraphs=self.paragraphs,
            source=source,
            url=self.link,
            guid=self.guid,
            byline=self.byline,
            published_at=self.published_at,
            tags=tuple(tags),
        )


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    title: str
    version: str  # feedparser's name ("rss20", "atom10", ...) or "json"
    entries: tuple[FeedEntry, ...]
    problem: str | None = None  # what was ill-formed, when entries were kept regardless


def body_paragraphs(markup: str, title: str) -> tuple[tuple[str, ...], bool]:
    """Paragraphs of an entry body, without "Read more" chrome; and whether it is a teaser."""
    paragraphs = html_paragraphs(markup)
    if paragraphs and paragraphs[0].casefold() == title.casefold():
        paragraphs = paragraphs[1:]
    trimmed = False
    while paragraphs and _MORE.match(paragraphs[-1]):
        paragraphs.pop()
        trimmed = True
    words = sum(len(p.split()) for p in paragraphs)
    cut = bool(paragraphs) and bool(_CUT.search(paragraphs[-1]))
    return tuple(paragraphs), trimmed or cut or words < TEASER_WORDS


def _key(value: str | None) -> str | None:
    value = (value or "").strip()
    if len(value) > _MAX_KEY:  # keep an identity that fits the column
        return "sha256:" + hashlib.sha256(value.encode()).hexdigest()
    return value or None


def _link(value: str | None) -> str | None:
    value = (value or "").strip()
    if not value.startswith(("http://", "https://")):
        return None
    url = canonical_url(value)
    return url if len(url) <= _MAX_KEY else None


def _fallback_title(paragraphs: Sequence[str]) -> str:
    # RSS 0.92 items may have no title; a reader still needs a headline.
    words = " ".join(paragraphs[:1]).split()
    return " ".join(words[:12]) + ("…" if len(words) > 12 else "")


def _entry(title: str, markup: str, **fields: Any) -> FeedEntry | None:
    title = plain_text(title)
    paragraphs, teaser = body_paragraphs(markup, title)
    title = title or _fallback_title(paragraphs)
    if not title or not (paragraphs or fields["link"]):
        return None
    return FeedEntry(title=title, paragraphs=paragraphs, teaser=teaser, **fields)


def _published(entry: Any) -> datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        parsed = entry.get(key)
        if parsed:
            try:
                return datetime.fromtimestamp(calendar.timegm(parsed), UTC)
            except (OverflowError, ValueError, OSError):
                continue
    return None


def _body_html(entry: Any) -> str:
    contents = [c.get("value") or "" for c in entry.get("content") or []]
    best = max(contents, key=len, default="")
    summary = entry.get("summary") or ""
    return best if len(best) >= len(summary) else summary


def _xml_entries(parsed: Any) -> Iterator[FeedEntry]:
    for raw in parsed.entries:
        link = _link(raw.get("link"))
        entry = _entry(
            raw.get("title") or "",
            _body_html(raw),
            link=link,
            guid=_key(raw.get("id")) or link,
            byline=plain_text(raw.get("author") or "") or None,
            published_at=_published(raw),
        )
        if entry is not None:
            yield entry


def _json_feed(data: bytes) -> ParsedFeed:
    try:
        feed, items, problem = parse_json_feed(data)
    except ValueError as exc:
        raise SourceError(f"The document is {exc}.") from None
    entries = []
    for item in items:
        markup = item.content_html or item.content_text or item.summary or ""
        if not item.content_html and (item.content_text or item.summary):
            # Plain text: keep its line breaks as paragraphs, and its "<" as text.
            markup = "".join(f"<p>{_escape(p)}</p>" for p in re.split(r"\n\s*\n", markup))
        link = _link(item.url or item.external_url)
        entry = _entry(
            item.title or "",
            markup,
            link=link,
            guid=_key(item.id) or link,
            byline=item.byline,
            published_at=item.published_at,
        )
        if entry is not None:
            entries.append(entry)
    return ParsedFeed(plain_text(feed.title), "json", tuple(entries), problem)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def parse_feed_document(
    data: bytes, *, content_type: str | None = None, url: str | None = None
) -> ParsedFeed:
    """Entries of an RSS, Atom or JSON feed; an ill-formed feed keeps what could be read.

    Raises DigestError when the document is not a feed at all (an HTML page, an image).
    """
    if looks_like_json(data, content_type):
        return _json_feed(data)
    stripped = data.lstrip(b" \t\r\n")
    if stripped.startswith(b"<?xml"):
        # Whitespace before the XML declaration is common and harmless; without it the
        # strict parser reads the feed instead of flagging it ill-formed.
        data = stripped
    headers = {"content-type": content_type} if content_type else {}
    if url:
        headers["content-location"] = url
    parsed = feedparser.parse(
        data, response_headers=headers, sanitize_html=False, resolve_relative_uris=False
    )
    exc = parsed.get("bozo_exception") if parsed.bozo else None
    problem = None
    if exc is not None and type(exc).__name__ not in _BENIGN:
        problem = f"the feed is not well-formed XML ({exc})"
    entries = tuple(_xml_entries(parsed))
    version = parsed.get("version") or ""
    if not parsed.entries and not version:
        # Nothing feed-like at all: say what it was instead, when the server said so.
        kind = (content_type or "").partition(";")[0].strip().lower()
        if kind and not any(word in kind for word in ("xml", "rss", "atom", "rdf")):
            raise SourceError(f"The document is not a feed (served as {kind}).")
        if exc is not None:
            raise SourceError(f"The document is not a well-formed feed ({exc}).")
        raise SourceError("The document is not a feed (no RSS, Atom or JSON Feed found).")
    title = plain_text((parsed.get("feed") or {}).get("title") or "")
    return ParsedFeed(title, version, entries, problem)


def parse_feed(data: bytes, source: str, tags: Sequence[str] = ()) -> Iterator[Article]:
    """Yield an article per feed entry with a body; a malformed feed yields what it could."""
    for entry in parse_feed_document(data).entries:
        if entry.paragraphs:
            yield entry.article(source, tags)


def read_feed_file(location: str) -> bytes:
    """A local feed file's bytes, or one sentence saying it is missing."""
    path = Path(location).expanduser()
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise SourceError(
            f"Feed file {path} does not exist; fix its location in the config."
        ) from None
    except OSError as exc:
        raise SourceError(f"Cannot read feed file {path} ({exc.strerror}).") from None


FullText = Literal["auto", "always", "never"]


def wants_page(entry: FeedEntry, mode: FullText) -> bool:
    """Whether to fetch the entry's page for its full text under this source's setting."""
    if entry.link is None or mode == "never":
        return False
    return mode == "always" or entry.teaser


def with_page_text(entry: FeedEntry, paragraphs: tuple[str, ...], byline: str | None) -> FeedEntry:
    """The entry with the body read from its page (the feed's title and dates are kept)."""
    return replace(entry, paragraphs=paragraphs, byline=entry.byline or byline, teaser=False)
