"""Provider API transports against a local server that checks their documented formats."""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from digest import store
from digest.deliver import DeliveryPolicy, DeliveryReport
from digest.errors import DigestError
from digest.mail.api import MailgunTransport, PostmarkTransport, SendGridTransport
from digest.mail.api.http import ApiTransport, retry_after
from digest.mail.transport import Mailing
from tests.mailservers import (
    API_KEY,
    Ledger,
    ProviderServer,
    deliver_through,
    everyone,
    make_ledger,
    provider_server,
    token_for,
)

PROVIDERS = ["postmark", "sendgrid", "mailgun"]
FAST = DeliveryPolicy(batch_size=25, concurrency=2, retries=3, test_mode=True)


@pytest.fixture
def server() -> Iterator[tuple[ProviderServer, str]]:
    with provider_server() as running:
        yield running


def transport(provider: str, base_url: str, key: str = API_KEY) -> ApiTransport:
    if provider == "postmark":
        return PostmarkTransport(key, base_url=base_url)
    if provider == "sendgrid":
        return SendGridTransport(key, base_url=base_url)
    return MailgunTransport(key, domain="mg.example.org", base_url=base_url)


def deliver(ledger: Ledger, api: ApiTransport, policy: DeliveryPolicy = FAST) -> DeliveryReport:
    return deliver_through(ledger, api, policy)


def mime_copy(ledger: Ledger, email: str) -> EmailMessage:
    """What the SMTP transport would send this reader, parsed."""
    with store.transaction(ledger.engine) as conn:
        reader = store.find_subscriber(conn, email)
    assert reader is not None
    data = Mailing(ledger.key, ledger.template, token_for).envelope(reader).data
    message = message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


@pytest.mark.parametrize("provider", PROVIDERS)
def test_each_reader_gets_the_same_copy_as_over_smtp(
    tmp_path: Path, server: tuple[ProviderServer, str], provider: str
) -> None:
    fake, url = server
    ledger = make_ledger(tmp_path / "d.db", 60)
    report = deliver(ledger, transport(provider, url))
    assert (report.sent, report.failed, report.deferred) == (60, 0, 0)
    assert fake.counts() == everyone(60)
    assert fake.requests[provider] == 3  # batches of 25: one request each
    rows = ledger.rows()
    assert all(r["status"] == "sent" and r["message_id"] for r in rows.values())
    for copy in fake.delivered:
        mime = mime_copy(ledger, copy.to)
        assert copy.subject == mime["Subject"] == "The digest — Café edition"
        assert (
            copy.text.strip()
            == mime.get_body(("plain",)).get_content().replace("\r\n", "\n").strip()
        )
        assert (
            copy.html.strip()
            == mime.get_body(("html",)).get_content().replace("\r\n", "\n").strip()
        )
        # The one-click unsubscribe headers reach every message, with the reader's own link.
        assert copy.headers["List-Unsubscribe"] == str(mime["List-Unsubscribe"])
        assert copy.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert copy.headers["List-Id"] == str(mime["List-Id"])
        assert copy.headers["Reply-To"] == str(mime["Reply-To"]) == "Editors <editors@example.org>"
        number = int(copy.to[1:5])
        assert copy.name == (f"Reader {number}" if number % 3 else "")
        # The greeting uses the first name.
        assert ("Hello Reader," if number % 3 else "Hello there,") in copy.text


@pytest.mark.parametrize("provider", PROVIDERS)
def test_names_that_need_escaping_arrive_intact(
    tmp_path: Path, server: tuple[ProviderServer, str], provider: str
) -> None:
    fake, url = server
    ledger = make_ledger(tmp_path / "d.db", 0)
    odd = 'Zoë<Ops>&"O\'Brien"'  # one word: the greeting's first name is all of it
    with store.transaction(ledger.engine) as conn:
        store.insert_subscriber(conn, "zoe@example.org", odd, (), "active")
    ledger = make_ledger(tmp_path / "d.db", 0, key="daily/2026-11-29", engine=ledger.engine)
    assert deliver(ledger, transport(provider, url)).sent == 1
    [copy] = fake.delivered
    assert copy.name == odd
    assert f"Hello {odd}," in copy.text
    assert f"Hello {html.escape(odd)}," in copy.html


@pytest.mark.parametrize("provider", PROVIDERS)
def test_one_refused_address_never_fails_the_batch(
    tmp_path: Path, server: tuple[ProviderServer, str], provider: str
) -> None:
    fake, url = server
    fake.refuse.add("r0017@example.org")
    ledger = make_ledger(tmp_path / "d.db", 40)
    report = deliver(ledger, transport(provider, url))
    assert (report.sent, report.failed) == (39, 1)
    assert fake.counts() == everyone(40) - Counter(["r0017@example.org"])
    row = ledger.rows()["r0017@example.org"]
    assert row["status"] == "failed" and row["error"]
    # SendGrid and Mailgun refuse the whole request: halving finds the one address.
    assert fake.requests[provider] <= 2 + 2 * 5


@pytest.mark.parametrize("provider", PROVIDERS)
def test_429_is_retried_after_the_retry_after_the_provider_asked_for(
    tmp_path: Path, server: tuple[ProviderServer, str], provider: str
) -> None:
    fake, url = server
    fake.fail_next(429, Retry_After="7")
    ledger = make_ledger(tmp_path / "d.db", 10)
    report = deliver(ledger, transport(provider, url))
    assert (report.sent, report.deferred) == (10, 0)
    assert fake.counts() == everyone(10)
    assert report.waited >= 7  # computed and honoured (test mode does not sleep it)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_500_is_retried_then_delivered(
    tmp_path: Path, server: tuple[ProviderServer, str], provider: str
) -> None:
    fake, url = server
    fake.fail_next(500, times=2)
    ledger = make_ledger(tmp_path / "d.db", 10)
    report = deliver(ledger, transport(provider, url), DeliveryPolicy(test_mode=True))
    assert report.sent == 10 and fake.counts() == everyone(10)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_provider_down_for_good_stops_the_run(
    tmp_path: Path, server: tuple[ProviderServer, str], provider: str
) -> None:
    fake, url = server
    fake.fail_next(503, times=100)
    ledger = make_ledger(tmp_path / "d.db", 10)
    with pytest.raises(DigestError, match=r"Giving up after 3 attempts: .* answered 503"):
        deliver(ledger, transport(provider, url), DeliveryPolicy(retries=2, test_mode=True))
    assert ledger.counts() == {"pending": 10}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_wrong_api_key_stops_with_one_sentence(
    tmp_path: Path, server: tuple[ProviderServer, str], provider: str
) -> None:
    fake, url = server
    ledger = make_ledger(tmp_path / "d.db", 5)
    with pytest.raises(DigestError, match="refused the API key") as caught:
        deliver(ledger, transport(provider, url, key="wrong"))
    assert "DIGEST_DELIVERY__API_KEY" in str(caught.value)
    assert ledger.counts() == {"pending": 5} and fake.delivered == []


def test_postmark_batches_stay_within_500(
    tmp_path: Path, server: tuple[ProviderServer, str]
) -> None:
    fake, url = server
    ledger = make_ledger(tmp_path / "d.db", 620)
    report = deliver(ledger, transport("postmark", url), DeliveryPolicy(batch_size=1000))
    assert report.sent == 620 and fake.requests["postmark"] == 2


def test_an_unreachable_provider_is_retried_then_stops_the_run(tmp_path: Path) -> None:
    from tests.mailservers import free_port

    ledger = make_ledger(tmp_path / "d.db", 3)
    api = transport("postmark", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(DigestError, match="Giving up after 2 attempts: cannot reach Postmark"):
        deliver(ledger, api, DeliveryPolicy(retries=1, test_mode=True))
    assert ledger.counts() == {"pending": 3}


def test_retry_after_reads_seconds_and_dates() -> None:
    import httpx

    def after(value: str) -> float | None:
        return retry_after(httpx.Response(429, headers={"Retry-After": value}))

    assert after("120") == 120
    assert after("Wed, 21 Oct 2015 07:28:00 GMT") == 0  # a date in the past: go now
    assert after("soon") is None
