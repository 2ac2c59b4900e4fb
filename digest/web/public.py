"""The reader's forms: sign-up, confirmation and one-click unsubscribe.

They answer to anyone and never show who is subscribed. Endpoints that only read the store
are plain functions (Starlette runs them in a worker thread); the ones that read a form
are async and hand their store work to a thread.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from digest import store
from digest.errors import DigestError, InvalidInput
from digest.settings import Settings
from digest.signup import confirm_subscription, request_subscription
from digest.subscribers import clean_name, normalize_email, read_token
from digest.web.guard import client_of
from digest.web.state import WebState, message, page, state

log = logging.getLogger("digest.web")


def unsubscribe(request: Request) -> Response:
    shared = state(request)
    subscriber_id = read_token(shared.key, request.path_params["token"], "unsubscribe")
    if subscriber_id is None:
        return message(
            request,
            "This link is not valid",
            "The unsubscribe link is damaged or incomplete. Please use the link from your "
            "most recent email.",
            400,
        )
    if request.method == "GET":
        # Link scanners follow GET links: only the button's POST unsubscribes.
        return page(request, "unsubscribe.html.j2", token=request.path_params["token"])
    with store.transaction(shared.engine) as conn:
        subscriber = store.get_subscriber(conn, subscriber_id)
        if subscriber is not None and subscriber.status != "unsubscribed":
            store.update_subscriber(conn, subscriber_id, status="unsubscribed")
    return message(
        request,
        "You are unsubscribed",
        f"You will not receive {shared.settings().sender.name} any more.",
    )


async def subscribe(request: Request) -> Response:
    shared = state(request)
    if request.method == "GET":
        return page(request, "subscribe.html.j2", topics=shared.topics(), error="", email="")
    if not await run_in_threadpool(_allow_signup, shared, client_of(request)):
        return message(
            request, "Too many requests", "Please wait a while before signing up again.", 429
        )
    form = await request.form()
    email = str(form.get("email", "")).strip()
    name = str(form.get("name", "")) or None
    chosen = [str(t) for t in form.getlist("topics") if str(t) in shared.topics()]
    try:
        normalize_email(email)
        clean_name(name)
    except InvalidInput:
        return page(
            request,
            "subscribe.html.j2",
            400,
            topics=shared.topics(),
            email=email,
            error="That does not look like an email address; please check it.",
        )
    # The same answer, as fast, whether the address was new, pending or already
    # subscribed, and whether the confirmation could be mailed: the work happens after
    # the answer has gone, so neither its time nor its errors tell anything.
    response = message(
        request,
        "Check your inbox",
        f"If {normalize_email(email)} can be subscribed, a confirmation link is on its way "
        "to it. Open it within a week to confirm; until then nothing else is sent.",
    )
    response.background = BackgroundTask(
        _sign_up_quietly, shared.settings(), shared.engine, email, name, chosen
    )
    return response


def _allow_signup(shared: WebState, client: str) -> bool:
    limit = shared.settings().web.signups_per_hour
    with store.transaction(shared.engine) as conn:
        return store.allow_signup(conn, client, limit, timedelta(hours=1), datetime.now(UTC))


def _sign_up_quietly(
    settings: Settings, engine: Engine, email: str, name: str | None, topics: list[str]
) -> None:
    try:
        request_subscription(settings, engine, email, name=name, topics=topics)
    except DigestError as exc:  # the visitor already has their answer; the operator gets this
        log.warning("sign-up for a visitor failed: %s", exc)
    except Exception:
        log.exception("sign-up for a visitor failed")


def confirm(request: Request) -> Response:
    shared = state(request)
    current = shared.settings()
    subscriber = confirm_subscription(current, shared.engine, request.path_params["token"])
    if subscriber is None or subscriber.status != "active":
        return message(
            request,
            "This link is not valid",
            "The confirmation link is damaged, incomplete or too old. Please sign up again.",
            400,
        )
    return message(
        request,
        "You are subscribed",
        f"Thank you. {current.sender.name} will arrive with the next digest.",
    )
