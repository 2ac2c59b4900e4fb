"""Render a digest once: Jinja2 for HTML and text, premailer to inline the CSS.

Personal values (the reader's name, their unsubscribe URL) are left as tokens; the mail
layer swaps them per subscriber, so nothing here runs per reader.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from itertools import groupby
from pathlib import Path

import jinja2
from premailer import Premailer

from digest.mail.message import NAME_TOKEN, UNSUBSCRIBE_TOKEN
from digest.models import Digest, DigestItem, RenderedDigest

# Gmail clips a message body larger than about 102 KB behind a "View entire message" link.
CLIP_LIMIT_BYTES = 102 * 1024


@dataclass(frozen=True, slots=True)
class Branding:
    """Who sends the digest and where its web pages live."""

    sender_name: str
    postal_address: str
    base_url: str


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
    env.filters["wrap"] = _wrap
    return env


def _wrap(text: str, width: int = 72, indent: str = "") -> str:
    import textwrap

    return textwrap.fill(
        text, width=width, initial_indent=indent, subsequent_indent=indent, break_long_words=False
    )


@cache
def _premailer_logger() -> logging.Logger:
    # cssutils reports every property it does not know (mso-*, -webkit-*) as an error.
    logger = logging.getLogger("digest.premailer")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    return logger


def inline_css(html: str) -> str:
    """Inline the <style> rules into style attributes; keep @media rules in a <style>."""
    return str(
        Premailer(
            html,
            keep_style_tags=False,
            strip_important=False,
            remove_classes=False,
            disable_validation=True,
            cssutils_logging_handler=logging.NullHandler(),
            cssutils_logging_level=logging.CRITICAL,
            allow_network=False,
            allow_loading_external_files=False,
        ).transform(pretty_print=False)
    )


def group_items(items: Sequence[DigestItem]) -> list[tuple[str, list[DigestItem]]]:
    """Articles grouped by source, in the digest's order."""
    return [(source, list(group)) for source, group in groupby(items, lambda i: i.article.source)]


def subject_line(digest: Digest, pattern: str) -> str:
    headline = digest.items[0].article.title if digest.items else "no new stories"
    subject = pattern.format(
        name=digest.name,
        date=digest.day.strftime("%b %-d, %Y"),
        headline=headline,
        count=len(digest.items),
    )
    return " ".join(subject.split())  # never a line break in a header


def render_digest(
    digest: Digest,
    branding: Branding,
    *,
    subject_pattern: str = "{name} — {date}: {headline}",
    templates_dir: Path | None = None,
) -> RenderedDigest:
    """HTML (CSS inlined) and plain text for the digest, with personal tokens in place."""
    env = template_environment(templates_dir)
    subject = subject_line(digest, subject_pattern)
    first_lead = digest.items[0].summary.lead if digest.items else ""
    context = {
        "digest": digest,
        "groups": group_items(digest.items),
        "subject": subject,
        "preheader": digest.intro or first_lead,
        "brand": branding,
        "date_text": digest.day.strftime("%A, %B %-d, %Y"),
        "web_url": f"{branding.base_url.rstrip('/')}/archive/{digest.key}",
        "reader_name": NAME_TOKEN,
        "unsubscribe_url": UNSUBSCRIBE_TOKEN,
    }
    html = inline_css(env.get_template("email/digest.html.j2").render(context))
    text = env.get_template("email/digest.txt.j2").render(context)
    warnings: list[str] = []
    size = len(html.encode())
    if size > CLIP_LIMIT_BYTES:
        warnings.append(
            f"The HTML is {size // 1024} KB, over Gmail's {CLIP_LIMIT_BYTES // 1024} KB clipping "
            "limit; lower digest.max_articles."
        )
    return RenderedDigest(subject=subject, html=html, text=text, warnings=tuple(warnings))
