"""Who said it: resolve an attribution phrase to the fullest earlier mention.

An attribution names its speaker in one of four ways: a name ("Cho", "Sen. Paul Greer",
"Ms Holt"), a role ("the foreign minister", "the CEO"), a description of an unnamed source
("a foreign ministry official"), or a pronoun. Names resolve to the longest earlier
capitalised run that contains them, which carries the title written before the name
("Foreign Minister Cho Tae-yul"); roles resolve to the person or unnamed source introduced
with that role; pronouns to the person the story was just talking about. The words and
patterns are in `lexicon.py`, the index of who is mentioned in `mentions.py`.
"""

from __future__ import annotations

import re

from digest.summarize.lexicon import (
    CAPITAL_RUN,
    DESCRIPTION_END,
    DETERMINERS,
    INTRO_PREPOSITIONS,
    NAME_END,
    NOT_NAME,
    ORG_ROLE,
    POSSESSIVE,
    PRONOUNS,
    SpeakerKind,
    describe,
)
from digest.summarize.mentions import Mentions, clean_run


def _chunks(phrase: str) -> list[str]:
    """The comma-separated parts of an attribution phrase, intro phrases dropped."""
    # Commas inside a name ("the Department for Culture, Media and Sport") do not split it.
    protected = CAPITAL_RUN.sub(lambda m: m.group(0).replace(",", "\x00"), phrase)
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
        if words[0].lower() in INTRO_PREPOSITIONS and len(parts) == 0 and "," in phrase:
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
) -> tuple[str | None, SpeakerKind]:
    """The speaker an attribution phrase names, and how: named|described|pronoun|unknown."""
    chunks = _chunks(phrase)
    if not chunks:
        return None, "unknown"
    if len(chunks) > 1 and chunks[-1].lower() in PRONOUNS:
        chunks = chunks[-1:]  # "… working in federal prisons, she said": she is the subject
    if len(chunks) > 1 and chunks[-1].lower() in {"which", "who"}:
        # "... referred questions to the Law Department, which said:" -> the department
        runs = [m.group(0) for m in CAPITAL_RUN.finditer(chunks[-2])]
        chunks = [runs[-1]] if runs else chunks
    named = [c for c in chunks if _is_name_chunk(c)]
    choice = named[0] if named else chunks[0]
    lowered = choice.lower()
    first = lowered.split()[0]
    if lowered in PRONOUNS:
        if lowered in {"it", "we", "they"}:
            return (last_speaker, "pronoun") if last_speaker else (None, "unknown")
        person = mentions.person_for_pronoun(
            lowered, paragraph, offset, last_speaker=last_speaker, narrative_from=narrative_from
        )
        return (person, "pronoun") if person else (None, "unknown")
    if first in {"a", "an"}:
        return describe(choice), "described"
    described = not choice[:1].isupper() or first in DETERMINERS
    inner = _person_inside(choice, mentions, paragraph, offset) if " " in choice else None
    if inner and described:
        # "planetary geologist Rosaly Lopes", "the 14th-ranked Schwartzman": the name wins.
        return inner, "named"
    if first in DETERMINERS or first.endswith(POSSESSIVE):
        role = DESCRIPTION_END.sub("", choice).strip()
        resolved = mentions.resolve_role(role, paragraph, offset)
        if resolved:
            return resolved
        narrative = mentions.narrative_people(narrative_from, (paragraph, offset))
        people = [p for sentence in reversed(narrative) for p in sentence]
        if people and not ORG_ROLE.search(role):
            return people[0], "named"
        return role[0].lower() + role[1:], "described"
    name = NAME_END.sub("", choice).strip(" .")
    if name in NOT_NAME and name.endswith("s") and name.lower() not in PRONOUNS:
        return name.lower(), "described"  # "Prosecutors alleged …", "Critics say …"
    if not name[:1].isupper():
        return None, "unknown"
    run = CAPITAL_RUN.match(choice)
    rest = choice[run.end() :].strip() if run else ""
    if run and (not rest or rest[:1].islower()):
        if inner and rest:
            return inner, "named"  # "Taliban spokesman Zabihullah Mujahid"
        whole = clean_run(run.group(0))
        # "Secretary of State Mike Pompeo" keeps its title; "Thomas allegedly" drops the rest.
        name = whole if " of " in whole and mentions.is_person(whole) else NAME_END.sub("", whole)
    name = name.strip(" .")
    if not name:
        return None, "unknown"
    return mentions.fullest(name, paragraph, offset), "named"


def _person_inside(choice: str, mentions: Mentions, paragraph: int, offset: int) -> str | None:
    """A person's name after a short description, resolved to its fullest mention.

    "JPL scientist Michael Malaska", "the 14th-ranked Schwartzman": only a few lower-case
    words (and one leading capitalised run) may stand before the name.
    """
    for match in CAPITAL_RUN.finditer(choice):
        if match.start() == 0:
            continue
        before = choice[: match.start()]
        lead = CAPITAL_RUN.match(before)
        between = before[lead.end() :] if lead else before
        if not re.fullmatch(r"\s*(?:[a-z0-9][\w'’&-]*\s+){1,4}", between):
            return None
        name = clean_run(NAME_END.sub("", match.group(0)))
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
        and first.lower() not in PRONOUNS | DETERMINERS
        and not first.endswith(POSSESSIVE)
    )
