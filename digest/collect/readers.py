"""Read one source of each kind into articles, concurrently, without ever raising.

Parsing and extraction are CPU work; they run in worker threads so the event loop keeps
reading the other responses meanwhile. Entries and pages whose URL or GUID is already
stored are not fetched again: they are counted as seen.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from digest.collect.dedupe import canonical_url
from digest.collect.feeds import (
    FeedEntry,
    ParsedFeed,
    parse_feed_document,
    read_feed_file,
    wants_page,
    with_page_text,
)
from digest.collect.fetch import PAGE_ACCEPT, Fetched, Fetcher
from digest.collect.files import read_folder
from digest.collect.pages import extract_page
from digest.errors import DigestError
from digest.models import Article, CleanText
from digest.settings import SourceSettings

# (urls, guids) -> the subsets already stored for this source.
Known = Callable[[Iterable[str], Iterable[str]], tuple[set[str], set[str]]]
_HTML_TYPES = ("text/html", "application/xhtml+xml", "")


@dataclass(slots=True)
class Outcome:
    """What reading one source gave: articles to store, and how it went."""

    articles: list[Article] = field(default_factory=list)
    status: str = "ok"  # ok | not modified | partial | error
    error: str | None = None
    seen: int = 0  # entries or pages skipped before fetching, because already stored
    http_status: int | None = None
    validators: tuple[str | None, str | None] | None = None


@dataclass(frozen=True, slots=True)
class Reader:
    """Everything a source needs to be read: the shared client, the cleaner's patterns,
    and, for many feeds, a process pool that parses them on every core."""

    fetcher: Fetcher
    extra_chrome: Sequence[re.Pattern[str]] = ()
    pool: Executor | None = None

    async def parse(self, data: bytes, content_type: str | None, url: str | None) -> ParsedFeed:
        work = partial(parse_feed_document, data, content_type=content_type, url=url)
        if self.pool is not None:
            try:
                return await asyncio.get_running_loop().run_in_executor(self.pool, work)
            except BrokenProcessPool:
                pass  # a worker died (out of memory, say): parse here instead
        return await asyncio.to_thread(work)

    async def page(
        self, url: str, *, trusted: bool = False
    ) -> tuple[Fetched, CleanText | None, str | None]:
        """Fetch and extract one article page: (response, text, error sentence).

        `trusted` only for URLs the operator configured, never for links from a feed.
        """
        fetched = await self.fetcher.get(url, accept=PAGE_ACCEPT, trusted=trusted)
        if fetched.error:
            return fetched, None, fetched.error
        if fetched.media_type not in _HTML_TYPES:
            return fetched, None, f"{url} is not a web page (served as {fetched.media_type})."
        clean = await asyncio.to_thread(
            extract_page, fetched.text(), fetched.final_url or url, self.extra_chrome
        )
        if clean is None or not clean.paragraphs:
            return fetched, None, f"No article text found on {url}."
        return fetched, clean, None


def _partial(errors: Sequence[str], total: int, what: str, then: str = "") -> str:
    first = errors[0].rstrip(".")
    return f"{len(errors)} of {total} {what} could not be read{then} (first: {first})."


async def read_feed_source(
    source: SourceSettings,
    reader: Reader,
    known: Known,
    validators: tuple[str | None, str | None] = (None, None),
) -> Outcome:
    """A feed from a file or URL; teasers are completed from their pages per `full_text`."""
    outcome = Outcome()
    if source.location.startswith(("http://", "https://")):
        fetched = await reader.fetcher.get(
            source.location, etag=validators[0], last_modified=validators[1], trusted=True
        )
        outcome.http_status = fetched.status
        if fetched.error:
            return Outcome(status="error", error=fetched.error, http_status=fetched.status)
        outcome.validators = (fetched.etag, fetched.last_modified)
        if fetched.not_modified:  # nothing changed: no parsing at all
            outcome.status = "not modified"
            return outcome
        data, content_type, url = fetched.body, fetched.content_type, fetched.final_url
    else:
        data = await asyncio.to_thread(read_feed_file, source.location)
        content_type, url = "", None
    try:
        feed = await reader.parse(data, content_type or None, url)
    except DigestError as exc:
        return Outcome(
            status="error", error=f"{source.location}: {exc}", http_status=outcome.http_status
        )
    entries = list(feed.entries)
    problems = (
        [f"{source.location}: {feed.problem}; kept {len(entries)} entries."] if feed.problem else []
    )

    to_fetch = [e for e in entries if wants_page(e, source.full_text)]
    if to_fetch:
        known_urls, known_guids = known(
            (e.link for e in to_fetch if e.link), (e.guid for e in to_fetch if e.guid)
        )
        skip = [e for e in to_fetch if e.link in known_urls or e.guid in known_guids]
        outcome.seen += len(skip)
        # A known entry is not fetched again, nor stored again from its teaser.
        skipped = {id(e) for e in skip}
        entries = [e for e in entries if id(e) not in skipped]
        to_fetch = [e for e in to_fetch if id(e) not in skipped]
        completed, failed = await _complete(to_fetch, reader)
        entries = [completed.get(id(e), e) for e in entries]
        if failed:
            kept = ", so their feed teasers were kept"
            problems.append(_partial(failed, len(to_fetch), "article pages", kept))
    outcome.articles = [e.article(source.name, source.tags) for e in entries if e.paragraphs]
    if problems:
        outcome.status, outcome.error = "partial", " ".join(problems)
    return outcome


async def _complete(
    entries: Sequence[FeedEntry], reader: Reader
) -> tuple[dict[int, FeedEntry], list[str]]:
    """Full text for each entry from its page; a failed page leaves the teaser in place."""

    async def one(entry: FeedEntry) -> tuple[FeedEntry, FeedEntry | None, str | None]:
        assert entry.link is not None
        fetched, clean, error = await reader.page(entry.link)
        if clean is None:
            return entry, None, error
        page_url = canonical_url(fetched.final_url) if fetched.final_url else entry.link
        full = with_page_text(entry, clean.paragraphs, clean.byline)
        return entry, _at(full, page_url), None

    results = await asyncio.gather(*(one(e) for e in entries))
    completed = {id(e): full for e, full, _ in results if full is not None}
    return completed, [err for _, _, err in results if err]


def _at(entry: FeedEntry, url: str) -> FeedEntry:
    # A feed's link may redirect (feed proxies); the page's own URL is what other feeds
    # link to, so dedupe uses it. The entry's GUID still marks it as known next time.
    return replace(entry, link=url)


async def read_pages_source(source: SourceSettings, reader: Reader, known: Known) -> Outcome:
    """A list of article URLs; each new one is fetched once and its main text extracted."""
    urls = list(dict.fromkeys(canonical_url(u) for u in source.urls))
    known_urls, known_guids = known(urls, urls)
    fresh = [u for u in urls if u not in known_urls and u not in known_guids]
    outcome = Outcome(seen=len(urls) - len(fresh))
    results = await asyncio.gather(*(reader.page(u, trusted=True) for u in fresh))
    errors = []
    for url, (fetched, clean, error) in zip(fresh, results, strict=True):
        if clean is None:
            errors.append(error or f"No article text found on {url}.")
            continue
        outcome.articles.append(
            Article(
                title=clean.title,
                subtitle=clean.subtitle,
                byline=clean.byline,
                paragraphs=clean.paragraphs,
                source=source.name,
                url=canonical_url(fetched.final_url or url),
                guid=url,
                tags=tuple(source.tags),
            )
        )
    if errors:
        outcome.status = "error" if len(errors) == len(fresh) else "partial"
        outcome.error = _partial(errors, len(fresh), "pages")
    return outcome


async def read_folder_source(source: SourceSettings, reader: Reader) -> Outcome:
    """A local folder of .txt, .md and .html articles."""
    folder = Path(source.location).expanduser()
    articles = await asyncio.to_thread(
        lambda: list(read_folder(folder, source.name, source.tags, reader.extra_chrome))
    )
    return Outcome(articles=articles)
