"""Postmark: POST /email/batch, up to 500 messages, one result per message, in order.

Reference: https://postmarkapp.com/developer/user-guide/send-email-with-api/batch-emails
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import httpx

from digest.mail.api.content import ApiContent, recipient
from digest.mail.api.http import ApiTransport
from digest.mail.transport import Mailing, Outcome, failed, retry, sent
from digest.models import Subscriber


class PostmarkTransport(ApiTransport):
    name = "postmark"
    title = "Postmark"
    max_batch = 500
    default_url = "https://api.postmarkapp.com"

    def __init__(
        self,
        api_key: str,
        *,
        stream: str = "broadcast",
        base_url: str | None = None,
        timeout: float = 60.0,
        concurrency: int = 4,
    ) -> None:
        super().__init__(api_key, base_url=base_url, timeout=timeout, concurrency=concurrency)
        self.stream = stream

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"X-Postmark-Server-Token": api_key, "Accept": "application/json"}

    def build(
        self, content: ApiContent, mailing: Mailing, batch: Sequence[Subscriber]
    ) -> httpx.Request:
        # Each message is encoded as soon as it is built, and the pieces are sent as they
        # are: 500 full copies held as dicts, then joined into one JSON text, would take
        # several times the memory, for every request in flight.
        parts = [b"["]
        for index, subscriber in enumerate(batch):
            message = json.dumps(self._message(content, mailing, subscriber), ensure_ascii=False)
            parts.append((b"," if index else b"") + message.encode())
        parts.append(b"]")
        length = sum(len(part) for part in parts)
        return self.client.build_request(
            "POST",
            "/email/batch",
            content=iter(parts),
            headers={"Content-Type": "application/json", "Content-Length": str(length)},
        )

    def _message(
        self, content: ApiContent, mailing: Mailing, subscriber: Subscriber
    ) -> dict[str, object]:
        token = mailing.token_for(subscriber.id)
        message: dict[str, object] = {
            "From": content.sender,
            "To": recipient(subscriber),
            "Subject": content.subject,
            "TextBody": content.text_for(subscriber, token),
            "HtmlBody": content.html_for(subscriber, token),
            "Headers": [
                {"Name": name, "Value": value}
                for name, value in content.headers_for(subscriber, token).items()
            ],
            "MessageStream": self.stream,
            "Metadata": {"digest": mailing.key, "subscriber": str(subscriber.id)},
        }
        if content.reply_to:
            message["ReplyTo"] = content.reply_to
        return message

    def parse(self, response: httpx.Response, batch: Sequence[Subscriber]) -> list[Outcome]:
        results = response.json()
        if not isinstance(results, list) or len(results) != len(batch):
            # Which messages went out is unknown: retrying may duplicate a few, never lose.
            return [retry("Postmark gave an answer that does not match the batch")] * len(batch)
        return [
            sent(str(result.get("MessageID")))
            if result.get("ErrorCode") == 0
            else failed(f"Postmark {result.get('ErrorCode')}: {result.get('Message')}")
            for result in results
        ]
