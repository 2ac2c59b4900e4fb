"""Reading a bounce: which addresses failed, how badly, and which message of ours it was.

Pure: bytes in, a `Bounce` (or None) out. GNU Mailman's detectors (flufl.bounce) find the
failed recipients in RFC 3464 reports and in the older formats many servers still send;
this module adds what they leave out: the status code of each failure (hard or soft) and
the Message-ID of our original message, which names the delivery exactly.
"""

from __future__ import annotations

import email
import hashlib
import logging
import re
from dataclasses import dataclass
from email.message import Message
from email.utils import getaddresses, parseaddr

from flufl.bounce import all_failures

# "5.1.1" or "4.2.2" (RFC 3463): the class digit says permanent (5) or transient (4).
_STATUS = re.compile(r"\b([245])\.\d{1,3}\.\d{1,3}\b")
_MESSAGE_ID = re.compile(r"^Message-ID:[ \t]*(<[^<>\s]+>)", re.IGNORECASE | re.MULTILINE)
# What returned headers or a quoted original look like in a plain-text bounce.
_QUOTED_MESSAGE_ID = re.compile(r"Message-ID:\s*(<[^<>\s]+@[^<>\s]+>)", re.IGNORECASE)

# The detectors log every exception they meet before re-raising it; the caller reports it.
logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)


@dataclass(frozen=True, slots=True)
class Failure:
    """One recipient a bounce reports: hard (give up now) or soft (counted)."""

    address: str
    hard: bool
    status: str  # "5.1.1", or "" when the report gives none
    diagnostic: str


@dataclass(frozen=True, slots=True)
class Bounce:
    """A recognized bounce message."""

    report_id: str  # the bounce's own Message-ID, or a hash of its bytes: the dedupe key
    original_message_id: str | None  # our message's Message-ID, when the bounce returns it
    failures: tuple[Failure, ...]
    # Where the report was delivered: our envelope sender, a VERP address when that is on.
    delivered_to: tuple[str, ...] = ()


def read_bounce(raw: bytes) -> Bounce | None:
    """The bounce in these bytes, or None when they are not one (or cannot be read).

    Never raises: a malformed message is simply not a bounce.
    """
    try:
        return _read(raw)
    except Exception:  # the detectors' or the email package's parsers on malformed input
        return None


def _read(raw: bytes) -> Bounce | None:
    message = email.message_from_bytes(raw)
    temporary, permanent = all_failures(message)
    if not temporary and not permanent:
        return None
    details = _recipient_details(message)
    # An address in both sets (two reports in one message) counts once, as permanent.
    addresses = dict.fromkeys(temporary, False) | dict.fromkeys(permanent, True)
    failures = []
    for encoded, is_permanent in sorted(addresses.items()):
        address = encoded.decode("ascii", "replace").strip().lower()
        status, diagnostic = details.get(address) or (_status_in_text(message), "")
        failures.append(Failure(address, is_hard(is_permanent, status), status, diagnostic))
    return Bounce(
        report_id=_report_id(message, raw),
        original_message_id=original_message_id(message),
        failures=tuple(failures),
        delivered_to=_delivered_to(message),
    )


def is_hard(permanent: bool, status: str) -> bool:
    """Whether a failure should stop mail to the address at once.

    The detectors call every "Action: failed" permanent, but a 4.x.x status (mailbox full,
    server busy) failed only because the sender's queue gave up: that is counted as soft.
    """
    if not permanent:
        return False
    return not status.startswith("4.")


def original_message_id(message: Message) -> str | None:
    """The Message-ID of the message that bounced, from the returned message or headers."""
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                found = inner[0].get("Message-ID")
                if found:
                    return _bracketed(str(found))
        elif kind == "text/rfc822-headers":
            payload = part.get_payload(decode=True)
            text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
            match = _MESSAGE_ID.search(text)
            if match:
                return match.group(1)
    # Bounces in plain text quote the original below their explanation.
    own = str(message.get("Message-ID", ""))
    for part in message.walk():
        if part.get_content_maintype() != "text":
            continue
        payload = part.get_payload(decode=True)
        text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
        for match in _QUOTED_MESSAGE_ID.finditer(text):
            if match.group(1) != own.strip():
                return match.group(1)
    return None


def _bracketed(value: str) -> str | None:
    value = value.strip()
    match = re.search(r"<[^<>\s]+>", value)
    if match:
        return match.group()
    return f"<{value}>" if value and " " not in value else None


def _recipient_details(message: Message) -> dict[str, tuple[str, str]]:
    """Status code and diagnostic of each recipient in the delivery-status parts."""
    found: dict[str, tuple[str, str]] = {}
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = part.get_payload()
        if not isinstance(blocks, list):
            continue
        for block in blocks:
            if not isinstance(block, Message):
                continue
            recipient = str(block.get("Final-Recipient", "") or block.get("Original-Recipient", ""))
            address = parseaddr(recipient.partition(";")[2] or recipient)[1].strip().lower()
            if not address:
                continue
            match = _STATUS.search(str(block.get("Status", "")))
            diagnostic = " ".join(str(block.get("Diagnostic-Code", "")).split())
            found[address] = (match.group() if match else "", diagnostic.partition(";")[2].strip())
    return found


def _status_in_text(message: Message) -> str:
    """The first status code in the explanation of a report without a delivery-status part.

    Exim and older servers write the remote server's reply ("550 5.1.1 No such user") in
    plain text; the code there still tells a full mailbox from a missing one.
    """
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
            match = _STATUS.search(text)
            return match.group() if match else ""
    return ""


def _delivered_to(message: Message) -> tuple[str, ...]:
    # The mailbox's own delivery header first: To may be rewritten, Delivered-To is not.
    values = [
        str(value)
        for name in ("Delivered-To", "X-Original-To", "Envelope-To", "To")
        for value in message.get_all(name, [])
    ]
    return tuple(address for _, address in getaddresses(values) if "@" in address)


def _report_id(message: Message, raw: bytes) -> str:
    own = _bracketed(str(message.get("Message-ID", "")))
    if own:
        return own[:300]
    return "sha256:" + hashlib.sha256(raw).hexdigest()
