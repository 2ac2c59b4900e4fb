"""The publication's public site: home, archive pages, issue pages, the feed, headers."""

from __future__ import annotations

import re
from datetime import date, timedelta

import feedparser
import pytest
from starlette.testclient import TestClient

from digest import store
from digest.models import DeliveryResult
from digest.pipeline import open_store, run_digest
from digest.subscribers import add_subscriber
from digest.web import create_app
from digest.web.headers import PUBLIC_POLICY

PUBLIC = "https://digest.example.org"


@pytest.fixture
def client(settings):
    return TestClient(create_app(settings), base_url=PUBLIC, client=("198.51.100.20", 1))


def sent_issues(settings, count: int) -> list[str]:
    """`count` issues that went out, one a day; returns their keys, oldest first."""
    engine = open_store(settings)
    reader, _ = add_subscriber(engine, "reader@example.org")
    keys = []
    with store.transaction(engine) as conn:
        for n in range(count):
            day = date(2026, 1, 1) + timedelta(days=n)
            key = f"daily/{day.isoformat()}"
            digest_id = store.create_digest(
                conn,
                key=key,
                list_name="daily",
                day=day,
                subject=f"Issue {n + 1}: harbour news",
                html="<html><head><title>x</title></head><body>Issue</body></html>",
                text="Issue",
                items=[],
            )
            assert digest_id is not None
            store.record_deliveries(conn, digest_id, [DeliveryResult(reader.id, "sent", "m")])
            keys.append(key)
    return keys


def test_home_shows_the_publication_the_form_and_the_latest_issue(settings, client):
    empty = client.get("/")
    assert empty.status_code == 200 and "The first issue is on its way" in empty.text
    add_subscriber(open_store(settings), "ann@example.org")
    report = run_digest(settings)
    page = client.get("/").text
    assert "<h1>Test Digest</h1>" in page and "One good email a day" in page
    form = re.search(r'<input id="email"[^>]*>', page)
    assert form is not None
    for hint in ('type="email"', 'autocomplete="email"', 'inputmode="email"', "required"):
        assert hint in form.group()
    assert f'href="/archive/{report.key}"' in page
    assert "Portvale replaces late-night ferry runs" in page  # a headline of the issue
    assert '<link rel="alternate" type="application/atom+xml"' in page


def test_the_archive_has_pages_newest_first(settings, client):
    keys = sent_issues(settings, 45)
    first = client.get("/archive").text
    assert "45 issues" in first and "Page 1 of 3" in first
    listed = re.findall(r'<a href="/archive/(daily/[0-9-]+)">', first)
    assert listed == list(reversed(keys))[:20]
    assert 'href="/archive?page=2" rel="next"' in first and 'rel="prev"' not in first
    last = client.get("/archive?page=3").text
    assert re.findall(r'<a href="/archive/(daily/[0-9-]+)">', last) == list(reversed(keys))[40:]
    assert 'href="/archive?page=2" rel="prev"' in last and 'rel="next"' not in last
    assert client.get("/archive?page=4").status_code == 404
    assert client.get("/archive?page=nonsense").status_code == 200  # the first page


def test_the_feed_is_atom_and_lists_the_issues(settings, client):
    add_subscriber(open_store(settings), "ann@example.org")
    report = run_digest(settings)
    response = client.get("/archive/feed.xml")
    assert response.headers["content-type"].startswith("application/atom+xml")
    feed = feedparser.parse(response.content)
    assert feed.bozo == 0 and feed.version == "atom10"
    assert feed.feed.title == "Test Digest" and feed.feed.subtitle.startswith("One good email")
    [entry] = feed.entries
    assert entry.link == f"{PUBLIC}/archive/{report.key}"
    assert entry.id == entry.link and entry.published_parsed is not None
    assert "Portvale replaces late-night ferry runs" in entry.content[0].value
    assert entry.summary  # the first story's lead
    many = sent_issues(settings, 25)
    assert len(feedparser.parse(client.get("/archive/feed.xml").content).entries) == 20
    assert many


def test_an_issue_page_tells_a_shared_link_what_it_is(settings, client):
    add_subscriber(open_store(settings), "ann@example.org", name="Ann")
    report = run_digest(settings)
    page = client.get(f"/archive/{report.key}").text
    url = f"{PUBLIC}/archive/{report.key}"
    assert f'<link rel="canonical" href="{url}">' in page
    assert f'<meta property="og:url" content="{url}">' in page
    assert '<meta property="og:title" content="' in page
    description = re.search(r'<meta name="description" content="([^"]+)">', page)
    assert description is not None and len(description.group(1)) <= 200
    assert "Hello Ann" not in page and "/unsubscribe/" not in page


def test_robots_and_security_headers(settings, client):
    robots = client.get("/robots.txt").text
    for path in ("/preview", "/unsubscribe/", "/confirm/", "/webhooks/"):
        assert f"Disallow: {path}" in robots
    home = client.get("/")
    assert home.headers["content-security-policy"] == PUBLIC_POLICY
    assert "script-src" not in PUBLIC_POLICY and "frame-ancestors 'none'" in PUBLIC_POLICY
    assert home.headers["x-content-type-options"] == "nosniff"
    assert "x-robots-tag" not in home.headers
    token_page = client.get("/unsubscribe/some.token")
    assert token_page.headers["referrer-policy"] == "no-referrer"
    assert token_page.headers["x-robots-tag"].startswith("noindex")
    assert client.get("/confirm/x.y").headers["referrer-policy"] == "no-referrer"
    local = TestClient(
        create_app(settings, local_operator=True),
        base_url="http://127.0.0.1:8000",
        client=("127.0.0.1", 1),
    )
    framed = local.get("/preview/email.html").headers["content-security-policy"]
    assert "frame-ancestors 'self'" in framed
    operator = local.get("/preview").headers
    assert "script-src 'unsafe-inline'" in operator["content-security-policy"]
    assert operator["x-robots-tag"].startswith("noindex")
