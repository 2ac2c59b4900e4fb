"""The web app: the operator's preview, the public archive and one-click unsubscribe."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from digest import store
from digest.mail.message import NAME_TOKEN, UNSUBSCRIBE_TOKEN
from digest.pipeline import draft_digest, open_store, render
from digest.render import CLIP_LIMIT_BYTES, template_environment
from digest.settings import Settings
from digest.subscribers import read_token, secret_key


def _neutral(content: str, name: str = "there", unsubscribe: str = "#unsubscribe") -> str:
    """Fill personal tokens with neutral values: previews and archives name nobody."""
    return content.replace(NAME_TOKEN, name).replace(UNSUBSCRIBE_TOKEN, unsubscribe)


def create_app(settings: Settings) -> Starlette:
    """Build the ASGI app; tests and `digest preview` use the same one."""
    engine = open_store(settings)
    pages = template_environment(settings.templates_dir)
    key, _created = secret_key(settings)

    def page(name: str, status_code: int = 200, **context: object) -> HTMLResponse:
        html = pages.get_template(f"web/{name}").render(settings=settings, **context)
        return HTMLResponse(html, status_code=status_code)

    async def preview(request: Request) -> Response:
        digest = draft_digest(settings, engine)
        rendered = render(settings, digest)
        size = len(rendered.html.encode())
        return page(
            "preview.html.j2", digest=digest, rendered=rendered, size=size, limit=CLIP_LIMIT_BYTES
        )

    async def preview_html(request: Request) -> Response:
        return HTMLResponse(_neutral(render(settings, draft_digest(settings, engine)).html))

    async def preview_text(request: Request) -> Response:
        return PlainTextResponse(_neutral(render(settings, draft_digest(settings, engine)).text))

    async def archive(request: Request) -> Response:
        with store.transaction(engine) as conn:
            row = store.find_digest(conn, request.path_params["key"])
        if row is None:
            return page("message.html.j2", 404, title="Not found", text="No digest by that name.")
        return HTMLResponse(_neutral(row["html"]))

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
            text=f"You will not receive {settings.sender.name} any more.",
        )

    return Starlette(
        routes=[
            Route("/", preview),
            Route("/preview.html", preview_html),
            Route("/preview.txt", preview_text),
            Route("/archive/{key:path}", archive),
            Route("/unsubscribe/{token}", unsubscribe, methods=["GET", "POST"]),
        ]
    )
