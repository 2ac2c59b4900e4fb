"""SendGrid: POST /v3/mail/send with one personalization per reader, up to 1000.

The parts carry substitution tags; each personalization has its reader's values and its
own List-Unsubscribe header. SendGrid answers 202 with no body, and one X-Message-Id.
A 400 lists its errors, each with the field it is about: `personalizations.N.to...`
names one reader; any other field (from, reply_to, headers, content) is the request's.
References: https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send and
https://www.twilio.com/docs/sendgrid/api-reference/how-to-use-the-sendgrid-v3-api/errors
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from email.utils import parseaddr, quote
from typing import Any

import httpx

from digest.mail.api.content import NAME, TOKEN, ApiContent, fill, values
from digest.mail.api.http import REQUEST_FIX, ApiTransport, Refusal, describe, retry_after
from digest.mail.transport import Mailing, Outcome, sent
from digest.models import Subscriber

# Substitution tags; the HTML part has its own, since its values are HTML-escaped. No tag
# may begin another: SendGrid replaces plain strings.
TEXT_TAGS = {NAME: "-digest-name-text-", TOKEN: "-digest-token-text-"}
HTML_TAGS = {NAME: "-digest-name-html-", TOKEN: "-digest-token-html-"}


class SendGridTransport(ApiTransport):
    name = "sendgrid"
    title = "SendGrid"
    max_batch = 1000
    default_url = "https://api.sendgrid.com"

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}

    def build(
        self, content: ApiContent, mailing: Mailing, batch: Sequence[Subscriber]
    ) -> httpx.Request:
        personalizations = []
        for subscriber in batch:
            token = mailing.token_for(subscriber.id)
            to: dict[str, str] = {"email": subscriber.email}
            if subscriber.name:
                to["name"] = _display_name(subscriber.name)
            text_values = values(subscriber, token, as_html=False)
            html_values = values(subscriber, token, as_html=True)
            personalizations.append(
                {
                    "to": [to],
                    "substitutions": {
                        **{TEXT_TAGS[m]: v for m, v in text_values.items()},
                        **{HTML_TAGS[m]: v for m, v in html_values.items()},
                    },
                    "headers": {
                        name: fill(value, text_values)
                        for name, value in content.personal_headers.items()
                    },
                    "custom_args": {"digest": mailing.key, "subscriber": str(subscriber.id)},
                }
            )
        body: dict[str, Any] = {
            "personalizations": personalizations,
            "from": {"email": content.sender_address},
            "subject": content.subject,
            # text/plain must come first, then text/html (SendGrid's rule).
            "content": [
                {"type": "text/plain", "value": fill(content.text, TEXT_TAGS)},
                {"type": "text/html", "value": fill(content.html, HTML_TAGS)},
            ],
            "headers": dict(content.headers),
        }
        if content.sender_name:
            body["from"]["name"] = content.sender_name
        if content.reply_to:
            name, address = parseaddr(content.reply_to)
            body["reply_to"] = {"email": address, **({"name": name} if name else {})}
        return self.client.build_request("POST", "/v3/mail/send", json=body)

    def parse(self, response: httpx.Response, batch: Sequence[Subscriber]) -> list[Outcome]:
        return [sent(response.headers.get("X-Message-Id"))] * len(batch)

    def refusal(self, response: httpx.Response, batch: Sequence[Subscriber]) -> Refusal:
        said = f"{response.status_code}: {describe(response)}"
        fields = [e.get("field") for e in _errors(response)]
        readers = [m for f in fields if isinstance(f, str) and (m := _READER_FIELD.match(f))]
        if fields and len(readers) == len(fields):
            return Refusal("readers", said, tuple(int(m.group(1)) for m in readers))
        if any(isinstance(f, str) and f for f in fields):
            return Refusal("request", f"SendGrid refused the request ({said}); {REQUEST_FIX}.")
        return Refusal("unclear", said)

    def key_refused(self, response: httpx.Response) -> str:
        if response.status_code == 403:
            # Mail Send answers 403 mostly for a From that is not a verified identity.
            return (
                f"SendGrid refused to send (403: {describe(response)}): sender.address is "
                "not a verified Sender Identity (or the key lacks the Mail Send "
                "permission); verify it under Sender Authentication in SendGrid."
            )
        return super().key_refused(response)

    def wait_for(self, response: httpx.Response) -> float | None:
        # SendGrid says when its rate limit resets, in epoch seconds, not Retry-After.
        # https://www.twilio.com/docs/sendgrid/api-reference/how-to-use-the-sendgrid-v3-api/rate-limits
        reset = response.headers.get("X-RateLimit-Reset", "").strip()
        if reset.isdigit():
            return max(0.0, int(reset) - time.time())
        return retry_after(response)


# A field that is one reader's address, e.g. "personalizations.3.to.0.email".
_READER_FIELD = re.compile(r"personalizations\.(\d+)\.to\b")


def _errors(response: httpx.Response) -> list[dict[str, Any]]:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return []
    errors = body.get("errors") if isinstance(body, dict) else None
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


def _display_name(name: str) -> str:
    # SendGrid does not quote display names in personalizations; a comma or semicolon
    # would split the address, so quote those names here.
    return f'"{quote(name)}"' if any(c in name for c in ',;"') else name
