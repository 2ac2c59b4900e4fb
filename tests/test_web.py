"""The web app through its ASGI interface, as a browser or mailbox provider uses it."""

from __future__ import annotations

import base64
import email
import email.policy

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from digest import store
from digest.collect import collect_sources
from digest.pipeline import open_store, run_digest
from digest.settings import load_settings
from digest.subscribers import add_subscriber, make_token, secret_key
from digest.web import create_app
from tests.conftest import write_config

LOCAL = ("127.0.0.1", 50000)
HERE = "http://127.0.0.1:8000"
PUBLIC = "https://digest.example.org"

pytestmark = pytest.mark.both_stores


@pytest.fixture
def client(settings):
    """This machine's browser under `digest preview`."""
    return TestClient(
        create_app(settings, local_operator=True),
        base_url=HERE,
        client=LOCAL,
        headers={"Origin": HERE},
    )


def test_preview_shows_the_draft_and_marks_nothing_sent(settings, client):
    engine = open_store(settings)
    collect_sources(settings, engine)
    page = client.get("/preview")
    assert page.status_code == 200
    assert "10 articles" in page.text and "clipping limit" in page.text
    assert "Nothing here is marked as sent" in page.text
    assert "Local Desk" in page.text and "Collect now" in page.text and "Send test" in page.text
    html = client.get("/preview/email.html")
    assert "Portvale replaces late-night ferry runs" in html.text
    assert "@@digest" not in html.text
    text = client.get("/preview/email.txt")
    assert text.headers["content-type"].startswith("text/plain")
    assert "TEST DIGEST" in text.text and "@@digest" not in text.text
    with store.transaction(engine) as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(store.digests)) == 0
        assert conn.scalar(sa.select(sa.func.count()).select_from(store.deliveries)) == 0
        assert len(store.unsent_articles(conn, "daily", 100)) == 10


def test_preview_eml_is_the_message_a_subscriber_would_get(settings, client):
    engine = open_store(settings)
    collect_sources(settings, engine)
    zoe, _ = add_subscriber(engine, "zoe@example.org", name="Zoë Park")
    response = client.get(f"/preview/email.eml?as={zoe.id}")
    assert response.headers["content-type"].startswith("message/rfc822")
    assert "attachment" in response.headers["content-disposition"]
    message = email.message_from_bytes(response.content, policy=email.policy.default)
    assert message["To"].addresses[0].display_name == "Zoë Park"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "Hello Zoë," in message.get_body(("plain",)).get_content()
    page = client.get(f"/preview?as={zoe.id}")
    assert "as Zoë Park would receive it" in page.text
    assert "List-Unsubscribe" in page.text  # the headers table


def test_viewing_as_a_subscriber_with_topics_shows_only_their_articles(settings, client):
    engine = open_store(settings)
    collect_sources(settings, engine)
    science, _ = add_subscriber(engine, "sci@example.org", topics="science")
    everything = client.get("/preview/email.txt").text
    theirs = client.get(f"/preview/email.txt?as={science.id}").text
    assert "Portvale replaces late-night ferry runs" in everything
    assert "Portvale replaces late-night ferry runs" not in theirs
    assert "== Example Science Wire ==" in theirs


def test_dark_toggle_turns_the_dark_rules_on(settings, client):
    collect_sources(settings, open_store(settings))
    light = client.get("/preview/email.html").text
    dark = client.get("/preview/email.html?scheme=dark").text
    assert "prefers-color-scheme: dark" in light
    assert "prefers-color-scheme" not in dark and "@media all" in dark


def test_collect_now_button_collects_and_reports(settings, client):
    response = client.post("/preview/collect", follow_redirects=True)
    assert response.status_code == 200
    assert "Collected 10 new articles; 0 sources failed." in response.text


def test_version_changes_when_a_template_changes(settings, tmp_path, database_url):
    (tmp_path / "mine" / "email").mkdir(parents=True)
    config = write_config(tmp_path, database_url=database_url)
    config.write_text(f'templates_dir = "{tmp_path / "mine"}"\n' + config.read_text())
    client = TestClient(
        create_app(load_settings(config), config, local_operator=True), base_url=HERE, client=LOCAL
    )
    before = client.get("/preview/version").json()["version"]
    (tmp_path / "mine" / "email" / "_footer.html.j2").write_text("<tr><td>Changed</td></tr>")
    after = client.get("/preview/version").json()["version"]
    assert before != after
    assert "Changed" in client.get("/preview/email.html").text


def test_operator_pages_refuse_other_machines_but_public_pages_answer(settings):
    remote = TestClient(create_app(settings), base_url=PUBLIC, client=("203.0.113.9", 40000))
    assert remote.get("/preview").status_code == 403
    assert remote.get("/preview/email.eml").status_code == 403
    assert remote.post("/preview/collect").status_code == 403
    assert remote.get("/archive").status_code == 200
    home = remote.get("/", follow_redirects=False)
    assert home.status_code == 200 and 'action="/subscribe"' in home.text


def test_an_admin_password_opens_operator_pages_with_basic_auth(tmp_path, database_url):
    config = write_config(tmp_path, database_url=database_url)
    config.write_text(config.read_text().replace("[web]\n", '[web]\nadmin_password = "s3cret"\n'))
    remote = TestClient(
        create_app(load_settings(config)), base_url=PUBLIC, client=("203.0.113.9", 40000)
    )
    assert remote.get("/preview").status_code == 401
    wrong = base64.b64encode(b"admin:nope").decode()
    assert remote.get("/preview", headers={"Authorization": f"Basic {wrong}"}).status_code == 401
    right = base64.b64encode(b"admin:s3cret").decode()
    assert remote.get("/preview", headers={"Authorization": f"Basic {right}"}).status_code == 200


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
    again = client.post(f"/unsubscribe/{token}", content="List-Unsubscribe=One-Click")
    assert again.status_code == 200

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


def test_archive_lists_sent_digests_without_personal_tokens(settings, client):
    engine = open_store(settings)
    assert "No digest has been sent yet" in client.get("/archive").text
    add_subscriber(engine, "ana@example.org", name="Ana")
    report = run_digest(settings)
    index = client.get("/archive")
    assert f'href="/archive/{report.key}"' in index.text
    page = client.get(f"/archive/{report.key}")
    assert page.status_code == 200
    assert "Portvale" in page.text and "@@digest" not in page.text
    assert "Hello Ana" not in page.text and "/unsubscribe/" not in page.text
    assert client.get("/archive/daily/1999-01-01").status_code == 404


def test_send_test_form_sends_one_copy_and_records_no_delivery(settings, client):
    engine = open_store(settings)
    collect_sources(settings, engine)
    response = client.post("/preview/send-test", data={"to": "editor@example.org"})
    assert response.status_code == 200
    copies = list(settings.outbox_path.rglob("editor@example.org.eml"))
    assert len(copies) == 1 and "test" in str(copies[0])
    with store.transaction(engine) as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(store.deliveries)) == 0
    bad = client.post("/preview/send-test", data={"to": "nope"})
    assert "not a valid email" in bad.text
