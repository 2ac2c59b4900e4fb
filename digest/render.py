"""Render a digest once: Jinja2 for HTML and text, premailer to inline the CSS.

Personal values (the reader's name, their unsubscribe URL) are left as tokens; the mail
layer swaps them per subscriber, so nothing here runs per reader. The HTML is kept under
Gmail's clipping limit by shortening the digest and linking to its web version.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import textwrap
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import cssutils
import jinja2
from premailer import Premailer

from digest.clicks import CLICK_PREFIX, LINK_EXTRA, click_marker
from digest.errors import ConfigError
from digest.mail.message import NAME_TOKEN, PREFERENCES_TOKEN, UNSUBSCRIBE_TOKEN, qp_text
from digest.models import Article, Digest, DigestItem, RenderedDigest
from digest.safetext import visible

# Gmail clips a message body larger than about 102 KB behind a "View entire message" link,
# and the clipped part holds the footer with the unsubscribe link. Whether Gmail counts the
# HTML before or after its transfer encoding is not documented; we count it as it travels
# (quoted-printable, a few percent larger), the reading that never clips.
CLIP_LIMIT_BYTES = 102 * 1024
# Room for what personalization adds (a long name, the unsubscribe URL), so a message
# that fits when rendered still fits when it reaches the reader.
PERSONAL_RESERVE_BYTES = 2 * 1024
HTML_BUDGET_BYTES = CLIP_LIMIT_BYTES - PERSONAL_RESERVE_BYTES
PREHEADER_CHARS = 140
GroupBy = Literal["source", "topic"]
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True, slots=True)
class Branding:
    """Who sends the digest and where its web pages live."""

    sender_name: str
    postal_address: str
    base_url: str
    logo_url: str = ""
    logo_width: int = 200


def builtin_templates() -> Path:
    """Templates ship inside the package when installed, beside it in a checkout."""
    packaged = Path(__file__).parent / "templates"
    return packaged if packaged.is_dir() else Path(__file__).parent.parent / "templates"


@cache
def template_environment(user_dir: Path | None = None) -> jinja2.Environment:
    """Jinja2 with autoescape; a user's template folder is searched before the built-ins."""
    folders = [str(user_dir)] if user_dir else []
    folders.append(str(builtin_templates()))
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folders),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2")),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=True,
    )
    env.filters["wrap"] = wrap_text
    env.filters["site"] = site_name
    env.filters["quote_end"] = quote_end
    return env


def site_name(url: str) -> str:
    """The site a link goes to, as a reader names it: "example.org" for www.example.org/a."""
    host = urlsplit(url).hostname or url
    return host.removeprefix("www.")


_SENTENCE_END = (".", "!", "?", "…", "—", ";", ":")


def quote_end(text: str) -> str:
    """A quote that ends as a sentence: its own punctuation, a period, or an ellipsis.

    A quote loses the comma before "she said"; a full sentence then gets its period back,
    and one that stops mid-sentence (it opened in lower case) trails off with an ellipsis.
    """
    text = text.rstrip(" ,")
    if not text or text.endswith(_SENTENCE_END):
        return text
    return text + ("." if text[0].isupper() else "…")


@contextmanager
def template_errors(user_dir: Path | None) -> Iterator[None]:
    """A broken template becomes one sentence naming the file and line, not a traceback."""
    try:
        yield
    except jinja2.TemplateSyntaxError as exc:
        where = f"{exc.filename or exc.name or 'a template'}, line {exc.lineno}"
        raise ConfigError(
            f"The template {where} has an error ({exc.message}); fix it"
            + (f" in {user_dir}." if user_dir else ".")
        ) from None
    except jinja2.TemplateError as exc:
        raise ConfigError(
            f"A template failed to render ({exc}); check the templates"
            + (f" in {user_dir}." if user_dir else ".")
        ) from None


def wrap_text(text: str, width: int = 72, indent: str = "", first: str | None = None) -> str:
    """Wrap for the plain-text part; never inside a word, a URL or a personal token."""
    return textwrap.fill(
        " ".join(text.split()),
        width=width,
        initial_indent=indent if first is None else first,
        subsequent_indent=indent,
        break_long_words=False,
        # Tokens and URLs contain hyphens; a break there would corrupt them.
        break_on_hyphens=False,
    )


# cssutils logs every property it does not know (mso-*, -webkit-*) and every hack email
# CSS relies on; none of it is actionable here. Set once, not per render: premailer would
# add one more log handler on every instance it is given one.
cssutils.log.setLevel(logging.CRITICAL)

# One premailer configuration for the process; `transform` takes the HTML per call.
_PREMAILER = Premailer(
    keep_style_tags=False,  # the @media blocks stay in a <style>, the rest is inlined
    strip_important=False,  # the dark-mode and phone rules need !important to win
    remove_classes=False,  # the @media rules select by class
    disable_validation=True,
    allow_network=False,
    allow_loading_external_files=False,
    disable_link_rewrites=True,
)


def inline_css(html: str) -> str:
    """Inline the <style> rules into style attributes; keep @media rules in a <style>."""
    return _compact_styles(_prune_classes(str(_PREMAILER.transform(html, pretty_print=False))))


_STYLE_ATTRIBUTE = re.compile(r' style="([^"]*)"')


def _compact_styles(html: str) -> str:
    """Style attributes without the spaces premailer puts after ";" and ",".

    A thousand declarations in a long digest: a kilobyte and more toward the clip limit.
    """
    return _STYLE_ATTRIBUTE.sub(
        lambda m: ' style="' + m.group(1).replace("; ", ";").replace(", ", ",") + '"', html
    )


_STYLE_BLOCK = re.compile(r"<style[^>]*>(.*?)</style>", re.DOTALL)
_CLASS_SELECTOR = re.compile(r"\.(-?[_a-zA-Z][\w-]*)")
# In lxml's output "<" and '"' never occur raw inside text or attribute values, so this
# finds class attributes of tags only.
_CLASS_ATTRIBUTE = re.compile(r'(<[a-zA-Z][^<>]*?) class="([^"]*)"')


def _prune_classes(html: str) -> str:
    """Drop the class names that no remaining <style> rule selects.

    Every byte counts toward the clipping limit, and once inlined most classes are done.
    """
    used = {name for block in _STYLE_BLOCK.findall(html) for name in _CLASS_SELECTOR.findall(block)}

    def keep(match: re.Match[str]) -> str:
        names = " ".join(c for c in match.group(2).split() if c in used)
        return f'{match.group(1)} class="{names}"' if names else match.group(1)

    return _CLASS_ATTRIBUTE.sub(keep, html)


def html_part_size(html: str) -> int:
    """Bytes of the HTML part as it travels: quoted-printable, as the message encodes it."""
    return len(qp_text(html))


def absolute_url(url: str | None) -> str | None:
    """The URL if it is an absolute http(s) link, else None (shown as plain text)."""
    if not url:
        return None
    parts = urlsplit(url.strip())
    if parts.scheme in ("http", "https") and parts.netloc:
        return url.strip()
    return None


def group_items(
    items: Sequence[DigestItem], by: GroupBy = "source"
) -> list[tuple[str, list[DigestItem]]]:
    """Items grouped by source or by first topic, groups in order of first appearance."""
    groups: dict[str, list[DigestItem]] = {}
    for item in items:
        if by == "topic":
            key = item.article.tags[0].replace("-", " ").title() if item.article.tags else "More"
        else:
            key = item.article.source
        groups.setdefault(key, []).append(item)
    return list(groups.items())


CONTENTS_FROM = 5  # stories from which the email opens with "In this issue"
# Longer subjects are cut in inboxes anyway; a 35,000-character title made a 40 KB header.
SUBJECT_MAX = 200


def _cap(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut[limit // 2 :] else cut).rstrip(" ,;:") + "…"


def subject_line(digest: Digest, pattern: str) -> str:
    """The subject from the configured pattern; one line, whatever the headline holds."""
    headline = visible(digest.items[0].article.title) if digest.items else "no new stories"
    try:
        subject = pattern.format(
            name=digest.name,
            date=f"{digest.day:%b} {digest.day.day}, {digest.day.year}",
            headline=headline,
            count=len(digest.items),
        )
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(
            f"The subject pattern {pattern!r} is not valid ({exc}); use the fields "
            "{name}, {date}, {headline} and {count} in digest.subject."
        ) from None
    return _cap(" ".join(subject.split()), SUBJECT_MAX)  # never a line break in a header


def preheader_text(digest: Digest, configured: str = "") -> str:
    """The inbox preview line: the setting, else the next two headlines, cut at a word.

    The subject already carries the first headline and the email opens with its lead, so
    the preview line says what else is inside.
    """
    others = [visible(item.article.title) for item in digest.items[1:3]]
    fallback = ("Also: " + "; ".join(others)) if others else ""
    if not fallback and digest.items:
        fallback = digest.items[0].summary.lead
    text = " ".join((configured or fallback).split())
    if len(text) <= PREHEADER_CHARS:
        return text
    return text[:PREHEADER_CHARS].rsplit(" ", 1)[0] + "…"


def _clean_item(item: DigestItem) -> DigestItem:
    article = item.article
    byline = article.byline
    if byline and byline[:3].lower() == "by ":
        byline = byline[3:]  # the templates say "By" themselves
    return DigestItem(
        dataclasses.replace(article, url=absolute_url(article.url), byline=byline or None),
        item.summary,
    )


def _with_quotes(items: Sequence[DigestItem], most: int) -> list[DigestItem]:
    return [
        DigestItem(i.article, dataclasses.replace(i.summary, quotes=i.summary.quotes[:most]))
        for i in items
    ]


def render_digest(
    digest: Digest,
    branding: Branding,
    *,
    subject_pattern: str = "{headline}",
    templates_dir: Path | None = None,
    preheader: str = "",
    group_by: GroupBy = "source",
    size_budget: int | None = HTML_BUDGET_BYTES,
    language: str = "en",
    track_clicks: bool = False,
) -> RenderedDigest:
    """HTML (CSS inlined) and plain text for the digest, with personal tokens in place.

    With a `size_budget` (bytes of HTML), a digest too big for it is shortened: first to
    one quote per story, then to the stories that fit, followed by a link to the web
    version; a warning says what was left out. `size_budget=None` renders everything,
    for the web version itself. With `track_clicks`, each story's links are markers
    (see digest/clicks.py) that the message template makes into each reader's link.
    """
    env = template_environment(templates_dir)
    base_url = branding.base_url.rstrip("/")
    if absolute_url(base_url) is None:
        raise ConfigError(f"web.base_url {base_url!r} must be an absolute http(s) URL.")
    subject = subject_line(digest, subject_pattern)
    items = [_clean_item(item) for item in digest.items]
    context: dict[str, Any] = {
        "digest": digest,
        "subject": subject,
        "preheader": preheader_text(digest, preheader),
        "brand": branding,
        "date_text": f"{digest.day:%A, %B} {digest.day.day}, {digest.day.year}",
        "web_url": f"{base_url}/archive/{digest.key}",
        "reader_name": NAME_TOKEN,
        "unsubscribe_url": UNSUBSCRIBE_TOKEN,
        "preferences_url": PREFERENCES_TOKEN,
        "group_by": group_by,
        "total": len(items),
        # Past a few stories, a list of headlines up top lets a reader jump to one.
        "contents_from": CONTENTS_FROM,
        "language": language,
        "story_link": _click_marker if track_clicks else _own_url,
    }
    # A reader's click link is longer than its marker; count it as it will be sent.
    extra = LINK_EXTRA + len(base_url) if track_clicks else 0

    def sent_size(html: str) -> int:
        return html_part_size(html) + (html.count(CLICK_PREFIX) * extra if extra else 0)

    def render(shown: Sequence[DigestItem]) -> tuple[str, str]:
        context.update(groups=group_items(shown, group_by), omitted=len(items) - len(shown))
        with template_errors(templates_dir):
            html = inline_css(env.get_template("email/digest.html.j2").render(context))
            return html, env.get_template("email/digest.txt.j2").render(context)

    html, text = render(items)
    full_size = sent_size(html)
    warnings = _base_url_warnings(base_url)
    if size_budget is not None and full_size > size_budget:
        html, text, note = _shorten(items, render, size_budget, sent_size)
        warnings.append(
            f"The HTML would be {full_size // 1024} KB, over the {size_budget // 1024} KB "
            f"budget under Gmail's {CLIP_LIMIT_BYTES // 1024} KB clipping limit; the email "
            f"{note} and links to the web version. Lower digest.max_articles or "
            "summary.quotes to send the whole digest."
        )
    return RenderedDigest(subject=subject, html=html, text=text, warnings=tuple(warnings))


def _shorten(
    items: list[DigestItem],
    render: Callable[[Sequence[DigestItem]], tuple[str, str]],
    budget: int,
    sent_size: Callable[[str], int] = html_part_size,
) -> tuple[str, str, str]:
    """The longest version that fits: one quote per story, then as many stories as fit."""
    trimmed = _with_quotes(items, 1)
    html, text = render(trimmed)
    if sent_size(html) <= budget:
        return html, text, "keeps one quote per story"
    # Binary search for the most stories that fit; `fits` holds a known-good version.
    low, high = 0, len(trimmed) - 1
    fits: tuple[str, str] | None = None
    while low <= high:
        middle = (low + high) // 2
        candidate = render(trimmed[:middle])
        if sent_size(candidate[0]) <= budget:
            fits, low = candidate, middle + 1
        else:
            high = middle - 1
    if fits is None:
        html, text = render([])
        return html, text, "keeps no story (and is still over: check the templates)"
    return *fits, f"keeps {high} of {len(items)} stories with one quote each"


def _own_url(article: Article) -> str | None:
    return article.url


def _click_marker(article: Article) -> str | None:
    """The marker the message template swaps for a reader's click link to this story.

    A story with no URL has nothing to track; one not yet stored (no id) keeps its URL.
    """
    if article.url is None or article.id is None:
        return article.url
    return click_marker(article.id)


def _base_url_warnings(base_url: str) -> list[str]:
    parts = urlsplit(base_url)
    if parts.scheme != "https" and parts.hostname not in _LOCAL_HOSTS:
        return [
            f"web.base_url {base_url} is not https; Gmail and Yahoo expect an https "
            "one-click unsubscribe link."
        ]
    return []
