"""`digest bounces`: read the bounce mailbox, record each bounce, file the reports away.

A report is recorded in one transaction, and only then moved to the processed folder: a
run stopped in between finds it again next time, and recording it twice changes nothing
(the bounces table is unique per report and subscriber). An unsubscribe request sent to
the List-Unsubscribe mailto (subject "unsubscribe") unsubscribes its sender, as the
one-click link does, when the sender is a subscriber. Messages that are neither, or name
no subscriber, stay in the folder for a person to read, and are reported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser

from sqlalchemy.engine import Connection, Engine

from digest import store
from digest.errors import ConfigError, InvalidInput
from digest.mail.dsn import Bounce, Failure, read_bounce
from digest.mail.imap import BounceMailbox
from digest.mail.unsubscribe_request import UnsubscribeRequest, read_unsubscribe_request
from digest.mail.verp import verp_subscriber
from digest.settings import Settings
from digest.subscribers import normalize_email, secret_key


@dataclass(frozen=True, slots=True)
class LeftMessage:
    """A message left in the bounce folder, and why."""

    sender: str
    subject: str
    reason: str


@dataclass
class BounceReport:
    """What one reading of the mailbox found and did."""

    read: int = 0
    hard: int = 0
    soft: int = 0
    marked_bounced: int = 0
    already_recorded: int = 0
    unsubscribed: int = 0  # by a message to the List-Unsubscribe mailto
    moved: int = 0
    left: list[LeftMessage] = field(default_factory=list)


NOT_A_BOUNCE = "not a bounce report"
NO_SUBSCRIBER = "names no subscriber or delivery of ours"
UNTRUSTED_REQUEST = "an unsubscribe request whose From failed DMARC; not acted on"


def process_bounces(
    settings: Settings,
    engine: Engine,
    *,
    on_start: Callable[[int], None] = lambda _n: None,
    on_message: Callable[[BounceReport], None] = lambda _r: None,
) -> BounceReport:
    """Read every message in bounces.folder once; record bounces; move what was recorded."""
    config = settings.bounces
    if config is None:
        raise ConfigError(
            "No bounce mailbox is configured; add a [bounces] section with host and username "
            "to the config file, and set DIGEST_BOUNCES__PASSWORD."
        )
    verp = _Verp(config.verp_address, secret_key(settings)[0]) if config.verp_address else None
    report = BounceReport()
    with BounceMailbox(config) as mailbox:
        uids = mailbox.uids()
        on_start(len(uids))
        for uid in uids:
            data = mailbox.fetch(uid)
            if data is None:  # moved or deleted by someone else meanwhile
                continue
            report.read += 1
            if _record(engine, data, report, config.soft_threshold, verp):
                mailbox.move(uid)
                report.moved += 1
            on_message(report)
    return report


@dataclass(frozen=True, slots=True)
class _Verp:
    address: str
    key: str


def _record(
    engine: Engine, data: bytes, report: BounceReport, soft_threshold: int, verp: _Verp | None
) -> bool:
    """Record one message's bounces; False (and why, in the report) if it stays."""
    bounce = read_bounce(data)
    if bounce is None:
        request = read_unsubscribe_request(data)
        if request is not None:
            return _unsubscribe(engine, data, request, report)
        report.left.append(_left(data, NOT_A_BOUNCE))
        return False
    with store.transaction(engine) as conn:
        found = _targets(conn, bounce, verp)
        if not found:
            report.left.append(_left(data, NO_SUBSCRIBER))
            return False
        for target, failure in found:
            outcome = store.record_bounce(
                conn,
                report_id=bounce.report_id,
                target=target,
                hard=failure.hard,
                address=failure.address,
                status=failure.status,
                diagnostic=failure.diagnostic,
                soft_threshold=soft_threshold,
            )
            if outcome == "duplicate":
                report.already_recorded += 1
                continue
            if failure.hard:
                report.hard += 1
            else:
                report.soft += 1
            if outcome == "marked_bounced":
                report.marked_bounced += 1
    return True


def _unsubscribe(
    engine: Engine, data: bytes, request: UnsubscribeRequest, report: BounceReport
) -> bool:
    """Unsubscribe the sender of a mailto request; False (and why) if it stays."""
    if not request.trusted:
        report.left.append(_left(data, UNTRUSTED_REQUEST))
        return False
    try:
        address = normalize_email(request.address)
    except InvalidInput:
        report.left.append(_left(data, NO_SUBSCRIBER))
        return False
    with store.transaction(engine) as conn:
        subscriber = store.find_subscriber(conn, address)
        if subscriber is None:
            report.left.append(_left(data, NO_SUBSCRIBER))
            return False
        if subscriber.status in ("active", "pending"):
            store.update_subscriber(conn, subscriber.id, status="unsubscribed")
            report.unsubscribed += 1
    return True  # someone who had already left: the request is done, file it away


def _targets(
    conn: Connection, bounce: Bounce, verp: _Verp | None
) -> list[tuple[store.BouncedDelivery, Failure]]:
    """The delivery each failure is about: by our Message-ID, by VERP, else by address.

    The Message-ID names the exact digest and subscriber even when the failed address is
    not the one we sent to (a forward, an alias), and so does a signed VERP address for
    the subscriber (their latest digest). We send each copy to one recipient, so that
    copy's worst failure is the subscriber's.
    """
    worst = max(bounce.failures, key=lambda f: f.hard)
    if bounce.original_message_id:
        target = store.delivery_by_message_id(conn, bounce.original_message_id)
        if target is not None:
            return [(target, worst)]
    if verp is not None:
        subscriber_id = verp_subscriber(verp.address, verp.key, bounce.delivered_to)
        target = None if subscriber_id is None else store.latest_delivery(conn, subscriber_id)
        if target is not None:
            return [(target, worst)]
    found = []
    for failure in bounce.failures:
        target = store.delivery_by_address(conn, failure.address)
        if target is not None:
            found.append((target, failure))
    return found


def _left(data: bytes, reason: str) -> LeftMessage:
    try:
        headers = BytesHeaderParser().parsebytes(data)
        sender = _decoded(headers.get("From", ""))
        subject = _decoded(headers.get("Subject", ""))
    except Exception:  # a header the parser cannot read; the reason still says enough
        sender = subject = ""
    return LeftMessage(sender=sender, subject=subject, reason=reason)


def _decoded(value: object) -> str:
    try:
        text = str(make_header(decode_header(str(value))))
    except (ValueError, LookupError, UnicodeError):
        text = str(value)
    return " ".join(text.split())[:200]
