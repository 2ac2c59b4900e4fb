"""The outbox transport: one .eml file per message in a folder (the default, and test mode)."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path

from digest.mail.message import Envelope
from digest.mail.transport import Mailing, Outcome, retry, sent
from digest.models import Subscriber

_UNSAFE = re.compile(r"[^A-Za-z0-9@._+-]+")


_LONGEST = 120  # well under any file system's 255-byte limit on a name


def file_name(recipient: str) -> str:
    """A safe, distinct file name for a recipient's message.

    Plain short addresses keep their own name; one with other characters, or too long
    for a file name, gets a digest of the whole address added, so `josé@` and `josè@`
    never share a file.
    """
    safe = _UNSAFE.sub("-", recipient)
    if safe == recipient and len(safe) <= _LONGEST:
        return safe + ".eml"
    tag = hashlib.sha256(recipient.encode("utf-8")).hexdigest()[:12]
    return f"{safe[:_LONGEST]}.{tag}.eml"


class OutboxTransport:
    """Writes each message atomically, so a crash never leaves half a file behind."""

    name = "outbox"
    max_batch = 10_000
    multiplexed = False

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path_for(self, digest_key: str, envelope: Envelope) -> Path:
        return self.folder / _UNSAFE.sub("-", digest_key) / file_name(envelope.recipient)

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
