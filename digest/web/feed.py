"""The archive as an Atom feed (RFC 4287): one entry per issue, its headlines and leads."""

from __future__ import annotations

import html
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

ATOM = "http://www.w3.org/2005/Atom"


@dataclass(frozen=True, slots=True)
class Issue:
    """One issue that went out, as the public site shows it."""

    key: str
    day: date
    subject: str
    url: str  # absolute
    published: datetime
    stories: tuple[tuple[str, str], ...] = ()  # (headline, lead)

    @property
    def description(self) -> str:
        """A sentence or two for link previews: the first story's lead, else the subject."""
        if self.stories and self.stories[0][1]:
            lead = self.stories[0][1]
            return lead if len(lead) <= 200 else lead[:199].rsplit(" ", 1)[0] + "…"
        return self.subject


def _stories_html(issue: Issue) -> str:
    items = "".join(
        f"<li><strong>{html.escape(title)}</strong>"
        + (f"<br>{html.escape(lead)}" if lead else "")
        + "</li>"
        for title, lead in issue.stories
    )
    return f'<ul>{items}</ul><p><a href="{html.escape(issue.url)}">Read this issue</a></p>'


def atom_feed(
    *, title: str, subtitle: str, site_url: str, feed_url: str, issues: Sequence[Issue]
) -> bytes:
    """The feed document, newest issue first; `updated` is the newest issue's time."""
    ET.register_namespace("", ATOM)
    feed = ET.Element(f"{{{ATOM}}}feed")

    def add(parent: ET.Element, name: str, text: str | None = None, **attrs: str) -> ET.Element:
        element = ET.SubElement(parent, f"{{{ATOM}}}{name}", attrs)
        element.text = text
        return element

    add(feed, "id", feed_url)
    add(feed, "title", title)
    add(feed, "subtitle", subtitle)
    add(feed, "link", rel="self", type="application/atom+xml", href=feed_url)
    add(feed, "link", rel="alternate", type="text/html", href=site_url)
    newest = max((i.published for i in issues), default=datetime(2000, 1, 1).astimezone())
    add(feed, "updated", newest.isoformat())
    author = add(feed, "author")
    add(author, "name", title)
    for issue in issues:
        entry = add(feed, "entry")
        add(entry, "id", issue.url)
        add(entry, "title", issue.subject)
        add(entry, "link", rel="alternate", type="text/html", href=issue.url)
        add(entry, "published", issue.published.isoformat())
        add(entry, "updated", issue.published.isoformat())
        add(entry, "summary", issue.description)
        add(entry, "content", _stories_html(issue), type="html")
    declaration = b'<?xml version="1.0" encoding="utf-8"?>\n'
    return declaration + ET.tostring(feed, encoding="unicode").encode("utf-8")
