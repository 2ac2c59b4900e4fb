"""Click tracking: signed per-reader story links, counted once, leading only to the story.

Through the real app (Starlette's test client over ASGI) and the real pipeline: a digest
is composed and delivered to the outbox, and the links are read out of the .eml files a
reader would get.
"""

from __future__ import annotations

import base64
import email
import email.policy
import os
import re
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from starlette.testclient import TestClient

from digest import store
from digest.clicks import ClickLinks, click_token, read_click_token
from digest.errors import ConfigError
from digest.mail.message import MessageTemplate
from digest.models import RenderedDigest, Subscriber
from digest.outcomes import issue_outcome
from digest.pipeline import open_store, run_digest
from digest.settings import Settings, load_settings
from digest.subscribers import add_subscriber, secret_key
from digest.web import create_app
from tests.conftest import write_config

PUBLIC = "https://digest.example.org"
PASSWORD = "correct horse battery"
TRACKING = "\n[tracking]\nclicks = true\n"
READER = ("198.51.100.9", 1)

pytestmark = pytest.mark.both_stores


def tracked_settings(tmp_path: Path, database_url: str, monkeypatch, extra: str = TRACKING):
    for name in [n for n in os.environ if n.startswith("DIGEST_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("DIGEST_WEB__ADMIN_PASSWORD", PASSWORD)
    return load_settings(write_config(tmp_path, extra, database_url=database_url))


@pytest.fixture
def tracked(tmp_path, database_url, monkeypatch):
    """A composed and delivered digest with click tracking on, to ann and bo."""
    settings = tracked_settings(tmp_path, database_url, monkeypatch)
    engine = open_store(settings)
    for address in ("ann@example.org", "bo@example.org"):
        add_subscriber(engine, address)
    report = run_digest(settings)
    assert report.delivery is not None and report.delivery.sent == 2
    client = TestClient(create_app(settings), base_url=PUBLIC, client=READER)
    return settings, engine, report.key, client


def copy_of(settings: Settings, address: str) -> EmailMessage:
    (path,) = settings.outbox_path.rglob(f"{address}.eml")
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def parts(message: EmailMessage) -> tuple[str, str]:
    html = message.get_body(("html",))
    text = message.get_body(("plain",))
    assert html is not None and text is not None
    return html.get_content(), text.get_content()


def story_urls(engine, key: str) -> dict[int, str]:
    """Each story's own URL in the digest, by article id (stories that have one)."""
    with store.transaction(engine) as conn:
        row = store.find_digest(conn, key)
        assert row is not None
        return {a.id: a.url for a, _ in store.digest_articles(conn, row.id) if a.url and a.id}


def click_links(text: str) -> list[str]:
    return re.findall(re.escape(PUBLIC) + r"/c/[A-Za-z0-9._-]+", text)


def subscriber_id(engine, address: str) -> int:
    with store.transaction(engine) as conn:
        found = store.find_subscriber(conn, address)
        assert found is not None
        return found.id


def test_each_story_link_is_the_readers_own_signed_link(tracked):
    settings, engine, key, _ = tracked
    urls = story_urls(engine, key)
    assert urls  # the feed's stories have pages of their own
    html, text = parts(copy_of(settings, "ann@example.org"))
    assert "@@digest" not in html + text
    for own in urls.values():  # no story's own URL is linked; the sites are still named
        assert f'href="{own}"' not in html and f": {own}" not in text
    html_links, text_links = click_links(html), click_links(text)
    # Two links per story in the HTML (headline, "Read at"), one in the text part.
    assert len(html_links) == 2 * len(urls) and len(text_links) == len(urls)
    ann = subscriber_id(engine, "ann@example.org")
    named = {
        read_click_token(secret_key(settings)[0], link.rsplit("/", 1)[1]) for link in text_links
    }
    with store.transaction(engine) as conn:
        digest_id = store.find_digest(conn, key).id
    assert named == {(digest_id, ann, article) for article in urls}
    bo_links = click_links(parts(copy_of(settings, "bo@example.org"))[1])
    assert set(bo_links).isdisjoint(text_links)


def test_a_click_goes_to_the_stored_url_and_counts_once_per_reader(tracked):
    settings, engine, key, client = tracked
    urls = story_urls(engine, key)
    ann_links = click_links(parts(copy_of(settings, "ann@example.org"))[1])
    bo_links = click_links(parts(copy_of(settings, "bo@example.org"))[1])
    for link in ann_links:
        response = client.get(link, follow_redirects=False)
        assert response.status_code == 302
        assert response.headers["location"] in urls.values()
        assert response.headers["cache-control"] == "no-store"
        # The story's site is not told the link (and its token) the reader came through.
        assert response.headers["referrer-policy"] == "no-referrer"
    first = client.get(ann_links[0], follow_redirects=False).headers["location"]
    client.get(ann_links[0], follow_redirects=False)  # the same reader again: no new click
    client.get(bo_links[0], follow_redirects=False)
    outcome = issue_outcome(engine, key)
    assert outcome is not None
    by_url = {story.url: story.clicks for story in outcome.stories}
    assert by_url[first] == 2  # ann once (of three visits), bo once
    assert sum(by_url.values()) == len(ann_links) + 1
    assert outcome.clicks == len(ann_links) + 1 and outcome.clickers == 2
    assert outcome.stories[0].url == first  # the most clicked first


def test_forged_garbled_and_edited_tokens_are_refused_without_a_redirect(tracked):
    settings, engine, key, client = tracked
    secret = secret_key(settings)[0]
    link = click_links(parts(copy_of(settings, "ann@example.org"))[1])[0]
    token = link.rsplit("/", 1)[1]
    digest_id, reader, article = read_click_token(secret, token)
    signature = token.rsplit(".", 1)[1]
    with store.transaction(engine) as conn:
        other_article = conn.execute(
            store.articles.select().where(store.articles.c.id != article)
        ).first()
    refused = [
        "garbled",
        "1.2.3",
        # The signature's first character changed (its last one carries only two bits, and
        # base64 decoders ignore the rest: some edits there name the same bytes).
        f"{token.rsplit('.', 1)[0]}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}",
        f"{digest_id}.{reader}.{other_article.id}.{signature}",  # another story, same signature
        f"{digest_id + 1}.{reader}.{article}.{signature}",  # another digest
        f"{digest_id}.{reader + 1}.{article}.{signature}",  # another reader
        click_token("another-key-of-forty-or-more-characters-000", digest_id, reader, article),
        # Signed with the real key, but the story is not in this digest.
        click_token(secret, digest_id + 1, reader, article),
        click_token(secret, digest_id, reader, 987654),
    ]
    for bad in refused:
        response = client.get(f"/c/{bad}", follow_redirects=False)
        assert response.status_code == 404, bad
        assert "location" not in response.headers
        assert "not one we sent" in response.text
    assert issue_outcome(engine, key).clicks == 0


def test_nothing_in_the_request_can_choose_where_a_click_goes(tracked):
    settings, _, _, client = tracked
    link = click_links(parts(copy_of(settings, "ann@example.org"))[1])[0]
    stored = client.get(link, follow_redirects=False).headers["location"]
    for attempt in (
        link + "?url=https://evil.example/",
        link + "?next=//evil.example&redirect=https://evil.example",
    ):
        response = client.get(attempt, follow_redirects=False)
        assert response.status_code == 302 and response.headers["location"] == stored
    token = link.rsplit("/", 1)[1]
    for attempt in (f"/c/{token}/https://evil.example", f"/c/https://evil.example/{token}"):
        response = client.get(attempt, follow_redirects=False)
        assert response.status_code == 404 and "location" not in response.headers
    assert urlsplit(stored).hostname != "evil.example"


def test_a_story_whose_stored_url_is_not_a_web_page_is_not_followed(tracked):
    settings, engine, key, client = tracked
    secret = secret_key(settings)[0]
    urls = story_urls(engine, key)
    article = next(iter(urls))
    with store.transaction(engine) as conn:
        conn.execute(
            store.articles.update()
            .where(store.articles.c.id == article)
            .values(url="javascript:alert(1)")
        )
        digest_id = store.find_digest(conn, key).id
    ann = subscriber_id(engine, "ann@example.org")
    response = client.get(
        f"/c/{click_token(secret, digest_id, ann, article)}", follow_redirects=False
    )
    assert response.status_code == 404 and "location" not in response.headers


def test_with_tracking_off_the_links_are_the_stories_own(tmp_path, database_url, monkeypatch):
    settings = tracked_settings(tmp_path, database_url, monkeypatch, extra="")
    assert settings.tracking.clicks is False
    engine = open_store(settings)
    add_subscriber(engine, "ann@example.org")
    report = run_digest(settings)
    html, text = parts(copy_of(settings, "ann@example.org"))
    assert "/c/" not in html + text and "@@digest" not in html + text
    for own in story_urls(engine, report.key).values():
        assert html.count(f'href="{own}"') == 2 and f": {own}" in text
    with store.transaction(engine) as conn:
        row = store.find_digest(conn, report.key)
        assert "@@digest-click" not in row.html + row.text


def test_the_operator_page_shows_the_figures_and_top_stories(tracked):
    settings, _, key, _ = tracked
    client = TestClient(create_app(settings), base_url=PUBLIC, client=("203.0.113.9", 1))
    assert client.get(f"/digests/{key}").status_code == 401
    wrong = {"Authorization": "Basic " + base64.b64encode(b"admin:guess").decode()}
    assert client.get(f"/digests/{key}", headers=wrong).status_code == 401
    assert client.get("/digests").status_code == 401

    readers = TestClient(create_app(settings), base_url=PUBLIC, client=READER)
    ann_links = click_links(parts(copy_of(settings, "ann@example.org"))[1])
    bo_links = click_links(parts(copy_of(settings, "bo@example.org"))[1])
    for link in [*ann_links[:2], bo_links[1]]:
        readers.get(link, follow_redirects=False)
    right = {"Authorization": "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()}
    page = client.get(f"/digests/{key}", headers=right)
    assert page.status_code == 200
    figures = dict(re.findall(r"<tr><th>([^<]+)</th><td>([^<]+)</td></tr>", page.text))
    assert figures["Sent"] == "2" and figures["Failed"] == "0" and figures["Pending"] == "0"
    assert figures["Clicks"] == "3"
    assert figures["Readers who clicked"].startswith("2 (100.0%")
    for what in ("Bounced", "Complained", "Unsubscribed"):
        assert figures[f"{what} within 7 days"] == "0"
    chart = page.text.split('id="top-stories"', 1)[1]
    bars = re.findall(r'<rect class="bar" x="0" y="0" width="([\d.]+)"', chart)
    assert bars == ["100.0", "50.0"]  # the second link of each reader: 2 clicks, then 1
    assert "<script" not in chart
    index = client.get("/digests", headers=right)
    assert index.status_code == 200 and f'href="/digests/{key}"' in index.text
    missing = client.get("/digests/daily/1999-01-01", headers=right)
    assert missing.status_code == 404 and "no digest" in missing.text


def test_status_shows_clicks_for_the_last_digests(tracked, cli):
    settings, engine, key, client = tracked
    link = click_links(parts(copy_of(settings, "ann@example.org"))[1])[0]
    client.get(link, follow_redirects=False)
    outcome = issue_outcome(engine, key)
    title = outcome.stories[0].title
    result = cli("status")  # the same data folder and database as the tracked settings
    assert result.returncode == 0, result.stderr
    row = next(  # the figures' row, not the "Last digest" table's ("sent 2")
        line
        for line in result.stdout.splitlines()
        if key in line and "│" in line and "sent" not in line
    )
    cells = [c.strip() for c in row.split("│") if c.strip()]
    # Issue, Sent, Failed, Pending, Bounced, Complained, Unsubscribed, Clicks, Most clicked
    assert cells[:8] == [key, "2", "0", "0", "0", "0", "0", "1"]
    assert cells[8].startswith(title[:20]) and cells[8].endswith("(1)")


def test_links_survive_the_transfer_encoding_however_long_the_base_url():
    base = "https://news.example.org/a/rather/long/path/to/the/digest/site/of/this/publication"
    links = ClickLinks("k" * 43, 123456, base)
    html = (
        '<p><a href="@@digest-click-7@@">Story</a> &amp; <a href="@@digest-click-900@@">x</a></p>'
    )
    rendered = RenderedDigest("Subject", html, "Read: @@digest-click-7@@\n")
    fixed = {
        "sender_name": "Digest",
        "sender_address": "digest@example.org",
        "list_id": "Digest <daily.example.org>",
        "unsubscribe_url": "https://news.example.org/unsubscribe/{token}",
        "unsubscribe_mailto": "mailto:digest@example.org",
        "digest_key": "daily/2026-12-01",
        "sent_at": datetime(2026, 12, 1, 7),
    }
    template = MessageTemplate(rendered, clicks=links, **fixed)  # type: ignore[arg-type]
    assert template.tracks_clicks
    copy = template.personalize(Subscriber(4242, "ann@example.org", "Ann"), "tok")
    message = email.message_from_bytes(copy.data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    html_part, text_part = parts(message)
    expected = links.links(4242, (7, 900))
    assert f'href="{expected[7]}"' in html_part and f'href="{expected[900]}"' in html_part
    assert f"Read: {expected[7]}" in text_part
    assert all(len(line) <= 76 for line in copy.data.split(b"\r\n"))
    assert read_click_token("k" * 43, expected[900].rsplit("/", 1)[1]) == (123456, 4242, 900)
    with pytest.raises(Exception, match="no digest to sign them for"):
        MessageTemplate(rendered, **fixed)  # type: ignore[arg-type]


def test_tracking_with_a_provider_api_is_refused_in_one_sentence(tmp_path, monkeypatch):
    config = write_config(tmp_path, TRACKING + '\n[delivery]\nbackend = "postmark"\n')
    monkeypatch.setenv("DIGEST_DELIVERY__API_KEY", "a-postmark-server-token")
    with pytest.raises(ConfigError, match=r"tracking.clicks works with the smtp and outbox"):
        load_settings(config)
