"""Direct quotes and who said them.

A direct quote is a quoted span that stands as the speaker's own sentence: it opens a
paragraph or a sentence, follows a colon, or continues a quote the attribution split.
Fragments woven into the reporter's sentence -- scare quotes, titles, nicknames,
"end the war in 24 hours" -- are not quotes. The speaker comes from the attribution
beside the quote ("…," Cho said / said Cho / Cho said: "…" / according to …), and a
surname, a role or a pronoun is resolved to the fullest earlier mention.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from digest.models import Quote
from digest.summarize.sentences import split_sentences

_VERBS = (
    r"said|says|say|told|tells|added|adds|noted|notes|explained|explains|stated|states|"
    r"argued|argues|insisted|insists|warned|warns|wrote|writes|asked|asks|recalled|recalls|"
    r"continued|continues|declared|acknowledged|acknowledges|admitted|admits|replied|"
    r"responded|stressed|stresses|emphasized|emphasised|remarked|observed|commented|"
    r"conceded|concedes|cautioned|claimed|claims|maintained|pointed out|points out|"
    r"concluded|announced|tweeted|posted|joked|laughed|urged|urges|suggested|suggests|"
    r"predicted|agreed|complained|reiterated|confirmed|confirms|vowed|pledged|countered|"
    r"shouted|whispered|sighed|went on|said of|told reporters"
)
_VERB = r"(?:" + _VERBS + r")"
_PRONOUNS = {"he", "she", "they", "i", "we", "it"}
_LEAD_IN = re.compile(r"^[\s,.;:—–-]*")
# "…," said Cho Tae-yul, the minister.   /   "…," says the club's captain.
_VERB_FIRST = re.compile(r"^" + _VERB + r"\s+(?P<np>[^,.;:!?\"“”]{1,80})")
# "…," Cho said.   /   "…," the foreign minister noted.   /   "…," she added.
_SUBJECT_FIRST = re.compile(
    r"^(?P<np>[^\"“”.;:!?]{1,100}?)\s+(?:(?:also|later|then|once|had|has|have|would)\s+)?"
    + _VERB
    + r"\b"
)
_ACCORDING = re.compile(r"^according\s+to\s+(?P<np>[^,.;:!?\"“”]{1,80})", re.IGNORECASE)
# Cho said in a statement: "…"   /   The minister told reporters: "…"
_BEFORE_COLON = re.compile(
    r"(?:^|[.!?]\s+|,\s+)(?P<np>[A-Za-z][^.!?:\"“”]{0,80}?)\s+(?:(?:also|later|then)\s+)?"
    + _VERB
    + r"\b[^.!?:\"“”]{0,80}:\s*$"
)
_NP_STOP = re.compile(
    r"\s+(?:on|in|at|during|to|after|before|as|when|while|who|which|of|from|with|"
    r"via|about|last|this|on)\b.*$|,.*$"
)
_CAPITAL_SEQ = re.compile(
    r"(?:[A-Z][\w'’.-]*|(?<=\s)(?:de|van|von|der|bin|al|da|di|du|la|le)(?=\s+[A-Z]))"
    r"(?:\s+(?:[A-Z][\w'’.-]*|(?:de|van|von|der|bin|al|da|di|du|la|le)(?=\s+[A-Z])))*"
)
_SEQ_STOPWORDS = frozenset(
    """The A An But And Or So Yet Meanwhile However When While After Before Earlier Later
    On In At As If Also Then Still Last Next This That These Those Since Until Despite
    During Under Over For From With Without Among Asked Speaking According Officials
    His Her Their Its Our My Your Former Mr Mrs Ms Mr. Mrs. Ms.""".split()
)
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
    """A quote with where it sits and how confidently its speaker is known."""

    quote: Quote
    paragraph: int
    offset: int
    kind: str  # named | described | pronoun | unknown


def _uses_single_quotes(paragraphs: Sequence[str]) -> bool:
    text = "\n".join(paragraphs)
    doubles = sum(text.count(ch) for ch in '"“”')
    singles = len(re.findall(r"(?:^|(?<=[\s(—–:]))['‘](?=[A-Z0-9])", text, re.MULTILINE))
    return singles >= 2 and singles > doubles


def _is_opening(text: str, i: int, single: bool) -> bool:
    ch = text[i]
    if ch in "“‘":
        return not single or ch == "‘"
    before = text[i - 1] if i else " "
    after = text[i + 1] if i + 1 < len(text) else " "
    if single:
        return ch == "'" and not before.isalnum() and not after.isspace()
    return ch == '"'


def _is_closing(text: str, i: int, opener: str) -> bool:
    ch = text[i]
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
    marks = "'‘’" if single else '"“”'
    for i, ch in enumerate(paragraph):
        if ch not in marks:
            continue
        if opener is None:
            if _is_opening(paragraph, i, single):
                opener, start = ch, i
        elif _is_closing(paragraph, i, opener):
            spans.append(_Span(index, start, i + 1, paragraph[start + 1 : i], True))
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
    if before.endswith(":") or re.search(r"[.!?…][\"'”’)]*$", before):
        return True
    return after_attribution and before.endswith(",")


def _speaker_clause(suffix: str) -> tuple[str | None, str]:
    """The speaker phrase right after a quote, and what kind of phrase it is."""
    clause = _LEAD_IN.sub("", suffix)
    clause = re.split(r"(?<=[.!?])\s|[\"“”]", clause, maxsplit=1)[0]
    for pattern in (_ACCORDING, _VERB_FIRST, _SUBJECT_FIRST):
        match = pattern.match(clause)
        if match:
            np = _NP_STOP.sub("", match.group("np")).strip(" ,")
            if np and len(np.split()) <= 10:
                return np, pattern.pattern
    return None, ""


def _name_sequences(text: str) -> list[str]:
    """Capitalised runs of words (names with their titles), sentence by sentence."""
    found: list[str] = []
    for sentence in split_sentences(text):
        for match in _CAPITAL_SEQ.finditer(sentence):
            words = match.group(0).split()
            # Drop words before a possessive ("South Korea's Foreign Minister ...").
            for i in range(len(words) - 1, -1, -1):
                if words[i].endswith(("'s", "’s")):
                    words = words[i + 1 :]
                    break
            while words and words[0].rstrip(".") in _SEQ_STOPWORDS:
                words = words[1:]
            if words:
                found.append(" ".join(words).rstrip(".,"))
    return found


def _fullest_mention(name: str, context: str) -> str:
    tokens = name.split()
    best = name
    for seq in _name_sequences(context):
        seq_tokens = seq.split()
        for i in range(len(seq_tokens) - len(tokens) + 1):
            if seq_tokens[i : i + len(tokens)] == tokens:
                if len(seq_tokens) > len(best.split()):
                    best = seq
                break
    return best


def _resolve_role(role: str, context: str) -> str:
    """'the foreign minister' -> the person or anonymous source introduced with that role."""
    words = role.split()
    head = words[-1].lower().rstrip("'’s")
    # A named person whose capitalised title holds the role word.
    named = [
        seq
        for seq in _name_sequences(context)
        if len(seq.split()) >= 2 and head in (w.lower() for w in seq.split()[:-1])
    ]
    # "Ana Roldán, the finance minister," introduces a name by its role.
    appositive = list(
        re.finditer(
            r"([A-Z][\w'’.-]+(?:\s+[A-Z][\w'’.-]+)+),\s+(?:the|a|an)\s+(?:[\w'’-]+\s+){0,4}?"
            + re.escape(head)
            + r"\b",
            context,
        )
    )
    described = list(
        re.finditer(
            r"\b(?:a|an)\s+(?:[\w'’-]+\s+){0,4}?" + re.escape(head) + r"s?\b",
            context,
            re.IGNORECASE,
        )
    )
    candidates: list[tuple[int, str]] = []
    for seq in named:
        position = context.rfind(seq)
        candidates.append((position, seq))
    for match in appositive:
        candidates.append((match.start(), _fullest_mention(match.group(1), context)))
    for match in described[:1]:
        candidates.append((match.start(), match.group(0)[0].lower() + match.group(0)[1:]))
    if not candidates:
        return role
    return max(candidates)[1]


def _resolve(np: str, context: str, last_speaker: str | None) -> tuple[str | None, str]:
    lowered = np.lower()
    if lowered in _PRONOUNS:
        if lowered in {"it", "we", "i"} and last_speaker is None:
            return None, "unknown"
        if last_speaker:
            return last_speaker, "pronoun"
        people = [s for s in _name_sequences(context) if len(s.split()) >= 2]
        return (people[-1], "pronoun") if people else (None, "unknown")
    first = np.split()[0].lower()
    if first in {"a", "an"}:
        return np[0].lower() + np[1:], "described"
    if first in {"the", "his", "her", "their", "its"}:
        resolved = _resolve_role(np, context)
        kind = "named" if resolved[:1].isupper() else "described"
        return (resolved[0].lower() + resolved[1:] if kind == "described" else resolved), kind
    if not np[:1].isupper():
        return None, "unknown"
    return _fullest_mention(np, context), "named"


def find_quotes(paragraphs: Sequence[str]) -> list[Found]:
    """Every direct quote in the body, in order of appearance, with its speaker."""
    single = _uses_single_quotes(paragraphs)
    spans_by_paragraph = [_spans_in(p, i, single) for i, p in enumerate(paragraphs)]
    found: list[Found] = []
    last_speaker: str | None = None
    last_kind = "unknown"
    skip_until = -1
    for index, spans in enumerate(spans_by_paragraph):
        paragraph = paragraphs[index]
        context = "\n".join(paragraphs[: index + 1])
        paragraph_speaker: tuple[str | None, str] | None = None
        pending: list[Found] = []
        previous_end = 0
        attributed_before = False
        for span_no, span in enumerate(spans):
            if index <= skip_until and span_no == 0 and span.start == 0:
                previous_end = span.end
                continue
            prefix = paragraph[previous_end : span.start]
            text = _clean_quote_text(span.text)
            end_paragraph = index
            if not span.closed:
                text, end_paragraph = _continue_quote(paragraphs, spans_by_paragraph, span)
                skip_until = end_paragraph
            suffix = paragraphs[end_paragraph][span.end :] if end_paragraph == index else ""
            np, _ = _speaker_clause(suffix)
            if not np:
                colon = _BEFORE_COLON.search(prefix) or _BEFORE_COLON.search(
                    paragraph[: span.start]
                )
                np = _NP_STOP.sub("", colon.group("np")).strip() if colon else None
                np = _strip_intro(np) if np else None
            standalone = _is_standalone(prefix, attributed_before)
            if not standalone or not re.search(r"\w", text):
                previous_end = span.end
                attributed_before = False
                continue
            if not np and not _END_PUNCT.search(span.text.rstrip(",")) and span.closed:
                # "Green Loop" is the plan's name: a quoted noun phrase, not speech.
                after = _LEAD_IN.sub("", suffix)
                if after[:1].islower():
                    previous_end = span.end
                    continue
            speaker: str | None = None
            kind = "unknown"
            if np:
                speaker, kind = _resolve(np, context, last_speaker)
                paragraph_speaker = (speaker, kind)
            item = Found(Quote(text, speaker), index, span.start, kind)
            pending.append(item)
            attributed_before = np is not None
            previous_end = span.end
        for item in pending:
            if item.quote.speaker is None:
                if paragraph_speaker is not None:
                    item.quote = Quote(item.quote.text, paragraph_speaker[0])
                    item.kind = paragraph_speaker[1]
                elif item.offset == 0 and last_speaker is not None:
                    # A quote paragraph of its own continues the previous speaker.
                    item.quote = Quote(item.quote.text, last_speaker)
                    item.kind = last_kind
            if item.quote.speaker:
                last_speaker, last_kind = item.quote.speaker, item.kind
            found.append(item)
    return found


def _strip_intro(np: str) -> str:
    words = np.split()
    while len(words) > 1 and words[0].rstrip(",") in _SEQ_STOPWORDS and words[0] not in {"The"}:
        words = words[1:]
    return " ".join(words)


def _continue_quote(
    paragraphs: Sequence[str], spans_by_paragraph: Sequence[Sequence[_Span]], span: _Span
) -> tuple[str, int]:
    """Join a quote left open at a paragraph's end with the paragraphs that reopen it."""
    parts = [span.text.strip()]
    index = span.paragraph
    while index + 1 < len(paragraphs):
        following = spans_by_paragraph[index + 1]
        if not following or following[0].start != 0:
            break
        index += 1
        parts.append(following[0].text.strip())
        if following[0].closed:
            break
    return _clean_quote_text(" ".join(parts)), index


def rank_quotes(found: Sequence[Found], limit: int) -> list[Quote]:
    """The `limit` most telling quotes: full sentences, named speakers, spread, early."""
    scored: list[tuple[float, int, Found]] = []
    for order, item in enumerate(found):
        words = len(item.quote.text.split())
        score = {"named": 3.0, "described": 2.5, "pronoun": 2.0, "unknown": 0.0}[item.kind]
        score += 2.0 if 10 <= words <= 60 else 1.0 if 5 <= words < 10 or words > 60 else -2.0
        score += 1.0 if _END_PUNCT.search(item.quote.text) else 0.0
        score -= 0.15 * item.paragraph
        scored.append((score, order, item))
    chosen: list[Found] = []
    speakers: set[str | None] = set()
    remaining = sorted(scored, key=lambda t: (-t[0], t[1]))
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
