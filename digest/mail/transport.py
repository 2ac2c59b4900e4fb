"""What every transport takes (one digest's mailing, a batch of subscribers) and returns.

A transport reports one `Outcome` per subscriber, in order: sent (with an id), failed
(permanent: the address or message was refused) or retry (temporary: try again later).
It raises only for what no retry can fix -- a wrong password, a refused sender -- as a
DigestError, before anything in the batch was handed over. When part of the batch was
already taken, it reports `halt` for the rest instead: what was sent gets recorded, then
the run stops, the halted rows still pending.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from digest.mail.message import Envelope, MessageTemplate
from digest.models import Subscriber

Status = Literal["sent", "failed", "retry", "skipped"]
# Where a refused reader really stands when the provider knows better than "bounced":
# they unsubscribed or complained through the provider, or it keeps them suppressed.
Left = Literal["unsubscribed", "complained", "bounced"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one message: `detail` is the message id when sent, else the reason."""

    status: Status
    detail: str | None = None
    retry_after: float | None = None
    # True when the server or API took nothing at all (unreachable, 5xx, 429): if that
    # outlasts every retry, the run stops instead of trying batch after batch.
    unavailable: bool = False
    # True when the sender, account or request is at fault: the run stops with `detail`
    # as its sentence and this reader's row stays pending (no bounce is counted).
    halted: bool = False
    # For a failure: the reader's status the provider reported, set at once.
    left: Left | None = None


def sent(message_id: str | None) -> Outcome:
    return Outcome("sent", message_id)


def skipped(reason: str) -> Outcome:
    """Nothing to send this reader (their topics had no stories); not a failure."""
    return Outcome("skipped", reason)


def failed(reason: str, left: Left | None = None) -> Outcome:
    return Outcome("failed", reason, left=left)


def halt(sentence: str) -> Outcome:
    """The sender's or the account's fault, not this reader's: stop the run."""
    return Outcome("retry", sentence, halted=True)


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
