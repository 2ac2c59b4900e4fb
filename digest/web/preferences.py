"""The reader's preferences page: topics, lists, a pause, or unsubscribe.

Reached from every email's footer with the same signed token as the unsubscribe link, so
it follows the same rules: no login and no cookie; a forged or damaged token changes
nothing. A GET only shows the form (link scanners follow links); a POST changes what is
asked and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from digest import store
from digest.errors import InvalidInput
from digest.models import Subscriber
from digest.subscribers import read_token
from digest.web.guard import same_origin
from digest.web.state import WebState, message, page, state

PAUSE_WEEKS = (1, 2, 3, 4)


@dataclass(frozen=True, slots=True)
class Choice:
    """What the form asks for, read and checked before anything is written."""

    topics: tuple[str, ...]
    lists: tuple[str, ...]
    pause: str  # "" (no pause), "keep" (the current one), or a number of weeks


def read_choice(form: Any, topics: list[str], offered: tuple[str, ...]) -> Choice:
    """The form's choice; topics and lists nobody offered are ignored, not trusted."""
    chosen_topics = tuple(sorted({str(t) for t in form.getlist("topics")} & set(topics)))
    if len(offered) > 1:
        lists = tuple(name for name in offered if name in form.getlist("lists"))
        if not lists:
            raise InvalidInput("Choose at least one list, or unsubscribe below.")
    else:
        lists = offered
    pause = str(form.get("pause", ""))
    if pause not in ("", "keep", *map(str, PAUSE_WEEKS)):
        raise InvalidInput("Choose a pause of one to four weeks, or none.")
    return Choice(chosen_topics, lists, pause)


def changes_for(
    choice: Choice, subscriber: Subscriber, offered: tuple[str, ...], moment: datetime
) -> dict[str, object]:
    """The column values this choice sets; lists not offered here keep their value."""
    kept = tuple(name for name in subscriber.lists if name not in offered)
    values: dict[str, object] = {"topics": list(choice.topics)}
    values.update(store.list_columns(choice.lists + kept))
    if choice.pause == "":
        values["paused_until"] = None
    elif choice.pause != "keep":
        values["paused_until"] = moment + timedelta(weeks=int(choice.pause))
    return values


async def preferences(request: Request) -> Response:
    shared = state(request)
    token = request.path_params["token"]
    subscriber_id = read_token(shared.key, token, "unsubscribe")
    subscriber = (
        None
        if subscriber_id is None
        else await run_in_threadpool(_subscriber, shared, subscriber_id)
    )
    if subscriber is None:
        return message(
            request,
            "This link is not valid",
            "The preferences link is damaged or incomplete. Please use the link from your "
            "most recent email.",
            400,
        )
    name = shared.settings().sender.name
    if subscriber.status != "active":
        return message(
            request,
            "You are not subscribed",
            f"This address does not receive {name} any more. To read it again, sign up "
            "on the subscribe page.",
        )
    if request.method == "GET":
        return _form(request, shared, token, subscriber)
    if not same_origin(request, shared.settings().web.base_url, unsaid_ok=True):
        return message(request, "Not allowed", "Change your preferences from the page itself.", 403)
    form = await request.form()
    if form.get("action") == "unsubscribe":
        await run_in_threadpool(_unsubscribe, shared, subscriber.id)
        return message(request, "You are unsubscribed", f"You will not receive {name} any more.")
    offered = shared.settings().offered_lists
    try:
        choice = read_choice(form, shared.topics(), offered)
    except InvalidInput as exc:
        return _form(request, shared, token, subscriber, error=str(exc), status_code=400)
    values = changes_for(choice, subscriber, offered, datetime.now(UTC))
    updated = await run_in_threadpool(_save, shared, subscriber.id, values)
    return _form(request, shared, token, updated or subscriber, saved=True)


def _form(
    request: Request,
    shared: WebState,
    token: str,
    subscriber: Subscriber,
    *,
    error: str = "",
    saved: bool = False,
    status_code: int = 200,
) -> Response:
    now = datetime.now(UTC)
    paused = (
        subscriber.paused_until
        if subscriber.paused_until and subscriber.paused_until > now
        else None
    )
    return page(
        request,
        "preferences.html.j2",
        status_code,
        token=token,
        subscriber=subscriber,
        topics=shared.topics(),
        offered=shared.settings().offered_lists,
        paused=paused,
        pause_weeks=PAUSE_WEEKS,
        error=error,
        saved=saved,
    )


def _subscriber(shared: WebState, subscriber_id: int) -> Subscriber | None:
    with store.transaction(shared.engine) as conn:
        return store.get_subscriber(conn, subscriber_id)


def _save(shared: WebState, subscriber_id: int, values: dict[str, object]) -> Subscriber | None:
    with store.transaction(shared.engine) as conn:
        current = store.get_subscriber(conn, subscriber_id)
        if current is None or current.status != "active":
            return current  # they left in another tab meanwhile: leave them as they are
        store.update_subscriber(conn, subscriber_id, **values)
        return store.get_subscriber(conn, subscriber_id)


def _unsubscribe(shared: WebState, subscriber_id: int) -> None:
    with store.transaction(shared.engine) as conn:  # only an active reader changes
        store.mark_left(conn, {subscriber_id: "unsubscribed"})
