"""Chapter 7: counterfactual text: the same sentence with a demographic term swapped.

A counterfactual pair is a text and its copy in which only the words naming a group
change ("He was brilliant" / "She was brilliant"). If a sentiment model's verdict moves
between the two, the group term moved it. ``swap_terms`` does the word swapping for any
word list; ``swap_gender`` is it with the chapter's gender list::

    >>> swap_gender("He thanked his mother; the actor was HIS hero.")
    'She thanked her father; the actress was HER heroine.'

Rules (each one is tested):

- **Whole words only.** ``\\b``-anchored, case-insensitive matching: "he" never touches
  "the", "hello" or "she"; "he's" becomes "she's" (the apostrophe ends the word).
- **Capitalisation is kept**: ``he -> she``, ``He -> She``, ``HE -> SHE``.
- **One pass**: every word is looked up once in the original text, so "he and she"
  becomes "she and he", not "she and she".
- **"her" is two words in English**: the object "him" ("I liked her") and the possessive
  "his" ("her film"). Our rule looks at the next word: before punctuation, the end of the
  text, or a word from ``OBJECT_FOLLOWERS`` (articles, prepositions, conjunctions, adverbs
  such as "a", "to", "and", "again") it is the object and becomes "him"; otherwise it is
  the possessive and becomes "his". Likewise "his" before punctuation or the end of the
  text is the pronoun ("the role is his.") and becomes "hers". A heuristic: "I gave her
  flowers" comes out as "I gave his flowers". A part-of-speech tagger would do better;
  a bag of rules we can read and test is the chapter's choice.
- Names swap too (``NAME_PAIRS``), from a short list of first names chosen not to be
  ordinary English words ("Will", "Mark", "Grace" are left out).

Swapping is approximate by nature: "Mrs. Doubtfire" becomes "Mr. Doubtfire", an actor's
real name becomes another gender's, and terms outside the list stay. ``count_terms``
says how many words of a text the list covers.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

# (male, female): each word maps to its partner and back. Lower case.
GENDER_WORD_PAIRS: tuple[tuple[str, str], ...] = (
    ("he", "she"), ("him", "her"), ("his", "hers"), ("himself", "herself"),
    ("man", "woman"), ("men", "women"), ("boy", "girl"), ("boys", "girls"),
    ("actor", "actress"), ("actors", "actresses"), ("hero", "heroine"), ("heroes", "heroines"),
    ("father", "mother"), ("fathers", "mothers"), ("dad", "mom"), ("son", "daughter"), ("sons", "daughters"),
    ("brother", "sister"), ("brothers", "sisters"), ("husband", "wife"), ("husbands", "wives"),
    ("boyfriend", "girlfriend"), ("uncle", "aunt"), ("nephew", "niece"), ("grandfather", "grandmother"),
    ("king", "queen"), ("kings", "queens"), ("prince", "princess"), ("gentleman", "lady"),
    ("gentlemen", "ladies"), ("male", "female"), ("males", "females"), ("mr", "mrs"),
    ("guy", "gal"), ("lord", "lady"), ("sir", "madam"), ("waiter", "waitress"),
)

# (male, female) first names, none of them an ordinary English word.
NAME_PAIRS: tuple[tuple[str, str], ...] = (
    ("john", "mary"), ("james", "patricia"), ("robert", "jennifer"), ("michael", "linda"),
    ("david", "elizabeth"), ("richard", "susan"), ("thomas", "jessica"), ("charles", "sarah"),
    ("steven", "karen"), ("paul", "nancy"), ("peter", "laura"), ("george", "emily"),
)

# Words after which "her" is the object ("told her the truth" -> "told him the truth").
OBJECT_FOLLOWERS: frozenset[str] = frozenset(
    "a an the to in on at for with from by of about as and or but so than that this these those "
    "when while if because after before again back up down out off over into onto away too very "
    "is was are were be been being has had have will would can could should do does did not never "
    "just really all both only even now then there here how what who whom which why where "
    "i you he she we they it me him us them my your our their its".split()
)

_WORD = re.compile(r"\w+")


def gender_mapping() -> dict[str, str]:
    """The one-word lookup table: each male and female term -> its partner (lower case).

    "her" (-> "him" or "his") and "his" (-> "her" or "hers") are resolved by context in
    ``swap_gender`` (see the module docstring); "lady" has two male partners in the list
    and maps to "gentleman".
    """
    mapping: dict[str, str] = {}
    for male, female in GENDER_WORD_PAIRS + NAME_PAIRS:
        mapping.setdefault(male, female)
        mapping.setdefault(female, male)
    return mapping


def match_case(word: str, replacement: str) -> str:
    """``replacement`` written in ``word``'s case: lower, Title or UPPER.

    >>> match_case("He", "she"), match_case("HE", "she"), match_case("he", "she")
    ('She', 'SHE', 'she')
    """
    if len(word) > 1 and word.isupper():
        return replacement.upper()
    if word[:1].isupper():
        return replacement[:1].upper() + replacement[1:]
    return replacement


def terms_pattern(words: Sequence[str]) -> re.Pattern[str]:
    """A case-insensitive regex matching any of ``words`` as a whole word (longest first)."""
    alternatives = "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True))
    return re.compile(rf"\b(?:{alternatives})\b", re.IGNORECASE)


def swap_terms(text: str, mapping: Mapping[str, str],
               resolve: Callable[[str, str, int], str] | None = None) -> str:
    """Replace every whole word of ``text`` found in ``mapping`` (lower-case keys), keeping its case.

    ``resolve(word_lower, text, end)`` can pick the replacement of a word from its context
    (``end`` is where the word ends in ``text``); by default ``mapping[word_lower]``.

    >>> swap_terms("The young and the Old.", {"young": "old", "old": "young"})
    'The old and the Young.'
    """
    if not mapping:
        return text
    pattern = terms_pattern(list(mapping))

    def replace(match: re.Match[str]) -> str:
        word = match.group(0)
        key = word.lower()
        new = resolve(key, text, match.end()) if resolve is not None else mapping[key]
        return match_case(word, new)

    return pattern.sub(replace, text)


def next_word(text: str, end: int) -> str | None:
    """The word right after position ``end``, lower case; None at punctuation or the end of the text."""
    rest = text[end:]
    stripped = rest.lstrip()
    if not stripped or not (stripped[0].isalnum() or stripped[0] == "_"):
        return None
    match = _WORD.match(stripped)
    return match.group(0).lower() if match else None


def resolve_gender(word: str, text: str, end: int) -> str:
    """The partner of one gendered word, with the "her" / "his" rules of the module docstring."""
    following = next_word(text, end)
    if word == "her":
        return "him" if following is None or following in OBJECT_FOLLOWERS else "his"
    if word == "his":
        return "hers" if following is None else "her"
    return GENDER_MAPPING[word]


GENDER_MAPPING: dict[str, str] = gender_mapping()
_GENDER_PATTERN = terms_pattern(list(GENDER_MAPPING))
MALE_TERMS: frozenset[str] = frozenset(m for m, _ in GENDER_WORD_PAIRS + NAME_PAIRS)
FEMALE_TERMS: frozenset[str] = frozenset(f for _, f in GENDER_WORD_PAIRS + NAME_PAIRS)


def swap_gender(text: str) -> str:
    """``text`` with every gendered word and listed first name swapped (rules: module docstring)."""
    return swap_terms(text, GENDER_MAPPING, resolve_gender)


@dataclass(frozen=True)
class TermCount:
    """How many male and female terms (of the chapter's list) a text holds."""

    male: int
    female: int

    @property
    def total(self) -> int:
        return self.male + self.female

    @property
    def leaning(self) -> int:
        """+1 if the text has more male terms, -1 if more female ones, 0 if as many."""
        return (self.male > self.female) - (self.female > self.male)


def count_terms(text: str) -> TermCount:
    """Count the male and female terms of ``text`` ("his" is male; "her" female)."""
    words = [m.group(0).lower() for m in _GENDER_PATTERN.finditer(text)]
    male = sum(w in MALE_TERMS for w in words)
    return TermCount(male, len(words) - male)


__all__ = [
    "GENDER_MAPPING",
    "GENDER_WORD_PAIRS",
    "NAME_PAIRS",
    "OBJECT_FOLLOWERS",
    "TermCount",
    "count_terms",
    "gender_mapping",
    "match_case",
    "next_word",
    "resolve_gender",
    "swap_gender",
    "swap_terms",
    "terms_pattern",
]
