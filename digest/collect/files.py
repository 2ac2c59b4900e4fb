"""Local sources: a folder of scraped-text articles."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from digest.collect.html import html_paragraphs
from digest.collect.textclean import clean_text
from digest.errors import DigestError
from digest.models import Article

SUFFIXES = (".txt", ".md", ".html", ".htm")


def read_folder(
    folder: Path,
    source: str,
    tags: Sequence[str] = (),
    extra_chrome: Sequence[re.Pattern[str]] = (),
) -> Iterator[Article]:
    """Yield one cleaned article per text file in the folder, in name order."""
    if not folder.is_dir():
        raise DigestError(f"Source folder {folder} does not exist; fix its location in the config.")
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in SUFFIXES or path.name.lower().startswith("readme"):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix.lower() in (".html", ".htm"):
            text = "\n\n".join(html_paragraphs(text))
        clean = clean_text(text, extra_chrome)
        if not clean.paragraphs:
            continue
        yield Article(
            title=clean.title,
            subtitle=clean.subtitle,
            byline=clean.byline,
            paragraphs=clean.paragraphs,
            source=source,
            guid=path.name,
            tags=tuple(tags),
        )
