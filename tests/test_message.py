"""Per-subscriber messages: built once, personalized by token swap, parsed back intact."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime

import pytest

from digest.errors import DigestError
from digest.mail.message import NAME_TOKEN, UNSUBSCRIBE_TOKEN, MessageTemplate
from digest.models import RenderedDigest, Subscriber


def _template(html: str, text: str, subject: str = "Daily — Nov 28: Ferry news") -> MessageTemplate:
    return MessageTemplate(
        RenderedDigest(subject=subject, html=html, text=text),
        sender_name="Daily Digest",
        sender_address="digest@example.org",
        list_id="Daily Digest <daily.example.org>",
        unsubscribe_url="https://digest.example.org/unsubscribe/{token}",
        unsubscribe_mailto="mailto:digest@example.org?subject=unsubscribe",
        digest_key="daily/2026-11-28",
        sent_at=datetime(2026, 11, 28, 7, 0, tzinfo=UTC),
    )


def _parse(data: bytes) -> email.message.EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


@pytest.mark.parametrize("column", range(0, 90, 7))
def test_tokens_survive_quoted_printable_at_any_column(column):
    # Put the tokens at every position relative to the 76-column soft line breaks.
    filler = "é" * column + "x" * (column % 5)
    html = f'<p>{filler}Hello {NAME_TOKEN}, <a href="{UNSUBSCRIBE_TOKEN}">leave</a>{filler}</p>'
    text = f"{filler}Hello {NAME_TOKEN}\nUnsubscribe: {UNSUBSCRIBE_TOKEN}\n{filler}"
    long_name = "Zoë Ørsted-Ñúñez " * 4
    subscriber = Subscriber(id=7, email="zoe@example.org", name=long_name.strip())
    envelope = _template(html, text).personalize(subscriber, token="TOKEN-abc_123.xyz")
    for line in envelope.data.split(b"\r\n"):
        assert len(line) <= 998
    message = _parse(envelope.data)
    html_part = message.get_body(("html",)).get_content()
    text_part = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    url = "https://digest.example.org/unsubscribe/TOKEN-abc_123.xyz"
    assert f"{filler}Hello {long_name.strip()}, " in html_part.replace("&#x27;", "'")
    assert f'href="{url}"' in html_part
    assert f"Hello {long_name.strip()}\nUnsubscribe: {url}\n{filler}" in text_part
    assert "@@digest" not in html_part + text_part
    body_lines = envelope.data.split(b"\r\n\r\n", 1)[1].split(b"\r\n")
    assert max(len(line) for line in body_lines) <= 76


def test_headers_of_a_personalized_message():
    subscriber = Subscriber(id=42, email="jose@example.com", name="José Núñez")
    template = _template("<p>Hi</p>", "Hi", subject="Daily — Nov 28: Señor’s ferry")
    envelope = template.personalize(subscriber, token="tok")
    message = _parse(envelope.data)
    assert message["To"].addresses[0].display_name == "José Núñez"
    assert message["To"].addresses[0].addr_spec == "jose@example.com"
    assert b"=?utf-8?" in envelope.data.split(b"\r\n\r\n")[0]  # RFC 2047 on the wire
    assert message["Subject"] == "Daily — Nov 28: Señor’s ferry"
    assert message["From"].addresses[0].addr_spec == "digest@example.org"
    assert message["Message-ID"] == envelope.message_id
    assert envelope.message_id.endswith("@example.org>")
    assert message["List-Unsubscribe"] == (
        "<https://digest.example.org/unsubscribe/tok>, "
        "<mailto:digest@example.org?subject=unsubscribe>"
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Id"] == "Daily Digest <daily.example.org>"
    assert message["MIME-Version"] == "1.0"
    assert message["Date"].datetime == datetime(2026, 11, 28, 7, 0, tzinfo=UTC)
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]


def test_message_ids_differ_per_subscriber_and_repeat_per_retry():
    template = _template("<p>x</p>", "x")
    a = template.personalize(Subscriber(id=1, email="a@example.org"), "t")
    b = template.personalize(Subscriber(id=2, email="b@example.org"), "t")
    again = template.personalize(Subscriber(id=1, email="a@example.org"), "t")
    assert a.message_id != b.message_id
    assert a.message_id == again.message_id


def test_name_is_html_escaped_in_the_html_part_only():
    subscriber = Subscriber(id=3, email="x@example.org", name="Tom <b>& Jerry")
    envelope = _template(f"<p>Hi {NAME_TOKEN}</p>", f"Hi {NAME_TOKEN}").personalize(subscriber, "t")
    message = _parse(envelope.data)
    assert "Hi Tom &lt;b&gt;&amp; Jerry" in message.get_body(("html",)).get_content()
    assert "Hi Tom <b>& Jerry" in message.get_body(("plain",)).get_content()


@pytest.mark.parametrize("name", ["Eve\r\nBcc: all@example.org", "Eve\nX: y"])
def test_line_breaks_in_a_name_never_reach_the_headers(name):
    with pytest.raises(DigestError, match="line break"):
        _template("<p>x</p>", "x").personalize(
            Subscriber(id=1, email="e@example.org", name=name), "t"
        )


def test_line_breaks_in_the_subject_are_refused():
    with pytest.raises(DigestError, match="subject"):
        _template("<p>x</p>", "x", subject="Hi\r\nBcc: all@example.org")
