"""Time from recognition to treatment (issue 14): for every stay, the first time each phenotype
criterion was met, the first dose of the index drug (anakinra), and the delay between them.

"First met" is computed two ways, by the one "meets" rule (:mod:`.meets`):

* **on the grid**: the first evaluation of the screen's grid (every ``step_hours`` from admission
  and at discharge) at which the criterion's RESULT is met (``<name>_first_met_grid``);
* **exactly**: the screen evaluated at PICU admission and at every data time of the stay up to
  the end of the stay or ``until`` (each measurement, drug start and condition onset of the
  person): the criteria only change when a value enters their window, so the first of these
  times at which the criterion is met is the first qualifying measurement (``<name>_first_met``).

``phenotype_first_met`` is the earliest over the phenotype criteria; ``first_dose_time`` the
first anakinra dose of the stay (``anakinra.course_summary``'s index time);
``recognition_to_treatment_hours`` = first dose - phenotype first met (negative when the drug
came first). Set-based (ibis), one expression per question.
"""

from __future__ import annotations

import datetime as dt

import ibis
import ibis.expr.types as ir

from hyperinflam.screening import anakinra, meets
from hyperinflam.screening.screen import screen, select_criteria


def phenotype_criteria(criteria=None) -> list[str]:
    """NAMEs of the phenotype criteria with a RESULT column (among ``criteria``)."""
    return [m.NAME for m in select_criteria(criteria)
            if getattr(m, "RESULT", None) and meets.group_of(m) == meets.PHENOTYPE]


def _until(stays: ir.Table, until: dt.datetime | None) -> ir.Value:
    if until is None:
        return stays.discharge_time
    u = ibis.literal(until, type="timestamp")
    return ibis.coalesce(ibis.least(stays.discharge_time, u), u)


def data_times(con, stays: ir.Table, until: dt.datetime | None = None) -> ir.Table:
    """(stay_id, eval_time): PICU admission and every data time of the stay's person after it,
    up to discharge or ``until`` (measurements, drug starts, condition onsets), distinct."""
    s = stays.select(w_stay="stay_id", w_person="person_id", w_lo="admit_time",
                     w_hi=_until(stays, until))
    sources = []
    for table, column in (("measurement", "time"), ("drug_administration", "start_time"),
                          ("condition", "onset_time")):
        t = con.table(table)
        sources.append(t.select(d_person="person_id", d_time=t[column].cast("timestamp")))
    times = ibis.union(*sources, distinct=False)
    j = s.join(times, [s.w_person == times.d_person, times.d_time > s.w_lo,
                       s.w_hi.isnull() | (times.d_time <= s.w_hi)])
    later = j.select(stay_id=j.w_stay, eval_time=j.d_time.cast("timestamp"))
    first = s.select(stay_id=s.w_stay, eval_time=s.w_lo.cast("timestamp"))
    return ibis.union(first, later, distinct=True)


def first_met(con, stays: ir.Table, *, until: dt.datetime | None = None, criteria=None,
              exact: bool = True, step_hours: float = 24) -> ir.Table:
    """Per stay of ``stays`` (stay_id, person_id, admit_time, discharge_time): for every
    phenotype criterion ``<name>_first_met`` (NULL: never met), and ``phenotype_first_met``.
    ``exact``: evaluated at every data time (else on the grid, column names unchanged)."""
    names = phenotype_criteria(criteria)
    if exact:
        times = data_times(con, stays, until)
    else:
        from hyperinflam.features import evaluation_grid

        grid = evaluation_grid(con, step_hours=step_hours)
        wanted = stays.select(w_stay="stay_id")
        times = grid.join(wanted, grid.stay_id == wanted.w_stay).select("stay_id", "eval_time")
        if until is not None:
            times = times.filter(times.eval_time <= ibis.literal(until, type="timestamp"))
    out = stays.select(r_stay="stay_id")
    if not names:
        return out.mutate(phenotype_first_met=ibis.null().cast("timestamp"))
    t = screen(con, criteria=names, times=times)
    results = meets.result_columns(t.columns, names)
    aggs = {f"{name}_first_met": t.eval_time.min(where=meets.met(t, column))
            for name, column in results.items()}
    per_stay = t.group_by(r_stay=t.stay_id).aggregate(**aggs)
    firsts = [per_stay[c] for c in aggs]
    per_stay = per_stay.mutate(phenotype_first_met=ibis.least(*firsts) if len(firsts) > 1
                               else firsts[0])
    return out.left_join(per_stay, out.r_stay == per_stay.r_stay).drop("r_stay_right")


def recognition_to_treatment(con, stays: ir.Table | None = None, *,
                             until: dt.datetime | None = None, criteria=None,
                             exact: bool = True) -> ir.Table:
    """Per stay: the first-met times of :func:`first_met`, ``first_dose_time`` (first anakinra
    dose up to ``until``) and ``recognition_to_treatment_hours``."""
    if stays is None:
        stays = con.table("stay")
    met = first_met(con, stays, until=until, criteria=criteria, exact=exact)
    course = anakinra.course_summary(con, as_of=until).select(c_stay="stay_id",
                                                             first_dose_time="index_time")
    j = met.left_join(course, met.r_stay == course.c_stay).drop("c_stay")
    delay = (j.first_dose_time.epoch_seconds() - j.phenotype_first_met.epoch_seconds()) / 3600.0
    return j.mutate(recognition_to_treatment_hours=delay).rename(stay_id="r_stay")
