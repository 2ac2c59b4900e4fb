"""The ledger loop: paging with several workers, retries, backoff, rate limit, test sends."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from digest import store
from digest.deliver import DeliveryPolicy, DeliveryReport, backoff_delay, deliver_digest, send_test
from digest.errors import DigestError
from digest.mail import open_transport
from digest.mail.outbox import OutboxTransport
from digest.mail.ratelimit import Pacer, TokenBucket
from digest.mail.smtp import SmtpTransport
from digest.mail.transport import Mailing
from digest.models import Subscriber
from digest.settings import load_settings
from tests.mailservers import make_ledger, token_for

pytestmark = pytest.mark.both_stores


def test_backoff_doubles_with_jitter_up_to_the_maximum() -> None:
    rng = random.Random(7)
    for attempt in range(1, 12):
        ceiling = min(60.0, 1.0 * 2 ** (attempt - 1))
        delays = [backoff_delay(attempt, initial=1.0, maximum=60.0, rng=rng) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jittered, so parallel workers do not retry in step


def test_retry_after_is_a_floor_honoured_up_to_the_maximum() -> None:
    assert backoff_delay(1, initial=1.0, maximum=60.0, retry_after=7) == 7
    assert backoff_delay(1, initial=1.0, maximum=60.0, retry_after=3600) == 60
    assert backoff_delay(1, initial=0, maximum=60.0) == 0  # zero backoff: retry at once


def test_the_token_bucket_holds_the_average_rate() -> None:
    pacer = Pacer(test_mode=True)
    bucket = TokenBucket(100, pacer)
    waits = [bucket.take(30) for _ in range(10)]
    assert waits[:3] == [0, 0, 0]  # the first second's burst
    # 300 messages at 100/s: the 200 beyond the burst take two seconds.
    assert pacer.waited == pytest.approx(2.0)


def test_several_workers_send_each_pending_row_exactly_once(
    tmp_path: Path, database_url: str
) -> None:
    ledger = make_ledger(database_url, 250)
    seen: list[DeliveryReport] = []
    outbox = OutboxTransport(tmp_path / "out")
    report = deliver_digest(
        ledger.engine,
        digest_id=ledger.digest_id,
        digest_key=ledger.key,
        template=ledger.template,
        transport=outbox,
        token_for=token_for,
        policy=DeliveryPolicy(batch_size=9, concurrency=4, test_mode=True),
        on_batch=seen.append,
    )
    assert (report.sent, report.failed, report.deferred) == (250, 0, 0)
    assert ledger.counts() == {"sent": 250}
    assert len(list((tmp_path / "out").rglob("*.eml"))) == 250
    assert {r["attempts"] for r in ledger.rows().values()} == {1}
    assert [r.sent for r in seen] == sorted(r.sent for r in seen) and seen[-1].sent == 250


def test_a_message_that_cannot_be_written_stays_pending(tmp_path: Path, database_url: str) -> None:
    ledger = make_ledger(database_url, 3)
    blocker = tmp_path / "out"
    blocker.write_text("a file where the outbox folder should be")
    report = deliver_digest(
        ledger.engine,
        digest_id=ledger.digest_id,
        digest_key=ledger.key,
        template=ledger.template,
        transport=OutboxTransport(blocker),
        token_for=token_for,
        policy=DeliveryPolicy(retries=2, test_mode=True),
    )
    assert (report.sent, report.failed, report.deferred) == (0, 0, 3)
    assert ledger.counts() == {"pending": 3}
    assert "cannot write" in ledger.rows()["r0000@example.org"]["error"]
    assert report.waited > 0


def test_a_test_copy_is_sent_but_never_recorded(tmp_path: Path, database_url: str) -> None:
    ledger = make_ledger(database_url, 2)
    mailing = Mailing(f"test/{ledger.key}", ledger.template, token_for)
    outcome = send_test(
        OutboxTransport(tmp_path / "out"), mailing, Subscriber(id=0, email="me@example.org")
    )
    assert outcome.status == "sent"
    assert (tmp_path / "out" / "test-daily-2026-11-28" / "me@example.org.eml").is_file()
    assert ledger.counts() == {"pending": 2}


def test_the_backend_setting_picks_the_transport(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("DIGEST_DELIVERY__BACKEND", "DIGEST_DELIVERY__SMTP_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "digest.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n[delivery]\nsmtp_host = "mail.example.org"\n')
    assert isinstance(open_transport(load_settings(config)), OutboxTransport)
    monkeypatch.setenv("DIGEST_DELIVERY__BACKEND", "smtp")
    monkeypatch.setenv("DIGEST_DELIVERY__SMTP_PASSWORD", "from-the-environment")
    settings = load_settings(config)
    assert settings.delivery.smtp_password is not None
    assert "from-the-environment" not in repr(settings)  # a secret never shows in logs
    smtp = open_transport(settings)
    assert isinstance(smtp, SmtpTransport)
    assert (smtp.config.host, smtp.config.port, smtp.config.security) == (
        "mail.example.org",
        587,
        "starttls",
    )
    monkeypatch.setenv("DIGEST_DELIVERY__BACKEND", "postmark")
    with pytest.raises(DigestError, match="no API key is set; set DIGEST_DELIVERY__API_KEY"):
        open_transport(load_settings(config))
    monkeypatch.setenv("DIGEST_DELIVERY__BACKEND", "carrier-pigeon")
    with pytest.raises(DigestError, match=r"Invalid setting delivery\.backend"):
        load_settings(config)


def test_a_fatal_error_in_one_worker_ends_the_run_and_keeps_what_was_sent(
    tmp_path: Path, database_url: str
) -> None:
    ledger = make_ledger(database_url, 40)

    class FullDisk(OutboxTransport):
        """Writes 10 messages, then fails as nothing else can (a fatal, operator's error)."""

        written = 0

        def deliver(self, mailing: Mailing, batch: list[Subscriber]):  # type: ignore[override]
            if FullDisk.written >= 10:
                raise DigestError("The outbox disk is full; free some space.")
            FullDisk.written += len(batch)
            return super().deliver(mailing, batch)

    with pytest.raises(DigestError, match="disk is full"):
        deliver_digest(
            ledger.engine,
            digest_id=ledger.digest_id,
            digest_key=ledger.key,
            template=ledger.template,
            transport=FullDisk(tmp_path / "out"),
            token_for=token_for,
            policy=DeliveryPolicy(batch_size=5, concurrency=1, test_mode=True),
        )
    assert ledger.counts() == {"sent": 10, "pending": 30}
    with store.transaction(ledger.engine) as conn:
        assert len(store.pending_deliveries(conn, ledger.digest_id, 100)) == 30
