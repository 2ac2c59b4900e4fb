"""The outbox transport: one .eml file per message in a folder (the default, and test mode)."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from digest.mail.message import Envelope
from digest.mail.transport import Mailing, Outcome, retry, sent
from digest.models import Subscriber

_UNSAFE = re.compile(r"[^A-Za-z0-9@._+-]+")


class OutboxTransport:
    """Writes each message atomically, so a crash never leaves half a file behind."""

    name = "outbox"
    max_batch = 10_000
    multiplexed = False

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path_for(self, digest_key: str, envelope: Envelope) -> Path:
        return (
            self.folder
            / _UNSAFE.sub("-", digest_key)
            / (_UNSAFE.sub("-", envelope.recipient) + ".eml")
        )

    def deliver(self, mailing: Mailing, batch: Sequence[Subscriber]) -> list[Outcome]:
        envelopes = [mailing.envelope(s) for s in batch]
        errors = self.send(mailing.key, envelopes)
        # A file that cannot be written is not the reader's fault: retry, never a bounce.
        return [
            sent(e.message_id) if error is None else retry(error)
            for e, error in zip(envelopes, errors, strict=True)
        ]

    def send(self, digest_key: str, envelopes: Sequence[Envelope]) -> list[str | None]:
        """Write every message; return None (delivered) or an error per envelope."""
        results: list[str | None] = []
        for envelope in envelopes:
            path = self.path_for(digest_key, envelope)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".eml.tmp")
                tmp.write_bytes(envelope.data)
                os.replace(tmp, path)
            except OSError as exc:
                results.append(f"cannot write {path}: {exc.strerror}")
            else:
                results.append(None)
        return results

    def close(self) -> None:
        """Nothing is held open between batches."""
