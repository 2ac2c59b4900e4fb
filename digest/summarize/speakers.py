"""Who said it: resolve an attribution phrase to the fullest earlier mention.

An attribution names its speaker in one of four ways: a name ("Cho", "Sen. Paul Greer",
"Ms Holt"), a role ("the foreign minister", "the CEO"), a description of an unnamed source
("a foreign ministry official"), or a pronoun. Names resolve to the longest earlier
capitalised run that contains them, which carries the title written before the name
("Foreign Minister Cho Tae-yul"); roles resolve to the person or unnamed source introduced
with that role; pronouns to the person the story was just talking about.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from digest.summarize.sentences import split_sentences

SPEECH_VERBS = (
    r"said|says|say|told|tells|added|adds|noted|notes|explained|explains|stated|states|"
    r"argued|argues|insisted|insists|warned|warns|wrote|writes|asked|asks|recalled|recalls|"
    r"continued|continues|declared|acknowledged|acknowledges|admitted|admits|replied|"
    r"responded|stressed|stresses|emphasized|emphasised|remarked|observed|commented|"
    r"conceded|concedes|cautioned|claimed|claims|maintained|pointed out|points out|"
    r"concluded|announced|tweeted|posted|joked|laughed|urged|urges|suggested|suggests|"
    r"predicted|agreed|complained|reiterated|confirmed|confirms|vowed|pledged|countered|"
    r"shouted|whispered|sighed|went on"
)

_TOKEN = r"[A-Z][\w'’.&-]*"  # noqa: S105 (a capitalised word, not a secret)
_PARTICLE = r"(?:de|van|von|der|den|bin|al|da|di|du|la|le|ole|del|dos|das|y)"
_CAPITAL_RUN = re.compile(
    _TOKEN
    + r"(?: +(?:"
    + _TOKEN
    + r"|"
    + _PARTICLE
    + r"(?=\s+[A-Z])|\d+(?=\s+[A-Z])|of(?=\s+[A-Z][\w'’.-]*\s+[A-Z])))*"
)
# Capitalised words that start sentences or phrases without being part of a name.
_NOT_NAME = frozenset(
    """The A An But And Or So Yet Meanwhile However When While After Before Earlier Later
    On In At As If Also Then Still Last Next This That These Those Since Until Despite
    During Under Over For From With Without Among Asked Speaking According Officials Now
    His Her Their Its Our My Your Outside Inside Across Within Writing Separately Elsewhere
    Instead Indeed Although Though Because Once Where Why How What Who Whom Whose Both
    Many Most Some Several Few Each Every Not No Yes Under About Around Through Between
    There Here It He She They We I You Today Tonight Yesterday Tomorrow""".split()
)
_HONORIFICS = frozenset("Mr Mr. Mrs Mrs. Ms Ms. Miss Mx Mx. Messrs Messrs. Mme Mme.".split())
# Last words of organisations and places, never of a person's name.
_ORG_WORDS = frozenset(
    """Association Council Ministry Department Agency Office University College School
    Party Club Company Co. Co Inc. Inc Corp. Corp Ltd Ltd. Group Bank Court Hospital Committee
    Commission Institute Foundation Society Union Federation League Authority Service
    Services Board Government Parliament Assembly Senate House Congress Center Centre
    Museum Observatory Orchestra Police Army Navy Force Forces Times Post News Research
    Securities Partners Capital Holdings Airlines Motors Street Road Avenue Park City Town
    County State States Province Region Island Islands Bay River Lake Hall Square Station
    Airport Harbor Harbour Port Bridge Church Cathedral Stadium Arena United Rovers FC
    Summit Conference Games Cup Championship Championships Festival Reuters AP AFP Yonhap""".split()
)
_PRONOUNS = frozenset({"he", "she", "they", "i", "we", "it"})
_DETERMINERS = frozenset({"the", "his", "her", "their", "its", "our"})
_INTRO_PREPOSITIONS = frozenset(
    """in on at after before during outside inside across under with without from for
    speaking asked writing later earlier meanwhile separately elsewhere addressing
    responding""".split()
)
_TITLE_ABBREVIATIONS = {
    "gov.": "governor",
    "sen.": "senator",
    "rep.": "representative",
    "gen.": "general",
    "dr.": "doctor",
    "supt.": "superintendent",
    "lt.": "lieutenant",
    "prof.": "professor",
    "col.": "colonel",
    "capt.": "captain",
    "sgt.": "sergeant",
    "insp.": "inspector",
    "det.": "detective",
    "adm.": "admiral",
    "maj.": "major",
    "pres.": "president",
}
_SYNONYMS = {
    "ceo": ("chief executive", "executive", "ceo"),
    "executive": ("chief executive", "executive", "ceo"),
    "coach": ("coach", "manager"),
    "boss": ("manager", "coach", "boss"),
    "spokesman": ("spokesman", "spokesperson", "spokeswoman"),
    "spokeswoman": ("spokeswoman", "spokesperson", "spokesman"),
    "spokesperson": ("spokesperson", "spokeswoman", "spokesman"),
}
# Where a described speaker's phrase ends: a comma, or a time or setting after it.
_DESCRIPTION_END = re.compile(
    r",.*$|\s+(?:on|last|this|late|early|earlier|later)\s+(?:Monday|Tuesday|Wednesday|"
    r"Thursday|Friday|Saturday|Sunday|week|month|year|night|morning|afternoon|evening)\b.*$"
    r"|\s+(?:in a statement|in an interview|in a speech|during|after|before|when|while|as)\b.*$"
    r"|\s+(?:later|earlier|also|then|previously|described|declined|did not)\b.*$"
    r"|(?<!\bwho)\s+(?:" + SPEECH_VERBS + r")\b.*$",
    re.IGNORECASE,
)
_NAME_END = re.compile(
    r"\s+(?:on|in|at|during|to|after|before|as|when|while|who|which|of|from|with|via|"
    r"about|last|this)\b.*$"
)


@dataclass(frozen=True, slots=True)
class Mention:
    paragraph: int
    offset: int
    name: str  # a capitalised run, possessive owners and sentence openers removed

    @property
    def words(self) -> list[str]:
        return self.name.split()


def _clean_run(run: str) -> str:
    words = run.split()
    for i in range(len(words) - 1, -1, -1):
        if words[i].endswith(("'s", "’s", "s'", "s’")):
            words = words[i + 1 :]  # "South Korea's Foreign Minister Cho" -> the minister
            break
    while words and (words[0].rstrip(".,") in _NOT_NAME or words[0] in _HONORIFICS):
        words = words[1:]
    while words and words[-1] in {"of", "and"}:
        words = words[:-1]
    if words and words[-1].endswith(".") and len(words[-1].rstrip(".")) > 3:
        words[-1] = words[-1].rstrip(".")  # a sentence's full stop, not "Jr." or "J.R."
    return " ".join(words).rstrip(",")


def _is_org(name: str) -> bool:
    return name.split()[-1] in _ORG_WORDS if name else True


class Mentions:
    """Every capitalised run in an article, with where it occurs; built once per article."""

    def __init__(self, paragraphs: Sequence[str]) -> None:
        self.paragraphs = paragraphs
        self.starts: list[int] = []
        position = 0
        for paragraph in paragraphs:
            self.starts.append(position)
            position += len(paragraph) + 1
        self.text = "\n".join(paragraphs)
        self.mentions: list[Mention] = []
        for index, paragraph in enumerate(paragraphs):
            cursor = 0
            for sentence in split_sentences(paragraph):
                base = paragraph.find(sentence, cursor)
                cursor = base + len(sentence)
                for match in _CAPITAL_RUN.finditer(sentence):
                    name = _clean_run(match.group(0))
                    if name:
                        self.mentions.append(Mention(index, base + match.start(), name))
                    if " of " in name:  # "Derek Fong of Lassiter Capital" names a person too
                        owner = _clean_run(name.split(" of ")[0])
                        if owner:
                            self.mentions.append(Mention(index, base + match.start(), owner))
        people = [m.name for m in self.mentions if len(m.words) >= 2 and not _is_org(m.name)]
        self._person_words = {w for name in people for w in name.split()}

    def _before(self, paragraph: int, offset: int) -> list[Mention]:
        return [
            m
            for m in self.mentions
            if m.paragraph < paragraph or (m.paragraph == paragraph and m.offset < offset)
        ]

    def _context(self, paragraph: int, offset: int) -> str:
        return self.text[: self.starts[paragraph] + offset]

    def is_person(self, name: str) -> bool:
        if not name or _is_org(name) or not name[:1].isupper():
            return False
        words = name.split()
        return len(words) >= 2 or words[0] in self._person_words

    def fullest(self, name: str, paragraph: int, offset: int) -> str:
        """The longest earlier capitalised run that contains `name`'s words in order."""
        tokens = [w for w in name.split() if w not in _HONORIFICS]
        best = " ".join(tokens)
        for mention in self._before(paragraph, offset + len(name) + 1):
            words = mention.words
            if len(words) <= len(best.split()) or _is_org(mention.name):
                continue
            for i in range(len(words) - len(tokens) + 1):
                if words[i : i + len(tokens)] == tokens:
                    best = mention.name
                    break
        return best

    def subject_since(self, start: tuple[int, int], end: tuple[int, int]) -> str | None:
        """The person a stretch of narrative is about: the last sentence opening with one."""
        found: str | None = None
        for index in range(start[0], end[0] + 1):
            paragraph = self.paragraphs[index]
            lo = start[1] if index == start[0] else 0
            hi = end[1] if index == end[0] else len(paragraph)
            for sentence in split_sentences(paragraph[lo:hi]):
                if sentence[:1] in "\"“”‘'":
                    continue  # quoted speech is not narrative about its subject
                heads = [sentence]
                comma = sentence.find(",")
                if comma > 0 and len(sentence[:comma].split()) <= 5:
                    heads.append(sentence[comma + 1 :].lstrip())  # "Its chair, Ann Lee, said"
                for head in heads:
                    match = _CAPITAL_RUN.match(head)
                    name = _clean_run(match.group(0)) if match else ""
                    if self.is_person(name) and head.startswith(name.split()[0]):
                        found = self.fullest(name, index, paragraph.find(sentence, lo))
                        break
        return found

    def resolve_role(self, role: str, paragraph: int, offset: int) -> tuple[str, str] | None:
        """'the foreign minister' -> the person or unnamed source introduced in that role."""
        words = role.lower().replace("’", "'").split()
        head = re.sub(r"'s$", "", words[-1])
        heads = _SYNONYMS.get(head, (head,))
        context = self._context(paragraph, offset)
        candidates: list[tuple[int, str, str]] = []
        for mention in self._before(paragraph, offset):
            title = " ".join(
                _TITLE_ABBREVIATIONS.get(w.lower(), w.lower()) for w in mention.words[:-1]
            )
            if self.is_person(mention.name) and any(
                h in title.split() or (" " in h and h in title) for h in heads
            ):
                candidates.append(
                    (self.starts[mention.paragraph] + mention.offset, mention.name, "named")
                )
        lowered = context.lower()
        for h in heads:
            after, before, described = _role_patterns(h)
            # Only the text around each use of the role word can introduce it.
            for at in (m.start() for m in re.finditer(re.escape(h), lowered)):
                lo, hi = max(0, at - 240), min(len(context), at + 200)
                for pattern in (after, before):
                    for match in pattern.finditer(context, lo, hi):
                        person = _clean_run(match.group(1))
                        if self.is_person(person):
                            candidates.append((match.start(), person, "named"))
                for match in described.finditer(context, lo, hi):
                    phrase = _describe(match.group(0))
                    if len(phrase.split()) <= 14:
                        candidates.append((match.start(), phrase, "described"))
        if not candidates:
            return None
        _, speaker, kind = max(candidates)
        if kind == "named":
            speaker = self.fullest(speaker, paragraph, offset)
        return speaker, kind


@lru_cache(maxsize=256)
def _role_patterns(head: str) -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    """Patterns that introduce someone by a role word, compiled once per word.

    "Ann Lee, the bank's chief executive," / "Its chief executive, Ann Lee," name a person;
    "a senior official who ..." describes an unnamed one.
    """
    role_words = r"(?:[\w'’-]+\s+){0,5}?"
    name = rf"({_TOKEN}(?: +(?:{_TOKEN}|{_PARTICLE}))+)"
    owner = r"(?:[Tt]he|[Aa]n?|[Ii]ts|[Hh]is|[Hh]er|[Tt]heir|[\w.&-]+['’]s)"
    escaped = re.escape(head)
    head_ci = "".join(f"[{c.upper()}{c}]" if c.isalpha() else c for c in escaped)
    return (
        re.compile(rf"{name},\s+{owner}\s+{role_words}{head_ci}\b"),
        re.compile(rf"\b{owner}\s+{role_words}{head_ci},\s+{name}"),
        re.compile(
            rf"\b[Aa]n?\s+(?:[\w'’-]+\s+){{0,6}}?{escaped}s?\b"
            r"(?:[^,.;:\"“”]|(?<=\bSt)\.|(?<=\bDr)\.|(?<=\bMt)\.|(?<=\bNo)\.)*",
            re.IGNORECASE,
        ),
    )


_ANONYMITY = re.compile(
    r"\b(?:named|anonymity|identified|publicly|on the record|to the media|to the press)\b"
)


def _describe(phrase: str) -> str:
    """'A rescue worker who asked not to be named described ...' -> 'a rescue worker who ...'."""
    anonymous = _ANONYMITY.search(phrase)
    if anonymous:
        phrase = phrase[: anonymous.end()]
    phrase = _DESCRIPTION_END.sub("", phrase).strip()
    return phrase[:1].lower() + phrase[1:]


def _chunks(phrase: str) -> list[str]:
    """The comma-separated parts of an attribution phrase, intro phrases dropped."""
    parts: list[str] = []
    for raw in phrase.split(","):
        chunk = raw.strip()
        if not chunk:
            continue
        words = chunk.split()
        while words and words[0] in {"But", "And", "Yet", "So", "Still", "Also", "However"}:
            words = words[1:]
        if not words:
            continue
        if words[0].lower() in _INTRO_PREPOSITIONS and len(parts) == 0 and "," in phrase:
            continue  # "In a statement Sunday, Asare said" -> Asare
        parts.append(" ".join(words))
    return parts


def resolve_speaker(
    phrase: str,
    mentions: Mentions,
    paragraph: int,
    offset: int,
    *,
    last_speaker: str | None,
    narrative_from: tuple[int, int],
) -> tuple[str | None, str]:
    """The speaker an attribution phrase names, and how: named|described|pronoun|unknown."""
    chunks = _chunks(phrase)
    if not chunks:
        return None, "unknown"
    named = [c for c in chunks if c[:1].isupper() and c.split()[0] not in {"The", "A", "An"}]
    choice = next(
        (c for c in named if c.split()[0].lower() not in _PRONOUNS | _DETERMINERS), chunks[0]
    )
    lowered = choice.lower()
    first = lowered.split()[0]
    if lowered in _PRONOUNS:
        if lowered in {"it", "we", "they"}:
            return (last_speaker, "pronoun") if last_speaker else (None, "unknown")
        subject = mentions.subject_since(narrative_from, (paragraph, offset))
        if subject:
            return subject, "pronoun"
        return (last_speaker, "pronoun") if last_speaker else (None, "unknown")
    if first in {"a", "an"}:
        return _describe(choice), "described"
    if first in _DETERMINERS:
        role = _DESCRIPTION_END.sub("", choice).strip()
        resolved = mentions.resolve_role(role, paragraph, offset)
        if resolved:
            return resolved
        subject = mentions.subject_since(narrative_from, (paragraph, offset))
        if subject:
            return subject, "named"
        return role[0].lower() + role[1:], "described"
    name = _NAME_END.sub("", choice).strip(" .")
    if not name[:1].isupper():
        return None, "unknown"
    return mentions.fullest(name, paragraph, offset), "named"
