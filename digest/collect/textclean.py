"""Turn scraped plain text into headline, deck, byline and body paragraphs.

Scraped text carries photo captions (often twice), photo credits, bylines and site chrome
around the story, and sometimes a whole page of menus, share buttons, related stories,
comments and footers. Rather than listing one site's strings, each line is labelled
(`textlines`: prose or not, chrome family, credit ending, repetition) and weighed, and the
body is the contiguous run of lines with the highest score (a maximum-sum segment). The
headline, deck and byline are then read off the lines just above the body.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from digest.collect.textlines import (
    BULLET,
    COMMENTS_HEAD,
    POST_SIGNATURE,
    Kind,
    Line,
    byline_name,
    classify,
    is_prose,
    split_lines,
)
from digest.models import CleanText

_SEPARATORS = re.compile(r"[|›»>/·•]|\s-\s")
_TITLE_WORDS = 25  # no headline runs longer


def _weight(line: Line) -> float:
    match line.kind:
        case Kind.PROSE:
            return float(max(line.words, 3))
        case Kind.CAPTION | Kind.META:
            return -1.0
        case Kind.BYLINE:
            return -3.0
        case Kind.CHROME:
            # Mild: "Advertisement" or "Read more: ..." sit inside bodies too. What ends a
            # story is a breaker ("Related", "Comments") or a run of non-sentences.
            return -2.0
        case Kind.BREAKER:
            return -120.0
        case Kind.OTHER:
            return -(3.0 + line.words)


# Two paragraphs or more: enough to be the story rather than a share bar's teaser.
_STORY_WEIGHT = 40.0


def _opens_comments(line: Line) -> bool:
    return line.kind is Kind.BREAKER and bool(COMMENTS_HEAD.match(line.text))


def body_span(lines: Sequence[Line]) -> tuple[int, int]:
    """The [start, end) run of lines with the largest total weight: the story's body.

    Each further non-sentence in a row costs more than the one before: a crosshead inside a
    story is one line, a menu or a list of other stories' headlines is many.
    """
    best, best_span = 0.0, (0, 0)
    running, start = 0.0, 0
    in_row = 0
    for index, line in enumerate(lines):
        if running <= 0:
            running, start = 0.0, index
        in_row = in_row + 1 if line.kind in (Kind.OTHER, Kind.CHROME) else 0
        running += _weight(line) * min(in_row, 4) if in_row else _weight(line)
        if _opens_comments(line):
            if best >= _STORY_WEIGHT:
                break  # a story above the thread is the story, however long the thread
            running = 0.0  # and it never runs on into it
        if running > best:
            best, best_span = running, (start, index + 1)
    return best_span


def _after_byline(lines: Sequence[Line], start: int, end: int) -> tuple[int, int]:
    """Move the body's start past a byline or date line right at its top.

    A one- or two-sentence deck above the byline scores like prose, but the byline and the
    dateline are where the story begins.
    """
    prose = 0
    for index in range(start, min(end, start + 8)):
        kind = lines[index].kind
        if kind in (Kind.BYLINE, Kind.META):
            return index + 1, end
        if kind is Kind.PROSE:
            prose += 1
            if prose > 2:
                break
    return start, end


def _is_headline(line: Line) -> bool:
    return (
        line.kind is Kind.OTHER
        and 2 <= line.words <= _TITLE_WORDS
        and not _SEPARATORS.search(line.text)
        and any(ch.isalpha() for ch in line.text)
    )


def _read_head(lines: Sequence[Line], start: int) -> tuple[str | None, str | None, str | None]:
    """Headline, deck and byline: read upwards from the body's first line.

    Captions, dates, bylines, chrome and bare numbers are stepped over. A section label
    ("Local News", two or three words) above a headline ends the search, as does a menu.
    The headline is never a sentence; the deck under it may be one.
    """
    found: list[Line] = []
    byline: str | None = None
    for line in reversed(lines[:start]):
        if line.kind is Kind.BYLINE:
            byline = byline or byline_name(line.text)
            continue
        if line.kind in (Kind.CAPTION, Kind.META, Kind.CHROME) or not any(
            ch.isalpha() for ch in line.text
        ):
            continue
        if line.kind is Kind.BREAKER:
            if found:
                break
            continue  # a share bar's "Comments (3)" above the story
        is_deck = line.kind is Kind.PROSE and line.words <= 40 and not found
        if found and line.words <= 3:
            break  # a section label or a menu item above the headline
        if _is_headline(line) or is_deck:
            found.append(line)
            if len(found) == 2:
                break
        elif found:
            break
    found = [line for line in found if not (line.words <= 3 and len(found) > 1)]
    if found and found[-1].kind is Kind.PROSE:
        found.pop()  # a sentence is never the headline
    if not found:
        return None, None, byline
    if len(found) == 1:
        return found[0].text, None, byline
    return found[1].text, found[0].text, byline


_GAP_LINES = 8  # a box of other stories set inside the body is at most this long
_RESUMED_WEIGHT = 30.0  # and the story after it goes on for at least this much prose
_PENDING_LINES = 2  # short runs of sentences that may add up to that much
_SHORT_GAP_LINES = 3  # when each sits this close to the story (a tweet's two lines)


def _prose_run(lines: Sequence[Line], at: int, step: int) -> tuple[int, float]:
    """From `at`, the end (exclusive, in the direction of `step`) of a run of sentences."""
    total = 0.0
    while 0 <= at < len(lines) and lines[at].kind is Kind.PROSE:
        total += _weight(lines[at])
        at += step
    return at, total


def _resumed(lines: Sequence[Line], start: int, end: int) -> list[int]:
    """Lines of the story on the far side of a short box of other stories or a tweet.

    Sites set "More from UK" lists and embedded posts inside the story; the best run then
    holds only one side of them. A run of sentences just past a few non-sentences, long
    enough to be story rather than a teaser, is the same story going on. A short run (one
    sentence between a box and a tweet) counts together with the run past the next gap.
    """
    extra: list[int] = []
    for step in (1, -1):
        edge = end if step == 1 else start - 1
        pending: list[int] = []
        weight = 0.0
        while True:
            at, skipped = edge, 0
            while 0 <= at < len(lines) and lines[at].kind is not Kind.PROSE:
                if lines[at].kind in (Kind.BYLINE, Kind.META) and step == -1:
                    skipped = _GAP_LINES  # above a byline or dateline is the page's head
                if lines[at].kind is Kind.BREAKER and step == 1:
                    skipped = _GAP_LINES  # below "Comments" or "Related" the story is over
                at, skipped = at + step, skipped + 1
                if skipped > _GAP_LINES:
                    break
            if skipped > _GAP_LINES or not 0 <= at < len(lines):
                break
            stop, total = _prose_run(lines, at, step)
            pending.extend(range(at, stop, step))
            weight += total
            if weight >= _RESUMED_WEIGHT:
                extra.extend(pending)
                pending, weight = [], 0.0
            elif len(pending) > _PENDING_LINES or skipped > _SHORT_GAP_LINES:
                break
            edge = stop
    return sorted(extra)


def clean_text(text: str, extra_chrome: Sequence[re.Pattern[str]] = ()) -> CleanText:
    """Split scraped article text into title, subtitle, byline and body paragraphs."""
    raw = split_lines(text)
    lines = classify(raw, extra_chrome)
    counts = Counter(raw)
    start, end = _after_byline(lines, *body_span(lines))
    extra = _resumed(lines, start, end)
    before = [i for i in extra if i < start]
    after = [i for i in extra if i >= end]
    title, subtitle, byline = _read_head(lines, before[0] if before else start)
    paragraphs: list[str] = []
    seen: set[str] = set()
    chosen = [lines[i] for i in before] + list(lines[start:end]) + [lines[i] for i in after]
    for line in chosen:
        if line.kind is Kind.OTHER and _is_stray(line.text, counts):
            continue
        if line.kind in (Kind.PROSE, Kind.OTHER) and line.text not in seen:
            paragraphs.append(line.text)
            seen.add(line.text)
        elif line.kind is Kind.BYLINE and byline is None:
            byline = byline_name(line.text)
    while paragraphs and not _closes_story(paragraphs[-1]):
        paragraphs.pop()  # a trailing crosshead or label belongs to the chrome after it
    paragraphs = _without_copies(paragraphs)
    if not paragraphs:
        # No sentence-shaped run at all: a story pasted as one block that ends without a
        # stop. Its long lines are the story; none of them is a headline.
        paragraphs = [line.text for line in lines if line.words > _TITLE_WORDS]
    if title is None:
        first = next((line.text for line in lines if line.kind is not Kind.CHROME), "")
        long_line = len(first.split()) > _TITLE_WORDS
        title = first if first not in paragraphs and not long_line else "Untitled"
    return CleanText(title=title, subtitle=subtitle, byline=byline, paragraphs=tuple(paragraphs))


def _closes_story(text: str) -> bool:
    return is_prose(text) or bool(BULLET.match(text) or POST_SIGNATURE.match(text))


_URL = re.compile(r"^(?:https?://|www\.)\S+$")


def _is_stray(text: str, counts: Counter[str]) -> bool:
    """A non-sentence inside the body that is not the story's own crosshead.

    A headline or section label the page prints again elsewhere (a link to another story,
    a caption shown twice), a bare address, or a number.
    """
    return counts[text] > 1 or bool(_URL.match(text)) or not any(ch.isalpha() for ch in text)


def _without_copies(paragraphs: list[str]) -> list[str]:
    """Drop a page's second copy of its story: a teaser cut off with "..." that opens another
    paragraph, or one line that strings two other paragraphs together (a page's metadata)."""
    kept: list[str] = []
    for index, text in enumerate(paragraphs):
        others = paragraphs[:index] + paragraphs[index + 1 :]
        stem = text.rstrip(".…").rstrip()
        if (
            text.endswith(("...", "…"))
            and len(stem) > 20
            and any(o.startswith(stem) and o != text for o in others)
        ):
            continue
        if sum(1 for o in others if len(o) > 40 and o in text) >= 2:
            continue
        kept.append(text)
    return kept


def clean_extracted(text: str, extra_chrome: Sequence[re.Pattern[str]] = ()) -> CleanText:
    """Title and body of text a page extractor already cut out of its page.

    The extractor has dropped menus and side columns, so what is left is mostly story: only
    chrome, captions, bylines and dates inside it are removed, and a breaker ("Related",
    "Comments") ends it. The best-run search of `clean_text` would drop story sections
    separated by crossheads, tables or lists.
    """
    lines = classify(split_lines(text), extra_chrome)
    prose = next(
        (i for i, line in enumerate(lines) if line.kind is Kind.PROSE or _is_running(line)),
        len(lines),
    )
    # Above the first sentence: the headline (line 0), then perhaps a dateline or a kicker
    # the extractor kept as story.
    start = next(
        (i for i in range(1, prose) if lines[i].kind is Kind.OTHER and lines[i].words >= 2),
        prose,
    )
    title, subtitle, byline = _read_head(lines, start)
    paragraphs: list[str] = []
    seen: set[str] = set()
    for line in lines[start:]:
        if line.kind is Kind.BREAKER and paragraphs:
            break
        if line.kind in (Kind.PROSE, Kind.OTHER) and line.text not in seen:
            paragraphs.append(line.text)
            seen.add(line.text)
        elif line.kind is Kind.BYLINE and byline is None:
            byline = byline_name(line.text)
    # A trailing label or crosshead belongs to the chrome after it; a long line is story.
    while len(paragraphs) > 1 and not _ends_story(paragraphs[-1]):
        paragraphs.pop()
    if title is None:
        title = next((line.text for line in lines[:start] if _is_headline(line)), "Untitled")
    return CleanText(title=title, subtitle=subtitle, byline=byline, paragraphs=tuple(paragraphs))


def _is_running(line: Line) -> bool:
    """A line too long for a headline: running text, even without a final stop."""
    return line.kind is Kind.OTHER and line.words > _TITLE_WORDS


def _ends_story(text: str) -> bool:
    return is_prose(text) or bool(BULLET.match(text)) or len(text.split()) > 8
