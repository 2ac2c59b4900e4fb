"""Summarizer throughput on one core: articles per second over ~800-word articles.

The articles are the labeled set in tests/fixtures/summaries, cleaned once; each is
extended with the paragraphs of the next ones until it has at least 800 words. The
reference run in the same process is one plain sentence-splitting pass over the same
text: the floor any summarizer has to pay.

    .venv/bin/python benchmarks/summarize.py
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from digest.collect.textclean import clean_text
from digest.models import Article
from digest.summarize import mentions, sentences, summarize
from digest.summarize.sentences import split_sentences

ROOT = Path(__file__).resolve().parent.parent
RUNS = 7


def load_articles(words: int = 800) -> list[Article]:
    """One article per labeled article: its paragraphs, then the next articles', to 800+."""
    cleaned = [
        clean_text(p.read_text(encoding="utf-8"))
        for p in sorted((ROOT / "tests" / "fixtures" / "summaries").glob("*.txt"))
    ]
    articles = []
    for i, first in enumerate(cleaned):
        paragraphs = list(first.paragraphs)
        k = 1
        while sum(len(p.split()) for p in paragraphs) < words:
            paragraphs.extend(cleaned[(i + k) % len(cleaned)].paragraphs)
            k += 1
        articles.append(Article(title=first.title, paragraphs=tuple(paragraphs), source="b"))
    return articles


def timed(work, articles) -> float:
    samples = []
    for _ in range(RUNS):
        start = time.perf_counter()
        for article in articles:
            # Each article is new to the summarizer, as in a real run: nothing cached
            # from another (these articles share padding paragraphs); a paragraph's split
            # is cached only within one article's work.
            clear_caches()
            work(article)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def clear_caches() -> None:
    sentences._split.cache_clear()
    mentions._names_in_run.cache_clear()
    mentions._title_words.cache_clear()
    mentions._is_org.cache_clear()


def main() -> None:
    articles = load_articles()
    words = statistics.mean(len(" ".join(a.paragraphs).split()) for a in articles)
    full = timed(summarize, articles)
    floor = timed(lambda a: [split_sentences(p) for p in a.paragraphs], articles)
    print(f"articles: {len(articles)}, mean words: {words:.0f}, runs: {RUNS} (median)")
    print(f"summarize:        {len(articles) / full:8.0f} articles/s  ({full * 1000:.1f} ms)")
    print(f"sentence pass:    {len(articles) / floor:8.0f} articles/s  ({floor * 1000:.1f} ms)")
    print(f"ratio summarize/sentence-pass time: {full / floor:.1f}x  (target: >= 300 articles/s)")


if __name__ == "__main__":
    main()
