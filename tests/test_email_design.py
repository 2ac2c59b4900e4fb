"""The email a reader scans: headings, a contents list, honest links, and a size that fits.

A 30-story digest of real-length stories (the summarizer's fixtures: titles, bylines,
leads, two quotes each) must stay under 75 KB as sent, well inside Gmail's ~102 KB clip.
"""

from __future__ import annotations

import lxml.html
import pytest
from starlette.testclient import TestClient

from digest.models import Digest, Subscriber
from digest.pipeline import message_template, open_store, run_digest
from digest.render import html_part_size, quote_end, render_digest
from digest.subscribers import add_subscriber
from digest.web import create_app
from tests.golden.sample import BRAND, golden_digest, long_digest

SOURCES = ("Local Desk", "Example Science Wire", "Metro Wire")


def thirty_stories() -> Digest:
    return long_digest(30)


def test_thirty_stories_fit_in_75_kb_as_sent():
    rendered = render_digest(thirty_stories(), BRAND)
    assert rendered.warnings == ()
    assert html_part_size(rendered.html) < 75 * 1024
    assert rendered.html.count('class="headline-link"') == 30  # nothing was left out


def test_headings_and_in_this_issue_let_a_reader_jump_to_a_story():
    tree = lxml.html.fromstring(render_digest(thirty_stories(), BRAND).html)
    assert [h.text_content() for h in tree.iter("h1")] == ["The Daily Digest"]
    sections = [h.text_content() for h in tree.iter("h2")]
    assert sections[0] == "In this issue" and set(sections[1:]) == set(SOURCES)
    headlines = [h.text_content() for h in tree.iter("h3")]
    assert len(headlines) == 30
    contents = tree.xpath("//p[@class='contents-list']/a")
    assert [a.text_content() for a in contents] == headlines  # in reading order
    for link in contents:
        target = tree.get_element_by_id(link.get("href").removeprefix("#"))
        assert target.xpath(".//h3")[0].text_content() == link.text_content()


def test_a_short_digest_has_no_contents_list_and_says_where_links_go():
    rendered = render_digest(golden_digest(), BRAND)
    assert "In this issue" not in rendered.html
    assert "Read at news.example.org →" in rendered.html
    assert "Read more" not in rendered.html + rendered.text
    tree = lxml.html.fromstring(rendered.html)
    [wrapper] = tree.xpath("//div[@role='article']")
    assert wrapper.get("lang") == "en" and wrapper.get("aria-label") == rendered.subject
    fr = render_digest(golden_digest(), BRAND, language="fr")
    assert '<html lang="fr"' in fr.html and 'lang="fr" dir="ltr"' in fr.html


def test_every_story_number_keeps_its_space_in_the_text_part():
    text = render_digest(thirty_stories(), BRAND).text
    for number in (1, 9, 10, 30):
        assert f"\n{number}. " in text
    assert "10.C" not in text and "\n10.\n" not in text


@pytest.mark.parametrize(
    ("quote", "shown"),
    [
        ("We will finish the bridge by spring,", "We will finish the bridge by spring."),
        ("Is it safe?", "Is it safe?"),
        ("one of the great miscarriages of justice", "one of the great miscarriages of justice…"),
        ("It was, he said—", "It was, he said—"),
    ],
)
def test_quotes_end_as_sentences(quote, shown):
    assert quote_end(quote) == shown


def test_after_a_run_the_preview_shows_the_digest_that_went_out(settings):
    add_subscriber(open_store(settings), "ann@example.org")
    report = run_digest(settings)
    client = TestClient(
        create_app(settings, local_operator=True),
        base_url="http://127.0.0.1:8000",
        client=("127.0.0.1", 1),
    )
    page = client.get("/preview").text
    assert f"Nothing new since {report.key}" in page and "Collect now" in page
    email_html = client.get("/preview/email.html").text
    assert "Portvale replaces late-night ferry runs" in email_html


def test_every_client_gets_its_rules():
    html = render_digest(golden_digest(), BRAND).html
    blocks = [b.text or "" for b in lxml.html.fromstring(html).iter("style")]
    responsive = [b for b in blocks if "max-width: 599px" in b]
    dark = [b for b in blocks if b.lstrip().startswith("@media (prefers-color-scheme: dark)")]
    # A client that rejects one block (an unknown at-rule, say) keeps the other.
    assert len(responsive) == len(dark) == 1 and responsive != dark
    rest = "".join(blocks)
    for rule in ("mso-table-lspace", "mso-line-height-rule", "-webkit-text-size-adjust"):
        assert rule in rest
    assert "color-scheme: light dark" in rest
    for selector in (".intro", ".quote", ".section", ".headline,", ".more-link", ".contents"):
        assert f"[data-ogsc] {selector}" in rest  # Outlook.com's dark mode
    assert "[data-ogsb] .container" in rest


def test_message_ids_do_not_count_the_readers(settings):
    rendered = render_digest(golden_digest(), BRAND)
    template = message_template(settings, "daily/2026-11-28", rendered)
    ids = [template.message_id(Subscriber(n, f"r{n}@example.org")) for n in (1, 2, 3)]
    assert len(set(ids)) == 3
    for n, message_id in zip((1, 2, 3), ids, strict=True):
        assert f".{n}@" not in message_id  # no sequence to read off
    again = message_template(settings, "daily/2026-11-28", rendered)
    assert again.message_id(Subscriber(2, "r2@example.org")) == ids[1]  # a retry: the same id
