"""HTTP for collection: one pooled httpx.AsyncClient, bounded, and never raising.

Every request runs under a global and a per-host limit, a deadline that covers the whole
response (a server that drips an endless body is cut off too), and a size cap enforced
while the body streams in (after decompression, so a gzip bomb is cut off as well).
Conditional GET sends the stored ETag / Last-Modified; a 304 comes back without a body.
Any failure comes back as `Fetched.error`, one sentence naming the URL and what to do.

Links found inside feeds are someone else's words: they are fetched with `trusted=False`,
over connections that refuse loopback, private, link-local and reserved addresses. The
check is made on every address the name resolves to, at the moment of connecting (so a
redirect, or a name that resolves differently the second time, is checked again), and the
connection goes to the address that was checked. `collect.allow_private_hosts` lists the
exceptions. The sources the operator configured are trusted and may be private.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import ssl
import typing
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urlsplit

import anyio
import httpcore
import httpx

from digest.errors import reason_of
from digest.safetext import without_password
from digest.settings import CollectSettings

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/rdf+xml;"
    "q=0.9, application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, */*;q=0.5"
)
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"
_REASONS = {
    401: "it needs a login digest does not have",
    403: "the site refuses digest; check collect.user_agent or ask the site for access",
    404: "check the URL in the config",
    410: "the site removed it for good; remove it from the config",
    429: "the site asks for fewer requests; it is tried again next run",
}
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([\w.:-]+)""", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Fetched:
    """One response, or why there is none: `error` is None for a usable 200 or a 304."""

    url: str
    status: int | None = None
    body: bytes = b""
    final_url: str = ""
    content_type: str = ""
    etag: str | None = None
    last_modified: str | None = None
    error: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304 and self.error is None

    @property
    def media_type(self) -> str:
        return self.content_type.partition(";")[0].strip().lower()

    def text(self) -> str:
        return decode_html(self.body, self.content_type)


def decode_html(body: bytes, content_type: str = "") -> str:
    """HTML bytes decoded: the header's charset, else a <meta charset>, else UTF-8."""
    charset = _charset(content_type)
    if charset is None:
        found = _META_CHARSET.search(body[:4096])
        charset = found.group(1).decode("ascii") if found else "utf-8"
    try:
        return body.decode(charset, errors="replace")
    except LookupError:  # a charset Python does not know
        return body.decode("utf-8", errors="replace")


def _charset(content_type: str) -> str | None:
    for part in content_type.split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset" and value.strip(" \"'"):
            return value.strip(" \"'")
    return None


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:g} MB" if n >= 1024 * 1024 else f"{n / 1024:g} KB"


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class BlockedAddress(httpcore.ConnectError):
    """A link from untrusted content leads to an address digest must not reach."""


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Which addresses a fetch of an untrusted link may connect to."""

    names: frozenset[str] = frozenset()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def allowing(cls, entries: Iterable[str]) -> AddressPolicy:
        names, networks = set(), []
        for entry in entries:
            if "/" in entry:
                networks.append(ipaddress.ip_network(entry, strict=False))
            else:
                names.add(entry.strip("[]").lower())
        return cls(frozenset(names), tuple(networks))

    def permits(self, host: str, address: IPAddress) -> bool:
        if host.lower() in self.names or str(address) in self.names:
            return True
        if any(address in network for network in self.networks):
            return True
        mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        public = mapped or address
        return public.is_global and not public.is_multicast


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to addresses the policy permits; see the module docstring."""

    def __init__(self, policy: AddressPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            found = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in found))
        for address in addresses:
            if not self._policy.permits(host, address):
                raise BlockedAddress(f"{host} is at {address}, a private or reserved address")
        failure: httpcore.ConnectError | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as exc:
                failure = exc
        raise failure or httpcore.ConnectError(f"{host} has no address")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedAddress("a link may not reach a local socket")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class Fetcher:
    """A pooled HTTP client for one collection run; use it as `async with Fetcher(...)`."""

    def __init__(
        self, settings: CollectSettings, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.timeout = settings.timeout
        self.max_bytes = settings.max_bytes
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._per_host = settings.per_host
        self._hosts: defaultdict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(self._per_host)
        )
        self._client = self._make_client(settings, transport)
        if transport is None:
            guarded = httpx.AsyncHTTPTransport(limits=self._limits(settings))
            # httpx offers no public switch for its pool's network backend; the SSRF tests
            # fail loudly if this attribute ever changes.
            guarded._pool._network_backend = _GuardedBackend(
                AddressPolicy.allowing(settings.allow_private_hosts)
            )
            transport = guarded
        self._untrusted = self._make_client(settings, transport)

    @staticmethod
    def _limits(settings: CollectSettings) -> httpx.Limits:
        return httpx.Limits(
            max_connections=settings.concurrency,
            max_keepalive_connections=settings.concurrency,
        )

    def _make_client(
        self, settings: CollectSettings, transport: httpx.AsyncBaseTransport | None
    ) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            headers={"User-Agent": settings.user_agent},
            timeout=httpx.Timeout(settings.timeout),
            limits=self._limits(settings),
            follow_redirects=True,
            max_redirects=10,
            transport=transport,
        )

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._client.aclose()
        await self._untrusted.aclose()

    async def get(
        self,
        url: str,
        *,
        accept: str = FEED_ACCEPT,
        etag: str | None = None,
        last_modified: str | None = None,
        trusted: bool = False,
    ) -> Fetched:
        """GET one URL; never raises for anything the network or the server does.

        `trusted` is for the URLs the operator configured; a link found in a feed is not,
        and may reach only public addresses.
        """
        headers = {"Accept": accept}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        host = urlsplit(url).netloc.lower()
        shown = without_password(url)
        # The site's own limit first, so requests queued for one busy site hold no global
        # slot; the deadline starts once both are free, so a long queue is not a timeout.
        async with self._hosts[host], self._slots:
            try:
                async with asyncio.timeout(self.timeout):
                    client = self._client if trusted else self._untrusted
                    return await self._get(client, url, headers, etag, last_modified)
            except TimeoutError:
                return Fetched(url, error=self._timed_out(shown))
            except httpx.TimeoutException:
                return Fetched(url, error=self._timed_out(shown))
            except httpx.TooManyRedirects:
                return Fetched(url, error=f"{shown} redirects too many times; check the URL.")
            except httpx.ConnectError as exc:
                return Fetched(url, error=_connect_error(shown, exc))
            except httpx.DecodingError:
                return Fetched(url, error=f"{shown} sent a body that could not be decompressed.")
            except (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError):
                return Fetched(
                    url, error=f"{shown} is not a valid http(s) URL; fix it in the config."
                )
            except httpx.HTTPError as exc:
                reason = reason_of(exc)
                return Fetched(
                    url, error=f"Fetching {shown} failed ({reason}); tried again next run."
                )

    def _timed_out(self, url: str) -> str:
        return f"{url} did not answer within {self.timeout:g} s; it is tried again next run."

    async def _get(
        self,
        client: httpx.AsyncClient,
        url: str,
        headers: dict[str, str],
        etag: str | None,
        last_modified: str | None,
    ) -> Fetched:
        async with client.stream("GET", url, headers=headers) as response:
            status = response.status_code
            final = str(response.url)
            if status == 304:
                # Read the (empty) body so the connection goes back to the pool for reuse.
                await response.aread()
                return Fetched(
                    url,
                    status,
                    final_url=final,
                    etag=response.headers.get("ETag") or etag,
                    last_modified=response.headers.get("Last-Modified") or last_modified,
                )
            if not 200 <= status < 300:
                phrase = response.reason_phrase or "error"
                advice = _REASONS.get(status) or (
                    "the site has a problem; it is tried again next run"
                    if status >= 500
                    else "check the URL in the config"
                )
                shown = without_password(url)
                return Fetched(url, status, error=f"{shown} answered {status} {phrase}; {advice}.")
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > self.max_bytes:
                return Fetched(url, status, error=self._too_big(url))
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > self.max_bytes:
                    return Fetched(url, status, error=self._too_big(url))
            return Fetched(
                url,
                status,
                bytes(body),
                final_url=final,
                content_type=response.headers.get("Content-Type", ""),
                etag=response.headers.get("ETag"),
                last_modified=response.headers.get("Last-Modified"),
            )

    def _too_big(self, url: str) -> str:
        return (
            f"{without_password(url)} sent more than {_size(self.max_bytes)}; cut off "
            "(raise collect.max_bytes if it really is that large)."
        )


def _connect_error(url: str, exc: httpx.ConnectError) -> str:
    host = urlsplit(url).hostname or url
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, BlockedAddress):
            return (
                f"Not fetched: {url} leads to a private or reserved address ({cause}); links "
                "found in feeds may reach only public addresses (list trusted hosts in "
                "collect.allow_private_hosts)."
            )
        if isinstance(cause, socket.gaierror):
            return f"Could not find the host {host} (DNS lookup failed); check the URL."
        if isinstance(cause, ssl.SSLError):
            reason = cause.reason or cause.strerror or str(cause)
            return (
                f"The TLS handshake with {host} failed ({reason}); check the URL's scheme "
                "or the site's certificate."
            )
        if isinstance(cause, ConnectionRefusedError):
            return f"{host} refused the connection; the site may be down, tried again next run."
        cause = cause.__cause__ or cause.__context__
    return f"Could not connect to {host} ({exc}); tried again next run."
