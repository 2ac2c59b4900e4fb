"""The web app through its ASGI interface, as a browser or mailbox provider uses it."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from digest import store
from digest.collect import collect_sources
from digest.pipeline import open_store, run_digest
from digest.subscribers import add_subscriber, make_token, secret_key
from digest.web import create_app


@pytest.fixture
def client(settings):
    return TestClient(create_app(settings))


def test_preview_shows_the_draft_and_marks_nothing_sent(settings, client):
    engine = open_store(settings)
    collect_sources(settings, engine)
    page = client.get("/")
    assert page.status_code == 200
    assert "10 articles not yet sent" in page.text
    html = client.get("/preview.html")
    assert "Portvale replaces late-night ferry runs" in html.text
    assert "@@digest" not in html.text
    text = client.get("/preview.txt")
    assert text.headers["content-type"].startswith("text/plain")
    assert "TEST DIGEST" in text.text and "@@digest" not in text.text
    with store.transaction(engine) as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(store.digests)) == 0
        assert len(store.unsent_articles(conn, "daily", 100)) == 10


def test_one_click_unsubscribe_stops_the_next_digest(settings, client):
    engine = open_store(settings)
    ana, _ = add_subscriber(engine, "ana@example.org")
    add_subscriber(engine, "bo@example.org")
    key, _ = secret_key(settings)
    token = make_token(key, ana.id, "unsubscribe")

    page = client.get(f"/unsubscribe/{token}")
    assert page.status_code == 200 and "<form" in page.text
    with store.transaction(engine) as conn:
        assert store.get_subscriber(conn, ana.id).status == "active"  # GET changes nothing

    # Exactly what a mailbox provider sends for RFC 8058 one-click unsubscribe.
    response = client.post(
        f"/unsubscribe/{token}",
        content="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert (
        client.post(f"/unsubscribe/{token}", content="List-Unsubscribe=One-Click").status_code
        == 200
    )

    report = run_digest(settings)
    assert report.delivery is not None and report.delivery.sent == 1
    files = sorted(p.name for p in settings.outbox_path.rglob("*.eml"))
    assert files == ["bo@example.org.eml"]


def test_forged_unsubscribe_token_gets_a_friendly_400(settings, client):
    engine = open_store(settings)
    ana, _ = add_subscriber(engine, "ana@example.org")
    token = make_token("another-key", ana.id, "unsubscribe")
    response = client.post(f"/unsubscribe/{token}", content="List-Unsubscribe=One-Click")
    assert response.status_code == 400
    assert "not valid" in response.text and "ana@example.org" not in response.text
    with store.transaction(engine) as conn:
        assert store.get_subscriber(conn, ana.id).status == "active"


def test_archive_shows_a_sent_digest_without_personal_tokens(settings, client):
    engine = open_store(settings)
    add_subscriber(engine, "ana@example.org", name="Ana")
    report = run_digest(settings)
    page = client.get(f"/archive/{report.key}")
    assert page.status_code == 200
    assert "Portvale" in page.text and "@@digest" not in page.text and "Ana" not in page.text
    assert client.get("/archive/daily/1999-01-01").status_code == 404
