"""Per-subscriber messages: built once, personalized by slot swap, parsed back intact."""

from __future__ import annotations

import email
import email.policy
import os
import re
from datetime import UTC, datetime
from email.header import decode_header, make_header
from pathlib import Path

import dkim
import lxml.html
import pytest

from digest.errors import DigestError
from digest.mail.dkim import load_signer
from digest.mail.message import NAME_TOKEN, UNSUBSCRIBE_TOKEN, MessageTemplate, qp_line
from digest.models import RenderedDigest, Subscriber
from digest.pipeline import message_template, render
from digest.render import render_digest
from digest.settings import Settings
from tests.golden.keys import rsa_key as generate_rsa_key
from tests.golden.sample import BRAND, golden_digest

GOLDEN = Path(__file__).parent / "golden"
SENT_AT = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)
UNSUBSCRIBE = "https://digest.example.org/unsubscribe/{token}"


def _template(
    html: str,
    text: str,
    subject: str = "Daily — Nov 28: Ferry news",
    **options: object,
) -> MessageTemplate:
    values: dict[str, object] = {
        "sender_name": "Daily Digest",
        "sender_address": "digest@example.org",
        "list_id": "Daily Digest <daily.example.org>",
        "unsubscribe_url": UNSUBSCRIBE,
        "unsubscribe_mailto": "mailto:digest@example.org?subject=unsubscribe",
        "digest_key": "daily/2026-11-28",
        "sent_at": SENT_AT,
    }
    values.update(options)
    return MessageTemplate(RenderedDigest(subject=subject, html=html, text=text), **values)  # type: ignore[arg-type]


def _golden_template(**options: object) -> MessageTemplate:
    rendered = render_digest(golden_digest(), BRAND)
    return _template(rendered.html, rendered.text, rendered.subject, **options)


def _parse(data: bytes) -> email.message.EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    assert message.defects == []
    return message


def _head(data: bytes) -> bytes:
    return data.split(b"\r\n\r\n", 1)[0]


def test_a_personalized_golden_message_parses_back_with_every_header_and_part():
    template = _golden_template(reply_to="Editors <editors@example.org>")
    subscriber = Subscriber(id=42, email="jose@example.com", name="José Núñez")
    envelope = template.personalize(subscriber, token="tok-42.abc_DEF")
    message = _parse(envelope.data)

    assert envelope.recipient == "jose@example.com"
    sender = message["From"].addresses[0]
    assert (sender.display_name, sender.addr_spec) == ("Daily Digest", "digest@example.org")
    assert message["Reply-To"].addresses[0].addr_spec == "editors@example.org"
    to = message["To"].addresses[0]
    assert (to.display_name, to.addr_spec) == ("José Núñez", "jose@example.com")
    assert message["Subject"] == "Harbour levy clears Senate after ‘reckless’ amendment is stripped"
    assert message["Date"].datetime == SENT_AT
    assert message["Message-ID"] == envelope.message_id
    assert re.fullmatch(r"<[0-9a-f]{16}\.[0-9a-f]{20}@example\.org>", envelope.message_id)
    assert message["MIME-Version"] == "1.0"
    assert message["List-Id"] == "Daily Digest <daily.example.org>"
    assert message["List-Unsubscribe"] == (
        "<https://digest.example.org/unsubscribe/tok-42.abc_DEF>, "
        "<mailto:digest@example.org?subject=unsubscribe>"
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # Non-ASCII travels RFC 2047-encoded; the raw header block is pure ASCII.
    head = _head(envelope.data)
    assert head.isascii() and b"=?utf-8?" in head
    assert all(len(line) <= 78 for line in head.split(b"\r\n"))

    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    assert all(p["Content-Transfer-Encoding"] == "quoted-printable" for p in parts)
    text, html = (str(p.get_content()) for p in parts)

    url = "https://digest.example.org/unsubscribe/tok-42.abc_DEF"
    assert "Hello José, here are 4 stories" in text
    assert f"Unsubscribe: {url}" in text
    assert "Hello José, here are 4 stories" in html
    assert "@@digest" not in text + html
    links = lxml.html.document_fromstring(html).xpath("//a/@href")
    assert url in links
    assert links and all(link.startswith("https://") for link in links), links
    assert "Café Ørsted’s co-op bakery" in html and "— Zoë Ørsted, co-founder" in text


def test_the_golden_message_matches_the_checked_in_eml():
    envelope = _golden_template().personalize(
        Subscriber(id=7, email="zoe@example.org", name="Zoë Ørsted"), "tok-7"
    )
    path = GOLDEN / "message.eml"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_bytes(envelope.data)
    assert envelope.data == path.read_bytes(), "message.eml changed; run with UPDATE_GOLDEN=1"


@pytest.mark.parametrize("column", range(0, 90, 7))
def test_tokens_survive_quoted_printable_at_any_column(column):
    # Put the tokens at every position relative to the 76-column soft line breaks.
    filler = "é" * column + "x" * (column % 5)
    html = f'<p>{filler}Hello {NAME_TOKEN}, <a href="{UNSUBSCRIBE_TOKEN}">leave</a>{filler}</p>'
    text = f"{filler}Hello {NAME_TOKEN}\nUnsubscribe: {UNSUBSCRIBE_TOKEN}\n{filler}"
    # One long word: the greeting uses a first name, and this one is all first name.
    long_name = "-".join(["Zoë-Ørsted-Ñúñez"] * 4)
    subscriber = Subscriber(id=7, email="zoe@example.org", name=long_name)
    envelope = _template(html, text).personalize(subscriber, token="TOKEN-abc_123.xyz")
    message = _parse(envelope.data)
    html_part = message.get_body(("html",)).get_content()
    text_part = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    url = "https://digest.example.org/unsubscribe/TOKEN-abc_123.xyz"
    assert f"{filler}Hello {long_name}, " in html_part
    assert f'href="{url}"' in html_part
    assert f"Hello {long_name}\nUnsubscribe: {url}\n{filler}" in text_part
    assert "@@digest" not in html_part + text_part
    body_lines = envelope.data.split(b"\r\n\r\n", 1)[1].split(b"\r\n")
    assert max(len(line) for line in body_lines) <= 76


def test_a_long_non_ascii_name_is_split_into_short_encoded_words():
    name = ("Zoë Ørsted-Ñúñez " * 6).strip()
    envelope = _template("<p>x</p>", "x").personalize(
        Subscriber(id=7, email="zoe@example.org", name=name), "t"
    )
    to = re.search(rb"\r\nTo: (.*?)\r\n(?! )", envelope.data, re.DOTALL)
    assert to is not None
    words = re.findall(rb"=\?utf-8\?[bq]\?[^?]*\?=", to.group(1))
    assert len(words) > 1 and all(len(w) <= 75 for w in words)
    # Decoded per RFC 2047 (white space between encoded words is not part of the name).
    display = to.group(1).decode().rpartition(" <")[0]
    assert str(make_header(decode_header(display))) == name


def test_quoted_printable_never_splits_an_escape_and_never_contains_two_equals_signs():
    for width in range(60, 90):
        encoded = qp_line(("a" * width + "é=ü ").encode())
        lines = encoded.split(b"=\r\n")
        assert all(len(line) <= 75 for line in lines)
        assert all(not re.search(rb"=[0-9A-F]?$", line) for line in lines)
        assert b"==" not in encoded  # so the "==digest_" boundary can never occur


def test_message_ids_differ_per_subscriber_and_repeat_per_retry():
    template = _template("<p>x</p>", "x")
    a = template.personalize(Subscriber(id=1, email="a@example.org"), "t")
    b = template.personalize(Subscriber(id=2, email="b@example.org"), "t")
    again = template.personalize(Subscriber(id=1, email="a@example.org"), "t")
    assert a.message_id != b.message_id
    assert a.data == again.data
    other_list = _template("<p>x</p>", "x", list_id="Weekly <weekly.example.org>")
    assert other_list.message_id(Subscriber(id=1, email="a@example.org")) != a.message_id


def test_a_reader_without_a_name_is_greeted_as_there():
    envelope = _template(f"<p>Hi {NAME_TOKEN}</p>", f"Hi {NAME_TOKEN}").personalize(
        Subscriber(id=3, email="x@example.org"), "t"
    )
    message = _parse(envelope.data)
    assert message["To"].addresses[0].display_name == ""
    assert "Hi there" in message.get_body(("plain",)).get_content()


def test_name_is_html_escaped_in_the_html_part_only():
    subscriber = Subscriber(id=3, email="x@example.org", name="<b>&Tom Jerry")
    envelope = _template(f"<p>Hi {NAME_TOKEN}</p>", f"Hi {NAME_TOKEN}").personalize(subscriber, "t")
    message = _parse(envelope.data)
    assert "Hi &lt;b&gt;&amp;Tom</p>" in message.get_body(("html",)).get_content()
    assert "Hi <b>&Tom" in message.get_body(("plain",)).get_content()
    assert message["To"].addresses[0].display_name == "<b>&Tom Jerry"


@pytest.mark.parametrize(
    ("name", "greeted"),
    [
        ("Zoë Ørsted", "Zoë"),
        ("Ana", "Ana"),
        ("Dr. Ana Lindgren", "Dr. Ana Lindgren"),
        ("Prof Kim", "Prof Kim"),
        (None, "there"),
    ],
)
def test_the_greeting_uses_a_first_name(name, greeted):
    subscriber = Subscriber(id=3, email="x@example.org", name=name)
    envelope = _template(f"<p>Hello {NAME_TOKEN},</p>", "x").personalize(subscriber, "t")
    assert f"Hello {greeted}," in _parse(envelope.data).get_body(("html",)).get_content()


def test_bulk_headers_and_the_feedback_id():
    template = _template("<p>x</p>", "x", feedback_id="daily:digest:example")
    message = _parse(template.personalize(Subscriber(id=1, email="a@example.org"), "t").data)
    assert message["Precedence"] == "bulk" and message["Auto-Submitted"] == "auto-generated"
    assert message["Feedback-ID"] == "daily:digest:example"


def test_an_internationalized_domain_is_written_in_idna():
    envelope = _template("<p>x</p>", "x", sender_address="digest@bücher.example").personalize(
        Subscriber(id=5, email="ana@müller.example", name="Ana"), "t"
    )
    head = _head(envelope.data)
    assert b"To: Ana <ana@xn--mller-kva.example>" in head
    assert b"<digest@xn--bcher-kva.example>" in head
    assert envelope.message_id.endswith("@xn--bcher-kva.example>")


@pytest.mark.parametrize(
    "subscriber",
    [
        Subscriber(1, "e@example.org", "Eve\r\nBcc: all@example.org"),
        Subscriber(1, "e@example.org", "Eve\nX: y"),
        Subscriber(1, "e@example.org", "Eve\x0bX"),
        Subscriber(1, "eve@example.org\r\nBcc: all@example.org"),
    ],
)
def test_control_characters_never_reach_the_headers(subscriber):
    with pytest.raises(DigestError, match=r"line break|control character"):
        _template("<p>x</p>", "x").personalize(subscriber, "t")


def test_an_unsafe_token_is_refused():
    with pytest.raises(DigestError, match="not URL-safe"):
        _template("<p>x</p>", "x").personalize(
            Subscriber(id=1, email="e@example.org"), "t>, <https://evil.example"
        )


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("subject", "Hi\r\nBcc: all@example.org"),
        ("sender_name", "Digest\nBcc: x@example.org"),
        ("list_id", "List\r\n<x>"),
        ("reply_to", "a@example.org\nBcc: b@example.org"),
        ("unsubscribe_url", "https://e.org/u/{token}>, <https://evil.example"),
    ],
)
def test_line_breaks_and_brackets_in_fixed_headers_are_refused(option, value):
    with pytest.raises(DigestError):
        _template("<p>x</p>", "x", **{option: value})


# --- DKIM ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_key() -> tuple[bytes, bytes]:
    """A fresh 2048-bit key: (PEM private key, DNS TXT record)."""
    return generate_rsa_key()


def _verify(data: bytes, record: bytes) -> bool:
    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"news._domainkey.example.org."
        return record

    return bool(dkim.verify(data, dnsfunc=dns))


def test_dkim_signs_each_copy_including_the_unsubscribe_headers(rsa_key, tmp_path):
    pem, record = rsa_key
    key_file = tmp_path / "dkim.pem"
    key_file.write_bytes(pem.replace(b"\n", b"\r\n"))  # as saved by a Windows editor
    signer = load_signer(key_file, "news", "example.org")
    template = _golden_template(dkim=signer)
    envelope = template.personalize(Subscriber(id=9, email="ana@example.org", name="Ana"), "t9")
    assert envelope.data.startswith(b"DKIM-Signature: ")
    assert _verify(envelope.data, record)
    signature = _parse(envelope.data)["DKIM-Signature"]
    signed = {h.strip() for h in re.search(r"h=([^;]+)", signature).group(1).split(":")}
    assert {"list-unsubscribe", "list-unsubscribe-post", "from", "to", "subject"} <= signed
    assert re.search(r"\bd=example\.org;", signature) and "s=news;" in signature
    # A copy whose unsubscribe link was changed on the way no longer verifies.
    forged = envelope.data.replace(b"/unsubscribe/t9>", b"/unsubscribe/tX>")
    assert forged != envelope.data and not _verify(forged, record)
    # Unsigned by default.
    assert (
        not _golden_template()
        .personalize(Subscriber(id=9, email="a@example.org"), "t")
        .data.startswith(b"DKIM")
    )


def test_a_missing_or_broken_dkim_key_is_one_clear_error(tmp_path):
    with pytest.raises(DigestError, match=r"Cannot read the DKIM key .*dkim.key_file"):
        load_signer(tmp_path / "missing.pem", "news", "example.org")
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    with pytest.raises(DigestError, match="not a PEM RSA private key"):
        load_signer(bad, "news", "example.org")


def test_the_pipeline_builds_the_message_from_settings(settings: Settings, rsa_key, tmp_path):
    key_file = tmp_path / "dkim.pem"
    key_file.write_bytes(rsa_key[0])
    configured = settings.model_copy(
        update={
            "sender": settings.sender.model_copy(update={"reply_to": "desk@example.org"}),
            "digest": settings.digest.model_copy(
                update={"preheader": "Ferries, comets and a bakery.", "group_by": "topic"}
            ),
            "dkim": settings.dkim.model_copy(update={"key_file": key_file, "selector": "news"}),
        }
    )
    rendered = render(configured, golden_digest())
    assert "Ferries, comets and a bakery." in rendered.html
    assert '<td class="section"' in rendered.html and ">Politics</h2></td>" in rendered.html
    template = message_template(configured, "daily/2026-11-28", rendered)
    data = template.personalize(Subscriber(id=1, email="ana@example.org"), "tok").data
    assert _verify(data, rsa_key[1])
    message = _parse(data)
    assert message["Reply-To"] == "desk@example.org"
    assert message["List-Unsubscribe"].startswith("<https://digest.example.org/unsubscribe/tok>")


@pytest.mark.parametrize("name", ["Zoë", ".dot-leading-name", "." * 80])
def test_no_line_starts_with_a_dot_so_smtp_need_not_scan(name):
    # Dots at the start of a text line, right after a 75-column cut, and in the values.
    body = "\n".join([".starts with a dot", "x" * 74 + ".y", "é" * 24 + "." * 40, "."])
    html_body = f"<p>{'a' * 74}.b {NAME_TOKEN}</p>\n.<p>{UNSUBSCRIBE_TOKEN}</p>"
    subscriber = Subscriber(id=5, email="d@example.org", name=name)
    envelope = _template(html_body, f"{body}\nHi {NAME_TOKEN}").personalize(subscriber, ".tok")
    assert envelope.dot_safe
    assert not envelope.data.startswith(b".") and b"\r\n." not in envelope.data
    assert all(len(line) <= 76 for line in envelope.data.split(b"\r\n\r\n", 1)[1].split(b"\r\n"))
    message = _parse(envelope.data)
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert text.startswith(body) and text.endswith(f"Hi {name}")
    assert "/unsubscribe/.tok" in message.get_body(("html",)).get_content()
