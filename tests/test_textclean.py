"""The scraped-text cleaner on our own fixtures, one per site style, and on edge cases."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from digest.collect.textclean import clean_text
from tests.conftest import FIXTURES

CASES = sorted((FIXTURES / "textclean").glob("*.txt"))


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_fixture_cleans_to_its_expected_parts(path: Path):
    expected = json.loads(path.with_suffix(".expected.json").read_text(encoding="utf-8"))
    clean = clean_text(path.read_text(encoding="utf-8"))
    assert clean.title == expected["title"]
    assert clean.subtitle == expected["subtitle"]
    assert clean.byline == expected["byline"]
    assert list(clean.paragraphs) == expected["paragraphs"]


def test_there_are_enough_fixtures():
    assert len(CASES) >= 15


def test_short_paragraphs_and_quote_paragraphs_are_kept():
    text = "\n\n".join(
        [
            "Council backs night market",
            "By Ana Lindgren",
            "The city council voted on Monday to allow a weekly night market in the old square.",
            "It passed 9-0.",
            '"We are not done yet."',
            "Vendors will pay a small fee, which the council said would cover cleaning.",
            "Most Read",
            "Share this article",
        ]
    )
    clean = clean_text(text)
    assert clean.paragraphs == (
        "The city council voted on Monday to allow a weekly night market in the old square.",
        "It passed 9-0.",
        '"We are not done yet."',
        "Vendors will pay a small fee, which the council said would cover cleaning.",
    )


def test_a_caption_printed_twice_is_removed_everywhere():
    caption = "Traders walk past the old exchange building in Portvale, Monday. Yonhap"
    body = [
        f"Paragraph {n} says something about the market that matters to readers." for n in range(4)
    ]
    text = "\n\n".join(
        ["Markets calm", caption, caption, body[0], body[1], caption, caption, *body[2:]]
    )
    assert clean_text(text).paragraphs == tuple(body)


def test_extra_chrome_patterns_from_settings_are_honoured():
    text = "\n\n".join(
        [
            "Bridge reopens",
            "The bridge reopened on Friday after two years of repairs and a long public debate.",
            "Tip us off: news@example.com",
            "Drivers can use both lanes again, and cyclists get a protected lane of their own.",
        ]
    )
    assert "Tip us off: news@example.com" in clean_text(text).paragraphs
    pattern = re.compile(r"^Tip us off\b", re.IGNORECASE)
    assert "Tip us off: news@example.com" not in clean_text(text, [pattern]).paragraphs


def test_empty_and_chrome_only_text_gives_no_paragraphs():
    assert clean_text("").paragraphs == ()
    assert clean_text("Home\n\nNews\n\nSign up for our newsletter\n\nMost Read").paragraphs == ()


def test_a_line_of_more_than_25_words_is_never_the_title():
    long_line = " ".join(["word"] * 26)
    clean = clean_text(f"{long_line}\n\nThe story begins here, and it goes on for a while.")
    assert clean.title != long_line


def test_page_chrome_in_flattened_text_is_dropped():
    story = [
        "The river authority opened the new flood gates on Thursday after two years of work.",
        "Engineers said the gates would protect four hundred homes in the lower town.",
        "The project cost less than planned, the authority said in its yearly report.",
    ]
    text = "\n".join(
        [
            "Flood gates open",
            *[f"Menu item {n}" for n in range(12)],
            story[0],
            "Image copyright River Authority",
            story[1],
            story[2],
            "We use cookies to give you the best experience on our website. Accept all.",
            "Follow The Valley Times on Twitter and Facebook.",
            "12 responses to Flood gates open",
            "riverfan says:",
            "November 19, 2026 at 6:34 am",
            "About time they finished this, it has been years.",
        ]
    )
    assert clean_text(text).paragraphs == tuple(story)


def test_extracted_page_text_keeps_sections_and_stops_at_related():
    from digest.collect.textclean import clean_extracted

    text = "\n\n".join(
        [
            "Market hall reopens",
            "The old market hall reopened on Saturday after a year of repairs.",
            "What changes for traders",
            "Stall rents stay the same until the spring, the council said.",
            "Share this article",
            "Related",
            "Bakers pool money for shared ovens",
        ]
    )
    clean = clean_extracted(text)
    assert clean.title == "Market hall reopens"
    assert clean.paragraphs == (
        "The old market hall reopened on Saturday after a year of repairs.",
        "What changes for traders",
        "Stall rents stay the same until the spring, the council said.",
    )


def _story(count: int, topic: str = "ferry") -> list[str]:
    return [
        f"Paragraph {n} of the {topic} story explains what changed for the people who use it."
        for n in range(count)
    ]


def test_a_list_of_other_stories_with_blurbs_is_not_story():
    teasers = []
    for name in ("Tram fares", "Bridge works", "Harbour fair", "Night buses"):
        teasers += [name, f"{name} change next month, and here is what riders should know."]
    text = "\n".join(["Ferry returns", *_story(4), "Popular now", *teasers, "© Portvale Post"])
    assert clean_text(text).paragraphs == tuple(_story(4))


def test_the_story_never_runs_on_into_its_comment_thread():
    comments = [
        "Jo Ramos",
        "March 3, 2026 at 9:14 am",
        *[
            f"Comment {n}: I have taken this ferry for years, and it was always late."
            for n in range(8)
        ],
    ]
    text = "\n".join(["Ferry returns", *_story(4), "8 thoughts on “Ferry returns”", *comments])
    assert clean_text(text).paragraphs == tuple(_story(4))


def test_an_embedded_post_and_a_long_line_without_a_stop_stay_in_the_story():
    story = _story(4)
    post = "The first ferry of the season is in, and the harbour has never looked better"
    signature = "— Portvale Harbour (@portvaleharbour) March 3, 2026"
    running = (
        "and the crew waved at the crowd on the pier while the band played and the children "
        "ran along the wall to follow the boat all the way in"
    )
    text = "\n".join(["Ferry returns", story[0], running, story[1], post, signature, *story[2:]])
    assert clean_text(text).paragraphs == (story[0], running, story[1], post, signature, *story[2:])


def test_an_author_bio_and_a_contact_line_under_the_story_are_not_story():
    story = _story(4)
    text = "\n".join(
        [
            "Ferry returns",
            *story,
            "Have a tip? Ana Lindgren may be reached at alindgren@example.com.",
            "Ana Lindgren",
            "Ana joined the Post in 2019 and covers the harbour, transport and the city council.",
        ]
    )
    assert clean_text(text).paragraphs == tuple(story)
    signed = "\n".join(
        [
            "Ferry returns",
            *story,
            "Write to Bo Park at bo.park@example.com",
            "Bo Park is a staff writer at the Post covering ports, shipping and the weather.",
        ]
    )
    assert clean_text(signed).paragraphs == tuple(story)


def test_a_short_paragraph_opening_with_by_is_story_not_a_byline():
    story = _story(3)
    text = "\n".join(
        [
            "Ferry returns",
            "By Ana Lindgren",
            story[0],
            "By noon, the line reached the pier.",
            *story[1:],
        ]
    )
    clean = clean_text(text)
    assert clean.byline == "Ana Lindgren"
    assert clean.paragraphs == (story[0], "By noon, the line reached the pier.", *story[1:])


def test_sentences_ending_with_a_danda_or_an_arabic_question_mark_are_story():
    story = [
        "नगर परिषद ने सोमवार को पुराने चौक में साप्ताहिक रात्रि बाज़ार को मंज़ूरी दे दी।",
        "दुकानदार सफ़ाई के लिए एक छोटा शुल्क देंगे, परिषद ने कहा।",
        "هل سيعود العبّارة إلى الميناء قبل الصيف؟",
    ]
    text = "\n".join(["रात्रि बाज़ार", "Home", "News", *story, "Most Read", "Share this article"])
    assert clean_text(text).paragraphs == tuple(story)
