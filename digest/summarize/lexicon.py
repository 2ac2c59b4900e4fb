"""The words and patterns that tell names, roles, organisations and speech apart.

Pure data and the few functions that build patterns from it: speech verbs, honorifics,
words that start sentences without being names, organisation words, role nouns, and the
phrases that describe an unnamed source. `mentions.py` and `speakers.py` read them.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal

# How a quote's speaker is known, from the surest to none: a name, a description of an
# unnamed source, a pronoun, an organisation, or not at all.
SpeakerKind = Literal["named", "described", "pronoun", "organisation", "unknown"]

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

CAPITAL_RUN = re.compile(
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
NOT_NAME = frozenset(
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

HONORIFICS = frozenset("Mr Mr. Mrs Mrs. Ms Ms. Miss Mx Mx. Messrs Messrs. Mme Mme.".split())

# Last words of organisations and places, never of a person's name.
ORG_WORDS = frozenset(
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

PRONOUNS = frozenset({"he", "she", "they", "i", "we", "it"})

DETERMINERS = frozenset({"the", "his", "her", "their", "its", "our"})

INTRO_PREPOSITIONS = frozenset(
    """in on at after before during outside inside across under with without from for
    speaking asked writing later earlier meanwhile separately elsewhere addressing
    responding pressed reached interviewed contacted""".split()
)

TITLE_ABBREVIATIONS = {
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

SYNONYMS = {
    "ceo": ("chief executive", "executive", "ceo"),
    "executive": ("chief executive", "executive", "ceo"),
    "coach": ("coach", "manager"),
    "boss": ("manager", "coach", "boss"),
    "spokesman": ("spokesman", "spokesperson", "spokeswoman"),
    "spokeswoman": ("spokeswoman", "spokesperson", "spokesman"),
    "spokesperson": ("spokesperson", "spokeswoman", "spokesman"),
}

# Where a described speaker's phrase ends: a comma, or a time or setting after it.
DESCRIPTION_END = re.compile(
    r",.*$|\s+(?:on|last|this|late|early|earlier|later)\s+(?:Monday|Tuesday|Wednesday|"
    r"Thursday|Friday|Saturday|Sunday|week|month|year|night|morning|afternoon|evening)\b.*$"
    r"|\s+(?:in a statement|in an interview|in a speech|during|after|before|when|while|as)\b.*$"
    r"|\s+(?:later|earlier|also|then|previously|described|declined|did not)\b.*$"
    r"|(?<!\bwho)\s+(?:" + SPEECH_VERBS + r")\b.*$",
    re.IGNORECASE,
)

NAME_END = re.compile(
    r"\s+(?:on|in|at|during|to|after|before|as|when|while|who|which|of|from|with|via|"
    r"about|last|this)\b.*$"
)

POSSESSIVE = ("'s", "’s", "s'", "s’")

SPEECH_AFTER = re.compile(
    r"^(?:,\s+(?!\S+\s+\S+,)[^,]{1,80},|,)?\s+(?:also\s+)?(?:"
    + SPEECH_VERBS
    + r"|described|called|recalled)\b"
)

# Inverted attributions ("said Cho"); verbs that take an object ("urged Mr. Trump") are left
# out, since the name after them is not the one speaking.
DIRECT_SPEECH = re.compile(r"^\s+(?:also\s+)?(?:" + SPEECH_VERBS + r")\b")

SPEECH_BEFORE = re.compile(
    r"\b(?:said|says|added|adds|noted|notes|explained|explains|wrote|writes|continued|recalled|"
    r"recalls|stated|argued|argues|insisted|remarked|observed|commented|conceded|concluded|"
    r"tweeted|replied|responded|countered|joked|laughed|sighed|testified)\s+$"
)

ORG_ROLE = re.compile(
    r"\b(?:ministry|department|agency|commission|association|federation|council|authority|"
    r"service|administration|union|committee|government|institute|university|club|board|"
    r"foundation|court|hospital|office|bureau|regulator|watchdog)$"
)

GENERIC_ORGS = frozenset({"agency", "regulator", "watchdog", "authority", "service"})

PUBLIC_BODIES = frozenset(
    "Administration Agency Service Commission Bureau Authority Office Board Department "
    "Ministry Regulator Inspectorate Directorate".split()
)

COMPANY_ROLES = frozenset(
    """company firm airline carrier bank group chain retailer utility operator insurer lender
    automaker carmaker chipmaker manufacturer maker brand publisher broadcaster startup
    supplier developer club team business""".split()
)

# Subject pronouns and "his" only: "her" and "him" are mostly someone else, as objects.
HE = re.compile(r"\b(?:he|his|himself)\b", re.IGNORECASE)

SHE = re.compile(r"\b(?:she|hers|herself)\b", re.IGNORECASE)

# Signs that a capitalised name right before them is a person being introduced.
PERSON_CUE = re.compile(r"^,\s+(?:\d{1,3},|who\b|whose\b|a\b|an\b|the\b|[\w-]+['’]s\b)")

HONORIFIC_NAME = re.compile(rf"\b(Mr|Mrs|Ms|Miss)\.? ({_TOKEN})")

_ROLE_NOUNS = (
    "mayor|sheriff|coach|manager|minister|president|chief executive|executive|director|"
    "governor|senator|judge|official|spokesman|spokeswoman|spokesperson|officer|chair|"
    "chairman|chairwoman|captain|commissioner|superintendent|principal|professor|"
    "researcher|chancellor|secretary|ambassador|leader|founder|owner|lawyer|prosecutor|"
    "ceo|boss|skipper|head|curator|editor|analyst|economist|scientist|doctor|nurse|teacher"
)

# A sentence opening with a role: "The sheriff urged ...", "The company's chief executive ...".
ROLE_AFTER = re.compile(rf"^\s+(?:[a-z'’-]+\s+){{0,3}}?(?:{_ROLE_NOUNS})\b")

ROLE_OPENING = re.compile(
    rf"^((?:The|Its|His|Her|Their|[\w.&-]+['’]s)\s+(?:[a-z'’-]+\s+){{0,3}}?(?:{_ROLE_NOUNS}))\b"
)

STRONG_ORG_WORDS = frozenset(
    """Ministry Department Federation Association Agency Commission Administration Bureau
    Council Committee Authority Institute University Foundation Inspectorate Directorate
    Corporation Company""".split()
)

DOUBLE_MARK = re.compile('["“”]')

HEADING_WORDS = 14


@lru_cache(maxsize=256)
def role_patterns(head: str) -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
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


def describe(phrase: str) -> str:
    """'A rescue worker who asked not to be named described ...' -> 'a rescue worker who ...'."""
    anonymous = _ANONYMITY.search(phrase)
    if anonymous:
        phrase = phrase[: anonymous.end()]
    phrase = DESCRIPTION_END.sub("", phrase).strip()
    return phrase[:1].lower() + phrase[1:]
