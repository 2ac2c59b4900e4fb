"""What every provider API transport shares: one pooled httpx client and the rules.

- 2xx: the provider says per message (Postmark) or for the whole batch what it took.
- 429 and 5xx, timeouts, refused connections: nothing was taken; retry the whole batch,
  after the Retry-After the provider asked for.
- 401/403 (the key) and 404 (the URL or domain) are the operator's to fix: stop the run.
- Any other 4xx refuses the request as a whole. The provider's words say whether a
  reader is at fault (a bad address) or the request (sender, Reply-To, headers, content):
  readers it names fail and the others are sent again; an unnamed bad address is found
  by halving the batch; a request error stops the run at once, and so does an unclear
  refusal that recurs for a single reader -- it is the sender's, never the reader's, so
  nobody is counted as a bounce for it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import httpx

from digest.errors import reason_of
from digest.mail.api.content import ApiContent
from digest.mail.transport import Mailing, Outcome, failed, halt, retry
from digest.models import Subscriber

# What the operator can change when the request itself was refused.
REQUEST_FIX = "check sender.name, sender.address, sender.reply_to and the template's headers"


@dataclass(frozen=True, slots=True)
class Refusal:
    """What a 4xx answer refused, read from the provider's own words.

    readers: these readers' addresses (indexes in the batch); the others may go again.
    someone: a reader's address, but the provider does not say whose; halve to find it.
    request: the sender, Reply-To, headers or content; `reason` is the run's last sentence.
    unclear: either; halve, and if one reader alone is refused it is the request.
    """

    kind: Literal["readers", "someone", "request", "unclear"]
    reason: str
    readers: tuple[int, ...] = ()


class ApiTransport:
    """Base class: subclasses build the provider's request and read its answer."""

    name: str
    title: str  # the provider's name in messages, e.g. "Postmark"
    max_batch: int
    default_url: str
    multiplexed = False  # one request per worker; the pooled client holds the connections

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str | None = None,
        timeout: float = 60.0,
        concurrency: int = 4,
    ) -> None:
        self.base_url = (base_url or self.default_url).rstrip("/")
        self.client = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            headers={"User-Agent": "digest", **self.auth_headers(api_key)},
            auth=self.auth(api_key),
        )
        self._contents: dict[str, ApiContent] = {}
        self._lock = threading.Lock()

    # -- for subclasses ----------------------------------------------------------------

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {}

    def auth(self, api_key: str) -> httpx.Auth | None:
        return None

    def build(
        self, content: ApiContent, mailing: Mailing, batch: Sequence[Subscriber]
    ) -> httpx.Request:
        raise NotImplementedError

    def parse(self, response: httpx.Response, batch: Sequence[Subscriber]) -> list[Outcome]:
        raise NotImplementedError

    def refusal(self, response: httpx.Response, batch: Sequence[Subscriber]) -> Refusal:
        """What a 4xx (other than 401, 403, 404, 429) refused; providers know better."""
        return Refusal("unclear", f"{response.status_code}: {describe(response)}")

    def key_refused(self, response: httpx.Response) -> str:
        """The run's last sentence for a 401 or 403."""
        return (
            f"{self.title} refused the API key ({response.status_code}: {describe(response)}); "
            "check DIGEST_DELIVERY__API_KEY."
        )

    def wait_for(self, response: httpx.Response) -> float | None:
        """Seconds the provider asked us to wait before trying again, if it said."""
        return retry_after(response)

    # -- the transport -----------------------------------------------------------------

    def deliver(self, mailing: Mailing, batch: Sequence[Subscriber]) -> list[Outcome]:
        return self._post(self.content(mailing), mailing, list(batch))

    def content(self, mailing: Mailing) -> ApiContent:
        with self._lock:
            if mailing.key not in self._contents:
                self._contents[mailing.key] = ApiContent.of(mailing)
            return self._contents[mailing.key]

    def close(self) -> None:
        self.client.close()

    def _post(
        self,
        content: ApiContent,
        mailing: Mailing,
        batch: list[Subscriber],
        request: httpx.Request | None = None,
    ) -> list[Outcome]:
        request = request or self.build(content, mailing, batch)
        try:
            response = self.client.send(request)
        except httpx.TimeoutException:
            # The provider may have taken the batch before the answer was lost.
            return [retry(f"{self.title} did not answer in time")] * len(batch)
        except httpx.TransportError as exc:
            reason = f"cannot reach {self.title} at {self.base_url} ({reason_of(exc)})"
            return [retry(reason, unavailable=True)] * len(batch)
        status = response.status_code
        if status == 429 or status >= 500:
            reason = f"{self.title} answered {status} ({describe(response)})"
            after = self.wait_for(response)
            return [retry(reason, after, unavailable=True)] * len(batch)
        if status in (401, 403):
            return [halt(self.key_refused(response))] * len(batch)
        if status == 404:
            return [
                halt(
                    f"{self.title} has no {request.url} ({describe(response)}); check "
                    "delivery.api_base_url and delivery.api_domain."
                )
            ] * len(batch)
        if status >= 400:
            return self._refused(content, mailing, batch, self.refusal(response, batch))
        return self.parse(response, batch)

    def _refused(
        self, content: ApiContent, mailing: Mailing, batch: list[Subscriber], refusal: Refusal
    ) -> list[Outcome]:
        name = self.title
        if refusal.kind == "request":
            return [halt(refusal.reason)] * len(batch)
        named = {i for i in refusal.readers if 0 <= i < len(batch)}
        if refusal.kind == "readers" and named:
            # Nothing was sent: the named readers fail, the others go again at once.
            rest = [s for i, s in enumerate(batch) if i not in named]
            again = iter(self._post(content, mailing, rest) if rest else [])
            reason = f"{name} refused the address ({refusal.reason})"
            return [failed(reason) if i in named else next(again) for i in range(len(batch))]
        if len(batch) > 1:
            half = len(batch) // 2
            first = self._post(content, mailing, batch[:half])
            if stop := next((o for o in first if o.halted), None):
                # The rest would be refused alike: send no more requests for it.
                return first + [stop] * (len(batch) - half)
            return first + self._post(content, mailing, batch[half:])
        if refusal.kind in ("someone", "readers"):
            return [failed(f"{name} refused the address ({refusal.reason})")]
        return [
            halt(
                f"{name} refused the message even for a single reader ({refusal.reason}), "
                f"so the request is at fault, not the readers; {REQUEST_FIX}."
            )
        ]


def retry_after(response: httpx.Response) -> float | None:
    """Seconds from a Retry-After header (delay-seconds or an HTTP date), if any."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def describe(response: httpx.Response) -> str:
    """The provider's own words about an error, on one short line."""
    try:
        body: Any = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = response.text
    if isinstance(body, dict):
        if isinstance(body.get("errors"), list):
            body = "; ".join(
                str(e.get("message", e) if isinstance(e, dict) else e) for e in body["errors"]
            )
        else:
            body = body.get("Message") or body.get("message") or body
    text = " ".join(str(body).split())
    return text[:300] or response.reason_phrase
