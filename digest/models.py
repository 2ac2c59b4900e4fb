"""Plain data passed between the stages; no behaviour, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal, NamedTuple

# The lists a reader can take: the daily digest and, when configured, the weekly one.
LISTS = ("daily", "weekly")


@dataclass(frozen=True, slots=True)
class CleanText:
    """Scraped text taken apart: headline, deck, byline and the body paragraphs."""

    title: str
    subtitle: str | None
    byline: str | None
    paragraphs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Article:
    """One collected article, cleaned; `paragraphs` is the body only."""

    title: str
    paragraphs: tuple[str, ...]
    source: str
    url: str | None = None
    guid: str | None = None
    subtitle: str | None = None
    byline: str | None = None
    published_at: datetime | None = None
    tags: tuple[str, ...] = ()
    id: int | None = None


@dataclass(frozen=True, slots=True)
class Quote:
    """A direct quotation, in the article's own words, and who said it."""

    text: str
    speaker: str | None


@dataclass(frozen=True, slots=True)
class Summary:
    lead: str
    quotes: tuple[Quote, ...]


@dataclass(frozen=True, slots=True)
class DigestItem:
    article: Article
    summary: Summary


@dataclass(frozen=True, slots=True)
class Digest:
    """What goes into one issue: its unique key, its date and its items in order."""

    key: str
    name: str
    day: date
    items: tuple[DigestItem, ...]
    intro: str = ""


@dataclass(frozen=True, slots=True)
class Subscriber:
    id: int
    email: str
    name: str | None = None
    topics: tuple[str, ...] = ()
    status: str = "active"
    lists: tuple[str, ...] = LISTS  # which of the lists they take; both unless they chose
    paused_until: datetime | None = None  # no digest is composed for them before then


@dataclass(frozen=True, slots=True)
class RenderedDigest:
    """The digest rendered once: subject, inlined HTML and the plain-text part."""

    subject: str
    html: str
    text: str
    warnings: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class StoredDigest:
    """A digest as composed and stored: its key, its day and the rendering that went out."""

    id: int
    key: str
    list_name: str
    day: date
    subject: str
    html: str
    text: str
    created_at: datetime

    @property
    def rendered(self) -> RenderedDigest:
        return RenderedDigest(subject=self.subject, html=self.html, text=self.text)


class DeliveryResult(NamedTuple):
    """One ledger row's new state after an attempt to send to one subscriber."""

    subscriber_id: int
    status: Literal["sent", "failed", "skipped", "pending"]
    message_id: str | None = None
    error: str | None = None
