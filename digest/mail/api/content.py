"""A digest's message taken apart for a provider API: subject, sender, parts, headers.

Provider batch APIs want the parts, not MIME, and fill in the personal values
themselves (SendGrid substitutions, Mailgun recipient variables) or take one message
per reader (Postmark). So the message template makes one copy for a made-up reader
whose name and unsubscribe token are markers, that copy is parsed once, and each
reader's values go where the markers are -- whatever the template does with them.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formataddr

from digest.errors import ConfigError
from digest.mail.message import ANONYMOUS_NAME, first_name
from digest.mail.transport import Mailing
from digest.models import Subscriber

# Letters and digits only, so HTML escaping and quoted-printable leave them intact.
NAME = "xDigestNameMarker9"
TOKEN = "xDigestTokenMarker9"  # noqa: S105 (a placeholder, not a secret)
_READER = Subscriber(id=0, email="reader@example.invalid", name=NAME)
# Set by the provider from its own fields, or meaningless once the provider re-encodes.
_NOT_CARRIED = {
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "reply-to",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "dkim-signature",
}


@dataclass(frozen=True, slots=True)
class ApiContent:
    """The parts of one digest's message, with markers where each reader's values go."""

    sender_name: str
    sender_address: str
    reply_to: str  # decoded, for the providers' own fields
    reply_to_header: str  # RFC 2047-encoded, as a header value
    subject: str
    text: str
    html: str
    # Header values as the SMTP path writes them (RFC 2047 for non-ASCII, e.g. a List-Id
    # with the sender's name), unfolded: SendGrid refuses raw Unicode in a header.
    headers: Mapping[str, str]  # the same for every reader (List-Id, List-Unsubscribe-Post)
    personal_headers: Mapping[str, str]  # with markers (List-Unsubscribe)

    @classmethod
    def of(cls, mailing: Mailing) -> ApiContent:
        if mailing.template.tracks_clicks:
            raise ConfigError(
                f"Digest {mailing.key} was composed with click tracking, which the provider "
                'APIs do not carry yet; send it with delivery.backend = "smtp".'
            )
        data = mailing.template.personalize(_READER, TOKEN).data
        message = message_from_bytes(data, policy=policy.default)
        assert isinstance(message, EmailMessage)
        sender = message["From"].addresses[0]
        headers: dict[str, str] = {}
        personal: dict[str, str] = {}
        for name, raw in message.raw_items():
            if name.lower() in _NOT_CARRIED:
                continue
            value = _unfolded(raw)
            target = personal if TOKEN in value or NAME in value else headers
            target[name] = value
        return cls(
            sender_name=sender.display_name,
            sender_address=sender.addr_spec,
            reply_to=str(message.get("Reply-To", "")),
            reply_to_header=next(
                (_unfolded(v) for k, v in message.raw_items() if k.lower() == "reply-to"), ""
            ),
            subject=str(message["Subject"]),
            text=_part(message, "plain"),
            html=_part(message, "html"),
            headers=headers,
            personal_headers=personal,
        )

    @property
    def sender(self) -> str:
        return formataddr((self.sender_name, self.sender_address))

    def text_for(self, subscriber: Subscriber, token: str) -> str:
        return fill(self.text, values(subscriber, token, as_html=False))

    def html_for(self, subscriber: Subscriber, token: str) -> str:
        return fill(self.html, values(subscriber, token, as_html=True))

    def headers_for(self, subscriber: Subscriber, token: str) -> dict[str, str]:
        personal = values(subscriber, token, as_html=False)
        return {**self.headers, **{k: fill(v, personal) for k, v in self.personal_headers.items()}}


def values(subscriber: Subscriber, token: str, *, as_html: bool) -> dict[str, str]:
    """What replaces each marker for this reader, in a text or an HTML part."""
    name = first_name(subscriber.name) or ANONYMOUS_NAME
    if as_html:
        return {NAME: html.escape(name), TOKEN: html.escape(token)}
    return {NAME: name, TOKEN: token}


def fill(template: str, replacements: Mapping[str, str]) -> str:
    for marker, value in replacements.items():
        template = template.replace(marker, value)
    return template


def recipient(subscriber: Subscriber) -> str:
    """`Name <address>` (RFC 2047 for a non-ASCII name), or the bare address.

    An address with a UTF-8 local part (RFC 6531) goes as it is, its name unencoded:
    the request body is UTF-8 JSON, and formataddr would refuse the address.
    """
    if subscriber.email.isascii():
        return formataddr((subscriber.name or "", subscriber.email))
    local, _, domain = subscriber.email.rpartition("@")
    return str(Address(display_name=subscriber.name or "", username=local, domain=domain))


def _unfolded(raw: str) -> str:
    """A raw header value on one line: folding (a line break before white space) undone."""
    return re.sub(r"\r?\n(?=[ \t])", "", raw).strip()


def _part(message: EmailMessage, kind: str) -> str:
    part = message.get_body(preferencelist=(kind,))
    if part is None:
        return ""
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")
