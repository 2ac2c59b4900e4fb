"""MIME built once per digest; per subscriber only a few byte-level tokens change.

The rendered digest holds tokens where personal values go (the reader's name, their
unsubscribe URL). The body is quoted-printable encoded once, segment by segment, with
each token set on a line of its own between soft line breaks, so no soft break can ever
split a token. Personalizing is then a byte-level swap of each token for its value,
itself already encoded -- microseconds, instead of a full EmailMessage per reader.
"""

from __future__ import annotations

import hashlib
import html
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.quoprimime import body_encode
from email.utils import format_datetime, formataddr

from digest.errors import DigestError
from digest.models import RenderedDigest, Subscriber

NAME_TOKEN = "@@digest-name@@"  # noqa: S105 (a placeholder, not a secret)
UNSUBSCRIBE_TOKEN = "@@digest-unsubscribe@@"  # noqa: S105
_TOKEN = re.compile("(" + "|".join(map(re.escape, (NAME_TOKEN, UNSUBSCRIBE_TOKEN))) + ")")
_TOKEN_BYTES = re.compile(_TOKEN.pattern.encode())
_SOFT_BREAK = "=\r\n"
_ANONYMOUS_NAME = "there"  # "Hello there," when we do not know a reader's name


def reject_line_breaks(value: str, what: str) -> str:
    """Refuse CR/LF in anything that becomes a header: it would forge new headers."""
    if "\r" in value or "\n" in value:
        raise DigestError(f"The {what} contains a line break; remove it (header injection).")
    return value


def _encode_with_tokens(content: str) -> bytes:
    """Quoted-printable, with every token alone on a line between soft breaks."""
    pieces: list[str] = []
    for piece in _TOKEN.split(content.replace("\r\n", "\n")):
        if not piece:
            continue
        if _TOKEN.fullmatch(piece):
            pieces.append(_SOFT_BREAK + piece + _SOFT_BREAK)
        else:
            pieces.append(_qp(piece))
    return "".join(pieces).encode("ascii")


def _qp(value: str) -> str:
    # quoprimime works on one character per byte, as the email package feeds it.
    return body_encode(value.encode("utf-8").decode("latin-1"), maxlinelen=76, eol="\r\n")


def _encode_value(value: str) -> bytes:
    return _qp(value).encode("ascii")


@dataclass(frozen=True, slots=True)
class Envelope:
    """What one subscriber's copy needs: recipient, bytes and the Message-ID."""

    recipient: str
    message_id: str
    data: bytes


class MessageTemplate:
    """One digest's message, encoded once; `personalize` makes each subscriber's copy."""

    def __init__(
        self,
        rendered: RenderedDigest,
        *,
        sender_name: str,
        sender_address: str,
        list_id: str,
        unsubscribe_url: str,
        unsubscribe_mailto: str,
        digest_key: str,
        sent_at: datetime,
    ) -> None:
        reject_line_breaks(rendered.subject, "subject")
        self._domain = sender_address.rpartition("@")[2] or "localhost"
        self._unsubscribe_url = unsubscribe_url
        self._unsubscribe_mailto = unsubscribe_mailto
        self._mid_prefix = hashlib.sha256(digest_key.encode()).hexdigest()[:12]
        boundary = "==digest_" + secrets.token_hex(12)
        headers = EmailMessage(policy=policy.SMTP)
        headers["From"] = formataddr((sender_name, sender_address), charset="utf-8")
        headers["Subject"] = rendered.subject
        headers["Date"] = format_datetime(sent_at)
        headers["MIME-Version"] = "1.0"
        headers["List-Id"] = reject_line_breaks(list_id, "list id")
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        head = headers.as_bytes().rstrip(b"\r\n") + (
            f'\r\nContent-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'
        ).encode("ascii")
        part_head = (
            '--{b}\r\nContent-Type: text/{kind}; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        )
        body = b"".join(
            [
                part_head.format(b=boundary, kind="plain").encode(),
                _encode_with_tokens(rendered.text),
                b"\r\n",
                part_head.format(b=boundary, kind="html").encode(),
                _encode_with_tokens(rendered.html),
                b"\r\n",
                f"--{boundary}--\r\n".encode(),
            ]
        )
        # The text part comes first, so token values differ per part: split once by part.
        split_at = body.index(part_head.format(b=boundary, kind="html").encode())
        self._head = head
        self._text_body = body[:split_at]
        self._html_body = body[split_at:]

    def message_id(self, subscriber: Subscriber) -> str:
        # Stable per digest and subscriber, so a retried copy is recognisably the same.
        return f"<{self._mid_prefix}.{subscriber.id}@{self._domain}>"

    def personalize(self, subscriber: Subscriber, token: str) -> Envelope:
        """This subscriber's copy: To, Message-ID, List-Unsubscribe and body tokens."""
        name = reject_line_breaks(subscriber.name or "", "subscriber name")
        url = self._unsubscribe_url.format(token=token)
        message_id = self.message_id(subscriber)
        to = formataddr((name, subscriber.email), charset="utf-8") if name else subscriber.email
        personal_head = (
            f"To: {to}\r\nMessage-ID: {message_id}\r\n"
            f"List-Unsubscribe: <{url}>, <{self._unsubscribe_mailto}>\r\n"
        ).encode("ascii")
        shown_name = name or _ANONYMOUS_NAME
        text_values = {
            NAME_TOKEN.encode(): _encode_value(shown_name),
            UNSUBSCRIBE_TOKEN.encode(): _encode_value(url),
        }
        html_values = {
            NAME_TOKEN.encode(): _encode_value(html.escape(shown_name)),
            UNSUBSCRIBE_TOKEN.encode(): _encode_value(html.escape(url)),
        }
        data = b"".join(
            [
                personal_head,
                self._head,
                _swap(self._text_body, text_values),
                _swap(self._html_body, html_values),
            ]
        )
        return Envelope(subscriber.email, message_id, data)


def _swap(body: bytes, values: Mapping[bytes, bytes]) -> bytes:
    return _TOKEN_BYTES.sub(lambda m: values[m.group(0)], body)
