"""The publication's public face: home, the archive with its pages, each issue, the feed.

Issue pages are the email as sent, with nobody's name or links in it, and with what a
shared link needs in its head (description, Open Graph, canonical URL, the feed).
"""

from __future__ import annotations

import html
from math import ceil

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from digest import store
from digest.mail.message import NAME_TOKEN, PREFERENCES_TOKEN, UNSUBSCRIBE_TOKEN
from digest.pipeline import render, stored_digest
from digest.web.feed import Issue, atom_feed
from digest.web.guard import operator_here
from digest.web.state import WebState, message, page, state

PER_PAGE = 20  # issues on one archive page
IN_FEED = 20  # issues in the Atom feed
FEED_PATH = "/archive/feed.xml"


def neutral(
    content: str,
    name: str = "there",
    unsubscribe: str = "#unsubscribe",
    preferences: str = "#preferences",
) -> str:
    """Fill personal tokens with neutral values: archives name nobody."""
    return (
        content.replace(NAME_TOKEN, name)
        .replace(UNSUBSCRIBE_TOKEN, unsubscribe)
        .replace(PREFERENCES_TOKEN, preferences)
    )


def _site(shared: WebState) -> str:
    return shared.settings().web.base_url.rstrip("/")


def _issues(shared: WebState, limit: int, offset: int = 0, stories: bool = False) -> list[Issue]:
    """Issues that went out, newest first; with their headlines and leads when asked."""
    site, list_name = _site(shared), shared.settings().digest.list_name
    issues = []
    with store.transaction(shared.engine) as conn:
        for row in store.sent_digests(conn, list_name, limit=limit, offset=offset):
            items = store.digest_articles(conn, row["id"]) if stories else []
            issues.append(
                Issue(
                    key=row["key"],
                    day=row["day"],
                    subject=row["subject"],
                    url=f"{site}/archive/{row['key']}",
                    published=row["created_at"],
                    stories=tuple((a.title, s.lead) for a, s in items),
                )
            )
    return issues


def home(request: Request) -> Response:
    """The publication: its name, a line about it, the form, and the latest issue."""
    if operator_here(request):
        return RedirectResponse("/preview", status_code=307)  # `digest preview`'s landing
    shared = state(request)
    latest = _issues(shared, limit=1, stories=True)
    return page(
        request,
        "home.html.j2",
        latest=latest[0] if latest else None,
        topics=shared.topics(),
        canonical=_site(shared) + "/",
        feed=FEED_PATH,
    )


def archive_index(request: Request) -> Response:
    shared = state(request)
    raw = request.query_params.get("page", "1")
    number = int(raw) if raw.isdigit() and int(raw) > 0 else 1
    with store.transaction(shared.engine) as conn:
        total = store.count_sent_digests(conn, shared.settings().digest.list_name)
    pages = max(1, ceil(total / PER_PAGE))
    if number > pages:
        return message(request, "Not found", f"The archive has {pages} pages.", 404)
    return page(
        request,
        "archive.html.j2",
        issues=_issues(shared, PER_PAGE, (number - 1) * PER_PAGE),
        number=number,
        pages=pages,
        total=total,
        canonical=f"{_site(shared)}/archive" + (f"?page={number}" if number > 1 else ""),
        feed=FEED_PATH,
    )


def issue(request: Request) -> Response:
    shared = state(request)
    with store.transaction(shared.engine) as conn:
        row = store.find_digest(conn, request.path_params["key"])
    if row is None:
        return message(request, "Not found", "No digest by that name.", 404)
    current = shared.settings()
    digest = stored_digest(current, shared.engine, row)
    # The web version is the whole digest, even when the email had to be shortened.
    rendered = render(current, digest, whole=True)
    about = Issue(
        key=row.key,
        day=row.day,
        subject=row.subject,
        url=f"{_site(shared)}/archive/{row.key}",
        published=row.created_at,
        stories=tuple((i.article.title, i.summary.lead) for i in digest.items),
    )
    return HTMLResponse(_with_head(neutral(rendered.html), about, current.sender.name))


def _with_head(document: str, about: Issue, site_name: str) -> str:
    """The email's HTML with what a shared link and a feed reader look for in its head."""
    attr = html.escape
    tags = "\n".join(
        [
            f'<meta name="description" content="{attr(about.description)}">',
            f'<link rel="canonical" href="{attr(about.url)}">',
            f'<link rel="alternate" type="application/atom+xml" title="{attr(site_name)}" '
            f'href="{FEED_PATH}">',
            '<meta property="og:type" content="article">',
            f'<meta property="og:title" content="{attr(about.subject)}">',
            f'<meta property="og:description" content="{attr(about.description)}">',
            f'<meta property="og:url" content="{attr(about.url)}">',
            f'<meta property="og:site_name" content="{attr(site_name)}">',
        ]
    )
    head_end = document.lower().find("</head>")
    if head_end == -1:
        return f"<head>{tags}</head>{document}"
    return document[:head_end] + tags + "\n" + document[head_end:]


def feed(request: Request) -> Response:
    shared = state(request)
    current = shared.settings()
    site = _site(shared)
    body = atom_feed(
        title=current.sender.name,
        subtitle=current.web.description,
        site_url=site + "/",
        feed_url=site + FEED_PATH,
        issues=_issues(shared, IN_FEED, stories=True),
    )
    return Response(body, media_type="application/atom+xml; charset=utf-8")


# Operator, token and webhook paths are for nobody's index.
ROBOTS = """User-agent: *
Disallow: /preview
Disallow: /unsubscribe/
Disallow: /confirm/
Disallow: /webhooks/
Disallow: /digests
Disallow: /c/
"""


def robots(request: Request) -> Response:
    return PlainTextResponse(ROBOTS)
