"""MIME built once per digest; per subscriber only a few byte-level slots change.

The rendered digest holds tokens where personal values go (the reader's name, their
unsubscribe URL, and with click tracking on their link to each story). Both parts are
quoted-printable encoded once, with each token set on a line of its own between soft line
breaks, so no soft break can ever split a token. The
message is then kept as a list of byte chunks with numbered slots (the tokens, plus the
To, Message-ID and List-Unsubscribe headers). Personalizing fills the slots with values
encoded for their place and joins the chunks: microseconds, instead of the milliseconds a
full EmailMessage per reader costs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from enum import IntEnum
from typing import TYPE_CHECKING, NamedTuple

from digest.clicks import CLICK_PREFIX, ClickLinks
from digest.errors import DigestError, InvalidInput
from digest.models import RenderedDigest, Subscriber

if TYPE_CHECKING:
    from digest.mail.dkim import DkimSigner

NAME_TOKEN = "@@digest-name@@"  # noqa: S105 (a placeholder, not a secret)
UNSUBSCRIBE_TOKEN = "@@digest-unsubscribe@@"  # noqa: S105
PREFERENCES_TOKEN = "@@digest-preferences@@"  # noqa: S105
ANONYMOUS_NAME = "there"  # "Hello there," when we do not know a reader's name
# Words before a first name that are not one: "Hello Dr.," reads worse than the full name.
_TITLES = frozenset("mr mrs ms mx dr prof sir dame rev fr sr sra".split())


def first_name(name: str | None) -> str:
    """What the greeting calls a reader: their first name, as a friend would.

    A single word, or a name that starts with a title ("Dr. Ana Lindgren"), stays whole.
    """
    if not name:
        return ""
    words = name.split()
    if len(words) < 2 or words[0].rstrip(".").lower() in _TITLES:
        return name
    return words[0]


_TOKEN = re.compile(
    "("
    + "|".join(map(re.escape, (NAME_TOKEN, UNSUBSCRIBE_TOKEN, PREFERENCES_TOKEN)))
    + "|"
    + re.escape(CLICK_PREFIX)
    + r"\d+@@)"
)
_SOFT_BREAK = b"=\r\n"
# Any ASCII control character in a header value can end the header for some parser;
# CR and LF are the classic injection, the others are refused for the same reason.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# Characters that would break out of the <...> around a URL in List-Unsubscribe.
_URL_UNSAFE = re.compile(r"[\x00-\x20<>\"\x7f]")

# Quoted-printable: bytes outside printable ASCII, and "=" itself, become =XX.
_QP_UNSAFE = re.compile(rb"[^\x20-\x3c\x3e-\x7e]")
_QP_ESCAPES = {bytes([b]): f"={b:02X}".encode() for b in range(256)}
# Lines stay within 75 characters so a soft break "=" after them still fits in 76.
_QP_WIDTH = 75
# An encoded word "=?utf-8?b?...?=" must not exceed 75 characters: 45 bytes in base64.
_WORD_BYTES = 45
_QP_PLAIN = re.compile(r"[\x21-\x3c\x3e-\x7e]([\x20-\x3c\x3e-\x7e]{0,73}[\x21-\x3c\x3e-\x7e])?")


def reject_line_breaks(value: str, what: str) -> str:
    """Refuse CR/LF (and other control characters) in anything that becomes a header."""
    found = _CONTROL.search(value)
    if found:
        kind = "a line break" if found.group() in "\r\n" else "a control character"
        raise InvalidInput(f"The {what} contains {kind}; remove it (header injection).")
    return value


def qp_line(data: bytes) -> bytes:
    """One line (no line breaks) as quoted-printable, wrapped with soft breaks.

    No output line starts with "." (a dot that would is written =2E), so SMTP never has to
    scan a message for lines to dot-stuff.
    """
    escaped = _QP_UNSAFE.sub(lambda m: _QP_ESCAPES[m.group()], data)
    if escaped.endswith(b" "):
        # Trailing white space may be stripped in transit; encode it.
        escaped = escaped[:-1] + b"=20"
    if escaped.startswith(b"."):
        escaped = b"=2E" + escaped[1:]
    if len(escaped) <= _QP_WIDTH:
        return escaped
    lines: list[bytes] = []
    while len(escaped) > _QP_WIDTH:
        cut = _QP_WIDTH
        # Never cut an =XX escape in two: move the cut before its "=".
        escape_start = escaped.rfind(b"=", cut - 2, cut)
        if escape_start != -1:
            cut = escape_start
        if escaped[cut : cut + 1] == b".":
            escaped = escaped[:cut] + b"=2E" + escaped[cut + 1 :]  # no line starts with a dot
        lines.append(escaped[:cut])
        escaped = escaped[cut:]
    lines.append(escaped)
    return b"=\r\n".join(lines)


def qp_text(text: str) -> bytes:
    """Text as quoted-printable with CRLF hard line breaks; no line longer than 76."""
    lines = text.replace("\r\n", "\n").split("\n")
    return b"\r\n".join(qp_line(line.encode("utf-8")) for line in lines)


def qp_value(value: str) -> bytes:
    """A personal value for a body slot; common short ASCII values skip the encoder."""
    if _QP_PLAIN.fullmatch(value) and not value.startswith("."):
        return value.encode("ascii")
    return qp_line(value.encode("utf-8"))


class _Slot(IntEnum):
    TO = 0
    MESSAGE_ID = 1
    LIST_UNSUBSCRIBE = 2
    NAME_TEXT = 3
    URL_TEXT = 4
    NAME_HTML = 5
    URL_HTML = 6
    PREFERENCES_TEXT = 7
    PREFERENCES_HTML = 8


_TEXT_SLOTS = {
    NAME_TOKEN: _Slot.NAME_TEXT,
    UNSUBSCRIBE_TOKEN: _Slot.URL_TEXT,
    PREFERENCES_TOKEN: _Slot.PREFERENCES_TEXT,
}
_HTML_SLOTS = {
    NAME_TOKEN: _Slot.NAME_HTML,
    UNSUBSCRIBE_TOKEN: _Slot.URL_HTML,
    PREFERENCES_TOKEN: _Slot.PREFERENCES_HTML,
}


class _ClickSlot(NamedTuple):
    """Where a reader's link to one story goes, in the text or the HTML part."""

    article_id: int
    as_html: bool


_Chunk = bytes | _Slot | _ClickSlot


def _encode_with_slots(content: str, slots: Mapping[str, _Slot]) -> list[_Chunk]:
    """Quoted-printable chunks of `content`, each token a slot alone on its own line."""
    chunks: list[_Chunk] = []
    as_html = slots is _HTML_SLOTS
    for piece in _TOKEN.split(content):
        if piece in slots:
            chunks += [_SOFT_BREAK, slots[piece], _SOFT_BREAK]
        elif piece.startswith(CLICK_PREFIX) and piece.endswith("@@"):
            article_id = int(piece[len(CLICK_PREFIX) : -2])
            chunks += [_SOFT_BREAK, _ClickSlot(article_id, as_html), _SOFT_BREAK]
        elif piece:
            chunks.append(qp_text(piece))
    return chunks


@dataclass(frozen=True, slots=True)
class Envelope:
    """What one subscriber's copy needs: recipient, bytes and the Message-ID."""

    recipient: str
    message_id: str
    data: bytes
    # True when no line of `data` starts with "." (all copies made by MessageTemplate).
    dot_safe: bool = False


def _headers(pairs: Iterable[tuple[str, object]]) -> bytes:
    """Header lines folded and RFC 2047-encoded by the stdlib, CRLF-terminated."""
    message = EmailMessage(policy=policy.SMTP)
    for name, value in pairs:
        message[name] = value
    return message.as_bytes().removesuffix(b"\r\n")


def _idna_domain(address: str) -> tuple[str, str]:
    local, _, domain = address.rpartition("@")
    if not domain.isascii():
        domain = domain.encode("idna").decode("ascii")
    return local, domain


def address_header(name: str, address: str) -> str:
    """`Name <address>` for a header: quoted when ASCII, RFC 2047 words when not.

    Non-ASCII domains are written in IDNA; a non-ASCII local part stays UTF-8 (RFC 6532),
    which needs a transport that speaks SMTPUTF8.
    """
    local, domain = _idna_domain(address)
    addr = f"{local}@{domain}"
    if not name:
        return addr
    if name.isascii():
        # Address quotes the name when it must and, unlike formataddr, accepts a UTF-8
        # local part.
        return str(Address(display_name=name, username=local, domain=domain))
    # Encoded words of at most 75 characters (RFC 2047), each holding whole characters,
    # one per folded line.
    words: list[str] = []
    chunk = b""
    for char in name:
        encoded = char.encode("utf-8")
        if len(chunk) + len(encoded) > _WORD_BYTES:
            words.append(_encoded_word(chunk))
            chunk = b""
        chunk += encoded
    words.append(_encoded_word(chunk))
    return "\r\n ".join(words) + f" <{addr}>"


def _encoded_word(raw: bytes) -> str:
    return f"=?utf-8?b?{base64.b64encode(raw).decode('ascii')}?="


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
        reply_to: str = "",
        feedback_id: str = "",
        dkim: DkimSigner | None = None,
        id_key: str = "",
        preferences_url: str = "",
        clicks: ClickLinks | None = None,
    ) -> None:
        for value, what in [
            (rendered.subject, "subject"),
            (sender_name, "sender name"),
            (sender_address, "sender address"),
            (list_id, "list id"),
            (reply_to, "reply-to address"),
            (feedback_id, "feedback id"),
        ]:
            reject_line_breaks(value, what)
        # The preferences page reads the same signed token as the unsubscribe link (it can
        # unsubscribe too); without one, the footer's link goes to the unsubscribe page.
        preferences_url = preferences_url or unsubscribe_url
        for url, what in [
            (unsubscribe_url, "unsubscribe URL"),
            (unsubscribe_mailto, "mailto"),
            (preferences_url, "preferences URL"),
        ]:
            if _URL_UNSAFE.search(url) or not url.isascii():
                raise InvalidInput(
                    f"The {what} {url!r} must be ASCII without spaces, quotes or brackets "
                    "(write an international domain in its xn-- form)."
                )
        local, domain = _idna_domain(sender_address)
        self._domain = domain or "localhost"
        self._unsubscribe_url = unsubscribe_url
        self._unsubscribe_mailto = unsubscribe_mailto
        self._preferences_url = preferences_url
        self._dkim = dkim
        # The same digest key and list give the same Message-ID prefix, so a retried
        # copy is recognisably the same message; other lists get other prefixes.
        self._mid_prefix = hashlib.sha256(f"{list_id}\n{digest_key}".encode()).hexdigest()[:16]
        # The reader's part is a keyed digest of their id, not the id: a Message-ID must
        # not tell a reader how many subscribers came before them (nor who comes next).
        self._mid_key = hashlib.sha256(f"{id_key}\n{self._mid_prefix}".encode()).digest()
        # Quoted-printable never contains "==" ("=" is always followed by hex digits or
        # a line break), so a boundary starting with "==" cannot occur in the body. It is
        # derived from the content so the same digest always encodes to the same bytes.
        content = f"{digest_key}\n{rendered.subject}\n{rendered.text}\n{rendered.html}"
        boundary = "==digest_" + hashlib.sha256(content.encode()).hexdigest()[:24]

        sender: list[tuple[str, object]] = [
            ("From", Address(sender_name, addr_spec=f"{local}@{domain}"))
        ]
        if reply_to:
            sender.append(("Reply-To", reply_to))
        part_head = (
            '--{b}\r\nContent-Type: text/{kind}; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        )
        chunks: list[_Chunk] = [
            _headers(sender),
            b"To: ",
            _Slot.TO,
            b"\r\n",
            _headers([("Subject", rendered.subject), ("Date", format_datetime(sent_at))]),
            b"Message-ID: ",
            _Slot.MESSAGE_ID,
            b"\r\nMIME-Version: 1.0\r\n",
            # Bulk mail, sent by a program: out-of-office replies and auto-responders stay
            # quiet (RFC 3834), and Gmail's feedback loop groups complaints by Feedback-ID.
            _headers(
                [("List-Id", list_id), ("Precedence", "bulk"), ("Auto-Submitted", "auto-generated")]
                + ([("Feedback-ID", feedback_id)] if feedback_id else [])
            ),
            b"List-Unsubscribe: ",
            _Slot.LIST_UNSUBSCRIBE,
            b"\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
            + f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n\r\n'.encode(),
            part_head.format(b=boundary, kind="plain").encode(),
        ]
        chunks += _encode_with_slots(rendered.text, _TEXT_SLOTS)
        chunks += [b"\r\n", part_head.format(b=boundary, kind="html").encode()]
        chunks += _encode_with_slots(rendered.html, _HTML_SLOTS)
        chunks += [f"\r\n--{boundary}--\r\n".encode()]
        self._chunks, slots = _merge(chunks)
        self._slots = [(i, slot) for i, slot in slots if isinstance(slot, _Slot)]
        self._click_slots = [(i, slot) for i, slot in slots if isinstance(slot, _ClickSlot)]
        # Each story once, though its link appears in both parts and twice in the HTML.
        self._click_articles = tuple(dict.fromkeys(s.article_id for _, s in self._click_slots))
        if self._click_slots and clicks is None:
            raise InvalidInput(
                "The digest has click-tracking links but no digest to sign them for; "
                "render it without track_clicks, or pass its ClickLinks."
            )
        self._clicks = clicks
        self._escape_clicks = clicks is not None and html.escape(clicks.prefix) != clicks.prefix

    @property
    def tracks_clicks(self) -> bool:
        """True when each reader's copy has their own signed link to each story."""
        return bool(self._click_slots)

    def message_id(self, subscriber: Subscriber) -> str:
        """Stable per digest and subscriber, so a retried copy is recognisably the same."""
        reader = hmac.new(self._mid_key, str(subscriber.id).encode(), hashlib.sha256)
        return f"<{self._mid_prefix}.{reader.hexdigest()[:20]}@{self._domain}>"

    def refusal(self, subscriber: Subscriber) -> str | None:
        """Why no copy can be made for this subscriber (None: it can).

        The ledger loop asks before handing a batch to the transport, so one address or
        name that cannot be encoded is that subscriber's recorded failure, never an
        exception in the middle of a batch others are in.
        """
        try:
            self._personal_values(subscriber, "check")
        except DigestError as exc:
            return str(exc)
        except (ValueError, UnicodeError) as exc:  # e.g. a domain IDNA cannot encode
            return f"the address or name cannot be written in a message ({exc})"
        return None

    def personalize(self, subscriber: Subscriber, token: str) -> Envelope:
        """This subscriber's copy: To, Message-ID, List-Unsubscribe and body tokens."""
        values, message_id = self._personal_values(subscriber, token)
        parts = self._chunks.copy()
        for index, slot in self._slots:
            parts[index] = values[slot]
        if self._clicks is not None and self._click_slots:
            self._fill_click_slots(parts, subscriber.id)
        data = b"".join(parts)
        if self._dkim is not None:
            data = self._dkim.sign(data) + data
        return Envelope(subscriber.email, message_id, data, dot_safe=True)

    def _fill_click_slots(self, parts: list[bytes], subscriber_id: int) -> None:
        assert self._clicks is not None
        links = self._clicks.links(subscriber_id, self._click_articles)
        # Signed tokens are [A-Za-z0-9._-]: HTML escaping changes a link only when the
        # base URL itself holds "&" or a quote.
        text = {article: qp_value(url) for article, url in links.items()}
        escaped = text
        if self._escape_clicks:
            escaped = {article: qp_value(html.escape(url)) for article, url in links.items()}
        for index, (article, as_html) in self._click_slots:
            parts[index] = escaped[article] if as_html else text[article]

    def _personal_values(self, subscriber: Subscriber, token: str) -> tuple[tuple[bytes, ...], str]:
        name = reject_line_breaks(subscriber.name or "", "subscriber name")
        reject_line_breaks(subscriber.email, "subscriber address")
        if _URL_UNSAFE.search(token):
            raise InvalidInput(f"The unsubscribe token {token!r} is not URL-safe.")
        url = self._unsubscribe_url.format(token=token)
        preferences = self._preferences_url.format(token=token)
        message_id = self.message_id(subscriber)
        shown = first_name(name) or ANONYMOUS_NAME
        values = (
            address_header(name, subscriber.email).encode("utf-8"),
            message_id.encode("ascii"),
            f"<{url}>,\r\n <{self._unsubscribe_mailto}>".encode("ascii"),
            qp_value(shown),
            qp_value(url),
            qp_value(html.escape(shown)),
            qp_value(html.escape(url)),
            qp_value(preferences),
            qp_value(html.escape(preferences)),
        )
        return values, message_id


def _merge(chunks: list[_Chunk]) -> tuple[list[bytes], list[tuple[int, _Slot | _ClickSlot]]]:
    """Adjacent static chunks joined into one; the slots' positions listed once."""
    merged: list[bytes] = []
    slots: list[tuple[int, _Slot | _ClickSlot]] = []
    pending: list[bytes] = []
    for chunk in chunks:
        if isinstance(chunk, bytes):
            pending.append(chunk)
        else:
            merged.append(b"".join(pending))
            pending = []
            slots.append((len(merged), chunk))
            merged.append(b"")
    merged.append(b"".join(pending))
    return merged, slots
