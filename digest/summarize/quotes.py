"""Direct quotes and who said them.

A direct quote is a quoted span that stands as the speaker's own sentence: it opens a
paragraph or a sentence, follows a colon, or continues a quote the attribution split.
Fragments woven into the reporter's sentence -- scare quotes, titles, nicknames,
"end the war in 24 hours" -- are not quotes. A paragraph that opens a quote without
closing it continues into the next paragraph that reopens one. The speaker comes from the
attribution beside the quote ("…," Cho said / said Cho / Cho said: "…" / according to …)
and is resolved by `speakers.py`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from digest.models import Quote
from digest.summarize.lexicon import SPEECH_VERBS, SpeakerKind
from digest.summarize.mentions import Mentions
from digest.summarize.sentences import split_sentences
from digest.summarize.speakers import resolve_speaker

# After a quote, "described" and "comments" attribute it too ("…," the patient described).
_VERB = r"(?:" + SPEECH_VERBS + r"|described|comments)"
_LEAD_IN = re.compile(r"^[\s,;—–-]*")
# "…," said Cho Tae-yul, the minister.   /   "…," says the club's captain.
_VERB_FIRST = re.compile(r"^" + _VERB + r"\s+(?P<np>[^;:!?\"“”]{1,160})", re.IGNORECASE)
# "…," Cho said.   /   "…," the foreign minister noted.   /   "…," she added.
_SUBJECT_FIRST = re.compile(
    r"^(?P<np>[^\"“”;:!?]{1,160}?)(?<!\bwho)\s+(?:(?:also|later|then|once|had|has|have|would)\s+)?"
    + _VERB
    + r"\b"
)
_ACCORDING = re.compile(r"^according\s+to\s+(?P<np>[^;:!?\"“”]{1,160})", re.IGNORECASE)
# Cho said in a statement: "…"   /   The minister told reporters: "…"
_BEFORE_COLON = re.compile(
    r"^(?P<np>.{1,160}?)(?<!\bwho)\s+(?:(?:also|later|then)\s+)?" + _VERB + r"\b[^:\"“”]{0,80}:\s*$"
)
# A quote woven into the reporter's sentence is still the speaker's words when a speech verb
# introduces it: 'Sasse called his death "a crisis of public trust"', 'said that "…"',
# 'saying, "…"'. The subject before the verb is the speaker.
_INTRODUCER = re.compile(
    r"^(?P<np>[^\"“”]{1,160})(?<!\bwho)\s+(?:(?:also|later|then|once|had|has|have|would|"
    r"\w+ly)\s+)?(?:" + SPEECH_VERBS + r"|called|calls|described|describes|saying|telling|"
    r"warning|claim|cautions|urging|boasting|related|comments|according to)\b"
    r"(?P<rest>[^\"“”]{0,160})$"
)
# After a participle ("…, saying") the subject is the one the sentence opens with.
_PARTICIPLE = re.compile(r",\s+(?:saying|telling|warning|urging|adding)\b[^\"“”]*$")
_ACCORDING_OPENING = re.compile(r"^According to (?P<np>[^,\"“”]{2,80}),")
_PARTIAL_WORDS = 5  # shorter woven-in quotes are scare quotes and labels
# The sentence before a quote that reports speech: 'The tuft cell, Herbert said, is …'.
_SAID_IN = re.compile(
    r"(?:^|,\s+)(he|she|[A-Z][\w'’.-]+(?:\s+[A-Z][\w'’.-]+){0,3})\s+(?:"
    + SPEECH_VERBS
    + r")(?=[\s.,])"
)
_SINGLE_MARKS = re.compile("['‘’]")
# Some sites close a double quote with two apostrophes.
_DOUBLE_MARKS = re.compile('’’|["“”]')
_CLOSERS = {'"': '"', "“": "”", "'": "'", "‘": "’"}
_END_PUNCT = re.compile(r"[.!?…\-—–]$")


@dataclass(slots=True)
class _Span:
    paragraph: int
    start: int  # index of the opening mark
    end: int  # index just past the closing mark, or the paragraph's end when left open
    text: str
    closed: bool


@dataclass(slots=True)
class Found:
    """A quote with where it sits and how its speaker is known."""

    quote: Quote
    paragraph: int
    offset: int
    kind: SpeakerKind
    woven: bool = False  # inside the reporter's sentence: the narrative goes on around it


# A double-quoted span of four words or more: speech, where single marks hold names.
_DOUBLE_SPAN = re.compile(r"[\"“]([^\"“”\n]{1,600})[\"”]")


_SINGLE_MARK = re.compile(r"['‘](?=[A-Z0-9])")


def _uses_single_quotes(paragraphs: Sequence[str]) -> bool:
    text = "\n".join(paragraphs)
    doubles = sum(text.count(ch) for ch in '"“”')
    # Most copy settles it by counting alone: too few single marks to be the house style.
    if text.count("'") + text.count("‘") <= max(doubles, 1):
        return False
    singles = sum(
        1
        for mark in _SINGLE_MARK.finditer(text)
        if not mark.start() or text[mark.start() - 1].isspace() or text[mark.start() - 1] in "(—–:"
    )
    # Double-quote house styles still put single marks round names and scare words; a
    # double-quoted paragraph opening is speech, so it settles the style.
    opens_double = re.search(r"^[\"“]", text, re.MULTILINE) is not None
    long_doubles = sum(1 for span in _DOUBLE_SPAN.findall(text) if len(span.split()) >= 4)
    return singles >= 2 and singles > doubles and not opens_double and long_doubles < 2


def _is_opening(text: str, i: int, single: bool) -> bool:
    ch = text[i]
    if ch == "“":
        return not single
    if ch == "‘":
        return single
    before = text[i - 1] if i else " "
    after = text[i + 1] if i + 1 < len(text) else " "
    if single:
        return ch == "'" and not before.isalnum() and not after.isspace()
    # Copy often mixes straight and curly marks: a straight one opens where a word follows it.
    return ch == '"' and (not before.isalnum() or i == 0) and not after.isspace()


def _is_closing(text: str, i: int, opener: str) -> bool:
    ch = text[i]
    if opener in '"“':
        if ch == "“" or text.startswith("’’", i):
            return ch != "“"
        before = text[i - 1] if i else " "
        after = text[i + 1] if i + 1 < len(text) else " "
        # A straight mark with a space before and a word after opens the next quote.
        return ch == "”" or not (before.isspace() and after.isalnum())
    if ch != _CLOSERS[opener] and not (opener in "'‘" and ch in "'’"):
        return False
    if opener in "'‘":
        before = text[i - 1] if i else " "
        after = text[i + 1] if i + 1 < len(text) else " "
        # An apostrophe inside a word (don't, Korea's) does not close a quote.
        return not before.isspace() and not after.isalnum()
    return True


def _spans_in(paragraph: str, index: int, single: bool) -> list[_Span]:
    spans: list[_Span] = []
    opener: str | None = None
    start = 0
    for mark in (_SINGLE_MARKS if single else _DOUBLE_MARKS).finditer(paragraph):
        i, ch = mark.start(), mark.group()
        if opener is None:
            if _is_opening(paragraph, i, single):
                opener, start = ch, i
        elif _is_closing(paragraph, i, opener):
            spans.append(_Span(index, start, mark.end(), paragraph[start + 1 : i], True))
            opener = None
    if opener is not None:
        spans.append(_Span(index, start, len(paragraph), paragraph[start + 1 :], False))
    return spans


def _clean_quote_text(text: str) -> str:
    return text.strip().removesuffix(",").strip()


def _is_standalone(prefix: str, after_attribution: bool) -> bool:
    before = prefix.rstrip()
    if not before:
        return True
    if before.endswith((":", "(")) or re.search(r"[.!?…][\"'”’)]*$", before):
        return True
    return after_attribution and before.endswith(",")


def _phrase_after(suffix: str) -> str | None:
    """The attribution phrase right after a quote: '," Cho said.' -> 'Cho'."""
    clause = _LEAD_IN.sub("", suffix)
    clause = re.split(r"[\"“”]", clause, maxsplit=1)[0]
    sentences = split_sentences(clause)
    clause = sentences[0] if sentences else ""
    for pattern in (_ACCORDING, _VERB_FIRST, _SUBJECT_FIRST):
        match = pattern.match(clause)
        if match:
            phrase = match.group("np").strip().rstrip(".")
            if phrase and len(phrase.split()) <= 25:
                return phrase
    return None


_TAIL_CHARS = 400  # the last sentence before a quote lies within this many characters


def _tail(text: str) -> str:
    """The end of a paragraph's text before a quote: splitting all of it is wasted work."""
    return text[-_TAIL_CHARS:].strip()


def _phrase_before(prefix: str) -> str | None:
    """The attribution before a colon: 'Cho said in a statement: "' -> 'Cho'."""
    sentences = split_sentences(_tail(prefix))
    if not sentences:
        return None
    match = _BEFORE_COLON.match(sentences[-1])
    return match.group("np").strip() if match else None


_OPENING_SUBJECT = re.compile(
    r"(?:^|,\s+)(he|she|[A-Z][\w'’.-]+(?:\s+[A-Z][\w'’.-]+){0,3})\s+[a-z]+ed\b"
)


def _narrative_subject(prefix: str) -> str | None:
    """The subject of the sentence just before a quote: he, she or a name.

    A sentence that reports speech ("…, Dempsey said.") names the speaker of the quote
    after it; otherwise its opening subject does.
    """
    sentences = split_sentences(_tail(prefix))
    if not sentences or not _END_PUNCT.search(sentences[-1]):
        return None
    match = _SAID_IN.search(sentences[-1]) or _OPENING_SUBJECT.search(sentences[-1])
    return match.group(1) if match else None


def _introduced_by(before: str, text: str) -> str | None:
    """The subject of the speech verb that introduces a quote inside a sentence, if any."""
    if len(text.split()) < _PARTIAL_WORDS or _is_title_like(text):
        return None
    sentences = split_sentences(_tail(before))
    if not sentences:
        return None
    sentence = sentences[-1]
    # An earlier quote in the sentence ('… as "exciting," but cautions that "…"'): the
    # clause after it introduces this one; its subject is the sentence's.
    earlier = max(sentence.rfind(mark) for mark in '"“”')
    if earlier >= 0:
        clause = sentence[earlier + 1 :]
        introduced = _INTRODUCER.match(clause)
        # Only a verb right before the quote ("but cautions that") counts after another quote.
        if introduced is None or not re.fullmatch(
            r"\s*(?:that)?\s*,?\s*", introduced.group("rest")
        ):
            return None
        subject = _clause_subject(introduced.group("np").strip(" ,"))
        if subject.lower() in {"", "but", "and", "or", "then"}:
            opening = re.match(r"^(?P<np>[^,\"“”]{1,80}?)\s+[a-z]+(?:ed|es|s)\b", sentence)
            return opening.group("np") if opening else subject
        return subject
    participle = _PARTICIPLE.search(sentence)
    if participle:
        sentence = sentence[: participle.start()] + " said"
    # The last speech verb before the quote is the one that introduces it.
    according = _ACCORDING_OPENING.match(sentence)
    if according:
        return according.group("np")  # "According to the man, the steroids "…""
    match = _INTRODUCER.match(sentence) if not participle else None
    if participle:
        opening = re.match(r"^(?P<np>[^,\"“”]{1,80}?)\s+[a-z]+ed\b", sentence)
        return opening.group("np") if opening else sentence[: participle.start()]
    return _clause_subject(match.group("np").strip(" ,")) if match else None


_TAIL_SUBJECT = re.compile(
    r"(?:^|\s)(?P<s>he|she|they|it|we|I|(?:[A-Z][\w'’.-]*\s+){0,3}[A-Z][\w'’.-]*)(?:\s+to)?$"
)


def _clause_subject(phrase: str) -> str:
    """The subject right before the verb: 'Amid …, abandoning likes allowed Mosseri to' ->
    'Mosseri'. An appositive ('…, the president of X') or a tag ('R-Neb.') is left to the
    speaker resolver, which looks at every part."""
    last = phrase.rsplit(",", 1)[-1].strip()
    first = last.split()[0].lower() if last else ""
    if (
        not last
        or first in {"the", "a", "an", "his", "her", "its", "their"}
        or re.search(r"\d|^[A-Z]-[A-Z]", last)
    ):
        return phrase
    match = _TAIL_SUBJECT.search(last)
    return match.group("s") if match else phrase


_MINOR_WORDS = frozenset("a an and as at by for from in into of on or the to with".split())


def _is_title_like(text: str) -> bool:
    """'Takin' It To the Streets': a title, its words capitalised, not speech."""
    words = [w for w in text.split() if w[:1].isalpha() and w.lower() not in _MINOR_WORDS]
    capitals = sum(1 for w in words if w[:1].isupper())
    return bool(words) and capitals >= 0.7 * len(words) and not _END_PUNCT.search(text)


def _continue_quote(
    paragraphs: Sequence[str], spans_by_paragraph: Sequence[Sequence[_Span]], span: _Span
) -> tuple[str, _Span]:
    """Join a quote left open at a paragraph's end with the paragraphs that reopen it."""
    parts = [span.text.strip()]
    last = span
    while last.paragraph + 1 < len(paragraphs) and not last.closed:
        following = spans_by_paragraph[last.paragraph + 1]
        if not following or following[0].start != 0:
            break
        last = following[0]
        parts.append(last.text.strip())
    return _clean_quote_text(" ".join(parts)), last


def _is_speech(span: _Span, text: str, suffix: str, has_speaker: bool) -> bool:
    """A quoted noun phrase at a sentence start ("Green Loop" is ...) is not speech."""
    if has_speaker or not span.closed or _END_PUNCT.search(span.text.rstrip(",")):
        return True
    return not _LEAD_IN.sub("", suffix)[:1].islower()


def find_quotes(paragraphs: Sequence[str]) -> list[Found]:
    """Every direct quote in the body, in order of appearance, with its speaker."""
    single = _uses_single_quotes(paragraphs)
    spans_by_paragraph = [_spans_in(p, i, single) for i, p in enumerate(paragraphs)]
    mentions = Mentions(paragraphs)
    found: list[Found] = []
    last_speaker: str | None = None
    last_kind: SpeakerKind = "unknown"
    narrative_from = (0, 0)  # where the text since the previous quote begins
    consumed: set[tuple[int, int]] = set()  # spans already joined into an earlier quote
    for index, spans in enumerate(spans_by_paragraph):
        paragraph = paragraphs[index]
        paragraph_speaker: tuple[str | None, SpeakerKind] | None = None
        pending: list[Found] = []
        previous_end = 0
        attributed_before = False
        for span in spans:
            if (index, span.start) in consumed:
                previous_end = span.end
                continue
            prefix = paragraph[previous_end : span.start]
            text = _clean_quote_text(span.text)
            last = span
            if not span.closed:
                text, last = _continue_quote(paragraphs, spans_by_paragraph, span)
                consumed.update((s.paragraph, s.start) for s in [last])
                for between in range(span.paragraph + 1, last.paragraph):
                    consumed.add((between, 0))
            suffix = paragraphs[last.paragraph][last.end :] if last.closed else ""
            phrase = None if text.endswith(".") and not single else _phrase_after(suffix)
            phrase = phrase or _phrase_before(paragraph[: span.start])
            if not re.search(r"\w", text):
                previous_end, attributed_before = span.end, False
                continue
            woven = not _is_standalone(prefix, attributed_before)
            if woven:
                introducer = _introduced_by(paragraph[: span.start], text)
                attributed = phrase is not None and len(text.split()) >= _PARTIAL_WORDS
                if introducer is None and not (attributed and span.closed):
                    previous_end, attributed_before = span.end, False
                    continue
                phrase = introducer or phrase  # the verb before it beats a clause after
            if not _is_speech(last, text, suffix, phrase is not None):
                previous_end = span.end
                continue
            speaker: str | None = None
            kind: SpeakerKind = "unknown"
            if phrase is None and span.start > 0 and not attributed_before:
                # 'Asked whether ..., she smiled. "Eight years ago ..."' -- the narrative
                # sentence right before an unattributed quote names who speaks.
                phrase = _narrative_subject(paragraph[previous_end : span.start])
            if phrase:
                speaker, kind = resolve_speaker(
                    phrase,
                    mentions,
                    index,
                    span.start,
                    last_speaker=last_speaker,
                    narrative_from=narrative_from,
                )
                paragraph_speaker = (speaker, kind)
            pending.append(Found(Quote(text, speaker), index, span.start, kind, woven))
            attributed_before = phrase is not None
            previous_end = span.end
            if not woven:
                narrative_from = (last.paragraph, last.end)
        for item in pending:
            if item.quote.speaker is None:
                if paragraph_speaker is not None and paragraph_speaker[0]:
                    item.quote = Quote(item.quote.text, paragraph_speaker[0])
                    item.kind = paragraph_speaker[1]
                elif item.offset == 0 and last_speaker is not None:
                    # A quote paragraph of its own continues the previous speaker.
                    item.quote = Quote(item.quote.text, last_speaker)
                    item.kind = last_kind
            if item.quote.speaker and not item.woven:
                last_speaker, last_kind = item.quote.speaker, item.kind
            found.append(item)
    return found


# Named people first; a statement from an organisation says less than a person's words.
_KIND_SCORE = {"named": 3.0, "described": 2.5, "pronoun": 2.5, "organisation": 1.5}


def rank_quotes(found: Sequence[Found], limit: int) -> list[Quote]:
    """The `limit` most telling quotes: full sentences, named speakers, spread, early."""
    scored: list[tuple[float, int, Found]] = []
    for order, item in enumerate(found):
        words = len(item.quote.text.split())
        score = _KIND_SCORE.get(item.kind, 0.0)
        score += 2.0 if 10 <= words <= 60 else 1.0 if 5 <= words < 10 or words > 60 else -2.0
        score += 1.0 if _END_PUNCT.search(item.quote.text) else 0.0
        score -= 0.15 * item.paragraph
        scored.append((score, order, item))
    chosen: list[Found] = []
    speakers: set[str | None] = set()
    remaining = list(scored)
    while remaining and len(chosen) < limit:
        # Prefer a new voice: a repeated speaker loses two points against the rest.
        best = max(
            remaining,
            key=lambda t: (t[0] - (2.0 if t[2].quote.speaker in speakers else 0.0), -t[1]),
        )
        remaining.remove(best)
        chosen.append(best[2])
        speakers.add(best[2].quote.speaker)
    return [item.quote for item in chosen]
