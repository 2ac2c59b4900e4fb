"""`GET /c/<token>`: a reader's click on a story link, counted once, then the story.

The token names digest, reader and story (see digest/clicks.py); the address comes from
the store, never from the request, so a link can lead only to a story of that digest.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from digest import store
from digest.clicks import read_click_token
from digest.render import absolute_url
from digest.web.state import message, state


def follow_click(engine: Engine, key: str, token: str) -> str | None:
    """The stored URL a click token leads to, counting the click; None: no such link."""
    named = read_click_token(key, token)
    if named is None:
        return None
    digest_id, subscriber_id, article_id = named
    with store.transaction(engine) as conn:
        url = absolute_url(store.story_url(conn, digest_id, article_id))
        if url is None:
            return None
        store.record_click(conn, digest_id, article_id, subscriber_id)
    return url


def follow(request: Request) -> Response:
    shared = state(request)
    url = follow_click(shared.engine, shared.key, request.path_params["token"])
    if url is None:
        return message(
            request,
            "Link not found",
            "This link is not one we sent or has been altered; open the story from the "
            "email itself or from the archive.",
            status_code=404,
        )
    # No cache: a browser that cached the redirect would skip the count (harmless), and a
    # shared cache must not keep one reader's link.
    return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})
