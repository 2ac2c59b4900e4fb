"""Summarize: pick an article's lead paragraph and its key quotes. Pure, no I/O."""

from __future__ import annotations

from digest.models import Article, Quote, Summary
from digest.summarize.lead import pick_lead
from digest.summarize.quotes import find_quotes, rank_quotes

__all__ = ["all_quotes", "summarize"]


def summarize(article: Article, *, lead_words: int = 60, quotes: int = 2) -> Summary:
    """The lead (within `lead_words`) and the `quotes` most telling quotes, best first."""
    lead = pick_lead(article.paragraphs, lead_words)
    found = [f for f in find_quotes(article.paragraphs) if f.quote.text not in lead]
    return Summary(lead=lead, quotes=tuple(rank_quotes(found, quotes)))


def all_quotes(article: Article) -> list[Quote]:
    """Every direct quote with its speaker, in order of appearance."""
    return [found.quote for found in find_quotes(article.paragraphs)]
