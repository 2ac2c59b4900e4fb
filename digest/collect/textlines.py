"""The line model of scraped text: what each line of a page is.

Scraped text is split into lines (rejoining text wrapped at a fixed width), and each line
is labelled on signals -- prose or not, chrome family, credit ending, repetition -- as
prose, a non-sentence (headline, deck, menu item, crosshead), a photo caption, a byline, a
date line, site chrome, or a breaker after which the story is over ("Related",
"Comments"). A line is labelled first by itself, then by its neighbours: a bio under an
"About <name>" head, a newsletter box's pitch, a list of other stories, an embedded post.
`textclean` finds the story's body among the labelled lines.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

_QUOTE_CLOSERS = "\"'”’»)]"
# CJK text ends its sentences with full-width stops; Hindi with a danda, Arabic and Urdu
# with their own question mark and full stop, Amharic, Burmese and Armenian with theirs.
# Blogs end sentences with "~" or an emoji too.
_TERMINAL = re.compile(
    r"(?:[.!?…:;。！？．।॥؟۔።။։][" + re.escape(_QUOTE_CLOSERS) + r"」』]*"
    r"|[~\u2600-\u27bf\U0001f300-\U0001faff]+)$"
)
BULLET = re.compile(r"^(?:[-•*–·▪●]|\d{1,2}[.)])\s+\S")

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
COMMENTS_HEAD = re.compile(
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


def split_lines(text: str) -> list[str]:
    """The text's non-empty lines, normalized, with lines wrapped at a fixed width rejoined."""
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
    if not line[:1].islower() or _TERMINAL.search(previous) or BULLET.match(line):
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
    elif short and (_BREAKERS.match(text) or COMMENTS_HEAD.match(text)):
        kind = Kind.BREAKER
    elif _is_chrome(text, short):
        kind = Kind.CHROME
    elif _IMAGE_LABEL.match(text) or (
        _has_credit(text) and not _looks_like_quote_or_attribution(text)
    ):
        kind = Kind.CAPTION
    elif repeated and text in neighbours and not BULLET.match(text):
        kind = Kind.CAPTION  # photo captions are printed twice in a row
    elif words <= 12 and (_is_byline(text) or _BYLINE_ROLE.match(text)):
        kind = Kind.BYLINE
    elif words <= 12 and _DATE_LINE.match(text):
        kind = Kind.META
    elif is_prose(text) or BULLET.match(text):
        kind = Kind.PROSE
    else:
        kind = Kind.OTHER
    return Line(text, kind, words)


def _is_byline(text: str) -> bool:
    """ "By Ana Lindgren", not a sentence opening "By noon, ..." or "By the time ..."."""
    match = _BYLINE.match(text)
    return match is not None and match.group("name")[:1].isupper()


def byline_name(text: str) -> str:
    """The name in a byline line: "By Ana Lindgren | Staff" is "Ana Lindgren"."""
    match = _BYLINE.match(text) or _BYLINE_ROLE.match(text)
    name = match.group("name") if match else text
    return name.strip(" ,.")


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
POST_SIGNATURE = re.compile(
    r"^[—–-]\s*.{1,80}\(@\w{1,30}\)\s+" + _MONTH + r"\s+\d{1,2},\s+\d{4}$", re.IGNORECASE
)


def _embedded_posts(out: list[Line]) -> None:
    """An embedded post quoted in the story, and its signature, are part of the story."""
    for index, line in enumerate(out):
        if line.kind is Kind.OTHER and POST_SIGNATURE.match(line.text):
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
