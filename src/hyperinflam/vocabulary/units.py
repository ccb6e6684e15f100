"""Unit spellings and exact unit factors (clinical reference §11.1).

A factor or offset is written as a decimal or a fraction of decimals (``88.57``, ``1/100``,
``1/2.247``, ``-160/9``) and kept exactly as a :class:`fractions.Fraction`. A conversion
``canonical = received x factor + offset`` is then the rational ``(received x a + b) / c`` with
integers ``a``, ``b``, ``c`` (:func:`integer_form`), and a received value written with ``E``
decimals, ``M / 10**E``, converts to ``(M x a + b x 10**E) / (c x 10**E)``: an integer numerator over
an integer denominator. While both are below 2**53 they are exact as doubles, and one IEEE
division gives the double nearest the exact result (FiO2 ``35`` % -> 0.35, not
0.35000000000000003; 110000 /uL -> 110.0 x 10^3/uL exactly). :func:`exact_convert` does this in
Python; :func:`hyperinflam.sources.ingest` does the same arithmetic set-based on the engine.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

__all__ = ["EXACT_LIMIT", "UNIT_FOLDS", "exact_convert", "integer_form", "normalize_unit",
           "normalize_unit_expr", "parse_factor", "parse_number"]

#: Integers below this are exact as IEEE doubles (2**53).
EXACT_LIMIT = 2 ** 53

# Characters folded when matching a unit spelling (applied identically in Python and on the engine).
UNIT_FOLDS: tuple[tuple[str, str], ...] = (
    (" ", ""),
    ("\u00b5", "u"),  # micro sign
    ("\u03bc", "u"),  # Greek mu
    ("\u00b3", "3"),
    ("\u2079", "9"),
    ("\u00d7", "x"),
)


def normalize_unit(unit: str | None) -> str | None:
    """Fold a unit spelling for matching: lower case, no spaces, micro as 'u'."""
    if unit is None:
        return None
    folded = unit.strip().lower()
    for old, new in UNIT_FOLDS:
        folded = folded.replace(old, new)
    return folded


def normalize_unit_expr(expr):
    """The same folding as :func:`normalize_unit`, as an ibis string expression."""
    folded = expr.strip().lower()
    for old, new in UNIT_FOLDS:
        folded = folded.replace(old, new)
    return folded


def parse_factor(text: str | None) -> Fraction | None:
    """A factor written as a decimal or a fraction of decimals ('88.57', '1/2.247', '-160/9'),
    exactly; None when empty. Raises ValueError / ZeroDivisionError on anything else."""
    if text is None or str(text).strip() == "":
        return None
    text = str(text).strip()
    if "/" in text:
        num, den = text.split("/", 1)
        return Fraction(Decimal(num.strip())) / Fraction(Decimal(den.strip()))
    return Fraction(Decimal(text))


def parse_number(text: str | None) -> float | None:
    """:func:`parse_factor` as the nearest double (plausible ranges and other bounds)."""
    value = parse_factor(text)
    return None if value is None else float(value)


def integer_form(factor: Fraction, offset: Fraction = Fraction(0)) -> tuple[int, int, int]:
    """Integers (a, b, c), c > 0, with ``value x factor + offset == (value x a + b) / c``."""
    c = factor.denominator * offset.denominator // _gcd(factor.denominator, offset.denominator)
    return int(factor * c), int(offset * c), c


def _gcd(x: int, y: int) -> int:
    while y:
        x, y = y, x % y
    return x


def exact_convert(value: str | int | float | Decimal | Fraction, factor: Fraction,
                  offset: Fraction = Fraction(0)) -> float:
    """The double nearest ``value x factor + offset``, the value taken as written (a text such as
    '35.1' is the decimal 35.1, not the double nearest it)."""
    if isinstance(value, float):
        value = Decimal(repr(value))  # the shortest text that reads back to this double
    exact = Fraction(Decimal(value) if isinstance(value, str) else value)
    return float(exact * factor + offset)
