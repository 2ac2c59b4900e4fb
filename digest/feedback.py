"""What mail providers report after the fact: hard bounces, complaints, unsubscribes.

The parsers are pure: a provider's webhook payload (already verified) in, a list of
`Feedback` out. `record_feedback` is the edge that applies them to the subscribers.
Only what changes whether someone should get the next digest is kept; a soft bounce is
the provider's to retry, and an open or a click is none of this module's business.
Applying the same report twice changes nothing the second time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy.engine import Engine

from digest import store
from digest.errors import InvalidInput

Verdict = Literal["bounced", "complained", "unsubscribed"]


@dataclass(frozen=True, slots=True)
class Feedback:
    email: str
    verdict: Verdict
    detail: str = ""


@dataclass(slots=True)
class FeedbackReport:
    changed: int = 0  # subscribers whose status changed now
    unchanged: int = 0  # already in that (or another inactive) status
    unknown: list[str] = field(default_factory=list)  # addresses not on the list


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


# -- Postmark: one JSON object per event, RecordType names it --------------------------
# https://postmarkapp.com/developer/webhooks/bounce-webhook (Type HardBounce, ...),
# .../spam-complaint-webhook, .../subscription-change-webhook (SuppressSending).
_POSTMARK_HARD = {"HardBounce", "BadEmailAddress", "ManuallyDeactivated", "Blocked"}
_SUPPRESSION: dict[str, Verdict] = {"HardBounce": "bounced", "SpamComplaint": "complained"}


def from_postmark(payload: Mapping[str, Any]) -> list[Feedback]:
    kind = _text(payload.get("RecordType"))
    if kind == "Bounce":
        if _text(payload.get("Type")) in _POSTMARK_HARD:
            return [Feedback(_text(payload.get("Email")), "bounced", _text(payload.get("Type")))]
        return []
    if kind == "SpamComplaint":
        return [Feedback(_text(payload.get("Email")), "complained", "spam complaint")]
    if kind == "SubscriptionChange" and payload.get("SuppressSending") is True:
        reason = _text(payload.get("SuppressionReason"))
        verdict = _SUPPRESSION.get(reason, "unsubscribed")  # ManualSuppression: they left
        return [Feedback(_text(payload.get("Recipient")), verdict, reason)]
    return []


# -- SendGrid: a JSON array of events ---------------------------------------------------
# https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event
def from_sendgrid(events: Iterable[Any]) -> list[Feedback]:
    found: list[Feedback] = []
    for event in events:
        if not isinstance(event, Mapping):
            continue
        email, name = _text(event.get("email")), _text(event.get("event"))
        if name == "bounce" and _text(event.get("type")) != "blocked":
            found.append(Feedback(email, "bounced", _text(event.get("reason"))[:200]))
        elif name == "spamreport":
            found.append(Feedback(email, "complained", "spam report"))
        elif name in ("unsubscribe", "group_unsubscribe"):
            found.append(Feedback(email, "unsubscribed", name))
    return found


# -- Mailgun: {"signature": {...}, "event-data": {...}} ------------------------------
# https://documentation.mailgun.com/docs/mailgun/user-manual/tracking-messages/#webhooks
def from_mailgun(payload: Mapping[str, Any]) -> list[Feedback]:
    data = payload.get("event-data")
    if not isinstance(data, Mapping):
        return []
    email, event = _text(data.get("recipient")), _text(data.get("event"))
    if event == "failed" and _text(data.get("severity")) == "permanent":
        return [Feedback(email, "bounced", _text(data.get("reason")))]
    if event == "complained":
        return [Feedback(email, "complained", "spam complaint")]
    if event == "unsubscribed":
        return [Feedback(email, "unsubscribed", "unsubscribed at Mailgun")]
    return []


def record_feedback(engine: Engine, items: Iterable[Feedback]) -> FeedbackReport:
    """Apply what providers reported; only active subscribers change status."""
    from digest.subscribers import normalize_email

    report = FeedbackReport()
    with store.transaction(engine) as conn:
        for item in items:
            try:
                address = normalize_email(item.email)
            except InvalidInput:
                report.unknown.append(item.email[:100])
                continue
            subscriber = store.find_subscriber(conn, address)
            if subscriber is None:
                report.unknown.append(address)
            elif subscriber.status == "active":
                store.mark_left(conn, {subscriber.id: item.verdict})
                report.changed += 1
            else:
                report.unchanged += 1
    return report
