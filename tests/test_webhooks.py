"""Provider webhooks: verified the provider's way, applied once, and never trusted blind.

The payloads are written by us in each provider's documented shape (Postmark's bounce,
spam-complaint and subscription-change webhooks; SendGrid's event array; Mailgun's
signature + event-data object).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.testclient import TestClient

from digest import store
from digest.pipeline import open_store, run_digest
from digest.settings import load_settings
from digest.subscribers import add_subscriber, remove_subscriber
from digest.web import create_app
from tests.conftest import start_digest, write_config

PUBLIC = "https://digest.example.org"
MAILGUN_KEY = "key-mailgun-signing-0123456789"
POSTMARK_PASSWORD = "postmark-hook-password"
SENDGRID_PRIVATE = ec.generate_private_key(ec.SECP256R1())
SENDGRID_PUBLIC = base64.b64encode(
    SENDGRID_PRIVATE.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
).decode()
ENV = {
    "DIGEST_WEBHOOKS__MAILGUN_SIGNING_KEY": MAILGUN_KEY,
    "DIGEST_WEBHOOKS__POSTMARK_PASSWORD": POSTMARK_PASSWORD,
    "DIGEST_WEBHOOKS__SENDGRID_PUBLIC_KEY": SENDGRID_PUBLIC,
}


@pytest.fixture
def hooked(tmp_path, monkeypatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(write_config(tmp_path))
    engine = open_store(settings)
    for address in ("ann@example.org", "bo@example.org", "cy@example.org"):
        add_subscriber(engine, address)
    client = TestClient(create_app(settings), base_url=PUBLIC, client=("198.51.100.9", 1))
    return client, engine


def status(engine, address: str) -> str:
    with store.transaction(engine) as conn:
        found = store.find_subscriber(conn, address)
        assert found is not None
        return found.status


def mailgun_body(event: dict, *, key: str = MAILGUN_KEY, at: float | None = None) -> dict:
    timestamp, token = str(int(at or time.time())), "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f"
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": event,
    }


def sendgrid_headers(body: bytes, *, at: float | None = None, key=SENDGRID_PRIVATE) -> dict:
    timestamp = str(int(at or time.time()))
    signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        "Content-Type": "application/json",
    }


def test_mailgun_good_forged_replayed_and_unknown(hooked):
    client, engine = hooked
    bounce = {
        "event": "failed",
        "severity": "permanent",
        "recipient": "ann@example.org",
        "reason": "bounce",
    }
    good = client.post("/webhooks/mailgun", json=mailgun_body(bounce))
    assert good.status_code == 200 and good.json()["changed"] == 1
    assert status(engine, "ann@example.org") == "bounced"
    assert client.post("/webhooks/mailgun", json=mailgun_body(bounce)).json()["changed"] == 0

    complaint = {"event": "complained", "recipient": "bo@example.org"}
    forged = client.post("/webhooks/mailgun", json=mailgun_body(complaint, key="guessed-key"))
    assert forged.status_code == 401
    old = client.post("/webhooks/mailgun", json=mailgun_body(complaint, at=time.time() - 3600))
    assert old.status_code == 401  # a replay of a captured request
    assert status(engine, "bo@example.org") == "active"

    soft = {"event": "failed", "severity": "temporary", "recipient": "cy@example.org"}
    assert client.post("/webhooks/mailgun", json=mailgun_body(soft)).json()["changed"] == 0
    assert status(engine, "cy@example.org") == "active"  # the provider retries a soft one
    stranger = {"event": "complained", "recipient": "nobody@example.org"}
    unknown = client.post("/webhooks/mailgun", json=mailgun_body(stranger))
    assert unknown.status_code == 200 and unknown.json()["unknown"] == 1
    assert client.post("/webhooks/mailgun", content=b"not json").status_code == 400


def test_sendgrid_signed_events(hooked):
    client, engine = hooked
    events = [
        {"email": "ann@example.org", "event": "bounce", "type": "bounce", "reason": "550 5.1.1"},
        {"email": "bo@example.org", "event": "spamreport"},
        {"email": "cy@example.org", "event": "bounce", "type": "blocked"},  # not the reader's
        {"email": "cy@example.org", "event": "open"},
    ]
    body = json.dumps(events).encode()
    response = client.post("/webhooks/sendgrid", content=body, headers=sendgrid_headers(body))
    assert response.status_code == 200 and response.json()["changed"] == 2
    assert [status(engine, a) for a in ("ann@example.org", "bo@example.org", "cy@example.org")] == [
        "bounced",
        "complained",
        "active",
    ]
    leave = json.dumps([{"email": "cy@example.org", "event": "group_unsubscribe"}]).encode()
    other_key = ec.generate_private_key(ec.SECP256R1())
    forged = sendgrid_headers(leave, key=other_key)
    assert client.post("/webhooks/sendgrid", content=leave, headers=forged).status_code == 401
    tampered = sendgrid_headers(body)  # signed for another body
    assert client.post("/webhooks/sendgrid", content=leave, headers=tampered).status_code == 401
    stale = sendgrid_headers(leave, at=time.time() - 3600)
    assert client.post("/webhooks/sendgrid", content=leave, headers=stale).status_code == 401
    assert client.post("/webhooks/sendgrid", content=leave).status_code == 401  # unsigned
    assert status(engine, "cy@example.org") == "active"
    ok = client.post("/webhooks/sendgrid", content=leave, headers=sendgrid_headers(leave))
    assert ok.json()["changed"] == 1 and status(engine, "cy@example.org") == "unsubscribed"


def test_postmark_basic_auth_and_record_types(hooked):
    client, engine = hooked
    auth = ("postmark", POSTMARK_PASSWORD)
    hard = {"RecordType": "Bounce", "Type": "HardBounce", "Email": "ann@example.org"}
    soft = {"RecordType": "Bounce", "Type": "SoftBounce", "Email": "bo@example.org"}
    left = {
        "RecordType": "SubscriptionChange",
        "Recipient": "cy@example.org",
        "SuppressSending": True,
        "SuppressionReason": "ManualSuppression",
    }
    assert client.post("/webhooks/postmark", json=hard).status_code == 401  # no auth
    wrong = client.post("/webhooks/postmark", json=hard, auth=("postmark", "guess-guess"))
    assert wrong.status_code == 401 and status(engine, "ann@example.org") == "active"
    for payload in (hard, soft, left):
        assert client.post("/webhooks/postmark", json=payload, auth=auth).status_code == 200
    assert [status(engine, a) for a in ("ann@example.org", "bo@example.org", "cy@example.org")] == [
        "bounced",
        "active",
        "unsubscribed",
    ]
    spam = {"RecordType": "SpamComplaint", "Email": "bo@example.org"}
    assert client.post("/webhooks/postmark", json=spam, auth=auth).json()["changed"] == 1
    assert status(engine, "bo@example.org") == "complained"


def test_an_unconfigured_provider_is_not_there(settings):
    client = TestClient(create_app(settings), base_url=PUBLIC, client=("198.51.100.9", 1))
    for provider in ("postmark", "mailgun", "sendgrid"):
        assert client.post(f"/webhooks/{provider}", json={}).status_code == 404


def test_secrets_for_webhooks_stay_out_of_the_config_file(tmp_path):
    config = write_config(tmp_path, '\n[webhooks]\nmailgun_signing_key = "key-in-the-file"\n')
    with pytest.raises(Exception, match="DIGEST_WEBHOOKS__MAILGUN_SIGNING_KEY"):
        load_settings(config)


@pytest.fixture
def served(tmp_path: Path, config_file: Path) -> Iterator[str]:
    add = (("subscribers", "add", "ann@example.org"),)
    yield from start_digest(tmp_path, config_file, "serve", env=ENV, before=add)


def test_a_real_server_takes_a_signed_complaint(served, cli):
    complaint = {"event": "complained", "recipient": "ann@example.org"}
    response = httpx.post(served + "/webhooks/mailgun", json=mailgun_body(complaint))
    assert response.status_code == 200 and response.json()["changed"] == 1
    assert "complained" in cli("subscribers", "show", "ann@example.org").stdout


def test_status_shows_how_the_last_issue_did(tmp_path, monkeypatch, cli):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(write_config(tmp_path))
    engine = open_store(settings)
    for address in ("ann@example.org", "bo@example.org", "cy@example.org", "di@example.org"):
        add_subscriber(engine, address)
    report = run_digest(settings)
    remove_subscriber(engine, "ann@example.org")
    client = TestClient(create_app(settings), base_url=PUBLIC, client=("198.51.100.9", 1))
    complaint = {"event": "complained", "recipient": "bo@example.org"}
    assert client.post("/webhooks/mailgun", json=mailgun_body(complaint)).status_code == 200
    out = cli("status", env=ENV).stdout
    row = next(
        line
        for line in out.splitlines()
        if report.key in line and "│" in line and "sent" not in line
    )
    cells = [c.strip() for c in row.split("│") if c.strip()]
    # Issue, Sent, Failed, Pending, Bounced, Complained, Unsubscribed (no clicks: tracking off)
    assert cells == [report.key, "4", "0", "0", "0", "1", "1"]
    assert "Click tracking is off" in out
