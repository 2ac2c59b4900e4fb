"""Who a story mentions, and where: the people, roles and organisations a speaker can be.

`Mentions` indexes an article's capitalised runs once, learns who is a person (and
their gender, from the pronouns around them), and answers the questions attribution
asks: the fullest earlier mention of a name, the person a role or a pronoun stands for.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

from digest.summarize.lexicon import (
    CAPITAL_RUN,
    COMPANY_ROLES,
    DIRECT_SPEECH,
    DOUBLE_MARK,
    GENERIC_ORGS,
    HE,
    HEADING_WORDS,
    HONORIFIC_NAME,
    HONORIFICS,
    NOT_NAME,
    ORG_ROLE,
    ORG_WORDS,
    PERSON_CUE,
    POSSESSIVE,
    PUBLIC_BODIES,
    ROLE_AFTER,
    ROLE_OPENING,
    SHE,
    SPEECH_AFTER,
    SPEECH_BEFORE,
    SPEECH_VERBS,
    STRONG_ORG_WORDS,
    SYNONYMS,
    TITLE_ABBREVIATIONS,
    SpeakerKind,
    describe,
    role_patterns,
)
from digest.summarize.sentences import split_sentences


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


@lru_cache(maxsize=8192)
def _names_in_run(run: str) -> tuple[tuple[int, str, tuple[str, ...]], ...]:
    """Each name a capitalised run holds: (offset in the run, name, its words).

    Runs repeat within and across stories ("the White House", a surname), so this is
    worked out once per run.
    """
    names = []
    for part in _parts(run):
        name = clean_run(part)
        if name:
            words = tuple(name.split())
            names.append((run.find(words[0]), name, words))
    return tuple(names)


@lru_cache(maxsize=4096)
def clean_run(run: str) -> str:
    words = run.split()
    if words and words[-1].endswith(POSSESSIVE):
        words[-1] = re.sub(r"['’]s?$", "", words[-1])  # "Mayor Ann Lee's campaign" -> Ann Lee
    for i in range(len(words) - 1, -1, -1):
        if words[i].endswith(POSSESSIVE):
            words = words[i + 1 :]  # "South Korea's Foreign Minister Cho" -> the minister
            break
    while words and (
        words[0].rstrip(".,") in NOT_NAME or words[0] in HONORIFICS or words[0] == "of"
    ):
        words = words[1:]
    while words and words[-1] in {"of", "and", "for"}:
        words = words[:-1]
    if words and words[-1].endswith(".") and len(words[-1].rstrip(".")) > 3:
        words[-1] = words[-1].rstrip(".")  # a sentence's full stop, not "Jr." or "J.R."
    return " ".join(words).rstrip(",")


def _without_place(name: str) -> str:
    """'President Ann Lee of Tavalu' -> 'President Ann Lee'; titles 'of State' stay."""
    before, of, after = name.partition(" of ")
    if of and len(before.split()) >= 2 and len(after.split()) <= 2 and not _is_org(after):
        return before
    return name


def _looks_like_org(name: str) -> bool:
    return (name.startswith("the ") and name[4:5].isupper()) or _is_org(name)


def _is_heading(paragraph: str) -> bool:
    """A short line without a final stop: a crosshead, a headline or a link to a story."""
    return len(paragraph.split()) <= HEADING_WORDS and not re.search(
        r"[.!?…:;\"'”’)\]]$", paragraph.rstrip()
    )


def _quoted_ranges(paragraph: str) -> list[tuple[int, int]]:
    """The [start, end) stretches of a paragraph between double quotation marks."""
    ranges: list[tuple[int, int]] = []
    opened: int | None = None
    for mark in DOUBLE_MARK.finditer(paragraph):
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


@lru_cache(maxsize=256)
def _role_word(head: str) -> re.Pattern[str]:
    return re.compile(re.escape(head))


@lru_cache(maxsize=8192)
def _title_words(words: tuple[str, ...]) -> frozenset[str]:
    """The lower-cased words before a name's last one, abbreviations spelled out."""
    return frozenset(TITLE_ABBREVIATIONS.get(w.lower(), w.lower()) for w in words[:-1])


@lru_cache(maxsize=8192)
def _is_org(name: str) -> bool:
    if not name:
        return True
    words = name.split()
    return words[-1] in ORG_WORDS or any(w in STRONG_ORG_WORDS for w in words)


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
                for match in CAPITAL_RUN.finditer(sentence):
                    at_run = base + match.start()
                    inside = index in self.headings or any(lo < at_run < hi for lo, hi in quoted)
                    for shift, name, words in _names_in_run(match.group(0)):
                        self.mentions.append(Mention(index, at_run + shift, name, words))
                        if inside:
                            self.quoted.add((index, at_run + shift))
            self.sentences.append(placed)
        self.mentions.sort(key=lambda m: (m.paragraph, m.offset))
        self._keys = [(m.paragraph, m.offset) for m in self.mentions]
        self._word_sets = [frozenset(m.words) for m in self.mentions]
        self._by_word: dict[str, list[int]] = {}
        for position, mention in enumerate(self.mentions):
            for word in set(mention.words):
                self._by_word.setdefault(word, []).append(position)
        # Lower-cased title words of each mention, for roles ("the minister").
        self._titles = [_title_words(m.words) for m in self.mentions]
        # Which mentions carry each title word, so a role looks only at those.
        self._by_title: dict[str, list[int]] = {}
        for position, title in enumerate(self._titles):
            for word in title:
                self._by_title.setdefault(word, []).append(position)
        # Lowered once: roles are searched for in the text before each quote.
        lowered = self.text.lower()
        self._lowered = lowered if len(lowered) == len(self.text) else None
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
        tokens = [w for w in name.split() if w not in HONORIFICS]
        if not tokens:
            return name
        wanted = set(tokens)
        people: list[Mention] = []
        groups: list[Mention] = []
        limit = bisect_left(self._keys, (paragraph, offset + len(name) + 1))
        for position in self._by_word.get(tokens[-1], ()):
            if position >= limit:
                break
            if not wanted <= self._word_sets[position]:
                continue
            mention = self.mentions[position]
            words = mention.words
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
                # Scanning for "Mr." is wasted on a sentence without "Mr", "Ms" or "Miss".
                has_honorific = any(word in sentence for word in ("Mr", "Ms", "Miss"))
                for match in HONORIFIC_NAME.finditer(sentence) if has_honorific else ():
                    full = self.fullest(match.group(2), index, at + match.end())
                    male = match.group(1) == "Mr"
                    votes[full] = votes.get(full, 0) + (3 if male else -3)
                run = CAPITAL_RUN.match(sentence)
                name = clean_run(run.group(0)) if run else ""
                if run is None or not self.is_person(name):
                    continue
                window = " ".join(sentences[i : i + 2])[len(run.group(0)) :]
                he, she = len(HE.findall(window)), len(SHE.findall(window))
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
                known: set[str] | None = None  # built only when a name looks introduced
                spoke: set[str] = set()
                for match in CAPITAL_RUN.finditer(sentence):
                    name = clean_run(match.group(0))
                    if not self.is_person(name):
                        continue
                    full = self.fullest(name, index, offset + match.end())
                    tail = sentence[match.end() : match.end() + 40]
                    head = sentence[max(0, match.start() - 30) : match.start()]
                    if sentence[: match.start()].count('"') % 2 or sentence[: match.start()].count(
                        "“"
                    ) > sentence[: match.start()].count("”"):
                        continue  # a name inside quotation marks is not narrative
                    speaking = SPEECH_AFTER.match(tail) or (
                        SPEECH_BEFORE.search(head) and not match.group(0).endswith(POSSESSIVE)
                    )
                    introduced = False
                    if PERSON_CUE.match(tail):
                        known = self._known_before(index, offset) if known is None else known
                        introduced = not ({name, full} & known)
                    if speaking:
                        spoke.add(full)
                    if full in people or not (speaking or introduced):
                        continue
                    opening = people[0] if people else None
                    direct = DIRECT_SPEECH.match(tail) is not None
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
        role = ROLE_OPENING.match(head)
        if role:
            resolved = self.resolve_role(role.group(1), paragraph, offset)
            return resolved[0] if resolved and resolved[1] == "named" else None
        match = CAPITAL_RUN.match(head)
        if match is None:
            return None
        if match.group(0).endswith(POSSESSIVE) and ROLE_AFTER.match(head[match.end() :]):
            return None  # "Southmoor Water's chief executive, ..." is about the executive
        name = clean_run(match.group(0))
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

    def _titled(self, heads: Sequence[str], limit: int) -> list[int]:
        """Positions below `limit` of the mentions whose title holds every word of a head."""
        found: set[int] = set()
        for head in heads:
            words = head.split()
            lists = [self._by_title.get(word, []) for word in words]
            shortest = min(lists, key=len)
            titles = self._titles
            found.update(p for p in shortest if p < limit and all(w in titles[p] for w in words))
        return sorted(found)

    def resolve_role(
        self, role: str, paragraph: int, offset: int
    ) -> tuple[str, SpeakerKind] | None:
        """'the foreign minister' -> the person or unnamed source introduced in that role."""
        words = role.lower().replace("’", "'").split()
        head = re.sub(r"'s$", "", words[-1])
        if head in COMPANY_ROLES:
            heads: tuple[str, ...] = ()
        else:
            heads = SYNONYMS.get(head, (head,))
        end = self.starts[paragraph] + offset  # the text before the quote
        candidates: list[tuple[int, str, SpeakerKind]] = []
        for position in self._titled(heads, bisect_left(self._keys, (paragraph, offset))):
            mention = self.mentions[position]
            if self.is_person(mention.name):
                candidates.append(
                    (self.starts[mention.paragraph] + mention.offset, mention.name, "named")
                )
        lowered = self._lowered if self._lowered is not None else self.text[:end].lower()
        for h in heads:
            after, before, described = role_patterns(h)
            # Only the text around each use of the role word can introduce it.
            uses = _role_word(h).finditer(lowered, 0, end)
            for at in (m.start() for m in uses):
                lo, hi = max(0, at - 240), min(end, at + 200)
                for pattern in (after, before):
                    for match in pattern.finditer(self.text, lo, hi):
                        person = clean_run(match.group(1))
                        if self.is_person(person):
                            candidates.append((match.start(), person, "named"))
                for match in described.finditer(self.text, lo, hi):
                    phrase = describe(match.group(0))
                    if len(phrase.split()) <= 14:
                        candidates.append((match.start(), phrase, "described"))
        if ORG_ROLE.search(head):
            # "the ministry" -> "the Ministry of Culture and Heritage", as first written.
            for mention in self._before(paragraph, offset):
                generic = head in GENERIC_ORGS and mention.words[-1] in PUBLIC_BODIES
                if head.capitalize() in mention.words or generic:
                    at = self.starts[mention.paragraph] + mention.offset
                    name = self.fullest(mention.name, mention.paragraph, mention.offset)
                    candidates.append((at, name, "organisation"))
        elif head in COMPANY_ROLES:
            # "the airline said" -> the company the story last opened a sentence with.
            for mention in self._before(paragraph, offset):
                at = self.starts[mention.paragraph] + mention.offset
                tail = self.text[at + len(mention.name) : at + len(mention.name) + 80]
                speaks = SPEECH_AFTER.match(tail) or tail.startswith((" said", " says"))
                if speaks and not self.is_person(mention.name) and not self.gender(mention.name):
                    candidates.append((at, self._with_article(mention), "organisation"))
        if not candidates:
            return None
        _, speaker, kind = max(candidates)
        if kind == "named":
            speaker = self.fullest(speaker, paragraph, offset)
        return speaker, kind
