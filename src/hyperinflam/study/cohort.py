"""Cohort extraction for a declarative study, as ibis expressions over the canonical tables.

Everything here is set-based and backend-neutral (no raw SQL, no asof_join, no Python loops over
rows): "closest value in a window" is a ``row_number()`` over a window ordered by the distance to
the target time. Only the small cohort-level frames are executed, at the end, by
:func:`extract_cohort`.

Rules (clinical reference §10.4 and section 12):

* Index (row 7): the first administration of the index drug (default anakinra) whose start_time
  lies within [admit_time, discharge_time] of the PICU stay (open-ended while discharge_time is
  empty). Drug rows are linked to stays by person_id and time; their stay_id is not needed.
  An administration of the index drug before admit_time is never the index; it sets
  ``prior_index_drug_exposure``.
* Cohort: age in completed years at PICU admission within [age_min_years, age_max_years];
  admission date within [admitted_from, admitted_to] when given; optional marker requirement on
  the baseline value; then the first qualifying stay per patient (row 32), by index time.
* Baseline (row 1): the value closest to the index within [baseline_from_hours,
  baseline_to_hours], edges inclusive; equidistant values -> the earlier (pre-index) one.
* Day 7 (row 2): the value closest to index + day7_target_hours within +/- day7_tolerance_hours,
  edges inclusive; equidistant -> the earlier one. Values at the same time and distance are
  ordered by value (lowest first) so the choice is deterministic.
* Measurements are linked to the patient by person_id and time, not by stay_id: a baseline drawn
  in the emergency department before PICU admission counts (schema.py).
* Co-therapies (row 8): any administration of each class within [window_from_hours,
  window_to_hours] of the index, and any time within the stay.
* Outcomes (row 33): infections strictly after the index, deaths at or after the index; in stay
  (time <= discharge_time, or no discharge yet) and within followup_days of the index.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import ibis
import pandas as pd

from hyperinflam.features.recorded import recorded_domains_in
from hyperinflam.features.support import support_intervals
from hyperinflam.study.definition import StudyDefinition
from hyperinflam.vocabulary import Vocabulary
from hyperinflam.vocabulary.domain import (CONDITIONS_DOMAIN, DRUGS_DOMAIN, INVASIVE_VENTILATION,
                                           VASOACTIVE_DOMAIN, support_domain)

_SECONDS_PER_HOUR = 3600.0
_DAYS_PER_YEAR = 365.25


@dataclass
class CohortFrames:
    """The executed, cohort-level frames that the analysis reads.

    flow: counts for the flow diagram (stays, stays_with_index_drug, ..., cohort).
    cohort: one row per cohort member (stay_id, person_id, admit_time, discharge_time,
        index_time, prior_index_drug_exposure, age_years, sex, admission_reason, weight_kg,
        underlying_disease, invasive_ventilation, vasoactive_infusion).
    marker_values: every marker value in the trajectory span or chosen as baseline/day 7
        (stay_id, variable, time, hours_from_index, value, unit, role).
    cotherapy: one row per member and drug class given (stay_id, drug_class, in_window, in_stay).
    events: infections after and deaths at/after the index (stay_id, event_type,
        days_from_index, in_stay, within_followup).
    exposure: the index drug's course per member (:func:`index_drug_exposure`).
    recorded: whether the source records each domain (:func:`recorded_domains`).
    """

    flow: dict[str, int]
    cohort: pd.DataFrame
    marker_values: pd.DataFrame
    cotherapy: pd.DataFrame
    events: pd.DataFrame
    units: dict[str, str] = field(default_factory=dict)
    exposure: pd.DataFrame = field(default_factory=pd.DataFrame)
    recorded: dict[str, bool | None] = field(default_factory=dict)


def _hours_between(later, earlier):
    """(later - earlier) in hours, via epoch seconds (portable across ibis backends).

    The difference is cast to float64 *before* dividing: Spark SQL reads the literal ``3600.0``
    as DECIMAL, and integer / DECIMAL is decimal arithmetic rounded to 6 places (-1.366667 h
    instead of -1.3666666666666667 h on DuckDB). double / literal stays double on both engines.
    """
    seconds = (later.epoch_seconds() - earlier.epoch_seconds()).cast("float64")
    return seconds / _SECONDS_PER_HOUR


def _within_stay(time, admit_time, discharge_time):
    """time in [admit_time, discharge_time]; open-ended while discharge_time is empty."""
    return (time >= admit_time) & (discharge_time.isnull() | (time <= discharge_time))


def _completed_years(birth_date, at_time):
    """Age in completed years at ``at_time`` (birthday reached or not in the admission year)."""
    before_birthday = (at_time.month() < birth_date.month()) | (
        (at_time.month() == birth_date.month()) & (at_time.day() < birth_date.day()))
    return at_time.year() - birth_date.year() - ibis.ifelse(before_birthday, 1, 0)


def stays_with_index(con, study: StudyDefinition) -> ibis.Table:
    """Every PICU stay with its index time (NULL when the drug was not given in the stay),
    prior exposure, age and the cohort-rule flags."""
    stay = con.table("stay")
    person = con.table("person")
    drug = con.table("drug_administration")
    index_drug = study.cohort.index_drug

    doses = drug.filter(drug.drug == index_drug).select(
        dose_person_id=drug.person_id, dose_time=drug.start_time)
    in_stay = stay.join(
        doses,
        [stay.person_id == doses.dose_person_id,
         _within_stay(doses.dose_time, stay.admit_time, stay.discharge_time)],
        how="inner",
    )
    index_times = in_stay.group_by(index_stay_id=in_stay.stay_id).aggregate(
        index_time=in_stay.dose_time.min())
    first_ever = doses.group_by(first_person_id=doses.dose_person_id).aggregate(
        first_dose_time=doses.dose_time.min())

    people = person.select(p_person_id=person.person_id, birth_date=person.birth_date,
                           sex=person.sex)
    t = (stay.left_join(index_times, stay.stay_id == index_times.index_stay_id)
         .left_join(first_ever, stay.person_id == first_ever.first_person_id)
         .left_join(people, stay.person_id == people.p_person_id))
    c = study.cohort
    age_completed = _completed_years(t.birth_date, t.admit_time)
    age_ok = (age_completed >= c.age_min_years) & (age_completed <= c.age_max_years)
    admit_date = t.admit_time.date()
    calendar_ok = ibis.literal(True)
    if c.admitted_from is not None:
        calendar_ok = calendar_ok & (admit_date >= ibis.literal(c.admitted_from))
    if c.admitted_to is not None:
        calendar_ok = calendar_ok & (admit_date <= ibis.literal(c.admitted_to))
    return t.select(
        "stay_id", "person_id", "admit_time", "discharge_time", "admission_reason", "weight_kg",
        "index_time", "sex",
        has_index=t.index_time.notnull(),
        prior_index_drug_exposure=t.first_dose_time.notnull() & (t.first_dose_time < t.admit_time),
        age_years=_hours_between(t.admit_time, t.birth_date.cast("timestamp"))
        / (24.0 * _DAYS_PER_YEAR),
        age_completed_years=age_completed,
        age_ok=age_ok.fill_null(False),
        calendar_ok=calendar_ok.fill_null(False),
    )


def chosen_values(con, members: ibis.Table, variables: list[str], study: StudyDefinition,
                  *, include_trajectory: bool = True, timepoints: bool = True) -> ibis.Table:
    """Marker values around each member's index, with ``role`` 'baseline' or a timepoint name
    ('day7', ...) for the values chosen by the window rules (clinical reference §10.4;
    §12.1-§12.2).

    ``members`` needs stay_id, person_id and index_time. Rows returned: every value in the
    trajectory span (if ``include_trajectory``) and every chosen value. The timepoint windows do
    not overlap one another or the baseline window (the definition checks it), so a value has
    at most one role. ``timepoints=False`` chooses the baseline only.
    """
    w = study.windows
    points = list(study.timepoints) if timepoints else []
    m = con.table("measurement")
    m = m.filter(m.variable.isin(variables)).select(
        m_person_id=m.person_id, m_time=m.time, variable=m.variable, value=m.value, unit=m.unit)
    lo = min([w.baseline_from_hours] + [t.from_hours for t in points]
             + ([w.trajectory_from_days * 24.0] if include_trajectory else []))
    hi = max([w.baseline_to_hours] + [t.to_hours for t in points]
             + ([w.trajectory_to_days * 24.0] if include_trajectory else []))
    j = members.select("stay_id", "person_id", "index_time").join(
        m, members.person_id == m.m_person_id, how="inner")
    j = j.mutate(hours_from_index=_hours_between(j.m_time, j.index_time))
    j = j.filter((j.hours_from_index >= lo) & (j.hours_from_index <= hi) & j.value.notnull())
    h = j.hours_from_index
    part = [j.stay_id, j.variable]

    def closest(inside, target):
        """Rank 0 = the value inside the window closest to ``target``; ties -> earlier, lower."""
        return ibis.row_number().over(
            group_by=part,
            order_by=[ibis.ifelse(inside, 0, 1), (h - target).abs(), h, j.value])

    windows = [("baseline", w.baseline_from_hours, w.baseline_to_hours, 0.0)] + [
        (t.name, t.from_hours, t.to_hours, t.target_hours) for t in points]
    flags = {f"in_{i}": (h >= lo_h) & (h <= hi_h) for i, (_, lo_h, hi_h, _) in enumerate(windows)}
    j = j.mutate(**flags)
    h = j.hours_from_index
    part = [j.stay_id, j.variable]
    j = j.mutate(**{f"rank_{i}": closest(j[f"in_{i}"], target)
                    for i, (_, _, _, target) in enumerate(windows)})
    role = ibis.cases(*[(j[f"in_{i}"] & (j[f"rank_{i}"] == 0), name)
                        for i, (name, _, _, _) in enumerate(windows)],
                      else_=ibis.null().cast("string"))
    j = j.mutate(role=role)
    keep = j.role.notnull()
    if include_trajectory:
        keep = keep | ((j.hours_from_index >= w.trajectory_from_days * 24.0)
                       & (j.hours_from_index <= w.trajectory_to_days * 24.0))
    return j.filter(keep).select(
        "stay_id", "person_id", "variable", time=j.m_time, hours_from_index=j.hours_from_index,
        value=j.value, unit=j.unit, role=j.role)


def _apply_requirement(con, stays: ibis.Table, study: StudyDefinition) -> ibis.Table:
    """Add ``require_ok``: the baseline value of the required marker, or the required screening
    output at the index time, meets the threshold (missing -> not met). Always true when the
    study has no requirement."""
    req = study.cohort.required_criterion
    if req is None:
        return stays.mutate(require_ok=ibis.literal(True))
    candidates = stays.filter(stays.has_index)
    if req.is_marker:
        base = chosen_values(con, candidates, [req.variable], study, include_trajectory=False,
                             timepoints=False)
        base = base.filter(base.role == "baseline")
        values, stay_ids = base.value, base.stay_id
    else:  # a screening output at the index time
        from hyperinflam.screening.screen import screen

        times = candidates.select("stay_id", eval_time=candidates.index_time)
        base = screen(con, times=times, criteria=[req.criterion])
        if req.variable not in base.columns:
            from hyperinflam.errors import StudyDefinitionError

            outputs = ", ".join(c for c in base.columns if c.startswith(f"{req.criterion}_"))
            raise StudyDefinitionError(
                f"[cohort] require: '{req.variable}' is not an output of criterion "
                f"'{req.criterion}'; its outputs are {outputs} (docs/screen-output.md).")
        values, stay_ids = base[req.variable], base.stay_id
    v, x = values, req.threshold
    ops = {">=": lambda: v >= x, "<=": lambda: v <= x, ">": lambda: v > x, "<": lambda: v < x,
           "==": lambda: v == x}
    met = base.filter(ops[req.operator]()).select(req_stay_id=stay_ids).distinct()
    t = stays.left_join(met, stays.stay_id == met.req_stay_id)
    return t.mutate(require_ok=t.req_stay_id.notnull()).drop("req_stay_id")


def cohort_stays(con, study: StudyDefinition) -> ibis.Table:
    """Every stay with all cohort flags and ``in_cohort`` (first qualifying stay per patient)."""
    stays = _apply_requirement(con, stays_with_index(con, study), study)
    qualifies = stays.has_index & stays.age_ok & stays.calendar_ok & stays.require_ok
    stays = stays.mutate(qualifies=qualifies)
    if study.cohort.first_qualifying_stay_only:
        rank = ibis.row_number().over(
            group_by=stays.person_id,
            order_by=[ibis.ifelse(stays.qualifies, 0, 1), stays.index_time, stays.admit_time,
                      stays.stay_id])
        stays = stays.mutate(in_cohort=stays.qualifies & (rank == 0))
    else:
        stays = stays.mutate(in_cohort=stays.qualifies)
    return stays


def flow_counts(stays: ibis.Table) -> ibis.Table:
    """One row of counts for the flow diagram."""
    has = stays.has_index
    return stays.aggregate(
        stays=stays.count(),
        stays_with_index_drug=has.sum(),
        stays_in_age_range=(has & stays.age_ok).sum(),
        stays_in_calendar_window=(has & stays.age_ok & stays.calendar_ok).sum(),
        stays_meeting_requirement=stays.qualifies.sum(),
        cohort=stays.in_cohort.sum(),
        prior_index_drug_exposure=(stays.in_cohort & stays.prior_index_drug_exposure).sum(),
    )


def member_characteristics(con, members: ibis.Table) -> ibis.Table:
    """Baseline characteristics per member: underlying disease, invasive ventilation and
    vasoactive infusion during the stay (clinical reference §10.1)."""
    cond = con.table("condition")
    underlying = cond.filter(cond.is_underlying == True).select(  # noqa: E712 (ibis expression)
        c_person_id=cond.person_id, onset_time=cond.onset_time)
    u = members.select("stay_id", "person_id", "discharge_time").join(
        underlying, members.person_id == underlying.c_person_id, how="inner")
    u = u.filter(u.onset_time.isnull() | u.discharge_time.isnull()
                 | (u.onset_time <= u.discharge_time))
    u = u.select(u_stay_id=u.stay_id).distinct()

    vocab = Vocabulary()
    # organ_support rows and vasoactive drug administrations alike (features.support: one rule)
    support = support_intervals(con, vocab)
    vasoactive = vocab.drugs_in_class("vasoactive")
    intervals = support.select(s_person_id=support.person_id, support=support.support,
                               s_start=support.start_time, s_end=support.end_time)
    s = members.select("stay_id", "person_id", "admit_time", "discharge_time").join(
        intervals, members.person_id == intervals.s_person_id, how="inner")
    overlaps = ((s.discharge_time.isnull() | (s.s_start <= s.discharge_time))
                & (s.s_end.isnull() | (s.s_end >= s.admit_time)))
    s = s.filter(overlaps)
    s = s.group_by(s_stay_id=s.stay_id).aggregate(
        invasive_ventilation=(s.support == "invasive_ventilation").any(),
        vasoactive_infusion=s.support.isin(vasoactive).any())

    t = members.left_join(u, members.stay_id == u.u_stay_id).left_join(
        s, members.stay_id == s.s_stay_id)
    return t.mutate(
        underlying_disease=t.u_stay_id.notnull(),
        invasive_ventilation=t.invasive_ventilation.fill_null(False),
        vasoactive_infusion=t.vasoactive_infusion.fill_null(False),
    ).drop("u_stay_id", "s_stay_id")


def cotherapies(con, members: ibis.Table, study: StudyDefinition) -> ibis.Table:
    """Per member and drug class: given within the study window / any time in the stay
    (clinical reference §12.8); administrations of the index drug itself are left out."""
    ct = study.cotherapies
    drug = con.table("drug_administration")
    # the index drug is never its own co-therapy (a dexamethasone study's other steroids)
    d = drug.filter(drug.drug_class.isin(ct.classes)
                    & (drug.drug != study.cohort.index_drug)).select(
        d_person_id=drug.person_id, drug_class=drug.drug_class, d_start=drug.start_time)
    j = members.select("stay_id", "person_id", "admit_time", "discharge_time", "index_time").join(
        d, members.person_id == d.d_person_id, how="inner")
    h = _hours_between(j.d_start, j.index_time)
    j = j.mutate(in_window=(h >= ct.window_from_hours) & (h <= ct.window_to_hours),
                 in_stay=_within_stay(j.d_start, j.admit_time, j.discharge_time))
    j = j.filter(j.in_window | j.in_stay)
    return j.group_by(["stay_id", "drug_class"]).aggregate(
        in_window=j.in_window.any(), in_stay=j.in_stay.any())


def outcome_events(con, members: ibis.Table, study: StudyDefinition) -> ibis.Table:
    """Infections strictly after the index and deaths at or after it, with days from index
    (clinical reference §12.33)."""
    o = study.outcomes
    types = [name for name, wanted in (("infection", o.infections), ("death", o.deaths)) if wanted]
    ev = con.table("event")
    ev = ev.filter(ev.event_type.isin(types or ["-"])).select(
        e_person_id=ev.person_id, event_type=ev.event_type, e_time=ev.time, detail=ev.detail)
    j = members.select("stay_id", "person_id", "discharge_time", "index_time").join(
        ev, members.person_id == ev.e_person_id, how="inner")
    days = _hours_between(j.e_time, j.index_time) / 24.0
    after = ibis.ifelse(j.event_type == "infection", j.e_time > j.index_time,
                        j.e_time >= j.index_time)
    j = j.mutate(days_from_index=days).filter(after)
    return j.select(
        "stay_id", "event_type", "days_from_index", "detail",
        in_stay=j.discharge_time.isnull() | (j.e_time <= j.discharge_time),
        within_followup=j.days_from_index <= o.followup_days,
    )


def index_drug_exposure(con, members: ibis.Table, study: StudyDefinition
                        ) -> tuple[ibis.Table, ibis.Table]:
    """The index drug's course per member (clinical reference §9.1, §12.34, §12.39): daily doses
    in mg/kg per 24-h period from the first dose (hyperinflam.screening.anakinra.daily_doses, for
    any drug), the days with a dose, and the routes used.

    Returns (courses, routes). courses: stay_id, days_with_dose (24-h periods with an
    administration), course_days (from the first to the last administration's period,
    inclusive), median_mg_kg_day and max_mg_kg_day (over the periods whose dose is known; NULL
    when none is), periods_dose_unknown, n_administrations. routes: stay_id, route (each distinct
    recorded route once, lower case).
    """
    from hyperinflam.screening.anakinra import administrations, daily_doses

    drug = study.cohort.index_drug
    ids = members.select(e_stay_id=members.stay_id)
    days = daily_doses(con, drug=drug)
    days = days.join(ids, days.stay_id == ids.e_stay_id).drop("e_stay_id")
    courses = days.group_by("stay_id").aggregate(
        days_with_dose=days.count(),
        course_days=days.period.max() + 1,
        median_mg_kg_day=days.dose_mg_per_kg.median(),
        max_mg_kg_day=days.dose_mg_per_kg.max(),
        periods_dose_unknown=days.dose_mg_per_kg.isnull().sum(),
        n_administrations=days.n_administrations.sum(),
    )
    a = administrations(con, drug=drug)
    a = a.join(ids, a.stay_id == ids.e_stay_id).drop("e_stay_id")
    routes = a.filter(a.route.notnull() & (a.route != "")).select(
        "stay_id", route=a.route.lower()).distinct()
    return courses, routes


def _with_routes(courses: pd.DataFrame, routes: pd.DataFrame) -> pd.DataFrame:
    """The executed courses with ``routes``: each stay's routes, sorted, comma-separated."""
    joined = (routes.sort_values(["stay_id", "route"]).groupby("stay_id")["route"]
              .agg(",".join).rename("routes").reset_index())
    out = courses.merge(joined, on="stay_id", how="left")
    out["routes"] = out["routes"].fillna("")
    return out


#: Domains a study reads, with the human words every output uses (docs/results-format.md).
DOMAIN_LABELS = {
    "conditions": "diagnoses (underlying disease)",
    "invasive_ventilation": "invasive mechanical ventilation",
    "vasoactive_infusion": "vasoactive infusions",
    "drugs": "drug administrations",
    "infection": "infections",
    "death": "deaths",
}


#: The domain of the loads' record (``source_domains``) behind each domain a study reads.
RECORD_DOMAINS = {
    "conditions": CONDITIONS_DOMAIN,
    "invasive_ventilation": support_domain(INVASIVE_VENTILATION),
    "vasoactive_infusion": VASOACTIVE_DOMAIN,
    "drugs": DRUGS_DOMAIN,
    "infection": "infection",
    "death": "death",
}


def recorded_domains(con) -> dict[str, bool]:
    """Whether the source records each domain the study reads (:data:`DOMAIN_LABELS`).

    The loads' own record decides (``source_domains``, :mod:`hyperinflam.sources.domains`: rows
    of the domain in a load, or the site's declaration): recorded when any load recorded it.
    A database without that record (written before it, a Parquet folder) falls back to the
    data: a domain counts as recorded when the canonical tables hold at least one row of it
    anywhere (any patient, any time). Either way, every figure derived from a domain not
    recorded is "not recorded", never "no" or 0.
    """
    record = recorded_domains_in(con)
    if record is not None:
        return {domain: record.get(RECORD_DOMAINS[domain], False) for domain in DOMAIN_LABELS}
    return _domains_in_data(con)


def _domains_in_data(con) -> dict[str, bool]:
    """The fallback of :func:`recorded_domains`: a domain with at least one row. One query
    over the tables present."""
    present = set(con.list_tables())
    vasoactive = Vocabulary().drugs_in_class("vasoactive")
    parts = []
    if "condition" in present:
        c = con.table("condition")
        parts.append(c.aggregate(conditions=c.count()))
    if "organ_support" in present:
        o = con.table("organ_support")
        parts.append(o.aggregate(
            invasive_ventilation=(o.support == "invasive_ventilation").cast("int64").sum(),
            vasoactive_infusion=o.support.isin(vasoactive).cast("int64").sum()))
    if "drug_administration" in present:
        d = con.table("drug_administration")
        parts.append(d.aggregate(drugs=d.count()))
    if "event" in present:
        e = con.table("event")
        parts.append(e.aggregate(infection=(e.event_type == "infection").cast("int64").sum(),
                                 death=(e.event_type == "death").cast("int64").sum()))
    found: dict[str, int] = {}
    if parts:
        row = parts[0]
        for other in parts[1:]:
            row = row.cross_join(other)
        values = row.to_pyarrow().to_pylist()[0]
        found = {k: int(v or 0) for k, v in values.items()}
    return {domain: found.get(domain, 0) > 0 for domain in DOMAIN_LABELS}


def extract_cohort(con, study: StudyDefinition) -> CohortFrames:
    """Build every expression and execute only the small cohort-level frames."""
    stays = cohort_stays(con, study)
    flow_row = flow_counts(stays).to_pandas().iloc[0]
    flow = {k: int(0 if pd.isna(v) else v) for k, v in flow_row.items()}
    members = stays.filter(stays.in_cohort)
    members_full = member_characteristics(con, members)
    cohort = members_full.select(
        "stay_id", "person_id", "admit_time", "discharge_time", "index_time",
        "prior_index_drug_exposure", "age_years", "age_completed_years", "sex",
        "admission_reason", "weight_kg", "underlying_disease", "invasive_ventilation",
        "vasoactive_infusion",
        hours_admission_to_index=_hours_between(members_full.index_time,
                                                members_full.admit_time),
        picu_days=_hours_between(members_full.discharge_time, members_full.admit_time) / 24.0,
    ).order_by(["index_time", "person_id"]).to_pandas()
    courses, routes = index_drug_exposure(con, members, study)
    exposure = _with_routes(courses.to_pandas(), routes.to_pandas())
    markers = study.markers.variables
    values = chosen_values(con, members, markers, study).order_by(
        ["stay_id", "variable", "hours_from_index"]).to_pandas()
    cot = cotherapies(con, members, study).to_pandas()
    events = outcome_events(con, members, study).order_by(
        ["stay_id", "event_type", "days_from_index"]).to_pandas()
    vocab = Vocabulary()
    units = {v: vocab.variables[v].canonical_unit for v in markers}
    return CohortFrames(flow=flow, cohort=cohort, marker_values=values, cotherapy=cot,
                        events=events, units=units, exposure=exposure,
                        recorded=recorded_domains(con))
