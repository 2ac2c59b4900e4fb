"""SendGrid: POST /v3/mail/send with one personalization per reader, up to 1000.

The parts carry substitution tags; each personalization has its reader's values and its
own List-Unsubscribe header. SendGrid answers 202 with no body, and one X-Message-Id.
Reference: https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send
"""

from __future__ import annotations

from collections.abc import Sequence
from email.utils import parseaddr, quote
from typing import Any

import httpx

from digest.mail.api.content import NAME, TOKEN, ApiContent, fill, values
from digest.mail.api.http import ApiTransport
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


def _display_name(name: str) -> str:
    # SendGrid does not quote display names in personalizations; a comma or semicolon
    # would split the address, so quote those names here.
    return f'"{quote(name)}"' if any(c in name for c in ',;"') else name
