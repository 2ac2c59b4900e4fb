"""Double opt-in through the web app: sign up, confirm, and what is never revealed."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime, timedelta

import pytest
from starlette.testclient import TestClient

from digest import store
from digest.pipeline import open_store
from digest.settings import load_settings
from digest.signup import request_subscription
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


def _confirmations(settings, address):
    files = sorted(settings.outbox_path.glob(f"confirm-*/{address}.eml"))
    return [email.message_from_bytes(f.read_bytes(), policy=email.policy.default) for f in files]


def _history(settings, address):
    engine = open_store(settings)
    with store.transaction(engine) as conn:
        subscriber = store.find_subscriber(conn, address)
        assert subscriber is not None
        return subscriber, [event for event, _ in store.subscriber_history(conn, subscriber.id)]


def test_sign_up_then_confirm_activates_the_subscriber(settings, client):
    form = client.get("/subscribe")
    assert form.status_code == 200 and 'name="topics" value="science"' in form.text
    response = client.post(
        "/subscribe", data={"email": "New.Reader@Example.org", "name": "Zoë", "topics": "science"}
    )
    assert response.status_code == 200 and "Check your inbox" in response.text
    subscriber, events = _history(settings, "new.reader@example.org")
    assert subscriber.status == "pending" and subscriber.topics == ("science",)
    assert events == ["pending", "confirmation_sent"]

    [message] = _confirmations(settings, "new.reader@example.org")
    assert message["Subject"] == "Confirm your subscription to Test Digest"
    text = message.get_body(("plain",)).get_content()
    link = re.search(r"https://digest\.example\.org(/confirm/\S+)", text)
    assert link is not None
    confirmed = client.get(link.group(1))
    assert confirmed.status_code == 200 and "You are subscribed" in confirmed.text
    subscriber, events = _history(settings, "new.reader@example.org")
    assert subscriber.status == "active" and events[-1] == "active"
    assert client.get(link.group(1)).status_code == 200  # following it twice is harmless


def test_the_page_never_reveals_whether_an_address_is_subscribed(settings, client):
    add_subscriber(open_store(settings), "ana@example.org", status="active")
    known = client.post("/subscribe", data={"email": "ana@example.org"})
    unknown = client.post("/subscribe", data={"email": "someone@example.org"})
    assert known.status_code == unknown.status_code == 200
    # The page echoes the address typed, and says nothing else that differs.
    assert known.text.replace("ana@", "X@") == unknown.text.replace("someone@", "X@")
    assert _confirmations(settings, "ana@example.org") == []  # nothing sent to the active one
    assert _history(settings, "ana@example.org")[1] == ["active"]


def test_one_confirmation_per_address_per_hour(settings, client):
    client.post("/subscribe", data={"email": "bo@example.org"})
    client.post("/subscribe", data={"email": "bo@example.org"})
    assert _history(settings, "bo@example.org")[1].count("confirmation_sent") == 1
    later = datetime.now(UTC) + timedelta(minutes=61)
    assert request_subscription(settings, open_store(settings), "bo@example.org", now=later)
    assert _history(settings, "bo@example.org")[1].count("confirmation_sent") == 2


def test_a_bad_address_is_refused_with_a_clear_message(client):
    response = client.post("/subscribe", data={"email": "not-an-address"})
    assert response.status_code == 400
    assert "does not look like an email address" in response.text


def test_forged_or_misused_confirmation_tokens_are_refused(settings, client):
    engine = open_store(settings)
    pending, _ = add_subscriber(engine, "cy@example.org", status="pending")
    key, _ = secret_key(settings)
    assert (
        client.get(f"/confirm/{make_token('other-key', pending.id, 'confirm')}").status_code == 400
    )
    # An unsubscribe link is signed for another purpose and confirms nothing.
    assert client.get(f"/confirm/{make_token(key, pending.id, 'unsubscribe')}").status_code == 400
    assert _history(settings, "cy@example.org")[0].status == "pending"


def test_sign_ups_are_rate_limited_per_client(tmp_path, database_url):
    config = write_config(tmp_path, database_url=database_url)
    config.write_text(config.read_text().replace("[web]\n", "[web]\nsignups_per_hour = 2\n"))
    client = TestClient(
        create_app(load_settings(config)), base_url=PUBLIC, client=("198.51.100.7", 1234)
    )
    codes = [
        client.post("/subscribe", data={"email": f"p{n}@example.org"}).status_code for n in range(3)
    ]
    assert codes == [200, 200, 429]
