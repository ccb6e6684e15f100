"""The anakinra course of each PICU stay, as ibis expressions over the canonical tables.

Clinical reference §9.1 (dose regimens, dose-unit rules, flags), §12.7 (index = first anakinra
in the stay), §12.34 (weight for mg/kg) and §12.39 (24-h periods anchored at the first
dose: period k = [index + 24k h, index + 24(k+1) h)).

Everything is set-based and backend-neutral (no engine SQL, no asof_join: "latest weight at or
before the dose" is a ``row_number()`` over a window; an infusion spanning several periods is
split with ``ibis.range(...).unnest()``). The web layer only renders these tables.

Dose units (after loading, ``vocabulary/dose_units.csv`` canonical units):

* ``mg`` and ``mg/kg``: one dose (bolus, injection, or a short infusion), counted whole in the
  period of its ``start_time``;
* ``mg/h`` and ``mg/kg/h``: a continuous infusion, ``rate x hours infused`` (§9.1), split between
  periods by the hours of the infusion inside each period;
* ``mg/d`` and ``mg/kg/d``: a daily rate. With an ``end_time`` it is an infusion at rate/24 per
  hour; without one it is one day's dose given at ``start_time`` (project choice, documented in
  docs/web.md).

An infusion without ``end_time`` is running: counted up to ``as_of`` when given (the census time),
otherwise up to the stay's discharge; if neither exists its amount is unknown (NULL) and
``open_infusion`` is true. Nothing is guessed from the size of a value.
"""

from __future__ import annotations

import datetime as dt

import ibis
import ibis.expr.types as ir

#: The drug followed (vocabulary/drugs.csv).
ANAKINRA = "anakinra"
#: §9.1: "Flag > 8 mg/kg/day as 'above labelled maximum' (informational, not an error)".
LABELLED_MAXIMUM_MG_KG_DAY = 8.0
#: §9.1: "> 48 mg/kg/day as implausible (quarantine for review)" (2 mg/kg/h x 24 h, Opal 1997).
IMPLAUSIBLE_ABOVE_MG_KG_DAY = 48.0
#: §9.1 label start dose 1-2 mg/kg/day (CAPS/NOMID, Still's): below 1 is below every regimen
#: reported in §9.1 (informational).
LOWEST_REPORTED_MG_KG_DAY = 1.0
#: §12.39: period length.
PERIOD_HOURS = 24
#: Anakinra is "running" at a time t when an infusion covers t or a dose started in the preceding
#: RUNNING_WINDOW_HOURS (every §9.1 regimen gives at least one dose per 24 h). Project choice.
RUNNING_WINDOW_HOURS = 24.0

FLAG_IMPLAUSIBLE = "implausible"
FLAG_ABOVE_LABEL = "above_labelled_maximum"
FLAG_BELOW_REPORTED = "below_reported_regimens"

BOLUS_UNITS = {"mg": False, "mg/kg": True}               # unit -> per kg
HOURLY_UNITS = {"mg/h": False, "mg/kg/h": True}
DAILY_UNITS = {"mg/d": False, "mg/kg/d": True}

WEIGHT_FROM_ADMINISTRATION = "administration"
WEIGHT_FROM_MEASUREMENT = "latest_measurement"
WEIGHT_FROM_ADMISSION = "admission"


def _seconds(expr: ir.Value) -> ir.IntegerValue:
    return expr.epoch_seconds()


def _hours(later, earlier) -> ir.FloatingValue:
    return (_seconds(later) - _seconds(earlier)).cast("float64") / 3600.0


def _as_of_literal(as_of: str | dt.datetime | ir.TimestampValue | None):
    """``as_of`` as an ibis timestamp (an ibis value, e.g. a compiled plan's input, as is)."""
    if as_of is None or isinstance(as_of, ir.Value):
        return as_of
    from hyperinflam.features import to_naive_utc

    return ibis.literal(to_naive_utc(as_of), type="timestamp")


def administrations(con, *, as_of: str | dt.datetime | None = None,
                    drug: str = ANAKINRA, stay_id: str | None = None) -> ir.Table:
    """Every administration of ``drug`` given within a PICU stay, with its index and weight.

    Linked to stays by person and time (start within [admit, discharge], open-ended while the
    stay is open; §12.7); administrations after ``as_of`` are left out. Columns: person_id,
    stay_id, index_time (first dose in the stay), start_time, end_time, effective_end (end used
    for an infusion), dose, dose_unit, route, weight_kg (used, §12.34), weight_source
    ('administration' / 'latest_measurement' / 'admission' / NULL), is_infusion, open_infusion,
    rate_mg_h (infusions; NULL when a per-kg rate has no weight), bolus_mg (single doses).
    """
    at = _as_of_literal(as_of)
    stay = con.table("stay").select(s_stay_id="stay_id", s_person_id="person_id",
                                    admit_time="admit_time", discharge_time="discharge_time",
                                    admission_weight_kg="weight_kg")
    if stay_id is not None:  # one stay (the patient page): filter before the joins
        stay = stay.filter(stay.s_stay_id == stay_id)
    d = con.table("drug_administration")
    d = d.filter(d.drug == drug)
    if at is not None:
        d = d.filter(d.start_time <= at)
    d = d.select(a_person_id="person_id", start_time="start_time", end_time="end_time",
                 dose="dose", dose_unit="dose_unit", route="route",
                 dose_weight_kg=d.weight_kg.cast("float64"))
    j = stay.join(d, [stay.s_person_id == d.a_person_id, d.start_time >= stay.admit_time,
                      stay.discharge_time.isnull() | (d.start_time <= stay.discharge_time)])
    j = j.mutate(row_key=ibis.row_number().over(order_by=[j.s_stay_id, j.start_time, j.dose_unit,
                                                          j.dose, j.route]))

    # Latest weight measurement at or before the dose (§12.34), by row_number (no asof_join).
    m = con.table("measurement")
    w = m.filter(m.variable == "weight").select(w_person_id="person_id", w_time="time",
                                                 w_kg="value")
    wj = j.select("row_key", "a_person_id", "start_time").join(
        w, [j.a_person_id == w.w_person_id, w.w_time <= j.start_time])
    wj = wj.mutate(rk=ibis.row_number().over(group_by=wj.row_key, order_by=wj.w_time.desc()))
    latest = wj.filter(wj.rk == 0).select(w_row_key="row_key", measured_weight_kg="w_kg")
    j = j.left_join(latest, j.row_key == latest.w_row_key).drop("w_row_key")

    weight = ibis.coalesce(j.dose_weight_kg, j.measured_weight_kg,
                           j.admission_weight_kg.cast("float64"))
    source = ibis.cases((j.dose_weight_kg.notnull(), WEIGHT_FROM_ADMINISTRATION),
                        (j.measured_weight_kg.notnull(), WEIGHT_FROM_MEASUREMENT),
                        (j.admission_weight_kg.notnull(), WEIGHT_FROM_ADMISSION),
                        else_=ibis.null("string"))
    index_time = j.start_time.min().over(group_by=j.s_stay_id)
    per_hour_rate = ibis.null("float64")
    for unit, per_kg in HOURLY_UNITS.items():
        per_hour_rate = (j.dose_unit == unit).ifelse(j.dose * weight if per_kg else j.dose,
                                                     per_hour_rate)
    daily_rate = ibis.null("float64")
    for unit, per_kg in DAILY_UNITS.items():
        daily_rate = (j.dose_unit == unit).ifelse(
            (j.dose * weight if per_kg else j.dose) / 24.0, daily_rate)
    is_hourly = j.dose_unit.isin(list(HOURLY_UNITS))
    is_daily = j.dose_unit.isin(list(DAILY_UNITS))
    is_infusion = is_hourly | (is_daily & j.end_time.notnull())
    cap = j.discharge_time if at is None else ibis.coalesce(
        ibis.least(j.discharge_time, at), at)
    effective_end = ibis.coalesce(j.end_time, cap)
    bolus = ibis.null("float64")
    for unit, per_kg in BOLUS_UNITS.items():
        bolus = (j.dose_unit == unit).ifelse(j.dose * weight if per_kg else j.dose, bolus)
    for unit, per_kg in DAILY_UNITS.items():  # a daily dose without end: one day's dose
        bolus = ((j.dose_unit == unit) & j.end_time.isnull()).ifelse(
            j.dose * weight if per_kg else j.dose, bolus)
    return j.select(
        person_id=j.s_person_id, stay_id=j.s_stay_id, admit_time=j.admit_time,
        discharge_time=j.discharge_time, index_time=index_time, start_time=j.start_time,
        end_time=j.end_time,
        effective_end=is_infusion.ifelse(effective_end, ibis.null("timestamp")),
        dose=j.dose, dose_unit=j.dose_unit, route=j.route, weight_kg=weight,
        weight_source=source, is_infusion=is_infusion,
        open_infusion=is_infusion & j.end_time.isnull(),
        rate_mg_h=is_hourly.ifelse(per_hour_rate, daily_rate),
        bolus_mg=is_infusion.ifelse(ibis.null("float64"), bolus),
    )


def daily_doses(con, *, as_of: str | dt.datetime | None = None, drug: str = ANAKINRA,
                stay_id: str | None = None) -> ir.Table:
    """Dose per 24-h period from the first dose (§12.39, §9.1), one row per stay x period.

    Columns: person_id, stay_id, index_time, period (0 = first 24 h), period_start, period_end,
    n_administrations, dose_mg, dose_mg_per_kg (sum of each administration's mg / its weight),
    weight_kg (the weight used for the period's first administration), weight_source,
    weight_varies, dose_unknown (an administration's amount is unknown: no weight for a per-kg
    dose, or an open infusion with no end), cumulative_mg, cumulative_mg_per_kg, dose_flag
    ('implausible' > 48, 'above_labelled_maximum' > 8, 'below_reported_regimens' < 1 mg/kg/day,
    '' within, NULL unknown), period_complete (the period has ended by ``as_of``/discharge).
    """
    a = administrations(con, as_of=as_of, drug=drug, stay_id=stay_id)
    period_s = PERIOD_HOURS * 3600
    start_k = ((_seconds(a.start_time) - _seconds(a.index_time)) // period_s).cast("int64")
    end_point = ibis.coalesce(a.effective_end, a.start_time)
    end_k = ((_seconds(end_point) - _seconds(a.index_time) - 1) // period_s).cast("int64")
    end_k = ibis.greatest(end_k, start_k)
    a = a.mutate(k_first=start_k, k_last=a.is_infusion.ifelse(end_k, start_k))
    parts = a.mutate(period=ibis.range(a.k_first, a.k_last + 1).unnest())
    p_start = parts.index_time + (parts.period * period_s).as_interval("s")
    p_end = parts.index_time + ((parts.period + 1) * period_s).as_interval("s")
    parts = parts.mutate(period_start=p_start, period_end=p_end)
    overlap_h = ibis.greatest(
        _hours(ibis.least(parts.effective_end, parts.period_end),
               ibis.greatest(parts.start_time, parts.period_start)), 0.0)
    amount = parts.is_infusion.ifelse(parts.rate_mg_h * overlap_h, parts.bolus_mg)
    parts = parts.mutate(amount_mg=amount, amount_mg_per_kg=amount / parts.weight_kg,
                         first_rank=ibis.row_number().over(
                             group_by=[parts.stay_id, parts.period], order_by=parts.start_time))
    first = parts.filter(parts.first_rank == 0).select(
        f_stay_id="stay_id", f_period="period", weight_kg="weight_kg",
        weight_source="weight_source")
    g = parts.group_by(["person_id", "stay_id", "index_time", "period", "period_start",
                        "period_end", "discharge_time"]).aggregate(
        n_administrations=parts.count(),
        dose_mg=parts.amount_mg.sum(),
        dose_mg_per_kg=parts.amount_mg_per_kg.sum(),
        dose_unknown=(parts.amount_mg_per_kg.isnull()).any(),
        weight_varies=parts.weight_kg.nunique() > 1,
    )
    g = g.join(first, [g.stay_id == first.f_stay_id, g.period == first.f_period]).drop(
        "f_stay_id", "f_period")
    # An unknown part makes the period total unknown (missing is not zero).
    g = g.mutate(dose_mg=g.dose_unknown.ifelse(ibis.null("float64"), g.dose_mg),
                 dose_mg_per_kg=g.dose_unknown.ifelse(ibis.null("float64"), g.dose_mg_per_kg))
    running = ibis.window(group_by=g.stay_id, order_by=g.period, preceding=None, following=0)
    at = _as_of_literal(as_of)
    horizon = g.discharge_time if at is None else ibis.coalesce(ibis.least(g.discharge_time, at),
                                                                at)
    return g.select(
        "person_id", "stay_id", "index_time", "period", "period_start", "period_end",
        "n_administrations", "dose_mg", "dose_mg_per_kg", "weight_kg", "weight_source",
        "weight_varies", "dose_unknown",
        cumulative_mg=g.dose_mg.sum().over(running),
        cumulative_mg_per_kg=g.dose_mg_per_kg.sum().over(running),
        dose_flag=dose_flag(g.dose_mg_per_kg),
        period_complete=(g.period_end <= horizon).fill_null(False),
    ).order_by(["stay_id", "period"])


def dose_flag(mg_per_kg_day: ir.NumericValue) -> ir.StringValue:
    """§9.1 flags of a daily dose in mg/kg/day (NULL when the dose is unknown)."""
    return ibis.cases(
        (mg_per_kg_day > IMPLAUSIBLE_ABOVE_MG_KG_DAY, FLAG_IMPLAUSIBLE),
        (mg_per_kg_day > LABELLED_MAXIMUM_MG_KG_DAY, FLAG_ABOVE_LABEL),
        (mg_per_kg_day < LOWEST_REPORTED_MG_KG_DAY, FLAG_BELOW_REPORTED),
        (mg_per_kg_day.notnull(), ""),
        else_=ibis.null("string"))


def course_summary(con, *, as_of: str | dt.datetime | None = None,
                   drug: str = ANAKINRA, stay_id: str | None = None) -> ir.Table:
    """One row per stay that received ``drug``: the course up to ``as_of`` (default: whole stay).

    Columns: person_id, stay_id, index_time, last_dose_time, n_periods, cumulative_mg,
    cumulative_mg_per_kg (NULL if any period is unknown), max_mg_per_kg_day, any_above_label,
    any_implausible, days_since_first_dose (at ``as_of``, else at the last dose), running
    (at ``as_of``: an infusion covers it or a dose started within RUNNING_WINDOW_HOURS).
    """
    a = administrations(con, as_of=as_of, drug=drug, stay_id=stay_id)
    days = daily_doses(con, as_of=as_of, drug=drug, stay_id=stay_id)
    at = _as_of_literal(as_of)
    if at is not None:
        covers = a.is_infusion & (a.start_time <= at) & (
            a.end_time.isnull() | (a.end_time > at))
        recent = _hours(at, a.start_time) <= RUNNING_WINDOW_HOURS
        running_now = (covers | recent)
    else:
        running_now = ibis.literal(False)
    per_admin = a.group_by(["person_id", "stay_id", "index_time"]).aggregate(
        last_dose_time=a.start_time.max(), running=running_now.any())
    per_day = days.group_by(d_stay_id=days.stay_id).aggregate(
        n_periods=days.count(),
        cumulative_mg=days.dose_mg.sum(),
        cumulative_mg_per_kg=days.dose_mg_per_kg.sum(),
        n_unknown=days.dose_mg_per_kg.isnull().sum(),
        max_mg_per_kg_day=days.dose_mg_per_kg.max(),
        any_above_label=(days.dose_flag == FLAG_ABOVE_LABEL).any(),
        any_implausible=(days.dose_flag == FLAG_IMPLAUSIBLE).any(),
    )
    t = per_admin.join(per_day, per_admin.stay_id == per_day.d_stay_id).drop("d_stay_id")
    reference_time = at if at is not None else t.last_dose_time
    return t.select(
        "person_id", "stay_id", "index_time", "last_dose_time", "n_periods",
        cumulative_mg=(t.n_unknown > 0).ifelse(ibis.null("float64"), t.cumulative_mg),
        cumulative_mg_per_kg=(t.n_unknown > 0).ifelse(ibis.null("float64"),
                                                      t.cumulative_mg_per_kg),
        max_mg_per_kg_day=t.max_mg_per_kg_day,
        any_above_label=t.any_above_label.fill_null(False),
        any_implausible=t.any_implausible.fill_null(False),
        days_since_first_dose=_hours(reference_time, t.index_time) / 24.0,
        running=t.running.fill_null(False),
    )
