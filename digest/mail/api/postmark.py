"""Postmark: POST /email/batch, up to 500 messages, one result per message, in order.

The batch endpoint answers HTTP 200 even when messages were refused: each result has a
MessageID when Postmark took the message (whatever else it says, e.g. "Message accepted,
but delivery may be delayed."), or an ErrorCode. Most codes are about the sender, the
account or the request and would be the same for every reader: they stop the run. Only
406 (inactive recipient) and 300 about the To address concern one reader.

A 406 does not say why the reader is inactive; the suppressions API does: they
unsubscribed through Postmark (ManualSuppression, on a broadcast stream where Postmark
handles unsubscribes), complained (SpamComplaint) or hard-bounced (HardBounce). The
reader takes that status at once instead of counting towards `bounced`.
References: https://postmarkapp.com/developer/user-guide/send-email-with-api/batch-emails,
https://postmarkapp.com/developer/api/overview#error-codes and
https://postmarkapp.com/developer/api/suppressions-api
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import httpx

from digest.mail.api.content import ApiContent, recipient
from digest.mail.api.http import REQUEST_FIX, ApiTransport, Refusal, describe
from digest.mail.transport import Left, Mailing, Outcome, failed, halt, retry, sent
from digest.models import Subscriber

INACTIVE_RECIPIENT = 406
INVALID_REQUEST = 300
SENDER_CODES = {400, 401}  # sender signature not found / not confirmed
ACCOUNT_CODES = {405, 412, 413}  # not allowed to send / account pending / may not send
# A 300 names the field it is about in quotes ("Invalid 'To' address: '...'"); only the
# reader's own address is theirs to fail. The address itself is quoted too, so only
# exact field names count ('From' is a field, 'somebody@fromage.example' is not).
_FIELD = re.compile(
    r"'(To|Cc|Bcc|From|ReplyTo|Reply-To|Subject|TextBody|HtmlBody|Headers|Metadata|Tag|"
    r"MessageStream)'"
)
_RECIPIENT_FIELDS = {"To", "Cc", "Bcc"}
# Why Postmark suppresses an address, as the reader's status here.
SUPPRESSION_STATUS: dict[str, Left] = {
    "ManualSuppression": "unsubscribed",
    "SpamComplaint": "complained",
    "HardBounce": "bounced",
}


class PostmarkTransport(ApiTransport):
    name = "postmark"
    title = "Postmark"
    max_batch = 500
    # The batch payload limit is 50 MB: 500 copies of a large digest (~125 KB each with
    # both parts) would exceed it, so requests are cut by size too. A little under, for
    # the JSON around the messages and whatever Postmark counts as a megabyte.
    max_bytes = 48 * 1000 * 1000
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

    def deliver(self, mailing: Mailing, batch: Sequence[Subscriber]) -> list[Outcome]:
        """The batch in as few requests as fit Postmark's payload limit, in order."""
        content = self.content(mailing)
        outcomes: list[Outcome] = []
        chunk: list[Subscriber] = []
        encoded: list[bytes] = []
        size = 2  # the brackets
        for subscriber in batch:
            message = self._encoded(content, mailing, subscriber)
            if chunk and size + len(message) + 1 > self.max_bytes:
                outcomes += self._post(content, mailing, chunk, self._request(encoded))
                if stop := next((o for o in outcomes if o.halted), None):
                    # The sender's or account's fault: the rest would be refused alike.
                    return outcomes + [stop] * (len(batch) - len(outcomes))
                chunk, encoded, size = [], [], 2
            chunk.append(subscriber)
            encoded.append(message)
            size += len(message) + 1
        if chunk:
            outcomes += self._post(content, mailing, chunk, self._request(encoded))
        return outcomes

    def build(
        self, content: ApiContent, mailing: Mailing, batch: Sequence[Subscriber]
    ) -> httpx.Request:
        return self._request([self._encoded(content, mailing, s) for s in batch])

    def _encoded(self, content: ApiContent, mailing: Mailing, subscriber: Subscriber) -> bytes:
        # Each message is encoded as soon as it is built, and the pieces are sent as they
        # are: 500 full copies held as dicts, then joined into one JSON text, would take
        # several times the memory, for every request in flight.
        message = self._message(content, mailing, subscriber)
        return json.dumps(message, ensure_ascii=False).encode()

    def _request(self, messages: list[bytes]) -> httpx.Request:
        parts = [b"["] + [(b"," if i else b"") + m for i, m in enumerate(messages)] + [b"]"]
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
        try:
            results = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            results = None
        if not isinstance(results, list) or len(results) != len(batch):
            # Which messages went out is unknown: retrying may duplicate a few, never lose.
            return [retry("Postmark gave an answer that does not match the batch")] * len(batch)
        outcomes = [self._outcome(r if isinstance(r, dict) else {}) for r in results]
        return [
            self._inactive(subscriber, outcome) if _is_inactive(outcome) else outcome
            for subscriber, outcome in zip(batch, outcomes, strict=True)
        ]

    def _inactive(self, subscriber: Subscriber, outcome: Outcome) -> Outcome:
        """A 406, with the reader's status when Postmark says why it suppresses them."""
        path = f"/message-streams/{self.stream}/suppressions/dump"
        try:
            response = self.client.get(path, params={"EmailAddress": subscriber.email})
            entries = response.json().get("Suppressions", []) if response.is_success else []
        except (httpx.HTTPError, json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            # Only the status is lost: the 406 still counts as a failure.
            return outcome
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict):
                continue
            if str(entry.get("EmailAddress", "")).lower() != subscriber.email.lower():
                continue
            reason = str(entry.get("SuppressionReason"))
            if left := SUPPRESSION_STATUS.get(reason):
                return failed(f"{outcome.detail} (Postmark: {reason})", left)
        return outcome

    def _outcome(self, result: dict[str, object]) -> Outcome:
        if result.get("MessageID"):
            return sent(str(result["MessageID"]))
        code, message = result.get("ErrorCode"), str(result.get("Message") or "")
        if code == 0:  # OK without an id: taken all the same
            return sent(None)
        if code == INACTIVE_RECIPIENT:
            return failed(f"Postmark {INACTIVE_RECIPIENT}: {message}")
        fields = set(_FIELD.findall(message))
        if code == INVALID_REQUEST and fields and fields <= _RECIPIENT_FIELDS:
            return failed(f"Postmark {code}: {message}")
        return halt(_sentence(code, message))

    def refusal(self, response: httpx.Response, batch: Sequence[Subscriber]) -> Refusal:
        if response.status_code == 413:
            # Over the payload limit: smaller halves fit.
            return Refusal("unclear", f"413: {describe(response)}")
        try:
            answer = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            answer = None
        code = answer.get("ErrorCode") if isinstance(answer, dict) else None
        # A 422 for the batch as a whole (bad JSON, too many messages ...) is the request's.
        return Refusal("request", _sentence(code, describe(response)))


def _is_inactive(outcome: Outcome) -> bool:
    return outcome.status == "failed" and (outcome.detail or "").startswith(
        f"Postmark {INACTIVE_RECIPIENT}:"
    )


def _sentence(code: object, message: str) -> str:
    """The run's last sentence for a Postmark error code that is not about one reader."""
    said = f"{code}: {message}"
    if code == 10:
        return f"Postmark refused the server token ({said}); check DIGEST_DELIVERY__API_KEY."
    if code in SENDER_CODES:
        return (
            f"Postmark will not send from this sender ({said}); add and confirm a sender "
            "signature or domain for sender.address in Postmark, or set sender.address "
            "to a confirmed one."
        )
    if code in ACCOUNT_CODES:
        return (
            f"Postmark's account may not send now ({said}); check the account's status "
            "and billing in Postmark, or ask Postmark's support."
        )
    return f"Postmark refused the message itself ({said}); {REQUEST_FIX}."
