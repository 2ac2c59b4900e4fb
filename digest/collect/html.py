"""Untrusted HTML from feeds and pages: sanitize it, then read it as plain text.

The store keeps plain-text paragraphs only, so nothing a feed sends can reach a template
as markup: nh3 removes scripts, styles and event handlers first, the text is then read
out of the remaining blocks, and text that still looks like markup (a feed that escaped
its HTML twice) is stripped once more.
"""

from __future__ import annotations

import html
import re

import lxml.html
import nh3

from digest.safetext import visible

_BLOCKS = ("p", "li", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "dd", "dt")
_ALLOWED_TAGS = {
    *_BLOCKS,
    "br",
    "a",
    "em",
    "strong",
    "b",
    "i",
    "ul",
    "ol",
    "dl",
    "code",
    "figure",
    "figcaption",
    "img",
    "div",
    "section",
    "article",
}
_TAG = re.compile(r"</?[a-zA-Z][^<>]*>|<!--.*?-->", re.DOTALL)
_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def sanitize(markup: str) -> str:
    """Keep only harmless markup: no scripts, styles, event handlers or iframes."""
    return nh3.clean(markup, tags=_ALLOWED_TAGS, attributes={"a": {"href"}, "img": {"src", "alt"}})


def _no_markup(text: str) -> str:
    # Double-escaped feeds turn "<p>" into text; strip what still parses as a tag.
    for _ in range(3):
        if not _TAG.search(text):
            break
        text = html.unescape(nh3.clean(text, tags=set()))
    return text


def plain_text(markup: str) -> str:
    """One line of text from a title, author or other short field that may hold HTML."""
    if "<" not in markup and "&" not in markup:
        return " ".join(visible(markup).split())
    text = html.unescape(nh3.clean(markup, tags=set()))
    return " ".join(visible(_no_markup(text)).split())


def html_paragraphs(markup: str) -> list[str]:
    """The text of each block element, after sanitizing; figure captions are left out."""
    clean = sanitize(markup)
    if not clean.strip():
        return []
    # lxml refuses NUL and other C0 control characters; they are never text anyway.
    clean = _CONTROL.sub("", _BREAK.sub("\n", clean))
    root = lxml.html.fragment_fromstring(clean, create_parent="div")
    for caption in root.iter("figcaption"):
        caption.drop_tree()
    blocks = [
        el for el in root.iter(*_BLOCKS) if not any(p.tag in _BLOCKS for p in el.iterancestors())
    ]
    if blocks:
        texts = [el.text_content() for el in blocks]
    else:
        # Plain text or <br>-separated lines: a blank line (or a lone line) is a paragraph.
        raw = root.text_content()
        texts = re.split(r"\n\s*\n", raw) if "\n\n" in raw else raw.split("\n")
    return [t for t in (" ".join(_no_markup(text).split()) for text in texts) if t]
