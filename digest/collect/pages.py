"""Web pages: the main text of an article page, extracted with trafilatura.

Boilerplate removal (menus, share bars, related stories, comments) is trafilatura's job;
what comes back is plain text, one paragraph per line, which the same cleaner as for
scraped text then takes apart (captions and credits survive extraction on many sites).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import trafilatura

from digest.collect.textclean import clean_extracted
from digest.models import CleanText


def extract_page(
    html: str, url: str | None = None, extra_chrome: Sequence[re.Pattern[str]] = ()
) -> CleanText | None:
    """Title, byline and body paragraphs of an article page; None when it has no article."""
    document = trafilatura.bare_extraction(
        html,
        url=url,
        with_metadata=True,
        include_comments=False,
        include_tables=False,
        include_images=False,
    )
    if document is None:
        return None
    fields = document if isinstance(document, dict) else document.as_dict()
    body = fields.get("text") or ""
    title = " ".join((fields.get("title") or "").split())
    lines = [line.strip() for line in body.splitlines() if line.strip()]
    if title and lines and lines[0] == title:
        lines = lines[1:]
    # Hand the cleaner the page in the scraped-text shape: headline, then the body.
    clean = clean_extracted(
        "\n\n".join([title, *lines]) if title else "\n\n".join(lines), extra_chrome
    )
    if not clean.paragraphs:
        return None
    byline = " ".join((fields.get("author") or "").split()) or clean.byline
    return CleanText(
        title=title or clean.title,
        subtitle=clean.subtitle,
        byline=byline or None,
        paragraphs=clean.paragraphs,
    )
