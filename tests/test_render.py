"""Rendering: templates, autoescape, CSS inlining, user template overrides."""

from __future__ import annotations

from datetime import date

from digest.mail.message import NAME_TOKEN, UNSUBSCRIBE_TOKEN
from digest.models import Article, Digest, DigestItem, Quote, Summary
from digest.render import Branding, render_digest

BRAND = Branding("Test Digest", "1 Test Street", "https://digest.example.org")


def _digest(title: str = "Harbor plan <approved>") -> Digest:
    article = Article(
        title=title, paragraphs=("p",), source="Local Desk", url="https://e.org/a", byline="Ana"
    )
    summary = Summary("The plan passed & everyone cheered.", (Quote("We did it.", "Mayor Ana"),))
    return Digest(
        "daily/2026-11-28", "Test Digest", date(2026, 11, 28), (DigestItem(article, summary),)
    )


def test_html_is_escaped_inlined_and_keeps_media_queries():
    rendered = render_digest(_digest(), BRAND)
    assert "Harbor plan &lt;approved&gt;" in rendered.html
    assert "<approved>" not in rendered.html
    assert 'style="' in rendered.html  # premailer inlined the classes' rules
    assert "@media (max-width: 620px)" in rendered.html
    assert "prefers-color-scheme: dark" in rendered.html
    assert NAME_TOKEN in rendered.html and UNSUBSCRIBE_TOKEN in rendered.html
    assert 'role="presentation"' in rendered.html and "max-width:600px" in rendered.html
    assert "https://digest.example.org/archive/daily/2026-11-28" in rendered.html
    assert rendered.subject == "Test Digest — Nov 28, 2026: Harbor plan <approved>"


def test_text_part_has_lead_quote_and_links():
    rendered = render_digest(_digest(), BRAND)
    assert "The plan passed & everyone cheered." in rendered.text
    assert "“We did it.”" in rendered.text and "— Mayor Ana" in rendered.text
    assert "Read more [1]: https://e.org/a" in rendered.text
    assert f"Unsubscribe: {UNSUBSCRIBE_TOKEN}" in rendered.text
    assert all(len(line) <= 78 for line in rendered.text.splitlines() if "http" not in line)


def test_a_user_template_folder_overrides_a_built_in_partial(tmp_path):
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "_footer.html.j2").write_text(
        '<tr><td>Custom footer <a href="{{ unsubscribe_url }}">leave</a></td></tr>'
    )
    rendered = render_digest(_digest(), BRAND, templates_dir=tmp_path)
    assert "Custom footer" in rendered.html
    assert "Harbor plan" in rendered.html  # the rest still comes from the built-ins


def test_subject_never_contains_a_line_break():
    rendered = render_digest(_digest("Two\nlines"), BRAND)
    assert "\n" not in rendered.subject and "\r" not in rendered.subject
