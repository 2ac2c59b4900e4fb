"""The lead: the article's own opening, within a word budget, cut only between sentences."""

from __future__ import annotations

import re
from collections.abc import Sequence

from digest.summarize.sentences import split_sentences

# Paragraphs that sit above a story without being part of it.
_NOT_STORY = re.compile(
    r"^(?:editor'?s note\b|updated\b|update\b|published\b|posted\b|listen to this\b"
    r"|correction\b|clarification\b|subscribe\b|sign up\b|advertisement\b|read more\b"
    r"|this (?:article|story) (?:was|has been|is)\b|by [A-Z][\w.'’-]+(?: [A-Z][\w.'’-]+){0,3}$"
    r"|\(?(?:photo|image|video)\b)",
    re.IGNORECASE,
)
# Wire-service labels inside an opening: "(LEAD)", "(2nd LD)", "(URGENT)", "[UPDATED]".
_WIRE_LABEL = re.compile(
    r"\s*[(\[](?:LEAD|URGENT|UPDATE[D]?|CORRECTED|REFILE|RECASTS?|BREAKING|"
    r"\d+(?:st|nd|rd|th)\s+LD(?:[^)\]]{0,40})?|EDITORS?:[^)\]]{0,120})[)\]]\s*"
)
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*$")
TEASER_WORDS = 18
SHORT_SENTENCE_WORDS = 25
_BLOCK_CHARS = 120  # a block this long is story text even without a final stop
_CJK_STOP = re.compile(r"(?<=[。！？])")


def is_story_paragraph(text: str) -> bool:
    """Body copy, not a note, label, prompt or crosshead."""
    return bool(_SENTENCE_END.search(text)) and not _NOT_STORY.match(text)


def strip_wire_labels(text: str) -> str:
    """Drop agency labels but keep the dateline: 'SEOUL, Nov. 28 (Yonhap) -- (LEAD) X' -> ..."""
    return _WIRE_LABEL.sub(" ", text).strip()


def _words(text: str) -> int:
    return len(text.split())


def _fit(sentences: Sequence[str], budget: int, used: int = 0) -> list[str]:
    taken: list[str] = []
    for sentence in sentences:
        if used + _words(sentence) > budget and (taken or used):
            break
        taken.append(sentence)
        used += _words(sentence)
    return taken


def pick_lead(paragraphs: Sequence[str], budget: int = 60) -> str:
    """The first story paragraph, trimmed to whole sentences within `budget` words.

    A one-line teaser or a question hook is followed by the next paragraph, as far as the
    budget allows.
    """
    story = [p for p in paragraphs if is_story_paragraph(p)]
    if not story:
        # One block of text that ends without a stop (a feed entry, a pasted story) still
        # opens with sentences: take them.
        story = [p for p in paragraphs if len(p) >= _BLOCK_CHARS and not _NOT_STORY.match(p)]
    if not story:
        return ""
    first = strip_wire_labels(story[0])
    sentences = [part for s in split_sentences(first) for part in _CJK_STOP.split(s) if part]
    taken = _fit(sentences, budget)
    if len(taken) < len(sentences):
        return " ".join(taken)
    # A single short sentence opens many stories without carrying them: the next paragraph
    # goes with it, as far as the budget allows.
    single = len(sentences) == 1 and _words(first) < SHORT_SENTENCE_WORDS
    # A quote paragraph after a full one-sentence opening stays a quote, shown as one.
    quoted = len(story) > 1 and story[1][:1] in "\"“‘'"
    teaser = _words(first) < TEASER_WORDS or first.rstrip("\"'”’").endswith("?")
    is_hook = teaser or (single and not quoted)
    if is_hook and len(story) > 1:
        more = _fit(split_sentences(story[1]), budget, _words(first))
        if more:
            return " ".join([first, *more])
    return first
