"""Security headers on every response, by what kind of page it is.

Public pages run no script at all; the operator's preview runs its own inline script and
frames the email, which only it may frame. Pages whose URL holds a token (confirm,
unsubscribe, a click link's redirect) send no Referer, so a token never reaches a site a
page links to, and they, like the operator and webhook paths, ask search engines not to
index them.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Images in an issue may come from any https (or, in old feeds, http) host.
_IMAGES = "img-src https: http: data:"
PUBLIC_POLICY = (
    f"default-src 'none'; {_IMAGES}; style-src 'unsafe-inline'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
OPERATOR_POLICY = (
    f"default-src 'none'; {_IMAGES}; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "connect-src 'self'; frame-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
FRAMED_POLICY = f"default-src 'none'; {_IMAGES}; style-src 'unsafe-inline'; frame-ancestors 'self'"
# A click link's redirect says no Referer either: the story's site learns nothing of it.
_TOKEN_PATHS = ("/unsubscribe/", "/confirm/", "/c/")
_PRIVATE_PATHS = ("/preview", "/digests", "/webhooks/", *_TOKEN_PATHS)


def headers_for(path: str) -> dict[str, str]:
    """The security headers a response to `path` carries."""
    if path.startswith("/preview/email.html"):
        policy = FRAMED_POLICY  # the preview page shows the email in a frame
    elif path.startswith("/preview"):
        policy = OPERATOR_POLICY
    else:
        policy = PUBLIC_POLICY
    headers = {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer"
        if path.startswith(_TOKEN_PATHS)
        else "strict-origin-when-cross-origin",
    }
    if path.startswith(_PRIVATE_PATHS):
        headers["X-Robots-Tag"] = "noindex, nofollow"
    return headers


class SecurityHeaders:
    """ASGI middleware adding `headers_for(path)` to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = headers_for(scope["path"])

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in extra.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, with_headers)
