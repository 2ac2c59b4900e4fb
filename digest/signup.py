"""Double opt-in: a sign-up makes a pending subscriber and mails a signed confirmation link.

Nothing here tells a visitor whether an address is already on the list: the page says the
same whatever happened. A confirmation goes to the same address at most once an hour.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine

from digest import store
from digest.deliver import DeliveryPolicy, send_test
from digest.errors import DeliveryError
from digest.mail import open_transport
from digest.mail.transport import Mailing
from digest.models import RenderedDigest, Subscriber
from digest.pipeline import branding, message_template
from digest.render import inline_css, template_environment, template_errors
from digest.settings import Settings
from digest.subscribers import (
    PURGED_DOMAIN,
    clean_name,
    make_timed_token,
    make_token,
    normalize_email,
    parse_topics,
    read_timed_token,
    secret_key,
)

CONFIRM = "confirm"
RESEND_AFTER = timedelta(hours=1)
CONFIRM_MAX_AGE = timedelta(days=7)  # a confirmation link older than this is refused


def request_subscription(
    settings: Settings,
    engine: Engine,
    email: str,
    *,
    name: str | None = None,
    topics: Sequence[str] = (),
    now: datetime | None = None,
) -> bool:
    """Start a sign-up; True when a confirmation email went out.

    A new address becomes pending; a pending or unsubscribed one may ask again, once an
    hour; an active, bounced or complained one gets nothing (and the caller says nothing).
    """
    address, clean = normalize_email(email), clean_name(name)
    moment = now or datetime.now(UTC)
    with store.transaction(engine) as conn:
        existing = store.find_subscriber(conn, address)
        if existing is None:
            new_id = store.insert_subscriber(conn, address, clean, parse_topics(topics), "pending")
            subscriber = store.get_subscriber(conn, new_id)
        elif existing.status in ("pending", "unsubscribed"):
            last = store.last_event_at(conn, existing.id, "confirmation_sent")
            if last is not None and moment - last < RESEND_AFTER:
                return False
            subscriber = existing
        else:
            return False
    assert subscriber is not None
    send_confirmation(settings, subscriber)
    with store.transaction(engine) as conn:
        store.record_event(conn, subscriber.id, "confirmation_sent")
    return True


def confirm_subscription(settings: Settings, engine: Engine, token: str) -> Subscriber | None:
    """Activate the subscriber a confirmation token names; None when it cannot.

    A token is refused when it was forged, is older than a week, or was made before the
    subscriber last unsubscribed (an old link never undoes an unsubscribe); a purged
    subscriber stays purged, and a bounced or complained address is not revived.
    """
    key, _ = secret_key(settings)
    found = read_timed_token(key, token, CONFIRM, int(CONFIRM_MAX_AGE.total_seconds()))
    if found is None:
        return None
    subscriber_id, signed_at = found
    with store.transaction(engine) as conn:
        subscriber = store.get_subscriber(conn, subscriber_id)
        if subscriber is None or subscriber.email.endswith(PURGED_DOMAIN):
            return None
        if subscriber.status == "unsubscribed":
            left = store.last_event_at(conn, subscriber_id, "unsubscribed")
            # Token times have whole seconds: compare at that precision.
            if left is not None and signed_at.timestamp() < int(_aware(left).timestamp()):
                return None
        if subscriber.status in ("pending", "unsubscribed"):
            store.update_subscriber(conn, subscriber_id, status="active")
        return store.get_subscriber(conn, subscriber_id)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def send_confirmation(settings: Settings, subscriber: Subscriber) -> None:
    """Mail the confirmation link through the configured transport."""
    key, _ = secret_key(settings)
    token = make_timed_token(key, subscriber.id, CONFIRM)
    confirm_url = f"{settings.web.base_url.rstrip('/')}/confirm/{token}"
    env = template_environment(settings.templates_dir)
    context = {
        "name": settings.sender.name,
        "subject": f"Confirm your subscription to {settings.sender.name}",
        "preheader": "One click to confirm, and the first digest arrives tomorrow.",
        "confirm_url": confirm_url,
        "brand": branding(settings),
        "language": settings.digest.language,
    }
    with template_errors(settings.templates_dir):
        rendered = RenderedDigest(
            subject=str(context["subject"]),
            html=inline_css(env.get_template("email/confirm.html.j2").render(context)),
            text=env.get_template("email/confirm.txt.j2").render(context),
        )
    mailing = Mailing(
        f"confirm/{subscriber.id}",
        message_template(settings, f"confirm/{subscriber.id}", rendered),
        lambda sid: make_token(key, sid, "unsubscribe"),
    )
    transport = open_transport(settings)
    try:
        outcome = send_test(
            transport, mailing, subscriber, DeliveryPolicy.from_settings(settings.delivery)
        )
    finally:
        transport.close()
    if outcome.status != "sent":
        raise DeliveryError(f"The confirmation email could not be sent: {outcome.detail}.")
