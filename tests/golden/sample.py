"""A fixed digest that exercises every part of the email, shared by the email tests.

Changing it changes the golden files: run `UPDATE_GOLDEN=1 pytest tests/test_render.py`
and review the diff of tests/golden/ by eye.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from digest.models import Article, Digest, DigestItem, Quote, Summary
from digest.render import Branding

BRAND = Branding(
    sender_name="The Harbour Digest",
    postal_address="The Harbour Digest, 12 Quay Street, Port Alden 40210",
    base_url="https://digest.example.org",
)


def _item(
    title: str,
    source: str,
    lead: str,
    quotes: tuple[Quote, ...] = (),
    *,
    url: str | None = None,
    byline: str | None = None,
    tags: tuple[str, ...] = (),
) -> DigestItem:
    article = Article(
        title=title, paragraphs=(lead,), source=source, url=url, byline=byline, tags=tags
    )
    return DigestItem(article, Summary(lead, quotes))


def golden_digest() -> Digest:
    """Two sources, non-ASCII text, "&" to escape, a long unbroken word, an unsafe link."""
    items = (
        _item(
            "Harbour levy clears Senate after ‘reckless’ amendment is stripped",
            "Local Desk",
            "The Calder state Senate on Tuesday approved a 2.5 percent levy on cargo landed "
            "at Port Alden, ending a three-month standoff after leaders removed an amendment "
            "that would have diverted the revenue to highway projects.",
            (
                Quote(
                    "This is the first time in a decade that the harbour has been asked to "
                    "pay its own way.",
                    "Sen. Paul Greer",
                ),
                Quote("It won’t be the last.", "Sen. Paul Greer"),
            ),
            url="https://news.example.org/2026/11/harbour-levy?utm_source=digest&ref=feed",
            byline="By Dana Whitfield",
            tags=("politics",),
        ),
        _item(
            "Café Ørsted’s co-op bakery opens a second shop & hires 12 bakers",
            "Local Desk",
            "The worker-owned bakery that began in a shipping container on Pier 4 opened a "
            "second shop on Calle Núñez on Saturday, where a queue formed before dawn for "
            "its cardamom buns (bullar) and rye loaves.",
            (Quote("We sold out by nine. Nobody planned for that.", "Zoë Ørsted, co-founder"),),
            url="https://news.example.org/2026/11/bakery-co-op",
            tags=("business",),
        ),
        _item(
            "Ferry timetable: winter changes",
            "Local Desk",
            "From Monday the 07:10 sailing leaves ten minutes earlier; the full timetable is "
            "posted at the terminal and at "
            "harbourferries.example.org/timetables/winter2026fullschedulewithallstopsandconnections.",
            url="javascript:alert(1)",
            tags=("transport",),
        ),
        _item(
            "Comet’s tail may light up a meteor shower on Friday",
            "Example Science Wire",
            "Astronomers expect up to 40 meteors an hour late on Friday as Earth crosses "
            "debris from comet 12P, best seen away from city lights after 11 p.m.",
            (
                Quote("Look north-east and give your eyes twenty minutes.", "Dr. Amara Osei"),
                Quote("It is free, and it will not come back for 70 years.", None),
            ),
            url="https://science.example.net/comet-12p-shower",
            byline="Amara Osei and Lin Wei",
            tags=("science",),
        ),
    )
    return Digest(
        key="daily/2026-11-28",
        name="The Harbour Digest",
        day=date(2026, 11, 28),
        items=items,
        intro="A quiet week at the port, a loud one in the Senate.",
    )


SUMMARIES = Path(__file__).resolve().parent.parent / "fixtures" / "summaries"
SOURCES = ("Local Desk", "Example Science Wire", "Metro Wire")


def long_digest(stories: int = 30) -> Digest:
    """A long digest of real-length stories: the summarizer's fixtures, two quotes each."""
    items = []
    for n, path in enumerate(sorted(SUMMARIES.glob("*.json"))[:stories]):
        data = json.loads(path.read_text(encoding="utf-8"))
        article = Article(
            title=data["title"],
            paragraphs=(data["lead"],),
            source=SOURCES[n % len(SOURCES)],
            url=f"https://www.news.example.org/{path.stem}",
            byline=data.get("byline"),
        )
        quotes = tuple(Quote(q["text"], q.get("speaker")) for q in data["quotes"][:2])
        items.append(DigestItem(article, Summary(data["lead"], quotes)))
    assert len(items) == stories
    return Digest("daily/2026-11-28", "The Daily Digest", date(2026, 11, 28), tuple(items))
