"""Collect: read every configured source and store the articles not seen before."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine

from digest import store
from digest.collect.dedupe import fingerprint
from digest.collect.feeds import fetch_feed, parse_feed
from digest.collect.files import read_folder
from digest.errors import DigestError
from digest.models import Article
from digest.settings import Settings, SourceSettings

__all__ = ["SourceReport", "collect_sources", "read_source"]


@dataclass(frozen=True, slots=True)
class SourceReport:
    name: str
    new: int
    seen: int
    error: str | None = None


def read_source(source: SourceSettings) -> Iterable[Article]:
    if source.kind == "folder":
        return list(read_folder(Path(source.location), source.name, source.tags))
    return list(parse_feed(fetch_feed(source.location), source.name, source.tags))


def collect_sources(
    settings: Settings,
    engine: Engine,
    on_source: Callable[[SourceReport], None] | None = None,
) -> list[SourceReport]:
    """Collect every source; one broken source is recorded and never stops the others."""
    reports: list[SourceReport] = []
    for source in settings.sources:
        with store.transaction(engine) as conn:
            source_id = store.ensure_source(conn, source.name, source.kind, source.location)
        try:
            found = read_source(source)
        except DigestError as exc:
            report = SourceReport(source.name, 0, 0, str(exc))
        except Exception as exc:  # a source must never take the whole digest down
            report = SourceReport(source.name, 0, 0, f"{type(exc).__name__}: {exc}")
        else:
            new = seen = 0
            with store.transaction(engine) as conn:
                for article in found:
                    key = fingerprint(article.title, article.paragraphs)
                    if store.add_article(conn, source_id, article, key):
                        new += 1
                    else:
                        seen += 1
            report = SourceReport(source.name, new, seen)
        with store.transaction(engine) as conn:
            store.record_source_health(conn, source_id, report.error)
        reports.append(report)
        if on_source:
            on_source(report)
    return reports
