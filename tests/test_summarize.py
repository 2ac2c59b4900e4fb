"""The summarizer: sentence splitting, the lead, quotes and speakers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from digest.collect.textclean import clean_text
from digest.models import Article
from digest.summarize import all_quotes, summarize
from digest.summarize.lead import pick_lead
from digest.summarize.sentences import split_sentences
from tests.conftest import FIXTURES, REPO

LABELED = sorted((FIXTURES / "summaries").glob("*.txt"))
SEED = REPO.parent / "shared" / "seed"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Gen. Mark Lee met Sen. Ann Roy in the U.S. on Nov. 6. The talks went well.",
            ["Gen. Mark Lee met Sen. Ann Roy in the U.S. on Nov. 6.", "The talks went well."],
        ),
        (
            "J.D. Vance spoke. Growth was 3.5 percent, or $1.2 billion. He left.",
            ["J.D. Vance spoke.", "Growth was 3.5 percent, or $1.2 billion.", "He left."],
        ),
        (
            '"We will win," he said. "Then we rest." She nodded.',
            ['"We will win," he said.', '"Then we rest."', "She nodded."],
        ),
        (
            "Shares of Acme Inc. rose 4 percent. Dr. Ito of No. 10 Downing St. agreed.",
            ["Shares of Acme Inc. rose 4 percent.", "Dr. Ito of No. 10 Downing St. agreed."],
        ),
        ("Is it over? Not yet! “Yes,” she said.", ["Is it over?", "Not yet!", "“Yes,” she said."]),
        (
            "Prices rose in the U.S. The Fed said so.",
            ["Prices rose in the U.S.", "The Fed said so."],
        ),
    ],
)
def test_sentence_splitting_survives_news_text(text, expected):
    assert split_sentences(text) == expected


def test_lead_is_cut_at_a_sentence_within_the_budget():
    first = ("The council approved the budget on Monday. " * 3).strip()
    paragraphs = [first + " It also voted to hire twelve new inspectors for the harbor.", "More."]
    lead = pick_lead(paragraphs, budget=20)
    assert (
        lead
        == "The council approved the budget on Monday. The council approved the budget on Monday."
    )
    assert len(lead.split()) <= 20


def test_a_teaser_lead_takes_the_next_paragraph():
    paragraphs = [
        "Who pays for the new bridge?",
        "The city will cover two-thirds of the cost, officials said on Tuesday. "
        "The rest falls to the state.",
    ]
    assert pick_lead(paragraphs, budget=60) == (
        "Who pays for the new bridge? The city will cover two-thirds of the cost, officials said "
        "on Tuesday. The rest falls to the state."
    )


def test_lead_skips_notes_and_labels():
    paragraphs = [
        "Editor's note: This story was updated with the final vote count.",
        "Listen to this article",
        "The measure passed by 212 votes after a recount on Sunday.",
    ]
    assert pick_lead(paragraphs) == "The measure passed by 212 votes after a recount on Sunday."


def test_lead_keeps_the_dateline_but_drops_wire_labels():
    paragraphs = [
        "(LEAD) SEOUL, Nov. 28 (Yonhap) -- South Korea's exports rose 4 percent in November, "
        "data showed Saturday.",
    ]
    assert pick_lead(paragraphs) == (
        "SEOUL, Nov. 28 (Yonhap) -- South Korea's exports rose 4 percent in November, "
        "data showed Saturday."
    )


def _article(path: Path) -> Article:
    clean = clean_text(path.read_text(encoding="utf-8"))
    return Article(title=clean.title, paragraphs=clean.paragraphs, source="test")


def _norm(text: str) -> str:
    return re.sub(r"\W+", " ", text).strip().lower()


def test_labeled_set_precision_recall_and_speakers():
    """Quote precision, recall and speaker accuracy over our own labeled articles."""
    assert len(LABELED) >= 60
    tp = fp = fn = right_speaker = leads = 0
    for path in LABELED:
        label = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        article = _article(path)
        leads += summarize(article).lead == label["lead"]
        found = {_norm(q.text): q.speaker for q in all_quotes(article)}
        expected = {_norm(q["text"]): q["speaker"] for q in label["quotes"]}
        tp += len(found.keys() & expected.keys())
        fp += len(found.keys() - expected.keys())
        fn += len(expected.keys() - found.keys())
        right_speaker += sum(found[k] == expected[k] for k in found.keys() & expected.keys())
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    speakers = right_speaker / tp
    print(
        f"lead {leads / len(LABELED):.3f} precision {precision:.3f} recall {recall:.3f} "
        f"speaker {speakers:.3f}"
    )
    # Thresholds sit just under the measured figures, so a regression fails.
    assert leads / len(LABELED) >= 0.95
    assert precision >= 0.95
    assert recall >= 0.95
    assert speakers >= 0.97


def test_top_quotes_are_full_sentences_from_named_speakers_on_the_seed():
    seed = next(SEED.glob("*.txt"), None)
    if seed is None:  # the seed lives beside the repository, in the shared folder (CI has it)
        pytest.skip(f"the seed article is not in this checkout's neighbour {SEED}")
    summary = summarize(_article(seed))
    assert summary.lead.startswith("Foreign Minister Cho Tae-yul expressed optimism")
    speakers = [q.speaker for q in summary.quotes]
    assert speakers == ["Foreign Minister Cho Tae-yul", "a foreign ministry official"]
    texts = " ".join(q.text for q in summary.quotes)
    assert "America First" not in texts and "24 hours" not in texts.split(".")[0]


def test_scare_quotes_and_titles_are_not_quotes():
    paragraphs = (
        'Critics called the plan "a gift to landlords" and the report "Roads to Nowhere" agreed.',
        'Marcus "The Hammer" Bell scored twice.',
        '"We earned this," said Coach Rita Vance.',
    )
    quotes = all_quotes(Article(title="t", paragraphs=paragraphs, source="s"))
    assert [(q.text, q.speaker) for q in quotes] == [("We earned this", "Coach Rita Vance")]


def test_a_single_short_opening_sentence_takes_the_next_paragraph():
    paragraphs = [
        "The harbor ferry is running again after a two-week halt.",
        "Repairs to the hull finished on Friday, the operator said, and the first crossing "
        "left at dawn on Saturday with forty passengers aboard.",
    ]
    assert pick_lead(paragraphs, budget=60) == " ".join(paragraphs)


def test_one_block_without_title_or_breaks_still_gets_a_lead():
    sentence = "The council voted on Monday to keep the old library open for another year"
    block = f"{sentence}, after a petition signed by 4,000 residents. " * 4 + "See more photos:"
    clean = clean_text(block)
    assert clean.title == "Untitled"
    lead = summarize(Article(title=clean.title, paragraphs=clean.paragraphs, source="t")).lead
    assert lead.startswith(sentence) and len(lead.split()) <= 60


def _quotes(*paragraphs: str) -> list[tuple[str, str | None]]:
    article = Article(title="t", paragraphs=paragraphs, source="s")
    return [(q.text, q.speaker) for q in all_quotes(article)]


def test_a_woven_quote_of_five_words_introduced_by_a_verb_is_a_quote():
    assert _quotes(
        "Sen. Maria Ostrowska, the committee's chair, called the delay "
        '"a failure of basic oversight" in a hearing on Tuesday.'
    ) == [("a failure of basic oversight", "Sen. Maria Ostrowska")]


def test_mixed_straight_and_curly_marks_pair_and_the_quote_goes_on_after_its_attribution():
    assert _quotes(
        "Tomas Reyna runs the ferry line.",
        '“We lost two weeks of sailings," Reyna said. "The boats are back, and so are the '
        "passengers.”",
    ) == [
        ("We lost two weeks of sailings", "Tomas Reyna"),
        ("The boats are back, and so are the passengers.", "Tomas Reyna"),
    ]


def test_the_sentence_before_a_quote_can_name_its_speaker():
    assert _quotes(
        "Dr. Ines Waldmann leads the clinic.",
        "Most patients recover within a month, Waldmann said. "
        '"Those who do not need a second look, and quickly."',
    ) == [("Those who do not need a second look, and quickly.", "Dr. Ines Waldmann")]


def test_the_subject_of_the_speech_verb_wins_over_a_nearer_name():
    quotes = _quotes(
        "Ana Pires and Rui Costa met the council on Monday.",
        "After the meeting with Rui Costa, Ana Pires said the plan was not finished. "
        '"We will be back in a month with the numbers."',
    )
    assert quotes == [("We will be back in a month with the numbers.", "Ana Pires")]


def test_a_title_case_line_is_never_the_speaker():
    assert _quotes(
        "The council met on Monday to discuss the harbor plan with residents.",
        "Mayor Ann Lee defended the plan.",
        "Harbor Plan Faces Vote",
        '"It will pass, and it will pay for itself within ten years," she said.',
    ) == [("It will pass, and it will pay for itself within ten years", "Mayor Ann Lee")]
