"""What every transport takes (one digest's mailing, a batch of subscribers) and returns.

A transport reports one `Outcome` per subscriber, in order: sent (with an id), failed
(permanent: the address or message was refused) or retry (temporary: try again later).
It raises only for what no retry can fix -- a wrong password, a refused sender -- as a
DigestError, before anything in the batch was handed over.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from digest.mail.message import Envelope, MessageTemplate
from digest.models import Subscriber

Status = Literal["sent", "failed", "retry", "skipped"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one message: `detail` is the message id when sent, else the reason."""

    status: Status
    detail: str | None = None
    retry_after: float | None = None
    # True when the server or API took nothing at all (unreachable, 5xx, 429): if that
    # outlasts every retry, the run stops instead of trying batch after batch.
    unavailable: bool = False


def sent(message_id: str | None) -> Outcome:
    return Outcome("sent", message_id)


def skipped(reason: str) -> Outcome:
    """Nothing to send this reader (their topics had no stories); not a failure."""
    return Outcome("skipped", reason)


def failed(reason: str) -> Outcome:
    return Outcome("failed", reason)


def retry(reason: str, after: float | None = None, *, unavailable: bool = False) -> Outcome:
    return Outcome("retry", reason, after, unavailable)


@dataclass(frozen=True, slots=True)
class Mailing:
    """One digest's message, ready to be made into any subscriber's copy."""

    key: str
    template: MessageTemplate
    token_for: Callable[[int], str]

    def envelope(self, subscriber: Subscriber) -> Envelope:
        return self.template.personalize(subscriber, self.token_for(subscriber.id))

    def refusal(self, subscriber: Subscriber) -> str | None:
        """Why this subscriber's copy cannot be made (None: it can)."""
        return self.template.refusal(subscriber)


class Transport(Protocol):
    """Hands messages to a mail system; see the module docstring for the contract."""

    name: str
    max_batch: int  # the most messages one `deliver` call may carry (a provider's limit)
    # True when one `deliver` call already spreads its batch over all the connections
    # (SMTP): the ledger loop then runs one worker instead of `concurrency`.
    multiplexed: bool

    def deliver(self, mailing: Mailing, batch: Sequence[Subscriber]) -> list[Outcome]: ...

    def close(self) -> None: ...
