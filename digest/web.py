"""The web app: the operator's preview, the public archive and one-click unsubscribe.

Operator pages (the preview, collecting, test sends) need `web.admin_password` (HTTP basic
auth), except under `digest preview` bound to a loopback address, where they answer to
this machine only: a loopback client, a loopback Host, and no proxy's forwarded headers.
Every request must name this site in its Host header (a rebound DNS name cannot reach the
operator pages from a browser), and an operator POST must come from a page of this site
(its Origin). Public pages (archive, sign-up, unsubscribe) answer to anyone and never show
who is subscribed.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from itertools import islice
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from digest import store
from digest.collect import collect_sources
from digest.errors import DigestError, InvalidInput
from digest.mail.message import NAME_TOKEN, UNSUBSCRIBE_TOKEN
from digest.pipeline import open_store, render, stored_digest
from digest.preview import article_details, build_preview, dark_variant, draft_version
from digest.render import template_environment
from digest.settings import Settings, load_settings
from digest.signup import confirm_subscription, request_subscription
from digest.subscribers import clean_name, normalize_email, read_token, secret_key

log = logging.getLogger("digest.web")
Handler = Callable[[Request], Awaitable[Response]]
_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "[::1]")
# Headers a reverse proxy adds: a request that carries one did not come from this machine's
# own browser, whatever the socket's address says.
_PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip")
# Failed sign-ins one client may make in a quarter of an hour before it must wait.
_SIGN_IN_ATTEMPTS = 10


def _sign_up_quietly(
    settings: Settings, engine: Engine, email: str, name: str | None, topics: list[str]
) -> None:
    try:
        request_subscription(settings, engine, email, name=name, topics=topics)
    except DigestError as exc:  # the visitor already has their answer; the operator gets this
        log.warning("sign-up for a visitor failed: %s", exc)
    except Exception:
        log.exception("sign-up for a visitor failed")


def neutral(content: str, name: str = "there", unsubscribe: str = "#unsubscribe") -> str:
    """Fill personal tokens with neutral values: archives name nobody."""
    return content.replace(NAME_TOKEN, name).replace(UNSUBSCRIBE_TOKEN, unsubscribe)


class _Live:
    """The settings, reloaded when the config file changes, so a preview stays current."""

    def __init__(self, settings: Settings, config_file: Path | None) -> None:
        self.settings = settings
        self.config_file = config_file
        self.error: str | None = None
        self._stamp = self._mtime()

    def _mtime(self) -> int:
        if self.config_file is None or not self.config_file.is_file():
            return 0
        return self.config_file.stat().st_mtime_ns

    def current(self) -> Settings:
        stamp = self._mtime()
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self.settings = load_settings(self.config_file)
                self.error = None
            except DigestError as exc:  # keep the last good settings, and say why
                self.error = str(exc)
        return self.settings


def is_loopback(host: str) -> bool:
    """True for a loopback IP address (127.0.0.0/8, ::1) written as one, nothing else."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _is_local(request: Request) -> bool:
    """The request came straight from a browser on this machine, not through a proxy."""
    client = request.client.host if request.client else ""
    host = request.url.hostname or ""
    return (
        is_loopback(client)
        and (host in _LOOPBACK_NAMES or is_loopback(host))
        and not any(name in request.headers for name in _PROXY_HEADERS)
    )


def _same_origin(request: Request, base_url: str) -> bool:
    """An operator POST came from a page of this site (browsers always send Origin)."""
    origin = request.headers.get("origin") or ""
    if not origin or origin == "null":
        return False
    own = {f"{request.url.scheme}://{request.headers.get('host', '')}"}
    parts = urlsplit(base_url)
    own.add(f"{parts.scheme}://{parts.netloc}")
    return origin.rstrip("/") in own


def _password_ok(request: Request, password: str) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        _user, _, given = base64.b64decode(encoded).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return hmac.compare_digest(given.encode(), password.encode())


class _PerClientLimit:
    """At most `limit` requests per client address in a sliding hour (in this process)."""

    def __init__(self, limit: int, window: float = 3600.0) -> None:
        self.limit, self.window = limit, window
        self.seen: dict[str, deque[float]] = {}

    def allow(self, client: str) -> bool:
        """Count one request; False when the client has used up its allowance."""
        if self.exhausted(client):
            return False
        self.seen[client].append(time.monotonic())
        return True

    def exhausted(self, client: str) -> bool:
        """True when the client may make no more requests now (counts nothing)."""
        now = time.monotonic()
        times = self.seen.setdefault(client, deque())
        while times and now - times[0] > self.window:
            times.popleft()
        return len(times) >= self.limit


class _KnownHost:
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


def create_app(
    settings: Settings, config_file: Path | None = None, *, local_operator: bool = False
) -> Starlette:
    """Build the ASGI app; `digest preview`, `digest serve` and the tests use this one.

    `local_operator` (only `digest preview` on a loopback address sets it) lets this
    machine's browser reach the operator pages without the admin password.
    """
    live = _Live(settings, config_file)
    signups = _PerClientLimit(settings.web.signups_per_hour)
    sign_ins = _PerClientLimit(_SIGN_IN_ATTEMPTS, window=900.0)
    engine = open_store(settings)
    key, _created = secret_key(settings)

    def page(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        current = live.current()
        pages = template_environment(current.templates_dir)
        html = pages.get_template(f"web/{name}").render(
            settings=current, config_error=live.error, **context
        )
        return HTMLResponse(html, status_code=status_code)

    def operator(handler: Handler) -> Handler:
        async def guarded(request: Request) -> Response:
            current = live.current()
            password = current.web.admin_password
            client = request.client.host if request.client else "unknown"
            if password is not None:
                if sign_ins.exhausted(client):
                    return Response(
                        "Too many failed sign-ins; wait a quarter of an hour and try again.",
                        status_code=429,
                        headers={"Retry-After": "900"},
                    )
                if not _password_ok(request, password.get_secret_value()):
                    if "authorization" in request.headers:
                        sign_ins.allow(client)  # count the failed attempt
                    return Response(
                        "Sign in to see the operator pages.",
                        status_code=401,
                        headers={"WWW-Authenticate": 'Basic realm="digest"'},
                    )
            elif not (local_operator and _is_local(request)):
                return page(
                    "message.html.j2",
                    403,
                    title="Sign-in needed",
                    text="The operator pages need web.admin_password (set "
                    "DIGEST_WEB__ADMIN_PASSWORD); without it they open only under "
                    "`digest preview`, in a browser on the same machine.",
                )
            if request.method == "POST" and not _same_origin(request, current.web.base_url):
                return page(
                    "message.html.j2",
                    403,
                    title="Refused",
                    text="Operator actions must be sent from the preview page of this site.",
                )
            return await handler(request)

        return guarded

    def _as(request: Request) -> int | None:
        raw = request.query_params.get("as", "")
        return int(raw) if raw.isdigit() else None

    async def preview(request: Request) -> Response:
        current = live.current()
        view = await run_in_threadpool(build_preview, current, engine, _as(request))
        with store.transaction(engine) as conn:
            health = store.source_health(conn)
            # The "view as" menu: enough readers to choose from, never the whole list.
            readers = list(islice(store.iter_subscribers(conn, "active"), 500))
        return page(
            "preview.html.j2",
            preview=view,
            details=article_details(view),
            headers=view.headers(),
            text=view.part("plain"),
            health=health,
            readers=readers,
            as_id=_as(request) or "",
            notice=request.query_params.get("notice", ""),
            version=await run_in_threadpool(draft_version, current, engine, _config_paths()),
        )

    def _config_paths() -> list[Path]:
        return [live.config_file] if live.config_file else []

    async def preview_email(request: Request) -> Response:
        view = await run_in_threadpool(build_preview, live.current(), engine, _as(request))
        html = view.part("html")
        if request.query_params.get("scheme") == "dark":
            html = dark_variant(html)
        return HTMLResponse(html)

    async def preview_text(request: Request) -> Response:
        view = await run_in_threadpool(build_preview, live.current(), engine, _as(request))
        return PlainTextResponse(view.part("plain"))

    async def preview_eml(request: Request) -> Response:
        view = await run_in_threadpool(build_preview, live.current(), engine, _as(request))
        name = view.digest.key.replace("/", "-") + ".eml"
        return Response(
            view.message,
            media_type="message/rfc822",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    async def version(request: Request) -> Response:
        stamp = await run_in_threadpool(draft_version, live.current(), engine, _config_paths())
        return JSONResponse({"version": stamp})

    async def collect_now(request: Request) -> Response:
        reports = await run_in_threadpool(collect_sources, live.current(), engine)
        new = sum(r.new for r in reports)
        failed = sum(1 for r in reports if r.error)
        notice = f"Collected {new} new articles; {failed} sources failed."
        return RedirectResponse(f"/preview?notice={notice}", status_code=303)

    async def send_test(request: Request) -> Response:
        form = await request.form()
        address = str(form.get("to", ""))
        try:
            from digest.pipeline import send_test_copy

            result = await run_in_threadpool(send_test_copy, live.current(), address)
        except DigestError as exc:
            result = str(exc)
        return RedirectResponse(f"/preview?notice={result}", status_code=303)

    async def archive_index(request: Request) -> Response:
        with store.transaction(engine) as conn:
            issues = store.sent_digests(conn, live.current().digest.list_name)
        return page("archive.html.j2", issues=issues)

    async def archive(request: Request) -> Response:
        with store.transaction(engine) as conn:
            row = store.find_digest(conn, request.path_params["key"])
        if row is None:
            return page("message.html.j2", 404, title="Not found", text="No digest by that name.")
        # The web version is the whole digest, even when the email had to be shortened.
        current = live.current()
        digest = stored_digest(current, engine, row)
        rendered = await run_in_threadpool(render, current, digest, whole=True)
        return HTMLResponse(neutral(rendered.html))

    async def unsubscribe(request: Request) -> Response:
        subscriber_id = read_token(key, request.path_params["token"], "unsubscribe")
        if subscriber_id is None:
            return page(
                "message.html.j2",
                400,
                title="This link is not valid",
                text="The unsubscribe link is damaged or incomplete. Please use the link "
                "from your most recent email.",
            )
        if request.method == "GET":
            # Link scanners follow GET links: only the button's POST unsubscribes.
            return page("unsubscribe.html.j2", token=request.path_params["token"])
        with store.transaction(engine) as conn:
            subscriber = store.get_subscriber(conn, subscriber_id)
            if subscriber is not None and subscriber.status != "unsubscribed":
                store.update_subscriber(conn, subscriber_id, status="unsubscribed")
        return page(
            "message.html.j2",
            title="You are unsubscribed",
            text=f"You will not receive {live.current().sender.name} any more.",
        )

    def topics() -> list[str]:
        return sorted({tag for source in live.current().sources for tag in source.tags})

    async def subscribe(request: Request) -> Response:
        if request.method == "GET":
            return page("subscribe.html.j2", topics=topics(), error="", email="")
        client = request.client.host if request.client else "unknown"
        if not signups.allow(client):
            return page(
                "message.html.j2",
                429,
                title="Too many requests",
                text="Please wait a while before signing up again.",
            )
        form = await request.form()
        email = str(form.get("email", "")).strip()
        name = str(form.get("name", "")) or None
        chosen = [str(t) for t in form.getlist("topics") if str(t) in topics()]
        try:
            normalize_email(email)
            clean_name(name)
        except InvalidInput:
            return page(
                "subscribe.html.j2",
                400,
                topics=topics(),
                email=email,
                error="That does not look like an email address; please check it.",
            )
        # The same answer, as fast, whether the address was new, pending or already
        # subscribed, and whether the confirmation could be mailed: the work happens after
        # the answer has gone, so neither its time nor its errors tell anything.
        response = page(
            "message.html.j2",
            title="Check your inbox",
            text="If that address can be subscribed, a confirmation link is on its way. "
            "The link confirms your subscription.",
        )
        response.background = BackgroundTask(
            _sign_up_quietly, live.current(), engine, email, name, chosen
        )
        return response

    async def confirm(request: Request) -> Response:
        subscriber = await run_in_threadpool(
            confirm_subscription, live.current(), engine, request.path_params["token"]
        )
        if subscriber is None or subscriber.status != "active":
            return page(
                "message.html.j2",
                400,
                title="This link is not valid",
                text="The confirmation link is damaged or incomplete. Please sign up again.",
            )
        return page(
            "message.html.j2",
            title="You are subscribed",
            text=f"Thank you. {live.current().sender.name} will arrive with the next digest.",
        )

    async def home(request: Request) -> Response:
        operator_here = (local_operator and _is_local(request)) or (
            live.current().web.admin_password is not None
        )
        target = "/preview" if operator_here else "/archive"
        return RedirectResponse(target, status_code=307)

    return Starlette(
        middleware=[Middleware(_KnownHost, base_url=settings.web.base_url)],
        routes=[
            Route("/", home),
            Route("/preview", operator(preview)),
            Route("/preview/email.html", operator(preview_email)),
            Route("/preview/email.txt", operator(preview_text)),
            Route("/preview/email.eml", operator(preview_eml)),
            Route("/preview/version", operator(version)),
            Route("/preview/collect", operator(collect_now), methods=["POST"]),
            Route("/preview/send-test", operator(send_test), methods=["POST"]),
            Route("/archive", archive_index),
            Route("/archive/{key:path}", archive),
            Route("/unsubscribe/{token}", unsubscribe, methods=["GET", "POST"]),
            Route("/subscribe", subscribe, methods=["GET", "POST"]),
            Route("/confirm/{token}", confirm),
        ],
    )
