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
from bisect import bisect_left
from collections.abc import Iterator, Sequence
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
    r"shouted|whispered|sighed|went on|testified|testifies|reported|recounted|asserted|asserts|"
    r"alleged|alleges|boasted"
)

# Any capital letter, not only A-Z: "Élodie", "Ørsted", "Ñúñez".
_UP = "[" + "".join(re.escape(chr(c)) for c in range(0x2FF) if chr(c).isupper()) + "]"
_TOKEN = _UP + r"[\w'’.&-]*"  # a capitalised word
_PARTICLE = r"(?:de|van|von|der|den|bin|al|da|di|du|la|le|ole|del|dos|das|y)"
_CAPITAL_RUN = re.compile(
    _TOKEN
    + r"(?:(?: +|"
    # a list inside a name: "Ministry of Agriculture, Food and Rural Affairs"
    + rf",\s+(?={_UP}[\w'’.-]*(?:\s+{_UP}[\w'’.-]*)?\s+and\s+{_UP}[\w'’.-]*(?:\s+{_UP}[\w'’.-]*)*"
    + r"(?:\s+(?:said|says|told|announced|has|had|is|was|will|would)\b|[.,;]|$)))(?:"
    + _TOKEN
    + r"|"
    + _PARTICLE
    + rf"(?=\s+{_UP})|\d+(?=\s+{_UP})|(?:of|and|for)(?=\s+{_UP})))*"
)
# Capitalised words that start sentences or phrases without being part of a name.
_NOT_NAME = frozenset(
    """The A An But And Or So Yet Meanwhile However When While After Before Earlier Later
    On In At As If Also Then Still Last Next This That These Those Since Until Despite
    During Under Over For From With Without Among Asked Speaking According Officials Now
    His Her Their Its Our My Your Outside Inside Across Within Writing Separately Elsewhere
    Instead Indeed Although Though Because Once Where Why How What Who Whom Whose Both
    Many Most Some Several Few Each Every Not No Yes Under About Around Through Between
    There Here It He She They We I You Today Tonight Yesterday Tomorrow Pressed Reached
    Responding Addressing Interviewed Contacted Shares Residents Members Workers Analysts
    Investors Police Students Parents Fans Supporters Critics Experts Researchers Scientists
    Leaders Voters Customers Users Employees Staff Doctors Nurses Teachers Farmers Families
    Hundreds Thousands Millions Dozens Owners Tenants Citizens Lawmakers Prosecutors Lawyers
    Even Noting Critically Amid Audience
    Opponents Protesters Commuters Passengers Drivers Traders Economists""".split()
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
    Summit Conference Games Cup Championship Championships Festival Reuters AP AFP Yonhap
    Administration Bureau Directorate Inspectorate Network Studios Media Press Electric
    Energy Power Water Gas Motors Marine Airways Airlines Foods Semiconductor Technologies
    Systems Labs Pharmaceuticals Health Partners Ferries Rail Railways Telecom""".split()
)
_PRONOUNS = frozenset({"he", "she", "they", "i", "we", "it"})
_DETERMINERS = frozenset({"the", "his", "her", "their", "its", "our"})
_INTRO_PREPOSITIONS = frozenset(
    """in on at after before during outside inside across under with without from for
    speaking asked writing later earlier meanwhile separately elsewhere addressing
    responding pressed reached interviewed contacted""".split()
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
    words: tuple[str, ...] = ()

    @classmethod
    def of(cls, paragraph: int, offset: int, name: str) -> Mention:
        return cls(paragraph, offset, name, tuple(name.split()))


def _parts(run: str) -> list[str]:
    """A run and the names inside it: 'Derek Fong of Lassiter Capital' also names Derek Fong,
    'Ann Lee and Bo Park' names both; 'Ministry of Culture and Heritage' stays whole too."""
    parts = [run]
    for joiner in (" and ", " of ", " for ", ", "):
        if joiner in run:
            parts.extend(piece for piece in run.split(joiner) if piece)
    return parts


@lru_cache(maxsize=4096)
def _clean_run(run: str) -> str:
    words = run.split()
    if words and words[-1].endswith(_POSSESSIVE):
        words[-1] = re.sub(r"['’]s?$", "", words[-1])  # "Mayor Ann Lee's campaign" -> Ann Lee
    for i in range(len(words) - 1, -1, -1):
        if words[i].endswith(_POSSESSIVE):
            words = words[i + 1 :]  # "South Korea's Foreign Minister Cho" -> the minister
            break
    while words and (
        words[0].rstrip(".,") in _NOT_NAME or words[0] in _HONORIFICS or words[0] == "of"
    ):
        words = words[1:]
    while words and words[-1] in {"of", "and", "for"}:
        words = words[:-1]
    if words and words[-1].endswith(".") and len(words[-1].rstrip(".")) > 3:
        words[-1] = words[-1].rstrip(".")  # a sentence's full stop, not "Jr." or "J.R."
    return " ".join(words).rstrip(",")


_POSSESSIVE = ("'s", "’s", "s'", "s’")
_SPEECH_AFTER = re.compile(
    r"^(?:,\s+(?!\S+\s+\S+,)[^,]{1,80},|,)?\s+(?:also\s+)?(?:"
    + SPEECH_VERBS
    + r"|described|called|recalled)\b"
)
# Inverted attributions ("said Cho"); verbs that take an object ("urged Mr. Trump") are left
# out, since the name after them is not the one speaking.
_DIRECT_SPEECH = re.compile(r"^\s+(?:also\s+)?(?:" + SPEECH_VERBS + r")\b")
_SPEECH_BEFORE = re.compile(
    r"\b(?:said|says|added|adds|noted|notes|explained|explains|wrote|writes|continued|recalled|"
    r"recalls|stated|argued|argues|insisted|remarked|observed|commented|conceded|concluded|"
    r"tweeted|replied|responded|countered|joked|laughed|sighed|testified)\s+$"
)


def _without_place(name: str) -> str:
    """'President Ann Lee of Tavalu' -> 'President Ann Lee'; titles 'of State' stay."""
    before, of, after = name.partition(" of ")
    if of and len(before.split()) >= 2 and len(after.split()) <= 2 and not _is_org(after):
        return before
    return name


def _looks_like_org(name: str) -> bool:
    return (name.startswith("the ") and name[4:5].isupper()) or _is_org(name)


_ORG_ROLE = re.compile(
    r"\b(?:ministry|department|agency|commission|association|federation|council|authority|"
    r"service|administration|union|committee|government|institute|university|club|board|"
    r"foundation|court|hospital|office|bureau|regulator|watchdog)$"
)
_GENERIC_ORGS = frozenset({"agency", "regulator", "watchdog", "authority", "service"})
_PUBLIC_BODIES = frozenset(
    "Administration Agency Service Commission Bureau Authority Office Board Department "
    "Ministry Regulator Inspectorate Directorate".split()
)
_COMPANY_ROLES = frozenset(
    """company firm airline carrier bank group chain retailer utility operator insurer lender
    automaker carmaker chipmaker manufacturer maker brand publisher broadcaster startup
    supplier developer club team business""".split()
)
# Subject pronouns and "his" only: "her" and "him" are mostly someone else, as objects.
_HE = re.compile(r"\b(?:he|his|himself)\b", re.IGNORECASE)
_SHE = re.compile(r"\b(?:she|hers|herself)\b", re.IGNORECASE)
# Signs that a capitalised name right before them is a person being introduced.
_PERSON_CUE = re.compile(r"^,\s+(?:\d{1,3},|who\b|whose\b|a\b|an\b|the\b|[\w-]+['’]s\b)")
_HONORIFIC_NAME = re.compile(rf"\b(Mr|Mrs|Ms|Miss)\.? ({_TOKEN})")
_ROLE_NOUNS = (
    "mayor|sheriff|coach|manager|minister|president|chief executive|executive|director|"
    "governor|senator|judge|official|spokesman|spokeswoman|spokesperson|officer|chair|"
    "chairman|chairwoman|captain|commissioner|superintendent|principal|professor|"
    "researcher|chancellor|secretary|ambassador|leader|founder|owner|lawyer|prosecutor|"
    "ceo|boss|skipper|head|curator|editor|analyst|economist|scientist|doctor|nurse|teacher"
)
# A sentence opening with a role: "The sheriff urged ...", "The company's chief executive ...".
_ROLE_AFTER = re.compile(rf"^\s+(?:[a-z'’-]+\s+){{0,3}}?(?:{_ROLE_NOUNS})\b")
_ROLE_OPENING = re.compile(
    rf"^((?:The|Its|His|Her|Their|[\w.&-]+['’]s)\s+(?:[a-z'’-]+\s+){{0,3}}?(?:{_ROLE_NOUNS}))\b"
)


_STRONG_ORG_WORDS = frozenset(
    """Ministry Department Federation Association Agency Commission Administration Bureau
    Council Committee Authority Institute University Foundation Inspectorate Directorate
    Corporation Company""".split()
)


_DOUBLE_MARK = re.compile('["“”]')
_HEADING_WORDS = 14


def _is_heading(paragraph: str) -> bool:
    """A short line without a final stop: a crosshead, a headline or a link to a story."""
    return len(paragraph.split()) <= _HEADING_WORDS and not re.search(
        r"[.!?…:;\"'”’)\]]$", paragraph.rstrip()
    )


def _quoted_ranges(paragraph: str) -> list[tuple[int, int]]:
    """The [start, end) stretches of a paragraph between double quotation marks."""
    ranges: list[tuple[int, int]] = []
    opened: int | None = None
    for mark in _DOUBLE_MARK.finditer(paragraph):
        # Copy mixes straight and curly marks: a straight one closes whatever is open.
        opens = mark.group() == "“" or (mark.group() == '"' and opened is None)
        if opens:
            opened = mark.start() if opened is None else opened
        elif opened is not None:
            ranges.append((opened, mark.end()))
            opened = None
    if opened is not None:
        ranges.append((opened, len(paragraph)))
    return ranges


def _is_org(name: str) -> bool:
    if not name:
        return True
    words = name.split()
    return words[-1] in _ORG_WORDS or any(w in _STRONG_ORG_WORDS for w in words)


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
        # Names written inside quotation marks (a title, a name in someone's speech) are
        # kept, but only as a last resort when resolving a speaker.
        self.quoted: set[tuple[int, int]] = set()
        # Title-case lines without a stop (crossheads, "Related" links) name no speaker.
        self.headings = {i for i, p in enumerate(paragraphs) if _is_heading(p)}
        # Each paragraph's sentences with their offsets, split once.
        self.sentences: list[list[tuple[int, str]]] = []
        for index, paragraph in enumerate(paragraphs):
            cursor = 0
            placed: list[tuple[int, str]] = []
            quoted = _quoted_ranges(paragraph) if '"' in paragraph or "“" in paragraph else []
            for sentence in split_sentences(paragraph):
                base = paragraph.find(sentence, cursor)
                cursor = base + len(sentence)
                placed.append((base, sentence))
                for match in _CAPITAL_RUN.finditer(sentence):
                    run = match.group(0)
                    at_run = base + match.start()
                    inside = any(lo < at_run < hi for lo, hi in quoted)
                    for part in _parts(run):
                        name = _clean_run(part)
                        if name:
                            at = base + match.start() + run.find(name.split()[0])
                            self.mentions.append(Mention.of(index, at, name))
                            if inside or index in self.headings:
                                self.quoted.add((index, at))
            self.sentences.append(placed)
        self.mentions.sort(key=lambda m: (m.paragraph, m.offset))
        self._keys = [(m.paragraph, m.offset) for m in self.mentions]
        self._by_word: dict[str, list[int]] = {}
        for position, mention in enumerate(self.mentions):
            for word in set(mention.words):
                self._by_word.setdefault(word, []).append(position)
        # Lower-cased title words of each mention, for roles ("the minister").
        self._titles = [
            {_TITLE_ABBREVIATIONS.get(w.lower(), w.lower()) for w in m.words[:-1]}
            for m in self.mentions
        ]
        self._person_cache: dict[str, bool] = {}
        people = [m.name for m in self.mentions if len(m.words) >= 2 and not _is_org(m.name)]
        self._person_words = {w for name in people for w in name.split()}
        self._bindings: dict[tuple[str, ...], str] = {}
        self._genders = self._learn_genders()

    def _before(self, paragraph: int, offset: int) -> list[Mention]:
        return self.mentions[: bisect_left(self._keys, (paragraph, offset))]

    def _sentences_between(
        self, start: tuple[int, int], end: tuple[int, int]
    ) -> Iterator[tuple[int, int, str]]:
        """(paragraph, offset, sentence) of the sentences from `start` up to `end`."""
        for index in range(start[0], end[0] + 1):
            for offset, sentence in self.sentences[index]:
                if (index, offset + len(sentence)) <= start or (index, offset) >= end:
                    continue
                lo = start[1] - offset if (index, offset) < start else 0
                hi = end[1] - offset if (index, offset + len(sentence)) > end else len(sentence)
                piece = sentence[max(0, lo) : hi].strip()
                if piece:
                    yield index, offset + max(0, lo), piece

    def _context(self, paragraph: int, offset: int) -> str:
        return self.text[: self.starts[paragraph] + offset]

    def is_person(self, name: str) -> bool:
        known = self._person_cache.get(name)
        if known is None:
            known = self._person_cache[name] = self._is_person(name)
        return known

    def _is_person(self, name: str) -> bool:
        if not name or _is_org(name) or not name[:1].isupper():
            return False
        if " and " in name or "," in name:
            return False  # two people: each part is a mention of its own
        words = name.split()
        return len(words) >= 2 or words[0] in self._person_words

    def fullest(self, name: str, paragraph: int, offset: int) -> str:
        """The longest earlier mention that names the same one: 'Dr. Amani' -> 'Dr. Ruth Amani'.

        A candidate must hold the name's last word and every other word of it; courtesy
        titles (Mr., Ms.) are dropped. People win over organisations; an organisation
        keeps the "the" it was written with ("the U.S. Forest Service").
        """
        tokens = [w for w in name.split() if w not in _HONORIFICS]
        if not tokens:
            return name
        wanted = set(tokens)
        people: list[Mention] = []
        groups: list[Mention] = []
        limit = bisect_left(self._keys, (paragraph, offset + len(name) + 1))
        for position in self._by_word.get(tokens[-1], ()):
            if position >= limit:
                break
            mention = self.mentions[position]
            words = mention.words
            if not wanted <= set(words):
                continue
            if self.is_person(mention.name):
                before_of = mention.name.split(" of ")[0].split()
                if tokens[-1] in before_of and len(before_of) < len(words):
                    # "President Ann Lee of Tavalu" names Ann Lee; "Secretary of State Bo
                    # Park" keeps its whole title.
                    mention = Mention.of(mention.paragraph, mention.offset, " ".join(before_of))
                people.append(mention)
            elif _is_org(mention.name):
                groups.append(mention)
        outside = [m for m in people if (m.paragraph, m.offset) not in self.quoted]
        people = outside or people
        if people:
            key = tuple(tokens)
            bound_to = self._bindings.get(key)
            names = {m.name for m in people}
            longest = max(len(m.words) for m in people)
            if bound_to in names and len(bound_to.split()) >= longest:
                return bound_to  # a surname keeps meaning whom it first meant
            # The fullest, and among equals the latest ("Walter Lee's son, Peter Lee").
            best = max(enumerate(people), key=lambda p: (len(p[1].words), p[0]))[1].name
            best = _without_place(best)
            self._bindings[key] = best
            return best
        if groups:  # an organisation is named as it was first written
            first_written = max(reversed(groups), key=lambda m: len(m.words))
            return self._with_article(first_written)
        return " ".join(tokens)

    def _with_article(self, mention: Mention) -> str:
        at = self.starts[mention.paragraph] + mention.offset
        before = self.text[max(0, at - 4) : at]
        return f"the {mention.name}" if before.lower() == "the " else mention.name

    def gender(self, name: str) -> str | None:
        """'m' or 'f' when the text says so (Mr./Ms., he/she after the name), else None."""
        return self._genders.get(name) if name else None

    def _learn_genders(self) -> dict[str, str]:
        votes: dict[str, int] = {}
        for index, placed in enumerate(self.sentences):
            sentences = [sentence for _, sentence in placed]
            for i, (at, sentence) in enumerate(placed):
                if sentence[:1] in "\"“‘'":
                    continue
                for match in _HONORIFIC_NAME.finditer(sentence):
                    full = self.fullest(match.group(2), index, at + match.end())
                    male = match.group(1) == "Mr"
                    votes[full] = votes.get(full, 0) + (3 if male else -3)
                run = _CAPITAL_RUN.match(sentence)
                name = _clean_run(run.group(0)) if run else ""
                if run is None or not self.is_person(name):
                    continue
                window = " ".join(sentences[i : i + 2])[len(run.group(0)) :]
                he, she = len(_HE.findall(window)), len(_SHE.findall(window))
                full = self.fullest(name, index, at)
                votes[full] = votes.get(full, 0) + (1 if he > she else -1 if she > he else 0)
        return {k: ("m" if v > 0 else "f") for k, v in votes.items() if v}

    def _known_before(self, paragraph: int, offset: int) -> set[str]:
        return {m.name for m in self._before(paragraph, offset)}

    def narrative_people(self, start: tuple[int, int], end: tuple[int, int]) -> list[list[str]]:
        """For each narrative sentence between two quotes, the people it is about, best first.

        First the person it opens with ("Pellerin remembered ...", "The sheriff urged ...",
        "Its chair, Ann Lee, said ..."), then whoever it reports as speaking ("..., noted
        Oliver Quayle"), then anyone it introduces ("Among the first was Joaquín Ferreira").
        """
        sentences: list[list[str]] = []
        for index, offset, sentence in self._sentences_between(start, end):
            if True:
                if sentence[:1] in "\"“”‘'" or index in self.headings:
                    continue  # quoted speech, a crosshead or a link is not narrative
                people: list[str] = []
                heads = [sentence]
                comma = sentence.find(",")
                if comma > 0 and len(sentence[:comma].split()) <= 8:
                    heads.append(sentence[comma + 1 :].lstrip())  # "A forecaster, Tom Li, said"
                for head in heads:
                    person = self._opening_person(head, index, offset)
                    if person:
                        people.append(person)
                        break
                known = self._known_before(index, offset)
                spoke: set[str] = set()
                for match in _CAPITAL_RUN.finditer(sentence):
                    name = _clean_run(match.group(0))
                    if not self.is_person(name):
                        continue
                    full = self.fullest(name, index, offset + match.end())
                    tail = sentence[match.end() : match.end() + 40]
                    head = sentence[max(0, match.start() - 30) : match.start()]
                    if sentence[: match.start()].count('"') % 2 or sentence[: match.start()].count(
                        "“"
                    ) > sentence[: match.start()].count("”"):
                        continue  # a name inside quotation marks is not narrative
                    speaking = _SPEECH_AFTER.match(tail) or (
                        _SPEECH_BEFORE.search(head) and not match.group(0).endswith(_POSSESSIVE)
                    )
                    introduced = not ({name, full} & known) and _PERSON_CUE.match(tail)
                    if speaking:
                        spoke.add(full)
                    if full in people or not (speaking or introduced):
                        continue
                    opening = people[0] if people else None
                    direct = _DIRECT_SPEECH.match(tail) is not None
                    if direct and opening and opening not in spoke and not self._spoke(opening):
                        # The subject of a speech verb wins over the sentence's opening name.
                        people.insert(0, full)
                    else:
                        people.append(full)
                sentences.append(people)
        return sentences

    def _spoke(self, name: str) -> bool:
        """Whether the text has `name` (or its surname) next to a speech verb anywhere."""
        last = re.escape(name.split()[-1])
        return bool(re.search(rf"\b{last}\s+(?:{SPEECH_VERBS})\b", self.text))

    def _opening_person(self, head: str, paragraph: int, offset: int) -> str | None:
        role = _ROLE_OPENING.match(head)
        if role:
            resolved = self.resolve_role(role.group(1), paragraph, offset)
            return resolved[0] if resolved and resolved[1] == "named" else None
        match = _CAPITAL_RUN.match(head)
        if match is None:
            return None
        if match.group(0).endswith(_POSSESSIVE) and _ROLE_AFTER.match(head[match.end() :]):
            return None  # "Southmoor Water's chief executive, ..." is about the executive
        name = _clean_run(match.group(0))
        return self.fullest(name, paragraph, offset) if self.is_person(name) else None

    def person_for_pronoun(
        self,
        pronoun: str,
        paragraph: int,
        offset: int,
        *,
        last_speaker: str | None,
        narrative_from: tuple[int, int],
    ) -> str | None:
        """He/she: whom the narrative since the last quote is about, else the last speaker.

        When the text shows a person's gender, a "he" never goes to a "she"; an
        organisation is never a he or a she.
        """
        wanted = {"he": "m", "she": "f"}.get(pronoun)

        def fits(name: str) -> bool:
            if _looks_like_org(name):
                return False
            known = self.gender(name)
            return wanted is None or known is None or known == wanted

        narrative = self.narrative_people(narrative_from, (paragraph, offset))
        candidates = [p for people in reversed(narrative) for p in people]
        if last_speaker:
            candidates.append(last_speaker)
        for name in candidates:
            if fits(name):
                return name
        if wanted:
            for mention in reversed(self._before(paragraph, offset)):
                if mention.paragraph in self.headings:
                    continue
                full = self.fullest(mention.name, paragraph, offset)
                if self.is_person(mention.name) and self.gender(full) == wanted:
                    return full
        return None

    def resolve_role(self, role: str, paragraph: int, offset: int) -> tuple[str, str] | None:
        """'the foreign minister' -> the person or unnamed source introduced in that role."""
        words = role.lower().replace("’", "'").split()
        head = re.sub(r"'s$", "", words[-1])
        if head in _COMPANY_ROLES:
            heads: tuple[str, ...] = ()
        else:
            heads = _SYNONYMS.get(head, (head,))
        context = self._context(paragraph, offset)
        candidates: list[tuple[int, str, str]] = []
        for position in range(bisect_left(self._keys, (paragraph, offset))):
            mention, title = self.mentions[position], self._titles[position]
            if any(all(w in title for w in h.split()) for h in heads) and self.is_person(
                mention.name
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
        if _ORG_ROLE.search(head):
            # "the ministry" -> "the Ministry of Culture and Heritage", as first written.
            for mention in self._before(paragraph, offset):
                generic = head in _GENERIC_ORGS and mention.words[-1] in _PUBLIC_BODIES
                if head.capitalize() in mention.words or generic:
                    at = self.starts[mention.paragraph] + mention.offset
                    name = self.fullest(mention.name, mention.paragraph, mention.offset)
                    candidates.append((at, name, "organisation"))
        elif head in _COMPANY_ROLES:
            # "the airline said" -> the company the story last opened a sentence with.
            for mention in self._before(paragraph, offset):
                at = self.starts[mention.paragraph] + mention.offset
                tail = self.text[at + len(mention.name) : at + len(mention.name) + 80]
                speaks = _SPEECH_AFTER.match(tail) or tail.startswith((" said", " says"))
                if speaks and not self.is_person(mention.name) and not self.gender(mention.name):
                    candidates.append((at, self._with_article(mention), "organisation"))
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
            rf"\b[Aa]n?\s+(?:(?!(?:for|of|the|to|at|in|with|from|on|by)\b)[\w'’-]+\s+){{0,6}}?"
            rf"{escaped}s?\b(?!\s+(?:official|spokes\w+|source|worker|employee|member|officer|"
            r"adviser|advisor|aide|executive|insider|lawyer|staffer|representative|analyst|"
            r"director|chief|head|leader|engineer|researcher|scientist)s?\b)"
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
    # Commas inside a name ("the Department for Culture, Media and Sport") do not split it.
    protected = _CAPITAL_RUN.sub(lambda m: m.group(0).replace(",", "\x00"), phrase)
    parts: list[str] = []
    for raw in protected.split(","):
        chunk = raw.replace("\x00", ",").strip()
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
    if len(chunks) > 1 and chunks[-1].lower() in _PRONOUNS:
        chunks = chunks[-1:]  # "… working in federal prisons, she said": she is the subject
    if len(chunks) > 1 and chunks[-1].lower() in {"which", "who"}:
        # "... referred questions to the Law Department, which said:" -> the department
        runs = [m.group(0) for m in _CAPITAL_RUN.finditer(chunks[-2])]
        chunks = [runs[-1]] if runs else chunks
    named = [c for c in chunks if _is_name_chunk(c)]
    choice = named[0] if named else chunks[0]
    lowered = choice.lower()
    first = lowered.split()[0]
    if lowered in _PRONOUNS:
        if lowered in {"it", "we", "they"}:
            return (last_speaker, "pronoun") if last_speaker else (None, "unknown")
        person = mentions.person_for_pronoun(
            lowered, paragraph, offset, last_speaker=last_speaker, narrative_from=narrative_from
        )
        return (person, "pronoun") if person else (None, "unknown")
    if first in {"a", "an"}:
        return _describe(choice), "described"
    described = not choice[:1].isupper() or first in _DETERMINERS
    inner = _person_inside(choice, mentions, paragraph, offset) if " " in choice else None
    if inner and described:
        # "planetary geologist Rosaly Lopes", "the 14th-ranked Schwartzman": the name wins.
        return inner, "named"
    if first in _DETERMINERS or first.endswith(_POSSESSIVE):
        role = _DESCRIPTION_END.sub("", choice).strip()
        resolved = mentions.resolve_role(role, paragraph, offset)
        if resolved:
            return resolved
        narrative = mentions.narrative_people(narrative_from, (paragraph, offset))
        people = [p for sentence in reversed(narrative) for p in sentence]
        if people and not _ORG_ROLE.search(role):
            return people[0], "named"
        return role[0].lower() + role[1:], "described"
    name = _NAME_END.sub("", choice).strip(" .")
    if name in _NOT_NAME and name.endswith("s") and name.lower() not in _PRONOUNS:
        return name.lower(), "described"  # "Prosecutors alleged …", "Critics say …"
    if not name[:1].isupper():
        return None, "unknown"
    run = _CAPITAL_RUN.match(choice)
    rest = choice[run.end() :].strip() if run else ""
    if run and (not rest or rest[:1].islower()):
        if inner and rest:
            return inner, "named"  # "Taliban spokesman Zabihullah Mujahid"
        whole = _clean_run(run.group(0))
        # "Secretary of State Mike Pompeo" keeps its title; "Thomas allegedly" drops the rest.
        name = whole if " of " in whole and mentions.is_person(whole) else _NAME_END.sub("", whole)
    name = name.strip(" .")
    if not name:
        return None, "unknown"
    return mentions.fullest(name, paragraph, offset), "named"


def _person_inside(choice: str, mentions: Mentions, paragraph: int, offset: int) -> str | None:
    """A person's name after a short description, resolved to its fullest mention.

    "JPL scientist Michael Malaska", "the 14th-ranked Schwartzman": only a few lower-case
    words (and one leading capitalised run) may stand before the name.
    """
    for match in _CAPITAL_RUN.finditer(choice):
        if match.start() == 0:
            continue
        before = choice[: match.start()]
        lead = _CAPITAL_RUN.match(before)
        between = before[lead.end() :] if lead else before
        if not re.fullmatch(r"\s*(?:[a-z0-9][\w'’&-]*\s+){1,4}", between):
            return None
        name = _clean_run(_NAME_END.sub("", match.group(0)))
        if mentions.is_person(name) or (
            len(name.split()) == 1 and mentions.is_person(mentions.fullest(name, paragraph, offset))
        ):
            return mentions.fullest(name, paragraph, offset)
    return None


def _is_name_chunk(chunk: str) -> bool:
    """'Sen. Paul Greer' is a name; 'The minister', "Kestrel's chief executive" are roles."""
    first = chunk.split()[0]
    return (
        chunk[:1].isupper()
        and first not in {"The", "A", "An"}
        and first.lower() not in _PRONOUNS | _DETERMINERS
        and not first.endswith(_POSSESSIVE)
    )
