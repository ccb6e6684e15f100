"""The count tables a site package shares, as cells and linear relations
(:mod:`hyperinflam.study.network.suppression`), built from a :class:`SiteRun`.

Cells: the flow steps and the stays excluded between them; every level of a categorical
characteristic; every yes/no count and its complement (patients without); the n of each
continuous characteristic and the patients without a value; the n of each marker at each
follow-up timepoint and the cohort members without that pair; for deaths, the deaths after PICU
discharge and after the follow-up window (differences of nested counts).

Relations (each a sum that is zero): previous step = step + excluded; levels add up to the
cohort; with + without = the cohort; n + without = the cohort; deaths at any time = deaths in the
stay + after discharge = deaths within the follow-up + after it. A relation is kept only when it
holds on the site's counts (it always does for counts of one run; a check, not an assumption).
"""

from __future__ import annotations

from dataclasses import dataclass

from hyperinflam.study.network.siterun import FLOW_CHAIN, FLOW_EXCLUSIONS, SiteRun
from hyperinflam.study.network.suppression import (
    COST_COHORT,
    COST_COUNT,
    COST_DERIVED,
    COST_FLOW,
    COST_MARKER,
    COST_N,
    Cell,
    Relation,
)

COHORT_KEY = "flow|cohort||"
#: Levels of the death counts (study.analysis): nested in "any time".
DEATH_ANY, DEATH_IN_STAY = "any time", "in the PICU stay"


def cell_key(section: str, variable: str, timepoint: str | None = None,
             level: str | None = None) -> str:
    return f"{section}|{variable}|{timepoint or ''}|{level or ''}"


@dataclass(frozen=True)
class CountCell:
    """A cell with what a reader sees of it (section, variable, label, timepoint, level)."""

    section: str
    variable: str
    label: str
    timepoint: str | None
    level: str | None
    value: int
    cost: float
    derived: bool  # a difference or complement of other cells

    @property
    def key(self) -> str:
        return cell_key(self.section, self.variable, self.timepoint, self.level)

    def cell(self) -> Cell:
        return Cell(self.key, self.value, self.cost)


class _Builder:
    def __init__(self):
        self.cells: dict[str, CountCell] = {}
        self.relations: list[Relation] = []

    def add(self, section, variable, label, value, *, timepoint=None, level=None,
            cost=COST_COUNT, derived=False) -> str:
        cell = CountCell(section, variable, label, timepoint, level, int(value), cost, derived)
        if cell.key in self.cells:
            raise ValueError(f"duplicate cell {cell.key}")
        self.cells[cell.key] = cell
        return cell.key

    def relate(self, name: str, terms: list[tuple[str, int]]) -> None:
        if sum(self.cells[k].value * c for k, c in terms) == 0:
            self.relations.append(Relation(name, tuple(terms)))

    def part_of(self, name: str, part: str, whole: str, section: str, variable: str,
                label: str, *, timepoint=None, level=None) -> None:
        """``whole = part + rest``: add the rest as a derived cell and the relation."""
        rest = self.cells[whole].value - self.cells[part].value
        if rest < 0:
            return  # not nested in this run: no relation a reader could use
        key = self.add(section, variable, label, rest, timepoint=timepoint, level=level,
                       cost=COST_DERIVED, derived=True)
        self.relate(name, [(whole, 1), (part, -1), (key, -1)])


def count_tables(run: SiteRun) -> tuple[list[CountCell], list[Relation]]:
    """Every count the package shares and the relations between them."""
    b = _Builder()
    previous = None
    for step in FLOW_CHAIN:
        if step not in run.flow:
            continue
        b.add("flow", step, run.flow_labels.get(step) or step, run.flow[step],
              cost=COST_COHORT if step == "cohort" else COST_FLOW)
        if previous is not None:
            b.part_of(f"flow: {previous} = {step} + excluded", cell_key("flow", step),
                      cell_key("flow", previous), "flow", f"excluded_{step}",
                      FLOW_EXCLUSIONS.get(step, f"Excluded before {step}"))
        previous = step
    for step, value in run.flow.items():  # flow counts outside the chain: cells of their own
        if step not in FLOW_CHAIN:
            b.add("flow", step, run.flow_labels.get(step) or step, value)
    cohort = COHORT_KEY

    for flag in run.flags:
        key = b.add(flag.section, flag.variable, flag.label, flag.count, level=flag.level)
        b.part_of(f"{flag.section} {flag.variable} {flag.level or ''}: with + without = cohort",
                  key, cohort, flag.section, flag.variable, flag.label,
                  level=f"without ({flag.level})" if flag.level else "without")
    deaths = {f.level: cell_key("safety", "death", None, f.level) for f in run.flags
              if f.section == "safety" and f.variable == "death"}
    if DEATH_ANY in deaths:
        label = next(f.label for f in run.flags if f.section == "safety"
                     and f.variable == "death")
        for level, key in deaths.items():
            if level == DEATH_ANY:
                continue
            rest = ("after PICU discharge" if level == DEATH_IN_STAY
                    else f"after the window '{level}'")
            b.part_of(f"safety death: any time = {level} + {rest}", key, deaths[DEATH_ANY],
                      "safety", "death", label, level=rest)

    for cat in run.categories:
        keys = [b.add(cat.section, cat.variable, cat.label, count, level=level)
                for level, count in cat.levels.items()]
        b.relate(f"{cat.section} {cat.variable}: levels add up to the cohort",
                 [(k, 1) for k in keys] + [(cohort, -1)])

    for cont in run.continuous:
        key = b.add(cont.section, cont.variable, cont.label, cont.n, level="n", cost=COST_N)
        b.part_of(f"{cont.section} {cont.variable}: n + no value = cohort", key, cohort,
                  cont.section, cont.variable, cont.label, level="no value")

    for marker in run.markers:
        for tp in run.timepoints:
            n = int(((run.pairs["marker"] == marker.variable)
                     & (run.pairs["timepoint"] == tp.name)).sum())
            key = b.add("marker", marker.variable, marker.label, n, timepoint=tp.name,
                        level="n", cost=COST_MARKER)
            b.part_of(f"marker {marker.variable} {tp.name}: n + not analysable = cohort", key,
                      cohort, "marker", marker.variable, marker.label, timepoint=tp.name,
                      level="not analysable")
    return list(b.cells.values()), b.relations
