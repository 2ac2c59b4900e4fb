"""The SMTP transport against a real SMTP server (aiosmtpd), pipelined and in lock step."""

from __future__ import annotations

import time
from collections import Counter
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest

from digest import store
from digest.deliver import DeliveryPolicy, DeliveryReport
from digest.errors import DigestError
from digest.mail.smtp import SmtpConfig, SmtpTransport
from digest.mail.transport import Mailing
from tests.mailservers import (
    PASSWORD,
    USER,
    Certificates,
    Ledger,
    SmtpServer,
    deliver_through,
    everyone,
    make_certificates,
    make_ledger,
    smtp_server,
    token_for,
)

FAST = DeliveryPolicy(batch_size=7, concurrency=2, retries=3, test_mode=True)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


def config(server: SmtpServer, certs: Certificates | None = None, **changes: Any) -> SmtpConfig:
    values: dict[str, Any] = {
        "host": "localhost" if server.security != "none" else "127.0.0.1",
        "port": server.port,
        "security": server.security,
        "sender": "digest@example.org",
        "ca_file": certs.ca if certs else None,
        "timeout": 10.0,
        "connections": 3,  # one thread keeps three connections busy
    }
    return SmtpConfig(**(values | changes))


def deliver(ledger: Ledger, smtp: SmtpConfig, policy: DeliveryPolicy = FAST) -> DeliveryReport:
    return deliver_through(ledger, SmtpTransport(smtp), policy)


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "lockstep"])
def test_starttls_and_login_deliver_every_message_once_over_reused_connections(
    tmp_path: Path, certificates: Certificates, pipelining: bool
) -> None:
    ledger = make_ledger(tmp_path / "d.db", 30)
    with smtp_server(certificates, security="starttls", pipelining=pipelining, auth=True) as srv:
        smtp = config(srv, certificates, username=USER, password=PASSWORD, max_per_connection=10)
        report = deliver(ledger, smtp)
    assert (report.sent, report.failed, report.deferred) == (30, 0, 0)
    assert srv.handler.counts() == everyone(30)
    # 30 messages at most 10 per connection: 3 connections at least, never one per message.
    assert 3 <= srv.handler.sessions <= 6
    rows = ledger.rows()
    assert {r["status"] for r in rows.values()} == {"sent"}
    # What arrived is byte for byte the personalized copy (dot-stuffing undone).
    mailing = Mailing(ledger.key, ledger.template, token_for)
    with store.transaction(ledger.engine) as conn:
        reader = store.find_subscriber(conn, "r0001@example.org")
    assert reader is not None
    expected = mailing.envelope(reader)
    [got] = [r.data for r in srv.handler.received if r.recipient == reader.email]
    assert got == expected.data
    assert rows[reader.email]["message_id"] == expected.message_id
    message = message_from_bytes(got, policy=policy.default)
    assert message["To"] == "Reader 1 <r0001@example.org>"
    assert "tok-" in str(message["List-Unsubscribe"])
    assert "\n.a line that starts with a dot" in message.get_body(("plain",)).get_content()


def test_implicit_tls_on_its_own_port(tmp_path: Path, certificates: Certificates) -> None:
    ledger = make_ledger(tmp_path / "d.db", 5)
    with smtp_server(certificates, security="tls") as srv:
        report = deliver(ledger, config(srv, certificates))
    assert report.sent == 5 and srv.handler.counts() == everyone(5)


def test_a_wrong_password_stops_with_one_sentence_and_marks_nothing_sent(
    tmp_path: Path, certificates: Certificates
) -> None:
    ledger = make_ledger(tmp_path / "d.db", 12)
    with smtp_server(certificates, security="starttls", auth=True) as srv:
        smtp = config(srv, certificates, username=USER, password="wrong")
        with pytest.raises(DigestError) as caught:
            deliver(ledger, smtp)
    message = str(caught.value)
    assert message.startswith(f"The SMTP server localhost:{srv.port} refused the login")
    assert "DIGEST_DELIVERY__SMTP_PASSWORD" in message and "\n" not in message
    assert ledger.counts() == {"pending": 12}
    assert srv.handler.received == []


def test_a_certificate_nobody_vouches_for_is_refused(
    tmp_path: Path, certificates: Certificates
) -> None:
    ledger = make_ledger(tmp_path / "d.db", 3)
    with smtp_server(certificates, security="starttls") as srv:
        with pytest.raises(DigestError, match="Cannot verify the TLS certificate"):
            deliver(ledger, config(srv, None))
        # An operator who knowingly turns verification off gets through.
        assert deliver(ledger, config(srv, None, verify=False)).sent == 3


def test_starttls_is_required_unless_security_is_none(tmp_path: Path) -> None:
    ledger = make_ledger(tmp_path / "d.db", 2)
    with (
        smtp_server(security="none") as srv,
        pytest.raises(DigestError, match="does not offer STARTTLS"),
    ):
        deliver(ledger, config(srv, security="starttls"))
    assert ledger.counts() == {"pending": 2}


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "lockstep"])
@pytest.mark.parametrize("stage", ["rcpt", "data"])
def test_a_451_is_retried_with_backoff_until_accepted(
    tmp_path: Path, pipelining: bool, stage: str
) -> None:
    ledger = make_ledger(tmp_path / "d.db", 20)
    with smtp_server(pipelining=pipelining) as srv:
        busy = srv.handler.script.busy_rcpt if stage == "rcpt" else srv.handler.script.busy_data
        busy["r0003@example.org"] = 2
        busy["r0011@example.org"] = 1
        report = deliver(ledger, config(srv))
    assert (report.sent, report.failed, report.deferred) == (20, 0, 0)
    assert srv.handler.counts() == everyone(20)
    assert report.waited > 0  # backoff was computed (test mode does not sleep it)
    rows = ledger.rows()
    assert rows["r0003@example.org"]["attempts"] == 1  # retries within a run are one attempt


def test_temporary_failures_that_outlast_the_retries_stay_pending(tmp_path: Path) -> None:
    ledger = make_ledger(tmp_path / "d.db", 5)
    with smtp_server() as srv:
        srv.handler.script.busy_rcpt["r0002@example.org"] = 10
        report = deliver(ledger, config(srv), DeliveryPolicy(retries=2, test_mode=True))
        assert (report.sent, report.failed, report.deferred) == (4, 0, 1)
        assert ledger.counts() == {"sent": 4, "pending": 1}
        assert "451" in ledger.rows()["r0002@example.org"]["error"]
        # The next run sends only what is still pending.
        srv.handler.script.busy_rcpt.clear()
        assert deliver(ledger, config(srv)).sent == 1
    assert srv.handler.counts() == everyone(5)


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "lockstep"])
def test_a_550_fails_that_recipient_alone(tmp_path: Path, pipelining: bool) -> None:
    ledger = make_ledger(tmp_path / "d.db", 15)
    with smtp_server(pipelining=pipelining) as srv:
        srv.handler.script.refuse["r0004@example.org"] = "550 5.1.1 No such user here"
        srv.handler.script.refuse["r0008@example.org"] = "553 5.1.3 Bad address syntax"
        report = deliver(ledger, config(srv))
    assert (report.sent, report.failed) == (13, 2)
    assert srv.handler.counts() == everyone(15) - Counter(
        ["r0004@example.org", "r0008@example.org"]
    )
    rows = ledger.rows()
    assert rows["r0004@example.org"]["status"] == "failed"
    assert rows["r0004@example.org"]["error"] == "recipient: 550 5.1.1 No such user here"
    assert rows["r0008@example.org"]["error"].startswith("recipient: 553")
    assert sum(r["status"] == "sent" for r in rows.values()) == 13


@pytest.mark.both_stores  # the bounce count compares delivery times in SQL
def test_permanent_failures_in_a_row_mark_a_subscriber_bounced(database_url: str) -> None:
    db = database_url
    first = make_ledger(db, 3, key="daily/2026-11-28")
    policy = DeliveryPolicy(bounce_threshold=2, test_mode=True)
    with smtp_server() as srv:
        srv.handler.script.refuse["r0001@example.org"] = "550 5.1.1 No such user"
        deliver(first, config(srv), policy)
        assert first.rows()["r0001@example.org"]["who"] == "active"  # one failure: not yet
        second = make_ledger(db, 3, key="daily/2026-11-29", engine=first.engine)
        deliver(second, config(srv), policy)
    assert second.rows()["r0001@example.org"]["who"] == "bounced"
    assert second.rows()["r0002@example.org"]["who"] == "active"
    # A bounced subscriber is not in the next digest at all.
    third = make_ledger(db, 3, key="daily/2026-11-30", engine=first.engine)
    assert "r0001@example.org" not in third.rows()


@pytest.mark.both_stores  # the bounce count compares delivery times in SQL
def test_a_delivered_message_resets_the_bounce_count(database_url: str) -> None:
    db = database_url
    policy = DeliveryPolicy(bounce_threshold=2, test_mode=True)
    with smtp_server() as srv:
        engine = None
        for day, refuse in [(28, True), (29, False), (30, True)]:
            ledger = make_ledger(db, 2, key=f"daily/2026-11-{day}", engine=engine)
            engine = ledger.engine
            srv.handler.script.refuse.clear()
            if refuse:
                srv.handler.script.refuse["r0001@example.org"] = "550 No such user"
            deliver(ledger, config(srv), policy)
    assert ledger.rows()["r0001@example.org"]["who"] == "active"


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "lockstep"])
def test_a_connection_dropped_mid_data_is_resent_once(tmp_path: Path, pipelining: bool) -> None:
    ledger = make_ledger(tmp_path / "d.db", 20)
    with smtp_server(pipelining=pipelining) as srv:
        srv.handler.script.drop_mid_data = 2
        report = deliver(ledger, config(srv))
    assert (report.sent, report.failed, report.deferred) == (20, 0, 0)
    assert srv.handler.counts() == everyone(20)  # the cut message was never accepted
    assert srv.handler.sessions >= 3


def test_a_reply_lost_after_acceptance_is_the_one_duplicate_window(tmp_path: Path) -> None:
    ledger = make_ledger(tmp_path / "d.db", 10)
    with smtp_server() as srv:
        srv.handler.script.drop_after_accept = 1
        report = deliver(ledger, config(srv))
    counts = srv.handler.counts()
    assert report.sent == 10 and ledger.counts() == {"sent": 10}
    # The server took one message but its answer never came: that one went twice.
    assert sorted(counts.values()) == [1] * 9 + [2]


def test_a_slow_server_within_the_timeout_is_simply_waited_for(tmp_path: Path) -> None:
    ledger = make_ledger(tmp_path / "d.db", 6)
    with smtp_server() as srv:
        srv.handler.script.delay = 0.05
        report = deliver(ledger, config(srv, timeout=5.0))
    assert report.sent == 6 and report.waited == 0 and srv.handler.counts() == everyone(6)


def test_a_server_slower_than_the_timeout_is_retried(tmp_path: Path) -> None:
    ledger = make_ledger(tmp_path / "d.db", 6)
    with smtp_server() as srv:
        srv.handler.script.slow_once = 1.5
        report = deliver(
            ledger, config(srv, timeout=0.5, connections=1), DeliveryPolicy(test_mode=True)
        )
        assert report.sent == 6 and ledger.counts() == {"sent": 6}
        assert report.waited > 0  # the timed-out message was retried after a backoff
    counts = srv.handler.counts()
    assert set(counts) == set(everyone(6))
    # The timed-out message may have been accepted late: in doubt, it goes again.
    assert sum(counts.values()) - 6 <= 1


def test_an_unreachable_server_stops_the_run_after_the_retries(tmp_path: Path) -> None:
    from tests.mailservers import free_port

    ledger = make_ledger(tmp_path / "d.db", 30)
    smtp = SmtpConfig(host="127.0.0.1", port=free_port(), security="none", sender="d@example.org")
    with pytest.raises(DigestError, match=r"Giving up after 3 attempts: cannot connect"):
        deliver(ledger, smtp, DeliveryPolicy(retries=2, concurrency=3, test_mode=True))
    assert ledger.counts() == {"pending": 30}


def test_a_refused_sender_stops_the_run(tmp_path: Path) -> None:
    ledger = make_ledger(tmp_path / "d.db", 4)
    with smtp_server() as srv:
        srv.handler.script.refuse_sender = "553 5.7.1 Sender address rejected"
        with pytest.raises(DigestError, match=r"refused the sender address digest@example\.org"):
            deliver(ledger, config(srv))
    assert ledger.counts() == {"pending": 4}


def test_the_rate_limit_spaces_the_messages(tmp_path: Path) -> None:
    ledger = make_ledger(tmp_path / "d.db", 100)
    with smtp_server() as srv:
        policy = DeliveryPolicy(batch_size=10, rate_limit=50, test_mode=True)
        report = deliver(ledger, config(srv), policy)
    assert report.sent == 100
    # 50 go in the first second's burst; the other 50 need one more second at 50/s.
    assert report.waited == pytest.approx(1.0, abs=0.1)


def test_an_idle_connection_closed_by_the_server_is_replaced_silently(tmp_path: Path) -> None:
    ledger = make_ledger(tmp_path / "d.db", 4)
    with smtp_server(idle_timeout=0.2) as srv:
        transport = SmtpTransport(config(srv, connections=1))
        mailing = Mailing(ledger.key, ledger.template, token_for)
        with store.transaction(ledger.engine) as conn:
            people = store.pending_deliveries(conn, ledger.digest_id, 10)
        first = transport.deliver(mailing, people[:2])
        time.sleep(0.5)  # the server hangs up on the idle connection meanwhile
        second = transport.deliver(mailing, people[2:])
        transport.close()
    # No retry was needed: the dead connection was replaced before anything was sent.
    assert [o.status for o in first + second] == ["sent"] * 4
    assert srv.handler.counts() == everyone(4) and srv.handler.sessions == 2


def test_one_thread_keeps_every_connection_busy(tmp_path: Path) -> None:
    ledger = make_ledger(tmp_path / "d.db", 40)
    with smtp_server() as srv:
        transport = SmtpTransport(config(srv, connections=4))
        mailing = Mailing(ledger.key, ledger.template, token_for)
        with store.transaction(ledger.engine) as conn:
            people = store.pending_deliveries(conn, ledger.digest_id, 40)
        outcomes = transport.deliver(mailing, people)
        transport.close()
    assert [o.status for o in outcomes] == ["sent"] * 40
    # The batch was spread over four connections, ten messages each.
    assert srv.handler.sessions == 4
    per_session = Counter(r.session for r in srv.handler.received)
    assert sorted(per_session.values()) == [10, 10, 10, 10]


def test_shares_are_even_contiguous_and_within_each_connections_room() -> None:
    from digest.mail.smtp import _split

    assert _split(list(range(10)), [100, 100, 100]) == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert _split(list(range(10)), [2, 100]) == [[0, 1], [2, 3, 4, 5, 6, 7, 8, 9]]
    assert _split(list(range(5)), [1, 1]) == [[0], [1]]  # the rest waits for a new connection
