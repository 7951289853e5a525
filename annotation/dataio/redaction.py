"""Redaction of personal data (cards, e-mail, phones, Chinese IDs) and compliance phrase flags."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import phonenumbers

Span = tuple[int, int]


@dataclass(frozen=True)
class Redactor:
    """A named detector; every span it finds is replaced by `placeholder`."""

    name: str
    placeholder: str
    find: Callable[[str], Iterable[Span]]


@dataclass(frozen=True)
class RedactionResult:
    text: str
    counts: dict[str, int]

    @property
    def redacted(self) -> bool:
        return any(self.counts.values())


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


# Digits with single spaces or dashes between them, not glued to other digits on either side.
_CARD_CANDIDATE = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")


def find_cards(text: str) -> Iterator[Span]:
    for match in _CARD_CANDIDATE.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        # Luhn is what tells a card from an order or tracking number of the same length.
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            yield match.span()


_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-])")


def find_emails(text: str) -> Iterator[Span]:
    for match in _EMAIL.finditer(text):
        yield match.span()


# phonenumbers' VALID leniency already knows mainland mobile ranges; this catches the bare 11-digit form
# where it declines (e.g. numbers glued to Latin letters such as "tel:13800138000").
_CN_MOBILE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")


def find_phones(text: str, region: str = "CN") -> Iterator[Span]:
    spans = {
        (m.start, m.end)
        for m in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID)
    }
    spans.update(match.span() for match in _CN_MOBILE.finditer(text))
    yield from _merge(spans)


_CN_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CN_ID_CHECK = "10X98765432"
_CN_ID_CANDIDATE = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")


def cn_id_valid(candidate: str) -> bool:
    """GB 11643 resident ID: 18 characters whose last is the ISO 7064 MOD 11-2 check character."""
    if len(candidate) != 18 or not candidate[:17].isdigit():
        return False
    total = sum(int(char) * weight for char, weight in zip(candidate[:17], _CN_ID_WEIGHTS, strict=True))
    return _CN_ID_CHECK[total % 11] == candidate[17].upper()


def find_cn_ids(text: str) -> Iterator[Span]:
    for match in _CN_ID_CANDIDATE.finditer(text):
        if cn_id_valid(match.group()):
            yield match.span()


def _merge(spans: Iterable[Span]) -> Iterator[Span]:
    current: Span | None = None
    for start, end in sorted(spans):
        if current and start <= current[1]:
            current = (current[0], max(current[1], end))
            continue
        if current:
            yield current
        current = (start, end)
    if current:
        yield current


CARD = Redactor("card", "[CARD]", find_cards)
EMAIL = Redactor("email", "[EMAIL]", find_emails)
PHONE = Redactor("phone", "[PHONE]", find_phones)
CN_ID = Redactor("cn_id", "[CN_ID]", find_cn_ids)
# ID numbers and cards go first: their check digits make them precise, and an 18-digit ID would otherwise
# be open to the looser phone matcher.
DEFAULT: tuple[Redactor, ...] = (CN_ID, CARD, EMAIL, PHONE)
BY_NAME: dict[str, Redactor] = {redactor.name: redactor for redactor in DEFAULT}


def redactors_named(names: Iterable[str]) -> tuple[Redactor, ...]:
    """The redactors for configured names, in the safe default order; unknown names raise ValueError."""
    wanted = set(names)
    unknown = wanted - set(BY_NAME)
    if unknown:
        raise ValueError(f"unknown redactors {sorted(unknown)}; expected some of {sorted(BY_NAME)}")
    return tuple(redactor for redactor in DEFAULT if redactor.name in wanted)


def redact(text: str, redactors: Sequence[Redactor] = DEFAULT) -> RedactionResult:
    counts: dict[str, int] = {}
    for redactor in redactors:
        spans = list(_merge(redactor.find(text)))
        counts[redactor.name] = len(spans)
        for start, end in reversed(spans):
            text = text[:start] + redactor.placeholder + text[end:]
    return RedactionResult(text=text, counts=counts)


def _normalise(text: str) -> str:
    # NFKC folds full-width Latin and digits (common in Chinese input) to ASCII; casefold ignores case.
    return unicodedata.normalize("NFKC", text).casefold()


def compliance_flags(text: str, phrases: Iterable[str]) -> list[str]:
    """The configured phrases found in `text`, in configured order, ignoring case and character width."""
    haystack = _normalise(text)
    found: list[str] = []
    for phrase in phrases:
        needle = _normalise(phrase).strip()
        if needle and needle in haystack and phrase not in found:
            found.append(phrase)
    return found
