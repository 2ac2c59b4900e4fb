"""Turn scraped plain text into headline, deck, byline and body paragraphs.

Scraped text carries photo captions (often twice), photo credits, bylines and site chrome
around the story, and sometimes a whole page of menus, share buttons, related stories,
comments and footers. Rather than listing one site's strings, each line is scored on
signals -- prose or not, chrome family, credit ending, repetition -- and the body is the
contiguous run of lines with the highest score (a maximum-sum segment). The headline,
deck and byline are then read off the lines just above the body.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from digest.models import CleanText

_QUOTE_CLOSERS = "\"'”’»)]"
# CJK text ends its sentences with full-width stops; Hindi with a danda, Arabic and Urdu
# with their own question mark and full stop, Amharic, Burmese and Armenian with theirs.
# Blogs end sentences with "~" or an emoji too.
_TERMINAL = re.compile(
    r"(?:[.!?…:;。！？．।॥؟۔።။։][" + re.escape(_QUOTE_CLOSERS) + r"」』]*"
    r"|[~\u2600-\u27bf\U0001f300-\U0001faff]+)$"
)
_BULLET = re.compile(r"^(?:[-•*–·▪●]|\d{1,2}[.)])\s+\S")

# Photo credits at the end of a caption, after the caption's own sentence.
_AGENCIES = (
    r"Yonhap|Reuters(?:-Yonhap)?|AP(?: Photo(?:/[\w .'-]+)?)?|AFP(?:/Getty Images)?|"
    r"Getty Images(?: for [\w .'-]+)?|EPA(?:-EFE)?|Newsis|News1|Xinhua|Kyodo|Bloomberg|"
    r"Shutterstock|Joint Press Corps|Pool|Anadolu|NurPhoto|Sipa|Alamy|Imago|dpa|"
    r"[\w .'-]{2,40} file(?: photo)?"
)
_CREDIT_END = re.compile(
    r"(?:(?<=[.!?)\"”’])\s+(?:" + _AGENCIES + r")\s*$)"  # "... Tuesday. Yonhap"
    r"|(?:\s/\s*(?:Courtesy of|Photo by|Photo courtesy of)\s[^/]{2,80}$)"  # "... / Courtesy of X"
    r"|(?:(?<=[.!?)\"”’])\s+(?:Courtesy of|Photo by|Photo courtesy of|Photo:)\s[^.]{2,60}$)"
    r"|(?:\((?:Photo|Image|Credit|Photograph)\s*(?::|by|/)\s*[^)]{2,60}\)\s*$)"
    r"|(?:\((?:" + _AGENCIES + r")(?:/[\w .'-]+)?\)\s*$)"  # "... Tuesday. (AP Photo/Jane Doe)"
    r"|(?:(?<=[.!?)\"”’])\s+(?:staff|file|pool|AP|Reuters)\s+photo(?:graph)?\s+by\s[^.]{2,60}$)",
    re.IGNORECASE,
)
# A caption's trailing credit we do not know by name: a sentence, then a few capitalised
# words with no sentence punctuation ("... on Friday. Harbor Authority").
_GENERIC_CREDIT_END = re.compile(r"[a-z0-9][.!?]\s+(?:[A-Z][\w&'-]*\s?){1,4}$")

_BYLINE = re.compile(
    r"^(?:by|written by|words by)\s+(?P<name>[^|•·,]+?(?:,\s*[^|•·,]+?)*)"
    r"(?:\s*[|•·]\s*.*|,\s*(?:staff|senior|special|chief)?\s*(?:reporter|writer|"
    r"correspondent|editor).*)?$",
    re.IGNORECASE,
)
_BYLINE_ROLE = re.compile(
    r"^(?P<name>[A-Z][\w.'’-]+(?:\s+[A-Z][\w.'’-]+){1,3}(?:\s+and\s+[A-Z][\w.'’-]+"
    r"(?:\s+[A-Z][\w.'’-]+){1,3})?),\s*(?:staff|senior|special|chief|contributing)?\s*"
    r"(?:reporter|writer|correspondent|editor)s?\b.*$",
    re.IGNORECASE,
)

_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_DATE_LINE = re.compile(
    r"^(?:(?:updated|published|posted|last updated|first published|modified)\b.{0,60}"
    r"|(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*,?\s+" + _MONTH + r"\s+\d{1,2}.{0,40}"
    r"|" + _MONTH + r"\s+\d{1,2},?\s+\d{4}.{0,30}"
    r"|\d{4}[-./]\d{1,2}[-./]\d{1,2}.{0,30}"
    r"|\d+\s+(?:min|minute|hour|day)s?(?:\s+(?:ago|read))?)$",
    re.IGNORECASE,
)

# Lines after which the story is over: lists of other stories, comments, footers.
_BREAKERS = re.compile(
    r"^(?:related(?:\s+(?:articles?|stories|news|content|coverage|links|topics|reading)"
    r"(?:\s+(?:from|on|about|in)\b.*)?)?"
    r"|more\s+(?:stories|news|from\b.*|on\s+this\s+(?:story|topic))|other\s+(?:stories|news)"
    r"|recommended(?:\s+(?:for you|stories|articles))?|you\s+(?:may|might)\s+also\s+like.*"
    r"|most\s+(?:read|popular|viewed|shared|commented|emailed)|trending(?:\s+now)?"
    r"|top\s+(?:\d+|ten|five)\s+(?:stories|news|articles)|editors?['’]?s?\s+picks?|latest\s+news"
    r"|comments?(?:\s*\(\d+\))?|\d+\s+comments?|about\s+the\s+authors?|(?:leave|post|add|write)\s+a\s+(?:comment|reply)"
    r"|about\s+us|contact\s+us|privacy\s+policy|terms\s+of\s+(?:service|use)|cookie\s+policy"
    r"|site\s*map|advertise\s+with\s+us)[:.]?$",
    re.IGNORECASE,
)
_CHROME = re.compile(
    r"^(?:sign\s+up\b.*|subscribe\b.*|.*\bnewsletters?\b.{0,40}|get\s+the\s+app.*"
    r"|share(?:\s+(?:this|on|via|or|the|your|to)\b.*)?|print(?:\s+this\b.*)?|e-?mail(?:\s+this\b.*)?"
    r"|tweet|save|copy\s+link\b.*|[\d,.]+k?\s+(?:shares?|views?|reads?)|listen(?:\s+to\s+this\s+(?:article|story)).*"
    r"|click\s+(?:to|here)\b.*|read\s+more\b.*|see\s+also\b.*|also\s+read\b.*|watch\b:.*|advert(?:isement)?\b.*|ad|sponsored.*"
    r"|breaking(?:\s+news)?\s*:.*|trending\s*:.*|live\s*:.*|watch\s+live|closings?\s+&\s+delays"
    r"|(?:log|sign)\s+in|(?:log|sign)\s+out|register|menu|search|home|skip\s+to\s+.*"
    r"|follow\s+(?:us|(?:\w+\s+){1,4}on)\b.*|listen\s+to\s+(?:\w+\s+){1,3}live\b.*|back\s+to\s+top|font\s+size.*|text\s+size.*"
    r"|our\s+standards\b.*|editor'?s\s+note\b.*|correction\b:.*|(?:reporting|editing|writing)\s+by\b.*"
    r"|.*\ball rights reserved\b.*|(?:©|\(c\)|copyright\b).*)$",
    re.IGNORECASE,
)
# Photo labels that some sites print as text: "Image copyright Getty Images", "Image caption …".
_IMAGE_LABEL = re.compile(
    r"^(?:image|photo|picture|media)\s+(?:copyright|caption|credit|source)\b", re.IGNORECASE
)
# Cookie banners and consent boxes, whatever their length.
_COOKIES = re.compile(
    r"\bcookies?\b.{0,200}\b(?:website|browser|consent|opt[- ]out|privacy|experience)\b"
    r"|\b(?:website|browser|consent|privacy)\b.{0,200}\bcookies?\b",
    re.IGNORECASE,
)
# The head of a comment thread: "34 responses to ...", "Permalink 34 Comments".
_COMMENTS_HEAD = re.compile(
    r"^(?:\d+\s+(?:responses?|comments?|replies|thoughts)\s+(?:to|on)\b"
    r"|.*\bcomments?\s+feed\b|permalink\b.*\bcomments?\b|(?:view|show|load)\s+\d*\s*comments?\b)",
    re.IGNORECASE,
)
# An author's bio box: "About Jane Doe" / "Sobre Carlos Nadalim" over a paragraph about them.
_BIO_HEAD = re.compile(
    r"^(?i:about|sobre|über|à propos de|a proposito di)\s+"
    r"[A-ZÀ-Þ][\w'’-]+(?:\s+[A-ZÀ-Þ][\w'’-]+){0,2}$"
)
# A commenter's handle before the date of the comment: "joetoronto says:".
_COMMENTER = re.compile(r"^\S+(?:\s\S+){0,3}\s+(?:says|said|wrote|commented)\s*:?$")
_LABEL_ONLY = re.compile(
    r"^(?:read\s+more|see\s+also|also\s+read|related(?:\s+\w+)?|more|watch|listen)\s*[:.]?$",
    re.IGNORECASE,
)
_SIGNUP = re.compile(r"^(?:sign\s+up|subscribe|get\s+our|join)\b|newsletter", re.IGNORECASE)
_SEPARATORS = re.compile(r"[|›»>/·•]|\s-\s")
_TITLE_WORDS = 25  # no headline runs longer
_RUNNING_WORDS = 20  # a line longer than this, mostly in lower case, is running text
_SHORT_CHROME_WORDS = 14  # chrome patterns only apply to short lines (or copyright lines)
_ATTRIBUTION_WORDS = ("said", "says", "told", "added", "according")


class Kind(Enum):
    PROSE = "prose"
    OTHER = "other"  # not a sentence: headline, deck, menu item, crosshead
    CAPTION = "caption"
    BYLINE = "byline"
    META = "meta"  # date and update lines
    CHROME = "chrome"
    BREAKER = "breaker"


@dataclass(frozen=True, slots=True)
class Line:
    text: str
    kind: Kind
    words: int


# A drop cap flattened apart from its word: "T he Davis Cup began ..." ("A" and "I" are words).
_DROP_CAP = re.compile(r"^([B-HJ-Z]) (?=[a-z]{1,12}\b)")


def _normalize(text: str) -> str:
    text = unicodedata.normalize("NFC", text).replace("\u00a0", " ").replace("\u200b", "")
    return _DROP_CAP.sub(r"\1", re.sub(r"[ \t]+", " ", text).strip())


_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")


def _count_words(text: str) -> int:
    """Words, where Chinese, Japanese and Korean count about two characters a word."""
    words = len(text.split())
    if text.isascii():
        return words
    return max(words, len(_CJK.findall(text)) // 2)


def _split_lines(text: str) -> list[str]:
    lines: list[str] = []
    for line in (_normalize(raw) for raw in text.splitlines()):
        if not line:
            continue
        # Text wrapped at a fixed width breaks sentences mid-way; a line that ends without
        # a stop, followed by one that goes on in lower case, is the same paragraph.
        if lines and _is_wrapped(lines[-1], line):
            lines[-1] = f"{lines[-1]} {line}"
        else:
            lines.append(line)
    return lines


def _is_wrapped(previous: str, line: str) -> bool:
    if not line[:1].islower() or _TERMINAL.search(previous) or _BULLET.match(line):
        return False
    return len(previous.split()) >= 6 or previous.endswith((",", "-", "–"))


def _reads_as_prose(text: str, words: int) -> bool:
    """A long line of running text that lacks a final stop (a blog's "!!", "~" or emoji)."""
    if words <= _RUNNING_WORDS:
        return False
    lower = sum(1 for word in text.split() if word[:1].islower())
    return lower >= 0.5 * words


def is_prose(text: str) -> bool:
    """A sentence-like line: ends with sentence punctuation (or a closing quote)."""
    return bool(_TERMINAL.search(text)) and _count_words(text) >= 2


def _has_credit(text: str) -> bool:
    if _CREDIT_END.search(text):
        return True
    return len(text.split()) >= 6 and bool(_GENERIC_CREDIT_END.search(text))


def _looks_like_quote_or_attribution(text: str) -> bool:
    lowered = text.lower()
    return any(ch in text for ch in '"“”') or any(w in lowered for w in _ATTRIBUTION_WORDS)


# A newsletter box speaks to the reader about their inbox; a story rarely does so briefly.
_SIGNUP_PITCH = re.compile(
    r"\b(?:subscrib\w*|newsletters?|sign(?:ed)?\s+up|unsubscribe)\b.*\b(?:e-?mail|inbox|you|your)\b"
    r"|\b(?:e-?mail|inbox|you|your)\b.*\b(?:subscrib\w*|newsletters?|sign(?:ed)?\s+up)\b",
    re.IGNORECASE,
)


# How to reach the reporter, under the story: "… may be reached at jdoe@example.com".
_CONTACT = re.compile(
    r"\b(?:reach|reached|contact|e-?mail|follow|write\s+to)\b.*(?:\S@\S+\.[a-z]{2,}|\s@\w{2,})",
    re.IGNORECASE,
)
# The author's bio under the story: "Jane Doe is a staff writer at the Post covering ...".
_BIO_SENTENCE = re.compile(
    r"^[A-ZÀ-Þ][\w'’.-]+(?:\s+[A-ZÀ-Þ][\w'’.-]+){1,2}\s+is\s+(?:a|an|the)\s"
    r"(?i:(?:[\w'’-]+\s+){0,4}(?:writer|reporter|editor|correspondent|columnist|contributor|"
    r"journalist)s?\s+(?:at|for|with|of)\s)"
)


def _is_chrome(text: str, short: bool) -> bool:
    words = len(text.split())
    if _COOKIES.search(text) or (words <= 25 and _SIGNUP_PITCH.search(text)):
        return True
    if (words <= 30 and _CONTACT.search(text)) or (words <= 80 and _BIO_SENTENCE.match(text)):
        return True
    return (short or text.startswith(("©", "Copyright", "Editor"))) and bool(_CHROME.match(text))


def classify(lines: Sequence[str], extra_chrome: Sequence[re.Pattern[str]] = ()) -> list[Line]:
    """Label each line with what it most likely is: first alone, then by its neighbours."""
    counts = Counter(lines)
    out = [
        _label(
            text, [*lines[index - 1 : index], *lines[index + 1 : index + 2]], counts, extra_chrome
        )
        for index, text in enumerate(lines)
    ]
    rules = (_bio_and_comment_heads, _signup_pitches, _labelled_links, _embedded_posts, _teasers)
    # Running lines go last: whether one follows a sentence depends on the rules before.
    for rule in (*rules, _running_lines):
        rule(out)
    return out


def _label(
    text: str,
    neighbours: Sequence[str],
    counts: Counter[str],
    extra_chrome: Sequence[re.Pattern[str]],
) -> Line:
    """What one line is by itself (and whether it repeats the line beside it)."""
    words = _count_words(text)
    short = words <= _SHORT_CHROME_WORDS
    repeated = counts[text] > 1 and words >= 4
    kind: Kind
    if any(p.search(text) for p in extra_chrome):
        kind = Kind.CHROME
    elif short and (_BREAKERS.match(text) or _COMMENTS_HEAD.match(text)):
        kind = Kind.BREAKER
    elif _is_chrome(text, short):
        kind = Kind.CHROME
    elif _IMAGE_LABEL.match(text) or (
        _has_credit(text) and not _looks_like_quote_or_attribution(text)
    ):
        kind = Kind.CAPTION
    elif repeated and text in neighbours and not _BULLET.match(text):
        kind = Kind.CAPTION  # photo captions are printed twice in a row
    elif words <= 12 and (_is_byline(text) or _BYLINE_ROLE.match(text)):
        kind = Kind.BYLINE
    elif words <= 12 and _DATE_LINE.match(text):
        kind = Kind.META
    elif is_prose(text) or _BULLET.match(text):
        kind = Kind.PROSE
    else:
        kind = Kind.OTHER
    return Line(text, kind, words)


def _is_byline(text: str) -> bool:
    """ "By Ana Lindgren", not a sentence opening "By noon, ..." or "By the time ..."."""
    match = _BYLINE.match(text)
    return match is not None and match.group("name")[:1].isupper()


def _relabel(out: list[Line], index: int, kind: Kind) -> None:
    out[index] = Line(out[index].text, kind, out[index].words)


def _bio_and_comment_heads(out: list[Line]) -> None:
    """An "About <name>" head over a bio naming them, a commenter over a date: page ends."""
    for index in range(len(out) - 1):
        following = out[index + 1]
        names = out[index].text.split()[1:]
        if (
            _BIO_HEAD.match(out[index].text)
            and following.kind is Kind.PROSE
            and any(word in following.text for word in names)
        ) or _is_bio(out[index], following):
            _relabel(out, index, Kind.BREAKER)
        if _COMMENTER.match(out[index].text) and following.kind is Kind.META:
            _relabel(out, index, Kind.BREAKER)


# An author's name over their bio: "Jane Doe" / "Jane joined the paper in 2017 and covers ...".
_PERSON_LINE = re.compile(r"^[A-ZÀ-Þ][\w'’.-]+(?:\s+[A-ZÀ-Þ][\w'’.-]+){1,3}$")
_BIO_CUE = re.compile(
    r"\b(?:joined|is\s+an?|has\s+been|writes|covers|reporters?|editors?|authors?|"
    r"journalists?|correspondents?|contributors?|columnists?|freelance)\b"
)


def _is_bio(line: Line, following: Line) -> bool:
    """A bare name over a paragraph that opens with that name and says what they do."""
    if line.kind is not Kind.OTHER or not _PERSON_LINE.match(line.text):
        return False
    names = line.text.split()
    opening = following.text.split(maxsplit=1)[0] if following.text else ""
    return (
        following.kind is Kind.PROSE
        and following.words <= 80
        and opening in (names[0], names[-1])
        and bool(_BIO_CUE.search(following.text))
    )


def _signup_pitches(out: list[Line]) -> None:
    """A newsletter box's pitch line belongs to the box."""
    for index in range(1, len(out)):
        line, previous = out[index], out[index - 1]
        if (
            line.kind is Kind.PROSE
            and line.words <= 25
            and previous.kind is Kind.CHROME
            and _SIGNUP.search(previous.text)
        ):
            _relabel(out, index, Kind.CHROME)


def _labelled_links(out: list[Line]) -> None:
    """A bare "Read more" / "Related" label points at the headline on the next line."""
    for index in range(len(out) - 1):
        label = out[index].kind in (Kind.CHROME, Kind.BREAKER) and _LABEL_ONLY.match(
            out[index].text
        )
        if label and out[index + 1].kind is Kind.OTHER:
            _relabel(out, index + 1, Kind.CHROME)


_TEASER_PAIRS = 4  # a list of other stories shows at least this many
_TEASER_WORDS = 25  # blurbs are one short sentence or two


def _is_teaser_pair(out: Sequence[Line], index: int) -> bool:
    """A short headline over a one-sentence blurb, with no more story under it."""
    if index + 1 >= len(out):
        return False
    head, blurb = out[index], out[index + 1]
    after = out[index + 2] if index + 2 < len(out) else None
    return (
        head.kind is Kind.OTHER
        and head.words <= 8
        and blurb.kind is Kind.PROSE
        and blurb.words <= _TEASER_WORDS
        and (after is None or after.kind is not Kind.PROSE)
    )


def _teasers(out: list[Line]) -> None:
    """A run of headline-and-blurb pairs is a list of other stories, not story sections.

    A story's subhead is followed by paragraphs; a list of other stories gives each headline
    one blurb, several times in a row.
    """
    index = 0
    while index < len(out):
        end = index
        while _is_teaser_pair(out, end):
            end += 2
        if (end - index) // 2 >= _TEASER_PAIRS:
            for at in range(index, end):
                _relabel(out, at, Kind.CHROME)
            index = end
        else:
            index += 1


# The signature under an embedded tweet: "— Jane Doe (@janedoe) November 19, 2019".
_POST_SIGNATURE = re.compile(
    r"^[—–-]\s*.{1,80}\(@\w{1,30}\)\s+" + _MONTH + r"\s+\d{1,2},\s+\d{4}$", re.IGNORECASE
)


def _embedded_posts(out: list[Line]) -> None:
    """An embedded post quoted in the story, and its signature, are part of the story."""
    for index, line in enumerate(out):
        if line.kind is Kind.OTHER and _POST_SIGNATURE.match(line.text):
            _relabel(out, index, Kind.PROSE)
            if index and out[index - 1].kind is Kind.OTHER and out[index - 1].words >= 3:
                _relabel(out, index - 1, Kind.PROSE)


def _running_lines(out: list[Line]) -> None:
    """A long line of running text after a sentence is story, even without a final stop.

    Blogs end sentences with "!!", a smiley or nothing at all. A caption of the same length
    sits above the story's first paragraph, or among headlines and menus.
    """
    for index in range(1, len(out)):
        line = out[index]
        if (
            line.kind is Kind.OTHER
            and _reads_as_prose(line.text, line.words)
            and out[index - 1].kind is Kind.PROSE
        ):
            _relabel(out, index, Kind.PROSE)


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
    return line.kind is Kind.BREAKER and bool(_COMMENTS_HEAD.match(line.text))


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


def _byline_name(text: str) -> str:
    match = _BYLINE.match(text) or _BYLINE_ROLE.match(text)
    name = match.group("name") if match else text
    return name.strip(" ,.")


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
            byline = byline or _byline_name(line.text)
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
    raw = _split_lines(text)
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
            byline = _byline_name(line.text)
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
    return is_prose(text) or bool(_BULLET.match(text) or _POST_SIGNATURE.match(text))


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
    lines = classify(_split_lines(text), extra_chrome)
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
            byline = _byline_name(line.text)
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
    return is_prose(text) or bool(_BULLET.match(text)) or len(text.split()) > 8
