"""Deliver: the ledger loop. Pending deliveries go out in batches and are recorded.

The deliveries table is the source of truth. A run can be killed at any moment and run
again: only pending rows are sent, so each subscriber gets the digest once. The one
window is a batch the transport accepted just before its ledger write; the outbox
transport rewrites the same file, so for it even that window is harmless.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.engine import Engine

from digest import store
from digest.mail.message import Envelope, MessageTemplate


class Transport(Protocol):
    name: str

    def send(self, digest_key: str, envelopes: Sequence[Envelope]) -> list[str | None]:
        """Send each envelope; return None for delivered or an error message."""
        ...


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    sent: int
    failed: int
    skipped: int
    errors: tuple[str, ...] = ()


def deliver_digest(
    engine: Engine,
    *,
    digest_id: int,
    digest_key: str,
    template: MessageTemplate,
    transport: Transport,
    token_for: Callable[[int], str],
    batch_size: int = 100,
    on_batch: Callable[[int], None] | None = None,
) -> DeliveryReport:
    """Send every pending delivery of the digest; return what happened in this run."""
    sent = failed = 0
    errors: list[str] = []
    with store.transaction(engine) as conn:
        skipped = store.skip_inactive_deliveries(conn, digest_id)
    while True:
        with store.transaction(engine) as conn:
            batch = store.pending_deliveries(conn, digest_id, batch_size)
        if not batch:
            break
        envelopes = [template.personalize(s, token_for(s.id)) for s in batch]
        outcomes = transport.send(digest_key, envelopes)
        results: list[tuple[int, str, str | None, str | None]] = []
        for subscriber, envelope, error in zip(batch, envelopes, outcomes, strict=True):
            if error is None:
                sent += 1
                results.append((subscriber.id, "sent", envelope.message_id, None))
            else:
                failed += 1
                errors.append(f"{subscriber.email}: {error}")
                results.append((subscriber.id, "failed", None, error))
        with store.transaction(engine) as conn:
            store.record_deliveries(conn, digest_id, results)
        if on_batch:
            on_batch(len(batch))
    return DeliveryReport(sent=sent, failed=failed, skipped=skipped, errors=tuple(errors))
