"""The criteria share one toolkit and hold no copy of what the dictionary holds (issue 16 item 3).

Read from the source of every module of hyperinflam.criteria (its AST), independently of what the
modules compute:

* no unit factor of vocabulary/units.csv (nor its reciprocal) written in a criterion, and no
  constant named like a factor (``*_PER_*``): native units are named (``"mmol/L"``) and their
  factors taken from the dictionary by ``_toolkit.native``;
* no constant the toolkit or vocabulary.domain defines (ROOM_AIR_FIO2, MET ...) defined again;
* the tri-state words only in the toolkit ('met' / 'not_met' / 'unknown' / 'indeterminate');
* every threshold named: no bare number compared in a criterion's functions (0 and 1 aside);
* a criterion uses only the public names of another (phoenix8 of phoenix).
"""

from __future__ import annotations

import ast
import re
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest

import hyperinflam.criteria as criteria_package
from hyperinflam.criteria import _toolkit
from hyperinflam.vocabulary import domain, load

CRITERIA = Path(criteria_package.__file__).parent
MODULES = sorted(p for p in CRITERIA.glob("*.py") if not p.name.startswith("_"))
TRISTATE_WORDS = {_toolkit.MET, _toolkit.NOT_MET, _toolkit.UNKNOWN, _toolkit.INDETERMINATE}


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _numbers(node: ast.AST):
    for n in ast.walk(node):
        if isinstance(n, ast.Constant) and type(n.value) in (int, float):
            yield n


def _significant_digits(x: Fraction) -> int | None:
    """Significant digits of x's decimal expansion; None when it does not terminate."""
    d = x.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    if d != 1:
        return None
    digits = str(abs(Decimal(x.numerator) / Decimal(x.denominator))).replace(".", "").strip("0")
    return len(digits)


def _distinctive_factors() -> set[float]:
    """Factors of units.csv and their reciprocals that cannot be a threshold by coincidence: a
    non-terminating decimal or one of 3 or more significant digits (88.57, 1/2.247, 7.50062; not
    10, 1/1000, 1.8 = 1/(5/9), which are thresholds elsewhere)."""
    out = set()
    for unit in load().units.values():
        if unit.factor is None:
            continue
        for x in (unit.factor, 1 / unit.factor):
            digits = _significant_digits(x)
            if digits is None or digits >= 3:
                out.add(float(x))
    return out


#: A constant named like a unit factor (TG_MG_DL_PER_MMOL_L, HEMOGLOBIN_G_DL_PER_G_L).
FACTOR_NAME = re.compile(r"(MG|G|UG|NG|MMOL|UMOL|PMOL|U|IU)_(L|DL|ML)_PER_")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_no_copy_of_a_unit_factor(path):
    factors = _distinctive_factors()
    assert {88.57, 7.50062, 18.016} <= factors  # the test sees the factors it is about
    tree = _tree(path)
    copies = [f"line {n.lineno}: {n.value}" for n in _numbers(tree)
              if any(abs(float(n.value) - f) <= 1e-12 * abs(f) for f in factors)]
    named = [f"line {n.lineno}: {t.id}" for n in ast.walk(tree) if isinstance(n, ast.Assign)
             for t in n.targets if isinstance(t, ast.Name) and FACTOR_NAME.search(t.id)]
    assert not copies and not named, (
        f"{path.name} holds unit factors ({copies + named}); name the native unit and take its "
        f"factor from vocabulary/units.csv with criteria._toolkit.native.")


def test_the_factor_test_catches_a_copy(tmp_path):
    """The check above fails on the copies that criteria once held (hscore, hlh2004)."""
    factors = _distinctive_factors()
    copy = ast.parse("TG_MG_DL_PER_MMOL_L = 88.57\nx = value / 88.57\nHB = 0.1\n")
    assert [n.value for n in _numbers(copy) if n.value in factors] == [88.57, 88.57]
    assert FACTOR_NAME.search("TG_MG_DL_PER_MMOL_L") and FACTOR_NAME.search("HEMOGLOBIN_G_DL_PER_G_L")
    assert not FACTOR_NAME.search("PLATELETS_AT_MOST_PER_MM3")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_no_redefinition_of_shared_constants(path):
    shared = {name for name in vars(_toolkit) if name.isupper()} | {
        name for name in vars(domain) if name.isupper()}
    tree = _tree(path)
    redefined = [t.id for n in tree.body if isinstance(n, (ast.Assign, ast.AnnAssign))
                 and isinstance(n.value, ast.Constant)
                 for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
                 if isinstance(t, ast.Name) and t.id in shared]
    assert not redefined, f"{path.name} defines {redefined} again; import them from the toolkit."


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_tristate_words_only_in_the_toolkit(path):
    words = [f"line {n.lineno}: {n.value!r}" for n in ast.walk(_tree(path))
             if isinstance(n, ast.Constant) and n.value in TRISTATE_WORDS]
    assert not words, f"{path.name} spells tri-state results itself: {words}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_every_threshold_is_named(path):
    bare = []
    for fn in ast.walk(_tree(path)):
        if not isinstance(fn, ast.FunctionDef):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Compare):
                for operand in [node.left, *node.comparators]:
                    if isinstance(operand, ast.Constant) and type(operand.value) in (int, float) \
                            and operand.value not in (0, 1):
                        bare.append(f"{fn.name} line {operand.lineno}: {operand.value}")
            if isinstance(node, ast.Compare):  # "> 2 x ULN": the 2 is a threshold too
                for side in [node.left, *node.comparators]:
                    for binop in ast.walk(side):
                        if isinstance(binop, ast.BinOp) and isinstance(binop.op, (ast.Mult, ast.Div)):
                            bare += [f"{fn.name} line {o.lineno}: {o.value} x"
                                     for o in (binop.left, binop.right)
                                     if isinstance(o, ast.Constant)
                                     and type(o.value) in (int, float) and o.value not in (0, 1)]
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "at_least":
                bare += [f"{fn.name} line {a.lineno}: at least {a.value}" for a in node.args[1:]
                         if isinstance(a, ast.Constant)]
    assert not bare, f"{path.name} compares with bare numbers {bare}; name each with its citation."


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_only_public_names_of_other_criteria(path):
    private = []
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "hyperinflam.criteria.") and not node.module.endswith("._toolkit"):
            private += [a.name for a in node.names if a.name.startswith("_")]
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") \
                and isinstance(node.value, ast.Name) and (CRITERIA / f"{node.value.id}.py").exists():
            private.append(f"{node.value.id}.{node.attr}")
    assert not private, f"{path.name} uses private names of another criterion: {private}"


@pytest.mark.parametrize("variable, unit, factor", [
    ("triglycerides", "mmol/L", Fraction(8857, 100)), ("fibrinogen", "g/L", Fraction(100)),
    ("hemoglobin", "g/L", Fraction(1, 10)), ("crp", "mg/dL", Fraction(10)),
    ("platelets", "/mm3", Fraction(1, 1000)),
])
def test_native_factors_come_from_the_dictionary(variable, unit, factor):
    assert _toolkit.native_factor(variable, unit) == factor
