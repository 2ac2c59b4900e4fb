"""Local sources: a folder of articles as scraped text (.txt), Markdown (.md) or HTML (.html).

Every kind ends in the same cleaner: scraped text goes to `clean_text` as it is, Markdown
is rendered and read as plain-text blocks first, and a saved web page goes through
`extract_page` like a fetched one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from markdown_it import MarkdownIt

from digest.collect.fetch import decode_html
from digest.collect.html import html_paragraphs
from digest.collect.pages import extract_page
from digest.collect.textclean import clean_text
from digest.errors import SourceError
from digest.models import Article, CleanText

SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm")
_MARKDOWN = MarkdownIt("commonmark", {"html": False})  # raw HTML in Markdown stays text


def read_article_file(path: Path, extra_chrome: Sequence[re.Pattern[str]] = ()) -> CleanText | None:
    """Headline, byline and body of one article file; None when it holds no article."""
    suffix = path.suffix.lower()
    if suffix in (".html", ".htm"):
        return extract_page(decode_html(path.read_bytes()), None, extra_chrome)
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    if suffix in (".md", ".markdown"):
        # One block per line pair, headline first: the shape clean_text reads.
        text = "\n\n".join(html_paragraphs(_MARKDOWN.render(text)))
    clean = clean_text(text, extra_chrome)
    return clean if clean.paragraphs else None


def read_folder(
    folder: Path,
    source: str,
    tags: Sequence[str] = (),
    extra_chrome: Sequence[re.Pattern[str]] = (),
) -> Iterator[Article]:
    """Yield one cleaned article per article file in the folder, in name order."""
    if not folder.is_dir():
        raise SourceError(f"Source folder {folder} does not exist; fix its location in the config.")
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in SUFFIXES or path.name.lower().startswith("readme"):
            continue
        clean = read_article_file(path, extra_chrome)
        if clean is None:
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
