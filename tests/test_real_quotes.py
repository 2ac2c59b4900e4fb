"""Quotes and speakers on real copy: true article bodies from many outlets, labeled by hand.

The bodies stay in ../shared/corpus/pages (ground-truth.json); the repository keeps only the
labels in tests/fixtures/real_quotes.json: each quote's character span in its body and its
speaker. A quote counts when it has five words or more, on both sides. A found quote matches
a labeled one when their words are the same; its speaker is right when it holds every word of
the labeled name (a title in front, "Sen. Ben Sasse" for "Ben Sasse", is fine).
"""

from __future__ import annotations

import json
import re

import pytest

from digest.models import Article
from digest.summarize import all_quotes
from tests.conftest import FIXTURES, REPO

PAGES = REPO.parent / "shared" / "corpus" / "pages"
LABELS = FIXTURES / "real_quotes.json"
MIN_WORDS = 5


def _words(text: str) -> tuple[str, ...]:
    return tuple(re.findall(r"\w+", text.lower()))


def _article(body: str) -> Article:
    paragraphs = tuple(line.strip() for line in body.splitlines() if line.strip())
    return Article(title="", paragraphs=paragraphs, source="real")


def measure() -> dict[str, float]:
    """Precision, recall and speaker accuracy of `all_quotes` over the labeled real bodies."""
    truth = json.loads((PAGES / "ground-truth.json").read_text(encoding="utf-8"))
    labels = json.loads(LABELS.read_text(encoding="utf-8"))["pages"]
    tp = fp = fn = named = right = 0
    for key, quotes in labels.items():
        body = truth[key]["articleBody"]
        expected = {_words(body[q["span"][0] : q["span"][1]]): q["speaker"] for q in quotes}
        found = {
            _words(q.text): q.speaker
            for q in all_quotes(_article(body))
            if len(q.text.split()) >= MIN_WORDS
        }
        hits = found.keys() & expected.keys()
        tp, fp, fn = tp + len(hits), fp + len(found.keys() - hits), fn + len(expected.keys() - hits)
        for words in hits:
            label = expected[words]
            if label is None:
                continue  # the article names nobody: nothing to get right
            named += 1
            right += set(_words(label)) <= set(_words(found[words] or ""))
    return {
        "pages": len(labels),
        "quotes": tp + fn,
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "speaker": right / named if named else 0.0,
    }


def test_labels_are_enough_and_point_at_quotes():
    labels = json.loads(LABELS.read_text(encoding="utf-8"))["pages"]
    assert len(labels) >= 40
    if not PAGES.exists():
        pytest.skip(f"the real pages are not beside the checkout ({PAGES} is missing)")
    truth = json.loads((PAGES / "ground-truth.json").read_text(encoding="utf-8"))
    for key, quotes in labels.items():
        body = truth[key]["articleBody"]
        for quote in quotes:
            start, end = quote["span"]
            assert body[start - 1] in "\"“'‘", (key, start)  # a span starts inside its marks
            assert len(body[start:end].split()) >= MIN_WORDS, (key, start)


def test_real_copy_precision_recall_and_speakers():
    if not PAGES.exists():
        pytest.skip(f"the real pages are not beside the checkout ({PAGES} is missing)")
    figures = measure()
    print(
        f"real copy: {figures['pages']} pages, {figures['quotes']} quotes: "
        f"precision {figures['precision']:.3f} recall {figures['recall']:.3f} "
        f"speaker {figures['speaker']:.3f}"
    )
    # Thresholds sit just under the measured figures, so a regression fails.
    assert figures["precision"] >= 0.97
    assert figures["recall"] >= 0.94
    assert figures["speaker"] >= 0.92
