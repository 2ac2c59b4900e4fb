"""VERP: a bounce address per subscriber, so a bounce names its reader by where it arrives.

With bounces.verp_address = "bounces@example.org" the copy for subscriber 42 is sent
with MAIL FROM:<bounces+42.SIGNATURE@example.org>. The server that gives up mails its
report there; the mailbox (which must deliver "bounces+anything" to "bounces", as
Postfix's recipient_delimiter does) keeps that address in Delivered-To or To. The
signature (the same signed ids as unsubscribe links, for another purpose) stops anyone
from bouncing a reader off the list by mailing a made-up address.
"""

from __future__ import annotations

from collections.abc import Iterable

from digest.subscribers import make_token, read_token

_PURPOSE = "bounce"


def verp_sender(address: str, key: str, subscriber_id: int) -> str:
    """The envelope sender of one subscriber's copy: local+token@domain."""
    local, _, domain = address.rpartition("@")
    return f"{local}+{make_token(key, subscriber_id, _PURPOSE)}@{domain}"


def verp_subscriber(address: str, key: str, candidates: Iterable[str]) -> int | None:
    """The subscriber id signed into the first of these addresses that is our VERP address."""
    local, _, domain = address.rpartition("@")
    prefix, suffix = f"{local}+".lower(), f"@{domain}".lower()
    for candidate in candidates:
        if candidate.lower().startswith(prefix) and candidate.lower().endswith(suffix):
            token = candidate[len(prefix) : len(candidate) - len(suffix)]
            subscriber_id = read_token(key, token, _PURPOSE)
            if subscriber_id is not None:
                return subscriber_id
    return None
