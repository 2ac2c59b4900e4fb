"""The operator's pages: the draft digest as it would go out, its two actions, and how
the digests sent so far did.

Every endpoint here is wrapped by `guard.operator` in the routes. The ones that only read
are plain functions, which Starlette runs in a worker thread, so rendering a preview or
reading the store never blocks the event loop.
"""

from __future__ import annotations

from itertools import islice
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)

from digest import store
from digest.collect import collect_sources
from digest.errors import DigestError
from digest.jobs import cadences
from digest.outcomes import LEFT, issue_outcome, issue_outcomes
from digest.preview import (
    Preview,
    article_details,
    build_preview,
    dark_variant,
    draft_version,
)
from digest.web.state import message, page, state

READERS_IN_MENU = 500  # the "view as" menu: enough readers to choose from, never the list
DIGESTS_LISTED = 10  # per list on /digests
TOP_STORIES = 10  # stories in a digest's bar chart


def _as(request: Request) -> int | None:
    raw = request.query_params.get("as", "")
    return int(raw) if raw.isdigit() else None


def _view(request: Request) -> Preview:
    shared = state(request)
    return build_preview(shared.settings(), shared.engine, _as(request))


def preview(request: Request) -> Response:
    shared = state(request)
    view = _view(request)
    with store.transaction(shared.engine) as conn:
        health = store.source_health(conn)
        readers = list(islice(store.iter_subscribers(conn, "active"), READERS_IN_MENU))
    return page(
        request,
        "preview.html.j2",
        preview=view,
        details=article_details(view),
        headers=view.headers(),
        text=view.part("plain"),
        health=health,
        readers=readers,
        as_id=_as(request) or "",
        notice=request.query_params.get("notice", ""),
        version=draft_version(shared.settings(), shared.engine, shared.config_paths()),
    )


def preview_email(request: Request) -> Response:
    html = _view(request).part("html")
    if request.query_params.get("scheme") == "dark":
        html = dark_variant(html)
    return HTMLResponse(html)


def preview_text(request: Request) -> Response:
    return PlainTextResponse(_view(request).part("plain"))


def preview_eml(request: Request) -> Response:
    view = _view(request)
    name = view.digest.key.replace("/", "-") + ".eml"
    return Response(
        view.message,
        media_type="message/rfc822",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def version(request: Request) -> Response:
    shared = state(request)
    stamp = draft_version(shared.settings(), shared.engine, shared.config_paths())
    return JSONResponse({"version": stamp})


def _back_to_preview(notice: str) -> Response:
    return RedirectResponse(f"/preview?notice={quote(notice)}", status_code=303)


def collect_now(request: Request) -> Response:
    shared = state(request)
    reports = collect_sources(shared.settings(), shared.engine)
    new = sum(r.new for r in reports)
    failed = sum(1 for r in reports if r.error)
    return _back_to_preview(f"Collected {new} new articles; {failed} sources failed.")


async def send_test(request: Request) -> Response:
    from digest.pipeline import send_test_copy

    form = await request.form()
    try:
        result = await run_in_threadpool(
            send_test_copy, state(request).settings(), str(form.get("to", ""))
        )
    except DigestError as exc:
        result = str(exc)
    return _back_to_preview(result)


def digests(request: Request) -> Response:
    shared = state(request)
    lists = []
    for cadence in cadences(shared.settings()):
        outcomes = issue_outcomes(shared.engine, cadence.list_name, DIGESTS_LISTED)
        if outcomes:
            lists.append((cadence.list_name, outcomes))
    return page(request, "digests.html.j2", lists=lists, left=LEFT)


def digest_figures(request: Request) -> Response:
    key = request.path_params["key"]
    outcome = issue_outcome(state(request).engine, key)
    if outcome is None:
        return message(
            request,
            "No such digest",
            f"There is no digest {key!r}; pick one from /digests.",
            status_code=404,
        )
    return page(request, "digest_figures.html.j2", outcome=outcome, left=LEFT, top=TOP_STORIES)
