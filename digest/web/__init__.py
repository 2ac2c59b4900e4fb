"""The web app: the operator's preview, the public site and one-click unsubscribe.

`public.py` holds the pages anyone may see, `operator.py` the preview and its actions,
`guard.py` who may reach what, `state.py` what the endpoints share on `app.state`,
`clicks.py` the click-tracking redirect.
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

from digest.pipeline import open_store
from digest.settings import Settings
from digest.subscribers import secret_key
from digest.web import archive, clicks, operator, preferences, public, webhooks
from digest.web.archive import neutral as neutral
from digest.web.guard import KnownHost
from digest.web.guard import is_loopback as is_loopback
from digest.web.guard import operator as guarded
from digest.web.headers import SecurityHeaders
from digest.web.state import LiveSettings, WebState

ROUTES = [
    Route("/", archive.home),
    Route("/robots.txt", archive.robots),
    Route("/preview", guarded(operator.preview)),
    Route("/preview/email.html", guarded(operator.preview_email)),
    Route("/preview/email.txt", guarded(operator.preview_text)),
    Route("/preview/email.eml", guarded(operator.preview_eml)),
    Route("/preview/version", guarded(operator.version)),
    Route("/preview/collect", guarded(operator.collect_now), methods=["POST"]),
    Route("/preview/send-test", guarded(operator.send_test), methods=["POST"]),
    Route("/digests", guarded(operator.digests)),
    Route("/digests/{key:path}", guarded(operator.digest_figures)),
    Route("/archive", archive.archive_index),
    Route(archive.FEED_PATH, archive.feed),
    Route("/archive/{key:path}", archive.issue),
    Route("/unsubscribe/{token}", public.unsubscribe, methods=["GET", "POST"]),
    Route("/preferences/{token}", preferences.preferences, methods=["GET", "POST"]),
    Route("/subscribe", public.subscribe, methods=["GET", "POST"]),
    Route("/confirm/{token}", public.confirm),
    Route("/c/{token}", clicks.follow),
    Route("/webhooks/postmark", webhooks.postmark, methods=["POST"]),
    Route("/webhooks/mailgun", webhooks.mailgun, methods=["POST"]),
    Route("/webhooks/sendgrid", webhooks.sendgrid, methods=["POST"]),
]


def create_app(
    settings: Settings, config_file: Path | None = None, *, local_operator: bool = False
) -> Starlette:
    """The ASGI app; `digest preview`, `digest serve` and the tests use this one.

    `local_operator` (only `digest preview` on a loopback address sets it) lets this
    machine's browser reach the operator pages without the admin password.
    """
    app = Starlette(
        routes=ROUTES,
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(KnownHost, base_url=settings.web.base_url),
        ],
    )
    app.state.digest = WebState(
        live=LiveSettings(settings, config_file),
        engine=open_store(settings),
        key=secret_key(settings)[0],
        local_operator=local_operator,
    )
    return app
