"""Small-cell suppression with complementary suppression, checked by linear algebra.

The model: every count a package publishes is a **cell**; the arithmetic that ties cells together
is a list of **relations** ``sum_j a_j x_j = 0`` (a margin: levels add up to the cohort; a flow
step: the previous step = this step + the stays excluded here; a yes/no count: with + without =
the cohort; nested counts: deaths at any time = deaths in the stay + deaths after discharge;
per-group columns: the total column = the sum of the group columns). Differences of published
cells are cells too (the excluded stays, the patients without a marker pair), so a small
difference is suppressed like any small count.

The rule (docs/network.md):

1. **Primary suppression**: every cell with 0 < count < N (``min_cell``, default 10) is
   suppressed and published as "< N". A count of 0 is published: it identifies nobody, and CMS,
   PCORnet and OMOP's ``omopgenerics`` publish zeros too (cumulus drops empty bins).
2. **Complementary suppression**: while some suppressed cell can be recovered, one more published
   cell is suppressed (published as "suppressed"): the cheapest cell whose suppression protects
   it (cheap = a derived or small cell; the cohort, the flow and the marker n last), or, when no
   single cell does, the cheapest cell next to it. Then every complementary cell that the others
   make unnecessary is published again, the most valuable first (with any complementary cell
   that this publication determines). Zeros are never suppressed, so
   every suppressed cell is known to be >= 1. (A greedy heuristic: always safe, not always the
   fewest cells; optimal cell suppression is an integer programme.)
3. A suppressed cell ``h`` is **recoverable** when
   * (linear) its unit vector lies in the row space of the relations restricted to the suppressed
     cells, i.e. the published cells and the relations determine it: with ``A_S`` the relation
     matrix on the suppressed cells, ``h`` is recoverable iff every vector of the null space of
     ``A_S`` is 0 at ``h``; or
   * (bounds) it is determined once a reader adds what the labels say: a "< N" cell lies in
     [1, N - 1], a "suppressed" cell in [N, inf) (it would be "< N" otherwise). The smallest and
     largest value of ``h`` under the relations and these bounds (two linear programs, HiGHS via
     ``scipy.optimize.linprog``) must not single out one integer (e.g. two "< 10" cells adding up
     to 2 are both 1).
   Suppression is applied to the exact counts, before any rounding (nothing is rounded).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.linalg import null_space
from scipy.optimize import linprog

DEFAULT_MIN_CELL = 10
#: The smallest minimum cell accepted: the smallest threshold of the networks we know
#: (omopgenerics' default and PEDSnet: 5; OpenSAFELY: counts <= 7, i.e. 8; cumulus: 10;
#: PCORnet and CMS: 11).
MIN_CELL_FLOOR = 5

PUBLISHED, SMALL, COMPLEMENTARY = "published", "small", "complementary"
#: The status of a count the site's source cannot give (no value; not a cell of the model).
NOT_RECORDED = "not recorded"

#: Cost classes: complementary suppression takes the cheapest cell first.
COST_DERIVED = 1.0      # a difference or complement (patients without, stays excluded)
COST_COUNT = 2.0        # a level of a characteristic
COST_N = 50.0           # the n of a continuous characteristic (its sums go with it)
COST_MARKER = 1000.0    # a marker's n: its sufficient statistics go with it
COST_FLOW = 5000.0      # a flow step
COST_COHORT = 100000.0  # the cohort: every margin depends on it

_NULL_TOL = 1e-9


class SuppressionError(ValueError):
    pass


@dataclass(frozen=True)
class Cell:
    key: str
    value: int
    cost: float = COST_COUNT


@dataclass(frozen=True)
class Relation:
    """``sum(coef * cell) == 0`` over ``terms`` (cell key, integer coefficient)."""

    name: str
    terms: tuple[tuple[str, int], ...]


@dataclass
class Protection:
    """The outcome: each cell's status, in the order complementary cells were added."""

    min_cell: int
    status: dict[str, str]
    complementary_order: list[str] = field(default_factory=list)

    def suppressed(self) -> dict[str, str]:
        return {k: s for k, s in self.status.items() if s != PUBLISHED}

    def count(self, status: str) -> int:
        return sum(1 for s in self.status.values() if s == status)


def check_min_cell(min_cell: int) -> int:
    if isinstance(min_cell, bool) or not isinstance(min_cell, int) or min_cell < MIN_CELL_FLOOR:
        raise SuppressionError(
            f"--min-cell {min_cell}: the minimum cell must be a whole number >= "
            f"{MIN_CELL_FLOOR} (common choices: 10, the default, as cumulus; 11 as PCORnet "
            f"and CMS; 8 for OpenSAFELY's 'redact <= 7'; 5 as omopgenerics and PEDSnet).")
    return min_cell


class _Model:
    def __init__(self, cells: Sequence[Cell], relations: Sequence[Relation]):
        self.cells = list(cells)
        self.index = {c.key: i for i, c in enumerate(self.cells)}
        if len(self.index) != len(self.cells):
            raise SuppressionError("two cells share a key")
        self.values = np.array([c.value for c in self.cells], dtype="float64")
        rows = []
        for r in relations:
            row = np.zeros(len(self.cells))
            for key, coef in r.terms:
                row[self.index[key]] += coef
            if np.any(row):
                total = float(row @ self.values)
                if total != 0:
                    raise SuppressionError(f"relation {r.name} does not hold: {total:g}")
                rows.append(row)
        self.A = np.array(rows).reshape(len(rows), len(self.cells))
        # cells that share a relation
        self.neighbours: list[set[int]] = [set() for _ in self.cells]
        for row in self.A:
            members = set(np.flatnonzero(row).tolist())
            for m in members:
                self.neighbours[m] |= members - {m}

    def exposed(self, status: dict[int, str], min_cell: int,
                only: Iterable[int] | None = None) -> list[int]:
        """Suppressed cells (of ``only``, default all) a reader can recover."""
        hidden = sorted(status)
        if not hidden:
            return []
        col = {c: j for j, c in enumerate(hidden)}
        published = [i for i in range(len(self.cells)) if i not in status]
        rows = np.flatnonzero(np.any(self.A[:, hidden] != 0, axis=1))
        A_s = self.A[np.ix_(rows, hidden)]
        b = -self.A[np.ix_(rows, published)] @ self.values[published]
        targets = [c for c in (hidden if only is None else only) if c in status]
        if A_s.shape[0] == 0:
            return []
        kernel = null_space(A_s)
        out = []
        for c in targets:
            j = col[c]
            if kernel.shape[1] == 0 or np.all(np.abs(kernel[j]) < _NULL_TOL):
                out.append(c)  # linear: determined by the relations
                continue
            if self._bounded_to_one(A_s, b, hidden, status, min_cell, j):
                out.append(c)
        return out

    @staticmethod
    def _bounded_to_one(A_s, b, hidden, status, min_cell, j) -> bool:
        bounds = [(1.0, float(min_cell - 1)) if status[c] == SMALL else (float(min_cell), None)
                  for c in hidden]
        objective = np.zeros(len(hidden))
        objective[j] = 1.0
        extremes = []
        for sign in (1.0, -1.0):
            res = linprog(sign * objective, A_eq=A_s, b_eq=b, bounds=bounds, method="highs")
            if res.status == 3:  # unbounded: not determined
                return False
            if res.status != 0:
                raise SuppressionError(f"bounds check failed ({res.message})")
            extremes.append(sign * res.fun)
        low, high = extremes
        return math.ceil(low - 1e-7) >= math.floor(high + 1e-7)


def protect(cells: Sequence[Cell], relations: Sequence[Relation], min_cell: int
            ) -> Protection:
    """Primary and complementary suppression of ``cells`` (see the module docstring)."""
    check_min_cell(min_cell)
    model = _Model(cells, relations)
    status: dict[int, str] = {i: SMALL for i, c in enumerate(model.cells)
                              if 0 < c.value < min_cell}
    order: list[int] = []

    def cost(i: int) -> tuple:
        c = model.cells[i]
        return (c.cost, c.value, i)

    while True:
        exposed = model.exposed(status, min_cell)
        if not exposed:
            break
        h = exposed[0]
        frontier = sorted({n for s in status for n in model.neighbours[s]
                           if n not in status and model.cells[n].value > 0}, key=cost)
        if not frontier:
            raise SuppressionError(f"cell {model.cells[h].key} cannot be protected")
        chosen = next((c for c in frontier
                       if not model.exposed({**status, c: COMPLEMENTARY}, min_cell, only=[h])),
                      None)
        if chosen is None:  # no single cell protects h: take the cheapest next to it, go on
            near = [c for c in frontier if c in model.neighbours[h]] or frontier
            chosen = near[0]
        status[chosen] = COMPLEMENTARY
        order.append(chosen)
    # clean-up: publish again every complementary cell the others make unnecessary, the most
    # valuable first (the greedy steps may have taken more than the protection needs)
    # (a complementary cell that the published ones then determine is published with it: it
    # tells nothing more)
    for c in sorted(order, key=cost, reverse=True):
        if c not in status:
            continue
        trial = {k: v for k, v in status.items() if k != c}
        while True:
            exposed = model.exposed(trial, min_cell)
            if not exposed:
                status = trial
                break
            if any(trial[e] == SMALL for e in exposed):
                break
            trial = {k: v for k, v in trial.items() if k not in exposed}
    order = [c for c in order if c in status]
    return Protection(
        min_cell=min_cell,
        status={c.key: status.get(i, PUBLISHED) for i, c in enumerate(model.cells)},
        complementary_order=[model.cells[i].key for i in order])


def recoverable(cells: Sequence[Cell], relations: Sequence[Relation],
                protection: Protection) -> list[str]:
    """The suppressed cells a reader could recover (empty after :func:`protect`)."""
    model = _Model(cells, relations)
    status = {model.index[k]: s for k, s in protection.status.items() if s != PUBLISHED}
    return [model.cells[i].key for i in model.exposed(status, protection.min_cell)]
