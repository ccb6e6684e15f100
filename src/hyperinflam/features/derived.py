"""Derived long measurements: oxygenation ratios and a single MAP series.

Each derived variable is computed from the canonical ``measurement`` table and returned in the
same long layout (``person_id, time, variable, value``), so that :mod:`hyperinflam.features`
can union it with the canonical measurements and aggregate it like any other variable.

* ``pf_ratio`` = PaO2 (mmHg) / FiO2 (fraction), the FiO2 being the **last FiO2 at or before the
  PaO2 time, within** :data:`FIO2_MATCH_HOURS` (6 h). Clinical reference §5.2 ("P/F is valid only
  if the FiO2 observation is at the same time as or before the PaO2 observation") and §5.4 (FiO2
  look-back 6 h); Sanchez-Pinto et al., JAMA 2024;331(8):675-686, EHR implementation notes.
* ``sf_ratio`` = SpO2 (%) / FiO2, same FiO2 rule, computed **only when SpO2 <= 97 %**
  (:data:`SF_MAX_SPO2_PCT`; clinical reference §5.2 and §12.22). The Phoenix reference
  package does not check this; the check belongs here.
* ``map_any`` = the measured MAP when one was recorded at that time, else the MAP estimated from a
  systolic and a diastolic pressure recorded at the same time, ``DBP + (SBP - DBP)/3``
  (clinical reference §5.2 and §12.26). The estimate requires ``SBP - DBP >= 1``
  (clinical reference §5.4 / §11.2 plausibility rule). The canonical table does not tell arterial
  from cuff pressures, so the four-level Phoenix hierarchy collapses to "measured, else estimated".

Choices where the reference is silent (named settings below):

* FiO2 ties: when several FiO2 values share the latest time before a PaO2/SpO2, the highest FiO2
  is used (the lower, more severe ratio) so that the result does not depend on row order.
* The FiO2 window is closed at both ends: ``pao2_time - 6 h <= fio2_time <= pao2_time``.
* Identical source rows (same person, time and value) give one derived row.

All of it is ibis expressions: a running window, equi-joins and anti-joins, no engine SQL.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

#: Longest gap between the FiO2 and the PaO2/SpO2 it is paired with (clinical reference §5.4).
FIO2_MATCH_HOURS: float = 6.0
#: S/F is only valid up to this SpO2 (%), clinical reference §5.2 and §12.22.
SF_MAX_SPO2_PCT: float = 97.0
#: Smallest pulse pressure (SBP - DBP, mmHg) for which a MAP is estimated (clinical reference §5.4).
MIN_PULSE_PRESSURE_MMHG: float = 1.0

#: The variables this module derives (hyperinflam.features routes specs on these names here).
DERIVED_VARIABLES: set[str] = {"pf_ratio", "sf_ratio", "map_any"}

_LONG_COLUMNS = ("person_id", "time", "variable", "value")


def _ratio_to_fio2(measurement: ir.Table, numerator: str, name: str,
                   max_numerator: float | None = None) -> ir.Table:
    """``numerator / FiO2`` with the last FiO2 at or before the numerator time (clinical ref §5.2).

    Set-based without a range join: FiO2 and numerator rows of a person in one time-ordered
    sequence (at equal times the FiO2 rows first), a running maximum of the FiO2 time gives each
    numerator row the latest FiO2 time at or before it; an equi-join on (person, that time) then
    takes the highest FiO2 recorded at that time. The pair counts when the gap is at most
    :data:`FIO2_MATCH_HOURS`.
    """
    num = measurement.filter((measurement.variable == numerator) & measurement.value.notnull())
    if max_numerator is not None:
        num = num.filter(num.value <= max_numerator)
    num = num.select(q_person=num.person_id, q_time=num.time, q_value=num.value).distinct()
    fio2 = measurement.filter((measurement.variable == "fio2") & measurement.value.notnull()
                              & (measurement.value > 0))
    fio2_at = fio2.group_by(f_person=fio2.person_id, f_time=fio2.time).aggregate(
        f_value=fio2.value.max())

    seq = ibis.union(
        fio2_at.select(q_person="f_person", q_time="f_time", q_value=ibis.null("float64"),
                       q_is_num=ibis.literal(1, "int8"), q_fio2_time="f_time"),
        num.mutate(q_is_num=ibis.literal(2, "int8"), q_fio2_time=ibis.null(num.q_time.type()),
                   q_value=num.q_value.cast("float64")),
        distinct=False)
    upto = ibis.window(group_by=seq.q_person, order_by=[seq.q_time, seq.q_is_num],
                       rows=(None, 0))
    seq = seq.mutate(q_last_fio2=seq.q_fio2_time.max().over(upto))
    paired = seq.filter(seq.q_is_num == 2)
    window = ibis.interval(seconds=int(FIO2_MATCH_HOURS * 3600))
    paired = paired.filter(paired.q_last_fio2 >= paired.q_time - window)
    paired = paired.join(fio2_at, [paired.q_person == fio2_at.f_person,
                                   paired.q_last_fio2 == fio2_at.f_time])
    return paired.select(
        person_id=paired.q_person,
        time=paired.q_time,
        variable=ibis.literal(name, type="string"),
        value=(paired.q_value / paired.f_value).cast("float64"),
    )


def _map_any(measurement: ir.Table) -> ir.Table:
    """Measured MAP, else DBP + (SBP - DBP)/3 at the same time (clinical reference §5.2)."""
    measured = measurement.filter((measurement.variable == "map") & measurement.value.notnull())
    measured = measured.select(person_id=measured.person_id, time=measured.time,
                               value=measured.value).distinct()
    sbp = measurement.filter((measurement.variable == "sbp") & measurement.value.notnull())
    sbp = sbp.select(person_id=sbp.person_id, time=sbp.time, sbp=sbp.value).distinct()
    dbp = measurement.filter((measurement.variable == "dbp") & measurement.value.notnull())
    dbp = dbp.select(dbp_person_id=dbp.person_id, dbp_time=dbp.time, dbp=dbp.value).distinct()
    pairs = sbp.inner_join(dbp, [sbp.person_id == dbp.dbp_person_id, sbp.time == dbp.dbp_time])
    pairs = pairs.filter(pairs.sbp - pairs.dbp >= MIN_PULSE_PRESSURE_MMHG)
    estimated = pairs.select(person_id=pairs.person_id, time=pairs.time,
                             value=pairs.dbp + (pairs.sbp - pairs.dbp) / 3.0)
    measured_times = measured.select(m_person_id=measured.person_id, m_time=measured.time).distinct()
    estimated = estimated.anti_join(
        measured_times,
        [estimated.person_id == measured_times.m_person_id, estimated.time == measured_times.m_time],
    )
    both = ibis.union(measured, estimated, distinct=False)
    return both.select(person_id=both.person_id, time=both.time,
                       variable=ibis.literal("map_any", type="string"),
                       value=both.value.cast("float64"))


def derived_measurements(measurement: ir.Table) -> ir.Table:
    """All derived variables of :data:`DERIVED_VARIABLES` as a long table.

    ``measurement`` needs the columns person_id, time, variable, value (canonical units:
    PaO2 mmHg, SpO2 %, FiO2 fraction, blood pressures mmHg). Returns person_id, time, variable,
    value (double).
    """
    parts = [
        _ratio_to_fio2(measurement, "pao2", "pf_ratio"),
        _ratio_to_fio2(measurement, "spo2", "sf_ratio", max_numerator=SF_MAX_SPO2_PCT),
        _map_any(measurement),
    ]
    out = ibis.union(*parts, distinct=False)
    return out.select(*_LONG_COLUMNS)
