"""The web app: the operator's preview, the public archive and one-click unsubscribe.

Operator pages (the preview, collecting, test sends) answer only to this machine unless
`web.admin_password` is set, and then to HTTP basic auth. Public pages (archive,
unsubscribe) answer to anyone and never show who is subscribed.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from collections import deque
from collections.abc import Awaitable, Callable
from itertools import islice
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route

from digest import store
from digest.collect import collect_sources
from digest.errors import DigestError
from digest.mail.message import NAME_TOKEN, UNSUBSCRIBE_TOKEN
from digest.pipeline import open_store, render, stored_digest
from digest.preview import article_details, build_preview, dark_variant, draft_version
from digest.render import template_environment
from digest.settings import Settings, load_settings
from digest.signup import confirm_subscription, request_subscription
from digest.subscribers import read_token, secret_key

Handler = Callable[[Request], Awaitable[Response]]
_LOCAL_HOSTS = {"127.0.0.1", "::1", "localhost"}


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


def _is_local(request: Request) -> bool:
    host = request.client.host if request.client else ""
    return host in _LOCAL_HOSTS or host.startswith("127.")


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
        now = time.monotonic()
        times = self.seen.setdefault(client, deque())
        while times and now - times[0] > self.window:
            times.popleft()
        if len(times) >= self.limit:
            return False
        times.append(now)
        return True


def create_app(settings: Settings, config_file: Path | None = None) -> Starlette:
    """Build the ASGI app; `digest preview`, `digest serve` and the tests use this one."""
    live = _Live(settings, config_file)
    signups = _PerClientLimit(settings.web.signups_per_hour)
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
            password = live.current().web.admin_password
            if password is not None:
                if not _password_ok(request, password.get_secret_value()):
                    return Response(
                        "Sign in to see the operator pages.",
                        status_code=401,
                        headers={"WWW-Authenticate": 'Basic realm="digest"'},
                    )
            elif not _is_local(request):
                return page(
                    "message.html.j2",
                    403,
                    title="Only from this machine",
                    text="The preview answers only to this machine. Set web.admin_password "
                    "to reach it from elsewhere.",
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
        chosen = [str(t) for t in form.getlist("topics") if str(t) in topics()]
        try:
            await run_in_threadpool(
                request_subscription,
                live.current(),
                engine,
                email,
                name=str(form.get("name", "")) or None,
                topics=chosen,
            )
        except DigestError as exc:
            if "not a valid email" not in str(exc) and "control characters" not in str(exc):
                raise
            return page(
                "subscribe.html.j2",
                400,
                topics=topics(),
                email=email,
                error="That does not look like an email address; please check it.",
            )
        # The same answer whether the address was new, pending or already subscribed.
        return page(
            "message.html.j2",
            title="Check your inbox",
            text="If that address can be subscribed, a confirmation link is on its way. "
            "The link confirms your subscription.",
        )

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
        operator_here = _is_local(request) or live.current().web.admin_password is not None
        target = "/preview" if operator_here else "/archive"
        return RedirectResponse(target, status_code=307)

    return Starlette(
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
        ]
    )
