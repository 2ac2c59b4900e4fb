"""Collection of all sources in one run: concurrent reads, in-order batched writes.

All sources are read at once over one pooled HTTP client (fetch.py); each source's result
is stored in config order, so when two sources carry the same story the first one listed
keeps it. One broken source is recorded in its health columns and never stops the others.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import os
from collections.abc import Callable, Coroutine, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.engine import Connection, Engine

from digest import store
from digest.collect.dedupe import fingerprint
from digest.collect.fetch import Fetcher
from digest.collect.readers import (
    Outcome,
    Reader,
    read_feed_source,
    read_folder_source,
    read_pages_source,
)
from digest.errors import DigestError
from digest.safetext import without_password
from digest.settings import Settings, SourceSettings

T = TypeVar("T")
# Fewer feeds parse sooner here than worker processes start (about a second of CPU);
# the pool also starts only when a feed has changed, so an all-304 run never pays for it.
POOL_FROM_FEEDS = 40
BATCH_WINDOW = 0.25  # seconds a finished source may wait to share a transaction


@dataclass(frozen=True, slots=True)
class SourceReport:
    """One source's collection: counts, status and, when something went wrong, one sentence."""

    name: str
    new: int
    seen: int
    error: str | None = None
    status: str = "ok"  # ok | not modified | partial | error
    updated: int = 0


@dataclass(frozen=True, slots=True)
class SourceHealth:
    """A configured source and what its collections have shown so far."""

    name: str
    kind: str
    location: str
    status: str | None  # None: never collected
    last_error: str | None
    consecutive_failures: int
    last_checked_at: datetime | None
    last_success_at: datetime | None
    articles: int
    last_new: int | None
    last_seen: int | None


def source_health(settings: Settings, engine: Engine) -> list[SourceHealth]:
    """Every configured source, in config order, with its health from the store."""
    with store.transaction(engine) as conn:
        rows = {row["name"]: row for row in store.source_health(conn)}
    result = []
    for source in settings.sources:
        row = rows.get(source.name, {})
        result.append(
            SourceHealth(
                name=source.name,
                kind=source.kind,
                location=source_location(source),
                status=row.get("last_status"),
                last_error=row.get("last_error"),
                consecutive_failures=row.get("consecutive_failures") or 0,
                last_checked_at=row.get("last_checked_at"),
                last_success_at=row.get("last_success_at"),
                articles=row.get("articles") or 0,
                last_new=row.get("last_new"),
                last_seen=row.get("last_seen"),
            )
        )
    return result


def source_location(source: SourceSettings) -> str:
    """Where a source reads from, in one line (a pages source shows its first URL)."""
    if source.kind == "pages":
        more = f" (+{len(source.urls) - 1} more)" if len(source.urls) > 1 else ""
        return f"{without_password(source.urls[0])}{more}"
    return without_password(source.location)


async def _read(
    source: SourceSettings,
    source_id: int,
    reader: Reader,
    engine: Engine,
    validators: tuple[str | None, str | None],
) -> Outcome:
    def known(urls: Iterable[str], guids: Iterable[str]) -> tuple[set[str], set[str]]:
        with store.transaction(engine) as conn:
            return store.known_articles(conn, source_id, urls, guids)

    try:
        if source.kind == "folder":
            return await read_folder_source(source, reader)
        if source.kind == "pages":
            return await read_pages_source(source, reader, known)
        return await read_feed_source(source, reader, known, validators)
    except DigestError as exc:
        return Outcome(status="error", error=str(exc))
    except Exception as exc:  # a source must never take the whole digest down
        return Outcome(
            status="error", error=f"Reading failed unexpectedly ({type(exc).__name__}: {exc})."
        )


def _store(
    conn: Connection, source: SourceSettings, source_id: int, outcome: Outcome
) -> SourceReport:
    found = [(a, fingerprint(a.title, a.paragraphs)) for a in outcome.articles]
    counts = store.add_articles(conn, source_id, found)
    seen = counts.seen + outcome.seen
    store.record_source_health(
        conn,
        source_id,
        outcome.error,
        status=outcome.status,
        new=counts.new,
        seen=seen,
        http_status=outcome.http_status,
        validators=outcome.validators,
    )
    return SourceReport(
        source.name, counts.new, seen, outcome.error, outcome.status, counts.updated
    )


def _parse_pool(feeds: int) -> ProcessPoolExecutor | None:
    """Worker processes for feedparser, which is pure Python: worth it for many feeds only."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if feeds < POOL_FROM_FEEDS or (cores or 1) < 2:
        return None
    if "forkserver" not in multiprocessing.get_all_start_methods():  # Windows
        return None
    # forkserver: workers fork from a clean process, never from this one and its threads
    # (the event loop's workers, the database pool). Preloading __main__ there too spares
    # each worker from importing the main module again, as a spawned process would.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["__main__", "digest.collect.feeds"])
    return ProcessPoolExecutor(max_workers=min(cores or 1, 4), mp_context=context)


async def _next_batch(tasks: list[asyncio.Task[Outcome]], start: int) -> int:
    """Wait for tasks[start], then for those after it, up to a short window; the end index."""
    await asyncio.wait([tasks[start]])
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BATCH_WINDOW
    end = start + 1
    while end < len(tasks):
        if not tasks[end].done():
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            await asyncio.wait([tasks[end]], timeout=remaining)
            if not tasks[end].done():
                break
        end += 1
    return end


async def _collect(
    settings: Settings, engine: Engine, on_source: Callable[[SourceReport], None] | None
) -> list[SourceReport]:
    sources = settings.sources
    with store.transaction(engine) as conn:
        ids = [store.ensure_source(conn, s.name, s.kind, source_location(s)) for s in sources]
        validators = [store.source_validators(conn, i) for i in ids]
    reports: list[SourceReport] = []
    pool = _parse_pool(sum(1 for s in sources if s.kind == "feed"))
    try:
        async with Fetcher(settings.collect) as fetcher:
            reader = Reader(fetcher, settings.collect.extra_chrome, pool)
            tasks = [
                asyncio.create_task(_read(s, i, reader, engine, v))
                for s, i, v in zip(sources, ids, validators, strict=True)
            ]
            try:
                # Stored in config order while the rest keep fetching. Results that arrive
                # within a short window share one transaction: each commit is an fsync.
                done = 0
                while done < len(tasks):
                    ready = await _next_batch(tasks, done)
                    with store.transaction(engine) as conn:
                        batch = [
                            _store(conn, sources[k], ids[k], tasks[k].result())
                            for k in range(done, ready)
                        ]
                    for report in batch:
                        reports.append(report)
                        if on_source:
                            on_source(report)
                    done = ready
            finally:
                for task in tasks:
                    task.cancel()
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return reports


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # Called from inside an event loop (the web app, a scheduler): use a loop of our own.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def collect_sources(
    settings: Settings,
    engine: Engine,
    on_source: Callable[[SourceReport], None] | None = None,
) -> list[SourceReport]:
    """Collect every source; one broken source is recorded and never stops the others.

    `on_source` is called with each source's report as soon as it is stored.
    """
    return _run(_collect(settings, engine, on_source))
