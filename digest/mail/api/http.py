"""What every provider API transport shares: one pooled httpx client and the rules.

- 2xx: the provider says per message (Postmark) or for the whole batch what it took.
- 429 and 5xx, timeouts, refused connections: nothing was taken; retry the whole batch,
  after the Retry-After the provider asked for.
- 401/403 (the key) and 404 (the URL or domain) are the operator's to fix: stop the run.
- Any other 4xx refuses the request as a whole, often for one bad address in it; the
  batch is halved until the refused reader stands alone, so one bad recipient never
  fails the others.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from digest.errors import DeliveryError, reason_of
from digest.mail.api.content import ApiContent
from digest.mail.transport import Mailing, Outcome, failed, retry
from digest.models import Subscriber


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
        self, content: ApiContent, mailing: Mailing, batch: list[Subscriber]
    ) -> list[Outcome]:
        request = self.build(content, mailing, batch)
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
            after = retry_after(response)
            return [retry(reason, after, unavailable=True)] * len(batch)
        if status in (401, 403):
            raise DeliveryError(
                f"{self.title} refused the API key ({status}: {describe(response)}); "
                "check DIGEST_DELIVERY__API_KEY."
            )
        if status == 404:
            raise DeliveryError(
                f"{self.title} has no {request.url} ({describe(response)}); check "
                "delivery.api_base_url and delivery.api_domain."
            )
        if status >= 400:
            if len(batch) > 1:
                half = len(batch) // 2
                return self._post(content, mailing, batch[:half]) + self._post(
                    content, mailing, batch[half:]
                )
            return [failed(f"{self.title} refused it ({status}: {describe(response)})")]
        return self.parse(response, batch)


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
