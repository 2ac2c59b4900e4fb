"""Collect: read every configured source and store the articles not seen before."""

from __future__ import annotations

from digest.collect.collector import (
    SourceHealth,
    SourceReport,
    collect_sources,
    source_health,
    source_location,
)

__all__ = ["SourceHealth", "SourceReport", "collect_sources", "source_health", "source_location"]
