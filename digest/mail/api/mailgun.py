"""Mailgun: POST /v3/<domain>/messages with many `to` and recipient-variables, up to 1000.

The parts and the List-Unsubscribe header carry %recipient.x% placeholders that Mailgun
fills per reader; with recipient-variables each reader gets their own message.
Mailgun answers 200 with JSON holding the message's `id`; a 400's message names the
parameter at fault: "'to'" is a reader's address, anything else ('from' ...) the request's.
References: https://documentation.mailgun.com/docs/mailgun/user-manual/sending-messages/batch-sending
and https://documentation.mailgun.com/docs/mailgun/api-reference/send/mailgun/messages
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from urllib.parse import quote

import httpx

from digest.mail.api.content import NAME, TOKEN, ApiContent, fill, recipient, values
from digest.mail.api.http import REQUEST_FIX, ApiTransport, Refusal, describe
from digest.mail.transport import Mailing, Outcome, halt, sent
from digest.models import Subscriber

TEXT_VARS = {NAME: "name", TOKEN: "token"}
HTML_VARS = {NAME: "name_html", TOKEN: "token_html"}


def _placeholders(names: dict[str, str]) -> dict[str, str]:
    return {marker: f"%recipient.{var}%" for marker, var in names.items()}


class MailgunTransport(ApiTransport):
    name = "mailgun"
    title = "Mailgun"
    max_batch = 1000
    default_url = "https://api.mailgun.net"

    def __init__(
        self,
        api_key: str,
        *,
        domain: str,
        base_url: str | None = None,
        timeout: float = 60.0,
        concurrency: int = 4,
    ) -> None:
        super().__init__(api_key, base_url=base_url, timeout=timeout, concurrency=concurrency)
        self.domain = domain

    def auth(self, api_key: str) -> httpx.Auth | None:
        return httpx.BasicAuth("api", api_key)

    def build(
        self, content: ApiContent, mailing: Mailing, batch: Sequence[Subscriber]
    ) -> httpx.Request:
        variables = {}
        for subscriber in batch:
            token = mailing.token_for(subscriber.id)
            text_values = values(subscriber, token, as_html=False)
            html_values = values(subscriber, token, as_html=True)
            variables[subscriber.email] = {
                **{TEXT_VARS[m]: v for m, v in text_values.items()},
                **{HTML_VARS[m]: v for m, v in html_values.items()},
            }
        data: dict[str, str | list[str]] = {
            "from": content.sender,
            "to": [recipient(s) for s in batch],
            "subject": content.subject,
            "text": fill(content.text, _placeholders(TEXT_VARS)),
            "html": fill(content.html, _placeholders(HTML_VARS)),
            "recipient-variables": json.dumps(variables, ensure_ascii=False),
            # v: variables reach every reader in X-Mailgun-Variables: nothing personal
            # there (no subscriber id); Mailgun's events name the recipient anyway.
            "v:digest": mailing.key,
        }
        for name, value in content.headers.items():
            data[f"h:{name}"] = value
        for name, value in content.personal_headers.items():
            data[f"h:{name}"] = fill(value, _placeholders(TEXT_VARS))
        if content.reply_to_header:
            data["h:Reply-To"] = content.reply_to_header
        return self.client.build_request(
            "POST", f"/v3/{quote(self.domain, safe='')}/messages", data=data
        )

    def parse(self, response: httpx.Response, batch: Sequence[Subscriber]) -> list[Outcome]:
        try:
            answer = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            answer = None
        message_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(message_id, str) or not message_id:
            # Not Mailgun's answer: a wrong URL that answers 200 (a web page, an API root).
            return [
                halt(
                    f"{response.url} answered {response.status_code} without a Mailgun "
                    "message id, so nothing was sent; check delivery.api_base_url "
                    "(https://api.mailgun.net, or https://api.eu.mailgun.net in the EU)."
                )
            ] * len(batch)
        return [sent(message_id)] * len(batch)

    def refusal(self, response: httpx.Response, batch: Sequence[Subscriber]) -> Refusal:
        said = f"{response.status_code}: {describe(response)}"
        if _TO_PARAMETER.search(said):
            return Refusal("someone", said)
        return Refusal("request", f"Mailgun refused the request ({said}); {REQUEST_FIX}.")


_TO_PARAMETER = re.compile(r"'?\bto'? parameter", re.IGNORECASE)
