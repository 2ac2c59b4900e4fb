"""Rendering: golden files, the responsive-email rules, autoescape, overrides, size budget."""

from __future__ import annotations

import dataclasses
import os
import re
from datetime import date
from pathlib import Path

import lxml.html
import pytest

from digest.errors import DigestError
from digest.mail.message import NAME_TOKEN, PREFERENCES_TOKEN, UNSUBSCRIBE_TOKEN
from digest.models import Article, Digest, DigestItem, Quote, Summary
from digest.pipeline import render
from digest.render import (
    CLIP_LIMIT_BYTES,
    HTML_BUDGET_BYTES,
    html_part_size,
    inline_css,
    render_digest,
    wrap_text,
)
from tests.conftest import write_config
from tests.golden.sample import BRAND, golden_digest

GOLDEN = Path(__file__).parent / "golden"
# UPDATE_GOLDEN=1 pytest tests/test_render.py rewrites the golden files; review the diff.
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def _check_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(actual, encoding="utf-8")
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, f"{name} changed; if intended, run with UPDATE_GOLDEN=1"


def _tree(html: str) -> lxml.html.HtmlElement:
    return lxml.html.document_fromstring(html)


def _style(element: lxml.html.HtmlElement) -> dict[str, str]:
    declarations = (d.split(":", 1) for d in element.get("style", "").split(";") if ":" in d)
    return {name.strip(): value.strip() for name, value in declarations}


def _story(n: int, words: int = 60, quotes: int = 2) -> DigestItem:
    lead = " ".join(f"word{n}x{i}" for i in range(words))
    article = Article(
        title=f"Story number {n} about the harbour",
        paragraphs=(lead,),
        source=f"Source {n % 3}",
        url=f"https://news.example.org/{n}",
        byline="Ana Reporter",
    )
    said = tuple(
        Quote(f"Quote {q} of story {n}, said at some length.", "Someone") for q in range(quotes)
    )
    return DigestItem(article, Summary(lead, said))


def _big_digest(stories: int, quotes: int = 2) -> Digest:
    items = tuple(_story(n, quotes=quotes) for n in range(stories))
    return Digest("daily/2026-11-28", "Big Digest", date(2026, 11, 28), items)


def test_the_golden_digest_renders_to_the_checked_in_html_and_text():
    rendered = render_digest(golden_digest(), BRAND)
    _check_golden("digest.html", rendered.html)
    _check_golden("digest.txt", rendered.text)
    assert rendered.warnings == ()
    # The lead headline first: a phone shows the start, and the sender's name is beside it.
    assert rendered.subject == "Harbour levy clears Senate after ‘reckless’ amendment is stripped"


def test_feed_text_is_escaped_and_unsafe_links_are_not_linked():
    first = golden_digest().items[0]
    marked = dataclasses.replace(first.article, title="Bakery opens <b>second</b> shop & hires")
    digest = dataclasses.replace(golden_digest(), items=(DigestItem(marked, first.summary),))
    rendered = render_digest(digest, BRAND)
    assert "Bakery opens &lt;b&gt;second&lt;/b&gt; shop &amp; hires" in rendered.html
    assert "<b>second</b>" not in rendered.html
    assert "Bakery opens <b>second</b> shop & hires" in rendered.text  # plain text is not HTML
    html = render_digest(golden_digest(), BRAND).html
    assert "opens a second shop &amp; hires 12 bakers" in html
    assert "javascript:" not in html
    tree = _tree(html)
    ferry = tree.xpath("//td[contains(., 'Ferry timetable')]")[-1]
    assert ferry.xpath(".//a") == []  # its only URL was javascript:, so no link at all


def test_the_layout_follows_the_responsive_email_patterns():
    html = render_digest(golden_digest(), BRAND).html
    tree = _tree(html)
    assert tree.xpath("//meta[@name='color-scheme']/@content") == ["light dark"]
    assert tree.xpath("//meta[@name='viewport']")
    assert all(t.get("role") == "presentation" for t in tree.xpath("//table"))
    # The Outlook ghost table, in a conditional comment around the 600px column.
    assert re.search(r'<!--\[if mso\]><table role="presentation" width="600"', html)
    container = tree.find_class("container")[0]
    assert _style(container)["max-width"] == "600px" and container.get("width") == "100%"
    # The hidden preheader comes first in the body, padded so body text does not follow it.
    preheader = tree.body[0]
    assert _style(preheader)["display"] == "none" and _style(preheader)["mso-hide"] == "all"
    # Hidden by display and size, not by a colour equal to the background (a spam sign).
    assert "color" not in _style(preheader)
    # The subject has the first headline and the email opens with its lead: the preview
    # line tells what else is inside.
    assert preheader.text_content().startswith(
        "Also: Café Ørsted’s co-op bakery opens a second shop & hires 12 bakers; Ferry timetable"
    )
    assert "\u200c\xa0" * 10 in preheader.text_content()
    # The @media rules stay in a <style> block for the clients that support them.
    styles = " ".join(s.text or "" for s in tree.xpath("//style"))
    assert "@media (max-width: 599px)" in styles  # a 600 px window gets the desktop layout
    assert "@media (prefers-color-scheme: dark)" in styles
    assert "!important" in styles


def test_every_text_cell_sets_its_font_and_spacing_is_padding():
    tree = _tree(render_digest(golden_digest(), BRAND).html)
    checked = 0
    for text in tree.body.xpath(".//text()[normalize-space()]"):
        holder = text.getparent()
        if _style(holder).get("display") == "none" or not text.strip():
            continue  # the hidden preheader, and &nbsp; in spacer cells
        # The text's own element up to its cell must set every font property: Outlook
        # does not carry them into nested tables, so nothing may rely on inheritance.
        found: set[str] = set()
        for element in [holder, *holder.iterancestors()]:
            found |= _style(element).keys()
            if element.tag == "td":
                break
        else:
            pytest.fail(f"text outside a table cell: {text!r}")
        # The one exception: a story's serif comes from its own cell, once a story
        # (Outlook, which does not inherit it, shows its own serif there).
        story = next(iter(holder.xpath("ancestor::td[@class='story']")), None)
        if story is not None:
            found.add("font-family")
        missing = {"font-family", "font-size", "line-height", "color"} - found
        assert not missing, f"{missing} not set for {text.strip()[:40]!r}"
        checked += 1
    assert checked > 30
    for element in tree.xpath("//*[@style]"):
        for prop, value in _style(element).items():
            if prop.startswith("margin"):
                assert set(value.replace("px", "").split()) <= {"0"}, (prop, value)


def test_links_buttons_and_footer():
    html = render_digest(golden_digest(), BRAND).html
    tree = _tree(html)
    hrefs = tree.xpath("//a/@href")
    personal = (UNSUBSCRIBE_TOKEN, PREFERENCES_TOKEN)
    assert hrefs and all(h.startswith("https://") or h in personal for h in hrefs)
    headline = tree.xpath("//a[@class='headline-link']")[0]
    assert headline.get("href").startswith("https://news.example.org/2026/11/harbour-levy")
    links = tree.find_class("more-link")
    assert len(links) == 4  # every story says where it goes on
    web = "https://digest.example.org/archive/daily/2026-11-28"
    for link in links:
        href = link.get("href")
        site = href.split("/")[2].removeprefix("www.")
        # A story with no page of its own links to its place in the web version.
        expected = "Read on the web →" if href.startswith(web + "#story-") else f"Read at {site} →"
        assert link.text == expected
        style = _style(link)
        # A tap target at least 44 px high: 12 px padding above and below a 20 px line.
        assert (style["display"], style["padding"], style["line-height"]) == (
            "inline-block",
            "12px 0",
            "20px",
        )
    footer = tree.find_class("footer")[0]
    assert "because you subscribed" in footer.text_content()
    assert "The Harbour Digest, 12 Quay Street, Port Alden 40210" in footer.text_content()
    footer_links = {a.text: a.get("href") for a in footer.iter("a")}
    assert footer_links == {
        "Preferences": PREFERENCES_TOKEN,
        "Unsubscribe": UNSUBSCRIBE_TOKEN,
        "View in browser": "https://digest.example.org/archive/daily/2026-11-28",
    }
    quote = tree.find_class("quote")[0]
    assert "border-left" in _style(quote)
    assert quote.find_class("speaker")[0].text == "— Sen. Paul Greer"


def test_a_logo_replaces_the_name_and_carries_it_as_alt_text():
    brand = dataclasses.replace(BRAND, logo_url="https://digest.example.org/logo.png")
    tree = _tree(render_digest(golden_digest(), brand).html)
    images = tree.xpath("//img")
    assert [i.get("alt") for i in images] == ["The Harbour Digest"]
    assert images[0].get("width") == "200" and _style(images[0])["display"] == "block"


def test_text_part_is_wrapped_with_its_links_listed():
    text = render_digest(golden_digest(), BRAND).text
    assert "   > “It won’t be the last.”\n   >   — Sen. Paul Greer" in text
    assert (
        "Read at news.example.org: "
        "https://news.example.org/2026/11/harbour-levy?utm_source=digest&ref=feed" in text
    )
    assert "Read at science.example.net: https://science.example.net/comet-12p-shower" in text
    assert "javascript:" not in text
    assert f"Unsubscribe: {UNSUBSCRIBE_TOKEN}" in text
    assert f"Preferences: {PREFERENCES_TOKEN}" in text
    assert "View in browser: https://digest.example.org/archive/daily/2026-11-28" in text
    assert f"Hello {NAME_TOKEN}, here are 4 stories" in text
    assert "Reply to this email to reach the editors" in text
    long_lines = [ln for ln in text.splitlines() if len(ln) > 72 and not ln.startswith("Reply")]
    assert all("http" in ln or "example.org/" in ln for ln in long_lines), long_lines
    assert "opens a second shop & hires 12 bakers" in text  # plain text: nothing escaped


def test_wrapping_never_splits_a_token_or_a_hyphenated_url():
    wrapped = wrap_text(f"Hello {NAME_TOKEN} " * 10 + "https://a.example.org/x-y-z-" * 4, 30)
    assert wrapped.count(NAME_TOKEN) == 10
    assert "https://a.example.org/x-y-z-" * 4 in wrapped


def test_a_user_template_folder_overrides_a_built_in_partial(tmp_path):
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "_footer.html.j2").write_text(
        '<tr><td>Custom footer <a href="{{ unsubscribe_url }}">leave</a></td></tr>'
    )
    rendered = render_digest(golden_digest(), BRAND, templates_dir=tmp_path)
    assert "Custom footer" in rendered.html
    assert "Harbour levy clears Senate" in rendered.html  # the rest is still built in
    assert "because you subscribed" not in rendered.html  # the built-in footer is replaced


def test_odd_css_in_a_template_is_inlined_without_noise_on_stderr(tmp_path, capfd):
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "digest.html.j2").write_text(
        "<html><head><style>.x { mso-line-height-rule: exactly; -webkit-text-size-adjust: 100%;"
        " colr: red; } @media (max-width: 600px) { .x { width: 100% !important; } }</style>"
        '</head><body><p class="x">Hi</p></body></html>'
    )
    html = render_digest(golden_digest(), BRAND, templates_dir=tmp_path).html
    assert "mso-line-height-rule:exactly" in html.replace(" ", "")
    assert "@media (max-width: 600px)" in html
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""


def test_inline_css_is_one_reused_configuration():
    page = "<html><head><style>p { color: red; }</style></head><body><p>a</p></body></html>"
    assert inline_css(page) == inline_css(page)
    assert 'style="color:red"' in inline_css(page)


def test_subject_pattern_errors_are_one_sentence():
    with pytest.raises(DigestError, match=r"subject pattern .*\{headline\}"):
        render_digest(golden_digest(), BRAND, subject_pattern="{name} {title}")


def test_subject_never_contains_a_line_break():
    digest = golden_digest()
    first = digest.items[0]
    article = dataclasses.replace(first.article, title="Two\nlines\r\nhere")
    digest = dataclasses.replace(digest, items=(DigestItem(article, first.summary),))
    subject = render_digest(digest, BRAND).subject
    assert "\n" not in subject and "\r" not in subject and "Two lines here" in subject


def test_grouping_by_topic_names_the_source_under_each_headline():
    html = render_digest(golden_digest(), BRAND, group_by="topic").html
    sections = [s.text_content() for s in _tree(html).find_class("section")]
    assert sections == ["Politics", "Business", "Transport", "Science"]
    assert "Example Science Wire · By Amara Osei and Lin Wei" in html


def test_an_empty_digest_still_renders():
    digest = dataclasses.replace(golden_digest(), items=())
    rendered = render_digest(digest, BRAND)
    assert "no new stories" in rendered.subject
    assert "no new stories today" in rendered.text


def test_base_url_must_be_absolute_and_should_be_https():
    with pytest.raises(DigestError, match=r"web\.base_url"):
        render_digest(golden_digest(), dataclasses.replace(BRAND, base_url="/digest"))
    plain = render_digest(golden_digest(), dataclasses.replace(BRAND, base_url="http://x.org"))
    assert any("not https" in w for w in plain.warnings)
    local = dataclasses.replace(BRAND, base_url="http://127.0.0.1:8000")
    assert render_digest(golden_digest(), local).warnings == ()


def test_a_typical_full_digest_fits_under_the_clipping_limit():
    rendered = render_digest(_big_digest(30), BRAND)
    assert rendered.warnings == ()
    assert html_part_size(rendered.html) < HTML_BUDGET_BYTES


def test_a_digest_over_the_budget_keeps_one_quote_per_story_first():
    digest = _big_digest(30, quotes=4)
    full = render_digest(digest, BRAND, size_budget=None)
    budget = html_part_size(full.html) - 1
    rendered = render_digest(digest, BRAND, size_budget=budget)
    assert html_part_size(rendered.html) <= budget
    assert rendered.html.count("Quote 0 of story") == 30
    assert "Quote 1 of story" not in rendered.html + rendered.text
    assert "one quote per story" in rendered.warnings[0]


def test_a_digest_far_over_the_budget_keeps_the_stories_that_fit_and_links_the_rest():
    digest = _big_digest(120)
    rendered = render_digest(digest, BRAND)
    size = html_part_size(rendered.html)
    assert size <= HTML_BUDGET_BYTES < CLIP_LIMIT_BYTES
    kept = len(re.findall(r'class="headline-link"', rendered.html))
    assert 20 < kept < 120
    web_url = "https://digest.example.org/archive/daily/2026-11-28"
    assert f"{120 - kept} more stories did not fit in this email" in rendered.html
    assert f'href="{web_url}"' in rendered.html and "Read all 120 stories" in rendered.html
    assert f"{120 - kept} more stories did not fit" in rendered.text and web_url in rendered.text
    assert rendered.text.count("   Read at ") == kept  # both parts carry the same stories
    assert f"keeps {kept} of 120 stories" in rendered.warnings[0]
    assert "Gmail" in rendered.warnings[0]
    # As many as fit: the room left is less than one more story takes (~2.5 KB each).
    assert HTML_BUDGET_BYTES - size < 4096


def test_digest_run_reports_a_shortened_digest_in_its_summary(tmp_path, cli):
    """End to end: collect 120 articles, render, and `digest run` warns and still sends."""
    folder = tmp_path / "wire"
    folder.mkdir()
    for n in range(120):
        paragraphs = [
            f"Harbour council votes on plan number {n} after a long night",
            "By Dana Whitfield",
            f"The harbour council on Tuesday approved plan number {n}, the {n}th proposal of "
            "the season, after a debate that ran past midnight and drew a crowd of dock "
            "workers, shop owners and ferry captains to the old customs hall.",
            f'"We have argued about plan {n} for long enough," council leader Ines Caldwell '
            'said. "Tonight we decided it."',
            "Opponents said they would appeal the decision before the end of the month.",
        ]
        (folder / f"{n:03d}.txt").write_text("\n\n".join(paragraphs), encoding="utf-8")
    config = write_config(
        tmp_path,
        f'\n[[sources]]\nname = "Wire"\nkind = "folder"\nlocation = "{folder}"\n',
    )
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("[web]", "[digest]\nmax_articles = 200\n\n[web]"), "utf-8")
    assert cli("subscribers", "add", "ana@example.org", "--name", "Ana").returncode == 0
    result = cli("run")
    assert result.returncode == 0, result.stderr
    summary = " ".join(result.stdout.split())
    assert "Gmail's 102 KB clipping limit" in summary
    assert "links to the web version" in summary
    (message,) = (tmp_path / "var" / "outbox").rglob("*.eml")
    assert b"more stories did not fit in this email" in message.read_bytes()


def test_the_web_version_of_a_shortened_digest_is_whole(settings):
    digest = _big_digest(120)
    email = render(settings, digest)
    web = render(settings, digest, whole=True)
    assert email.warnings and web.warnings == ()
    assert web.html.count('class="headline-link"') == 120
    assert "did not fit" not in web.html
