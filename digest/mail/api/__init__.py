"""Provider API transports: Postmark, SendGrid and Mailgun, over one pooled httpx client."""

from __future__ import annotations

from digest.errors import ConfigError
from digest.mail.api.http import ApiTransport
from digest.mail.api.mailgun import MailgunTransport
from digest.mail.api.postmark import PostmarkTransport
from digest.mail.api.sendgrid import SendGridTransport
from digest.settings import Settings

__all__ = [
    "ApiTransport",
    "MailgunTransport",
    "PostmarkTransport",
    "SendGridTransport",
    "open_api_transport",
]


def open_api_transport(settings: Settings) -> ApiTransport:
    """The transport for `delivery.backend`, configured from the settings."""
    d = settings.delivery
    if d.api_key is None:
        raise ConfigError(
            f"delivery.backend is {d.backend!r} but no API key is set; "
            "set DIGEST_DELIVERY__API_KEY."
        )
    key = d.api_key.get_secret_value()
    url, timeout, concurrency = d.api_base_url, d.api_timeout, d.concurrency
    if d.backend == "postmark":
        return PostmarkTransport(
            key, stream=d.postmark_stream, base_url=url, timeout=timeout, concurrency=concurrency
        )
    if d.backend == "sendgrid":
        return SendGridTransport(key, base_url=url, timeout=timeout, concurrency=concurrency)
    if d.backend == "mailgun":
        domain = d.api_domain or settings.sender.address.rpartition("@")[2]
        return MailgunTransport(
            key, domain=domain, base_url=url, timeout=timeout, concurrency=concurrency
        )
    raise ConfigError(f"delivery.backend {d.backend!r} is not a provider API.")
