"""Who may reach what: the operator guard, the Host check and the per-client limits.

Operator pages (the preview, collecting, test sends) need `web.admin_password` (HTTP basic
auth), except under `digest preview` bound to a loopback address, where they answer to
this machine only: a loopback client, a loopback Host, and no proxy's forwarded headers.
Every request must name this site in its Host header (a rebound DNS name cannot reach the
operator pages from a browser), and an operator POST must come from a page of this site
(its Origin).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import inspect
import ipaddress
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from digest import store
from digest.web.state import WebState, page, state

Endpoint = Callable[[Request], Awaitable[Response] | Response]
_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "[::1]")
# Headers a reverse proxy adds: a request that carries one did not come from this machine's
# own browser, whatever the socket's address says.
_PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip")
# Failed sign-ins one client may make in a quarter of an hour before it must wait; counted
# in the database, so a client locked out on one web host is locked out on all of them.
SIGN_IN_ATTEMPTS = 10
SIGN_IN_WINDOW = timedelta(minutes=15)


def is_loopback(host: str) -> bool:
    """True for a loopback IP address (127.0.0.0/8, ::1) written as one, nothing else."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def is_local(request: Request) -> bool:
    """The request came straight from a browser on this machine, not through a proxy."""
    host = request.url.hostname or ""
    return (
        is_loopback(client_of(request))
        and (host in _LOOPBACK_NAMES or is_loopback(host))
        and not any(name in request.headers for name in _PROXY_HEADERS)
    )


def operator_here(request: Request) -> bool:
    """True when this request may see operator pages without a password."""
    return state(request).local_operator and is_local(request)


def same_origin(request: Request, base_url: str, *, unsaid_ok: bool = False) -> bool:
    """A POST came from a page of this site (browsers always send Origin).

    `unsaid_ok` lets a request without an Origin through: a reader's form whose token is
    its own proof, posted from an older browser or a mail client's own view.
    """
    origin = request.headers.get("origin")
    if origin is None and unsaid_ok:
        return True
    if not origin or origin == "null":
        return False
    own = {f"{request.url.scheme}://{request.headers.get('host', '')}"}
    parts = urlsplit(base_url)
    own.add(f"{parts.scheme}://{parts.netloc}")
    return origin.rstrip("/") in own


def password_ok(request: Request, password: str, user: str | None = None) -> bool:
    """HTTP basic auth with this password (and this user, when one is given)."""
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        given_user, _, given = base64.b64decode(encoded).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    user_ok = user is None or hmac.compare_digest(given_user.encode(), user.encode())
    return hmac.compare_digest(given.encode(), password.encode()) and user_ok


def sign_in_locked(shared: WebState, client: str) -> bool:
    """True when this client failed to sign in too often lately (on any web host)."""
    with store.transaction(shared.engine) as conn:
        return store.signin_locked(
            conn, client, SIGN_IN_ATTEMPTS, SIGN_IN_WINDOW, datetime.now(UTC)
        )


def count_failed_sign_in(shared: WebState, client: str) -> None:
    with store.transaction(shared.engine) as conn:
        store.record_signin_failure(conn, client, SIGN_IN_WINDOW, datetime.now(UTC))


async def _refusal(request: Request) -> Response | None:
    """Why this request may not reach an operator page (None: it may)."""
    shared = state(request)
    password = shared.settings().web.admin_password
    client = client_of(request)
    if password is not None:
        if await run_in_threadpool(sign_in_locked, shared, client):
            return Response(
                "Too many failed sign-ins; wait a quarter of an hour and try again.",
                status_code=429,
                headers={"Retry-After": str(int(SIGN_IN_WINDOW.total_seconds()))},
            )
        if not password_ok(request, password.get_secret_value()):
            if "authorization" in request.headers:
                await run_in_threadpool(count_failed_sign_in, shared, client)
            return Response(
                "Sign in to see the operator pages.",
                status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="digest"'},
            )
    elif not operator_here(request):
        return page(
            request,
            "message.html.j2",
            403,
            title="Sign-in needed",
            text="The operator pages need web.admin_password (set "
            "DIGEST_WEB__ADMIN_PASSWORD); without it they open only under "
            "`digest preview`, in a browser on the same machine.",
        )
    if request.method == "POST" and not same_origin(request, shared.settings().web.base_url):
        return page(
            request,
            "message.html.j2",
            403,
            title="Refused",
            text="Operator actions must be sent from the preview page of this site.",
        )
    return None


def operator(endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
    """Guard an endpoint (async, or sync and run in a thread) as an operator page."""

    @functools.wraps(endpoint)
    async def guarded(request: Request) -> Response:
        refused = await _refusal(request)
        if refused is not None:
            return refused
        if inspect.iscoroutinefunction(endpoint):
            response: Response = await endpoint(request)
            return response
        return await run_in_threadpool(endpoint, request)  # type: ignore[arg-type]

    return guarded


class KnownHost:
    """Answers only to requests that name this site (or this machine) in their Host.

    A page on an attacker's domain that re-resolves to this server's address (DNS
    rebinding) sends the attacker's name as Host and is refused here.
    """

    def __init__(self, app: ASGIApp, base_url: str) -> None:
        self.app = app
        self.base_url = base_url
        self.allowed = {(urlsplit(base_url).hostname or "").lower(), *_LOOPBACK_NAMES}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw = Headers(scope=scope).get("host", "")
            name = raw[1:].partition("]")[0] if raw.startswith("[") else raw.partition(":")[0]
            if name.lower() not in self.allowed and not is_loopback(name):
                response = PlainTextResponse(
                    f"This server answers as {self.base_url}, not as {raw or 'no host'}; "
                    "if that is its address, set web.base_url to it.",
                    status_code=400,
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
