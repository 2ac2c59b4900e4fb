"""JSON Feed 1.0 / 1.1 (jsonfeed.org), which feedparser 6.0 does not read.

Validated with pydantic, item by item, so one broken item is dropped and reported while
the rest of the feed is kept, as feedparser does for ill-formed XML.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator


class _Author(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str | None = None


class JsonFeedItem(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str | None = None
    url: str | None = None
    external_url: str | None = None
    title: str | None = None
    content_html: str | None = None
    content_text: str | None = None
    summary: str | None = None
    date_published: str | None = None
    date_modified: str | None = None
    author: _Author | None = None  # JSON Feed 1.0
    authors: list[_Author] = []  # JSON Feed 1.1

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        # Version 1.0 feeds often use numbers; the spec says a string.
        return str(value) if isinstance(value, int | float) else value

    @property
    def byline(self) -> str | None:
        names = [a.name for a in (self.authors or ([self.author] if self.author else [])) if a.name]
        return ", ".join(names) or None

    @property
    def published_at(self) -> datetime | None:
        for value in (self.date_published, self.date_modified):
            if value:
                try:
                    stamp = datetime.fromisoformat(value.strip())
                except ValueError:
                    continue
                return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
        return None


class JsonFeed(BaseModel):
    model_config = ConfigDict(extra="ignore")

    version: str
    title: str = ""
    home_page_url: str | None = None
    items: list[Any] = []


def looks_like_json(data: bytes, content_type: str | None) -> bool:
    """A JSON document rather than XML: by its first character, else its content type."""
    first = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if first in (b"{", b"<"):
        return first == b"{"
    return bool(content_type) and "json" in (content_type or "").lower()


def parse_json_feed(data: bytes) -> tuple[JsonFeed, list[JsonFeedItem], str | None]:
    """The feed, its valid items, and a description of what was wrong, if anything.

    Raises ValueError when the document is not a JSON Feed at all.
    """
    try:
        raw = json.loads(data.decode("utf-8-sig", errors="replace"))
        feed = JsonFeed.model_validate(raw)
    except (json.JSONDecodeError, ValidationError) as exc:
        raise ValueError(f"not a JSON Feed ({type(exc).__name__})") from None
    if "jsonfeed.org/version" not in feed.version:
        raise ValueError(f"not a JSON Feed (version {feed.version!r})")
    items: list[JsonFeedItem] = []
    bad = 0
    for raw_item in feed.items:
        try:
            items.append(JsonFeedItem.model_validate(raw_item))
        except ValidationError:
            bad += 1
    problem = f"{bad} item(s) are not valid JSON Feed items and were skipped" if bad else None
    return feed, items, problem
