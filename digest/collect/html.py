"""Untrusted HTML from feeds: sanitize it, then read it as paragraphs of text."""

from __future__ import annotations

import re

import lxml.html
import nh3

_BLOCKS = ("p", "li", "blockquote", "h2", "h3", "h4", "pre")
_ALLOWED_TAGS = {
    "p",
    "br",
    "a",
    "em",
    "strong",
    "b",
    "i",
    "ul",
    "ol",
    "li",
    "blockquote",
    "h2",
    "h3",
    "h4",
    "pre",
    "code",
    "figure",
    "figcaption",
    "img",
}


def sanitize(html: str) -> str:
    """Keep only harmless markup: no scripts, styles, event handlers or iframes."""
    return nh3.clean(html, tags=_ALLOWED_TAGS, attributes={"a": {"href"}, "img": {"src", "alt"}})


def html_paragraphs(html: str) -> list[str]:
    """The text of each block element, after sanitizing; figure captions are left out."""
    clean = sanitize(html)
    if not clean.strip():
        return []
    root = lxml.html.fragment_fromstring(clean, create_parent="div")
    for caption in root.iter("figcaption"):
        caption.drop_tree()
    blocks = [
        el for el in root.iter(*_BLOCKS) if not any(p.tag in _BLOCKS for p in el.iterancestors())
    ]
    texts = [el.text_content() for el in blocks] if blocks else root.text_content().split("\n")
    return [t for t in (re.sub(r"\s+", " ", text).strip() for text in texts) if t]
