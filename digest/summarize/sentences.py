"""Sentence splitting that survives news copy.

News text is full of periods that do not end sentences: titles (Gen., Sen., Dr.),
initials (J.D. Vance), abbreviations (U.S., Inc., No. 3), dates (Nov. 6) and numbers
(3.5 percent, $1.2 billion). A boundary is a terminator, optional closing quotes or
brackets, whitespace, then something that can open a sentence -- unless the word before
the period is known never to end one.
"""

from __future__ import annotations

import re
from functools import lru_cache

# Words after which a period never ends the sentence (they always precede something).
_NEVER_FINAL = frozenset(
    """mr mrs ms mx dr prof gen lt col maj capt cmdr adm sgt cpl pvt sen rep gov atty supt
    insp det rev hon pres amb brig msgr cdr st mt ft no nos vol fig pp jan feb mar apr jun
    jul aug sep sept oct nov dec messrs mme mlle sr jr vs cf""".split()
)
# Words that may end a sentence or not ("Acme Inc. The ..." vs "Acme Inc. shares").
_MAYBE_FINAL = frozenset(
    "inc corp co ltd llc plc bros est etc al approx dept univ ave blvd rd".split()
)
# Openers that show a new sentence started after an ambiguous abbreviation.
_STARTERS = frozenset(
    """the a an he she it they we i you his her its their our this that these those but and
    so yet or in on at for from with after before when while as if although though however
    meanwhile there here what who why how where officials police some many most no one
    earlier later last next also still""".split()
)

_BOUNDARY = re.compile(r"([.!?…]+)([\"'”’»)\]]*)(\s+)(?=[\"'“‘«(\[]?[A-Z0-9À-Þ])")


_INITIALS = re.compile(r"(?:[A-Za-z]\.)*[A-Za-z]")


def _word_before(text: str, end: int) -> str:
    """The run of word characters, dots, apostrophes and hyphens that ends at `end`.

    Scanned backwards: a pattern anchored at `end` would be tried from every earlier
    position, once per period in the paragraph.
    """
    start = end
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] in "_.'’-"):
        start -= 1
    return text[start:end]


def _ends_sentence(text: str, end: int, next_word: str) -> bool:
    run = _word_before(text, end)
    if not run:
        return True
    word = run.rstrip(".")
    lowered = word.lower().lstrip("'’")
    starter = next_word.lower().strip("\"'“‘«([") in _STARTERS
    if lowered in _NEVER_FINAL:
        return False
    if lowered in _MAYBE_FINAL:
        return starter
    # Initials and dotted abbreviations: J.D., U.S., a.m.
    if _INITIALS.fullmatch(word) and len(word.replace(".", "")) <= 3:
        return starter and (word.isupper() or "." in word)
    return True


def split_sentences(text: str) -> list[str]:
    """Split a paragraph into sentences, keeping each sentence's own characters."""
    return list(_split(text))


# The lead, the quote finder and the index of mentions each split the same paragraphs.
@lru_cache(maxsize=8192)
def _split(text: str) -> tuple[str, ...]:
    sentences: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        terminator_start = match.start(1)
        if match.group(1) == "." and not match.group(2):
            after = match.end(3)
            space = text.find(" ", after)
            following = text[after : space if space >= 0 else len(text)]
            if not _ends_sentence(text, terminator_start + 1, following):
                continue
        sentences.append(text[start : match.end(2)].strip())
        start = match.end(3)
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return tuple(sentences)
