"""Mail: build messages once per digest and hand them to a transport.

`open_transport` picks the transport named by `delivery.backend`: the outbox folder,
SMTP, or a provider API (Postmark, SendGrid, Mailgun).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from digest.mail.transport import Transport
    from digest.settings import Settings


def open_transport(settings: Settings) -> Transport:
    """The configured transport; close it when the run is over."""
    # Imported here: building a message must not pull in smtplib, ssl and httpx.
    backend = settings.delivery.backend
    if backend == "outbox":
        from digest.mail.outbox import OutboxTransport

        return OutboxTransport(settings.outbox_path)
    if backend == "smtp":
        from digest.mail.smtp import SmtpConfig, SmtpTransport

        return SmtpTransport(SmtpConfig.from_settings(settings))
    from digest.mail.api import open_api_transport

    return open_api_transport(settings)
