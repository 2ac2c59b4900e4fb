"""One article on demand (`digest summarize`): from a URL, a file or standard input."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from digest.collect.fetch import PAGE_ACCEPT, Fetched, Fetcher
from digest.collect.files import read_article_file
from digest.collect.pages import extract_page
from digest.collect.textclean import clean_text
from digest.errors import SourceError
from digest.models import CleanText
from digest.settings import CollectSettings


async def _fetch(url: str, settings: CollectSettings) -> Fetched:
    async with Fetcher(settings) as fetcher:
        # The person running `digest summarize URL` chose the URL: it may be private.
        return await fetcher.get(url, accept=PAGE_ACCEPT, trusted=True)


def read_article(location: str, settings: CollectSettings | None = None) -> CleanText:
    """Title, byline and body of one article: a URL, a .txt/.md/.html file, or '-' (stdin).

    A URL is fetched like any collected page: same client, deadline and size cap.
    """
    if location.startswith(("http://", "https://")):
        fetched = asyncio.run(_fetch(location, settings or CollectSettings()))
        if fetched.error:
            raise SourceError(fetched.error)
        page = extract_page(fetched.text(), fetched.final_url or location)
        if page is None:
            raise SourceError(f"No article text found at {location}; is it an article page?")
        return page
    if location == "-":
        return clean_text(sys.stdin.read())
    try:
        found = read_article_file(Path(location))
    except OSError as exc:
        raise SourceError(f"Cannot read {location}: {exc.strerror}.") from None
    if found is None:
        raise SourceError(f"No article text found in {location}.")
    return found
