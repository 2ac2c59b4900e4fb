"""Provider API transports against a local server that checks their documented formats."""

from __future__ import annotations

import html
import time
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


def reader_id(ledger: Ledger, email: str) -> int:
    with store.transaction(ledger.engine) as conn:
        reader = store.find_subscriber(conn, email)
    assert reader is not None
    return reader.id


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
        # The footer's links are the reader's own, in both parts.
        own = f"https://digest.example.org/preferences/tok-{reader_id(ledger, copy.to)}"
        assert f"Preferences: {own}" in copy.text and f'href="{own}"' in copy.html


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
    # Postmark refuses that message only; SendGrid refuses the request but names the
    # reader, so the rest go again at once; Mailgun does not say whose: halving finds it.
    expected = {"postmark": 2, "sendgrid": 3}.get(provider, 2 + 2 * 5)
    assert fake.requests[provider] <= expected


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


def statuses(ledger: Ledger) -> Counter[str]:
    """How many subscribers of the ledger are in each status."""
    return Counter(row["who"] for row in ledger.rows().values())


@pytest.mark.parametrize(
    ("setup", "sentence"),
    [
        ("unconfirmed sender", "confirm a sender signature"),
        ("inactive account", "account may not send"),
        ("bad reply-to", r"sender\.reply_to"),
    ],
)
def test_a_postmark_sender_error_stops_the_run_and_bounces_nobody(
    tmp_path: Path, server: tuple[ProviderServer, str], setup: str, sentence: str
) -> None:
    fake, url = server
    reply_to = "Editors <editors@example.org>"
    if setup == "unconfirmed sender":
        fake.verified.clear()
    elif setup == "inactive account":
        fake.account_error = (412, "Your account is pending approval.")
    else:
        reply_to = "editors at example.org"
    ledger = make_ledger(tmp_path / "d.db", 40, reply_to=reply_to)
    # Postmark answers HTTP 200 with an error per message; three runs used to bounce all.
    for _ in range(3):
        with pytest.raises(DigestError, match=sentence) as caught:
            deliver(ledger, transport("postmark", url))
        assert str(caught.value).count(";") == 1 and str(caught.value).endswith(".")
    assert ledger.counts() == {"pending": 40}
    assert statuses(ledger) == {"active": 40}
    assert fake.delivered == []
    assert fake.requests["postmark"] <= 3 * 2  # one request per worker and run


def test_postmark_accepted_but_delayed_counts_as_sent(
    tmp_path: Path, server: tuple[ProviderServer, str]
) -> None:
    fake, url = server
    fake.delayed = {"r0003@example.org", "r0004@example.org"}
    ledger = make_ledger(tmp_path / "d.db", 10)
    report = deliver(ledger, transport("postmark", url))
    assert (report.sent, report.failed) == (10, 0)
    row = ledger.rows()["r0003@example.org"]
    assert row["status"] == "sent" and row["message_id"]


def test_postmark_invalid_to_fails_only_that_reader(
    tmp_path: Path, server: tuple[ProviderServer, str]
) -> None:
    _, url = server
    ledger = make_ledger(tmp_path / "d.db", 5)
    with store.transaction(ledger.engine) as conn:
        # Words such as "from" or "body" in the address are not the From or the body.
        store.insert_subscriber(conn, "somebody.from@localhost", None, (), "active")
    ledger = make_ledger(tmp_path / "d.db", 5, key="daily/2026-11-29", engine=ledger.engine)
    report = deliver(ledger, transport("postmark", url))
    assert (report.sent, report.failed) == (5, 1)
    assert "'To'" in ledger.rows()["somebody.from@localhost"]["error"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_request_level_400_costs_one_request_and_no_bounce(
    tmp_path: Path, server: tuple[ProviderServer, str], provider: str
) -> None:
    fake, url = server
    fake.verified.add("digest@localhost")
    # Every provider refuses this From for the whole request (Postmark: per message).
    ledger = make_ledger(tmp_path / "d.db", 40, sender_address="digest@localhost")
    policy = DeliveryPolicy(batch_size=25, concurrency=1, retries=3, test_mode=True)
    with pytest.raises(DigestError, match=r"sender\.address") as caught:
        deliver(ledger, transport(provider, url), policy)
    assert provider == "postmark" or "refused the request" in str(caught.value)
    # Halving used to send 2N-1 requests per batch (49 + 29 here) and fail every reader.
    assert fake.requests[provider] == 1
    assert ledger.counts() == {"pending": 40}
    assert statuses(ledger) == {"active": 40}


def test_an_unclear_refusal_that_recurs_for_one_reader_stops_the_run(
    tmp_path: Path, server: tuple[ProviderServer, str]
) -> None:
    fake, url = server
    fake.fail_next(400, times=100)  # a 400 that names no field
    ledger = make_ledger(tmp_path / "d.db", 25)
    policy = DeliveryPolicy(batch_size=25, concurrency=1, retries=3, test_mode=True)
    with pytest.raises(DigestError, match="even for a single reader"):
        deliver(ledger, transport("sendgrid", url), policy)
    assert fake.requests["sendgrid"] == 5  # 25, 12, 6, 3, 1: halves down one side only
    assert ledger.counts() == {"pending": 25}
    assert statuses(ledger) == {"active": 25}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_no_reply_to_is_sent_without_one(
    tmp_path: Path, server: tuple[ProviderServer, str], provider: str
) -> None:
    fake, url = server
    ledger = make_ledger(tmp_path / "d.db", 3, reply_to="")
    assert deliver(ledger, transport(provider, url)).sent == 3
    assert all("Reply-To" not in copy.headers for copy in fake.delivered)


def test_postmark_answers_more_than_500_with_its_4xx(
    tmp_path: Path, server: tuple[ProviderServer, str]
) -> None:
    fake, url = server
    ledger = make_ledger(tmp_path / "d.db", 501)
    with store.transaction(ledger.engine) as conn:
        readers = store.pending_deliveries(conn, ledger.digest_id, 600)
    api = transport("postmark", url)
    try:
        outcomes = api.deliver(Mailing(ledger.key, ledger.template, token_for), readers)
    finally:
        api.close()
    assert all(o.halted and "410" in (o.detail or "") for o in outcomes)
    assert fake.requests["postmark"] == 1 and fake.delivered == []


def test_postmark_406_gives_the_reader_the_status_postmark_knows(
    tmp_path: Path, server: tuple[ProviderServer, str]
) -> None:
    fake, url = server
    fake.suppressed = {
        "r0001@example.org": "ManualSuppression",  # unsubscribed through Postmark's link
        "r0002@example.org": "SpamComplaint",
        "r0003@example.org": "HardBounce",
    }
    fake.refuse.add("r0004@example.org")  # inactive, reason unknown: a plain failure
    ledger = make_ledger(tmp_path / "d.db", 8)
    report = deliver(ledger, transport("postmark", url))
    assert (report.sent, report.failed) == (4, 4)
    rows = ledger.rows()
    assert [rows[f"r000{n}@example.org"]["who"] for n in range(1, 5)] == [
        "unsubscribed",
        "complained",
        "bounced",
        "active",  # one failure of bounce_threshold (3)
    ]
    with store.transaction(ledger.engine) as conn:
        reader = store.find_subscriber(conn, "r0001@example.org")
        assert reader is not None
        assert [e for e, _ in store.subscriber_history(conn, reader.id)][-1] == "unsubscribed"


def test_postmark_batches_are_cut_by_size_as_well(
    tmp_path: Path, server: tuple[ProviderServer, str]
) -> None:
    fake, url = server
    ledger = make_ledger(tmp_path / "d.db", 100)
    api = transport("postmark", url)
    # The same ratio as 500 copies of a 125 KB digest against 50 MB, at a small scale.
    fake.postmark_max_bytes = 40_000
    assert isinstance(api, PostmarkTransport)
    api.max_bytes = 40_000
    report = deliver(ledger, api, DeliveryPolicy(batch_size=100, concurrency=1, test_mode=True))
    assert report.sent == 100 and fake.counts() == everyone(100)
    assert fake.too_large == 0 and 30_000 < fake.largest <= 40_000
    assert fake.requests["postmark"] == 3  # ~1.1 KB a message: 3 requests for 100


@pytest.mark.parametrize("provider", PROVIDERS)
def test_non_ascii_header_values_are_encoded_as_over_smtp(
    tmp_path: Path, server: tuple[ProviderServer, str], provider: str
) -> None:
    fake, url = server
    ledger = make_ledger(tmp_path / "d.db", 2, sender_name="Café Société — Lettre")
    report = deliver(ledger, transport(provider, url))
    # SendGrid refuses raw Unicode in a header value (the fake answers 400 for it).
    assert report.sent == 2 and fake.requests[provider] == 1
    mime = mime_copy(ledger, "r0000@example.org")
    raw = dict(mime.raw_items())["List-Id"]
    assert raw.isascii() and "=?utf-8?" in raw
    for copy in fake.delivered:
        assert copy.raw_headers["List-Id"] == raw
        assert copy.headers["List-Id"] == str(mime["List-Id"])
        assert copy.headers["List-Id"].startswith("Café Société — Lettre <")


def test_mailgun_wants_its_own_answer_before_anything_counts_as_sent(
    tmp_path: Path, server: tuple[ProviderServer, str]
) -> None:
    fake, url = server
    ledger = make_ledger(tmp_path / "d.db", 5)
    # A base URL with a path: the request reaches a page that answers 200, not Mailgun.
    with pytest.raises(DigestError, match=r"without a Mailgun message id.*api_base_url"):
        deliver(ledger, transport("mailgun", f"{url}/wrong"))
    assert fake.requests["elsewhere"] == 1
    assert ledger.counts() == {"pending": 5} and statuses(ledger) == {"active": 5}


def test_mailgun_unknown_domain_stops_the_run(
    tmp_path: Path, server: tuple[ProviderServer, str]
) -> None:
    fake, url = server
    ledger = make_ledger(tmp_path / "d.db", 5)
    api = MailgunTransport(API_KEY, domain="other.example.org", base_url=url)
    with pytest.raises(DigestError, match=r"Domain not found.*delivery\.api_domain"):
        deliver(ledger, api)
    assert ledger.counts() == {"pending": 5} and fake.delivered == []


def test_mailgun_variables_name_no_subscriber(
    tmp_path: Path, server: tuple[ProviderServer, str]
) -> None:
    fake, url = server
    ledger = make_ledger(tmp_path / "d.db", 5)
    assert deliver(ledger, transport("mailgun", url)).sent == 5
    assert fake.mailgun_variables == [{"digest": ledger.key}]


def test_sendgrid_rate_limit_waits_until_its_reset(
    tmp_path: Path, server: tuple[ProviderServer, str]
) -> None:
    fake, url = server
    # SendGrid sends the reset time in epoch seconds, and no Retry-After.
    fake.fail_next(429, X_RateLimit_Reset=str(int(time.time()) + 40))
    ledger = make_ledger(tmp_path / "d.db", 5)
    report = deliver(ledger, transport("sendgrid", url))
    assert report.sent == 5 and report.waited >= 35


def test_sendgrid_403_names_the_sender_identity(
    tmp_path: Path, server: tuple[ProviderServer, str]
) -> None:
    fake, url = server
    fake.verified.clear()
    ledger = make_ledger(tmp_path / "d.db", 5)
    with pytest.raises(DigestError, match="not a verified Sender Identity") as caught:
        deliver(ledger, transport("sendgrid", url))
    assert "Mail Send" in str(caught.value) and "sender.address" in str(caught.value)
    assert ledger.counts() == {"pending": 5} and fake.requests["sendgrid"] == 1


def test_a_sender_error_mid_batch_records_what_went_out_then_stops(
    tmp_path: Path, server: tuple[ProviderServer, str]
) -> None:
    fake, url = server
    fake.send_limit = 30  # the account's limit is reached in the second batch
    ledger = make_ledger(tmp_path / "d.db", 40)
    policy = DeliveryPolicy(batch_size=25, concurrency=1, retries=3, test_mode=True)
    with pytest.raises(DigestError, match="405"):
        deliver(ledger, transport("postmark", url), policy)
    assert ledger.counts() == {"sent": 30, "pending": 10}
    assert statuses(ledger) == {"active": 40}
    # The next run sends only what is still pending.
    fake.send_limit = None
    assert deliver(ledger, transport("postmark", url), policy).sent == 10
    assert fake.counts() == everyone(40)
