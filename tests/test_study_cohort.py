"""Cohort extraction rules (clinical reference 10.4; section 12 rows 1-3, 7, 8, 32, 33).

Data are canonical rows inserted directly into an in-memory database; expected values are
stated by hand from the rules.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from hyperinflam.engine import connect_memory
from hyperinflam.study.cohort import extract_cohort
from hyperinflam.study.definition import load_study, parse_study

T0 = datetime(2024, 3, 1, 8, 0)


class Db:
    """A tiny canonical database built row by row."""

    def __init__(self):
        self.con = connect_memory()
        self.raw = self.con.con

    def person(self, pid, birth=date(2012, 1, 1), sex="female"):
        self.raw.execute("INSERT INTO person VALUES (?, ?, ?)", [pid, birth, sex])

    def stay(self, sid, pid, admit, discharge=None, reason="respiratory distress", weight=30.0):
        self.raw.execute("INSERT INTO stay VALUES (?, ?, ?, ?, ?, ?)",
                         [sid, pid, admit, discharge, reason, weight])

    def drug(self, pid, time, drug="anakinra", drug_class="il1_blocker", stay_id=None):
        self.raw.execute("INSERT INTO drug_administration VALUES (?,?,?,?,?,?,?,?,?,?)",
                         [pid, stay_id, drug, drug_class, 100.0, "mg", "iv", time, None, None])

    def lab(self, pid, time, value, variable="crp", unit="mg/L"):
        self.raw.execute("INSERT INTO measurement VALUES (?,?,?,?,?,?,?,?,?)",
                         [pid, None, time, variable, value, unit, str(value), unit, None])

    def support(self, pid, support, start, end=None):
        self.raw.execute("INSERT INTO organ_support VALUES (?,?,?,?,?,?,?)",
                         [pid, None, support, start, end, None, None])

    def condition(self, pid, name, underlying=True, onset=None):
        self.raw.execute("INSERT INTO condition VALUES (?,?,?,?,?,?,?)",
                         [pid, None, name, None, None, onset, underlying])

    def event(self, pid, event_type, time):
        self.raw.execute("INSERT INTO event VALUES (?,?,?,?,?)", [pid, None, event_type, time, None])


def h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


@pytest.fixture
def study():
    return load_study("rajasekaran2014")


def one_patient(db: Db, pid="p1", index_hours=0.0):
    db.person(pid)
    db.stay(f"{pid}-s1", pid, h(index_hours - 6), h(index_hours + 24 * 20))
    db.drug(pid, h(index_hours))


def roles(frames, variable="crp"):
    v = frames.marker_values
    v = v[(v["variable"] == variable) & v["role"].notna()]
    return dict(zip(v["role"], v["value"]))


def test_baseline_window_edges(study):
    db = Db()
    one_patient(db)
    db.lab("p1", h(-25), 999.0)   # outside -24 h: never baseline
    db.lab("p1", h(12), 50.0)     # +12 h inclusive edge: the only value in the window
    frames = extract_cohort(db.con, study)
    assert roles(frames) == {"baseline": 50.0}


def test_baseline_tie_prefers_pre_index_value(study):
    db = Db()
    one_patient(db)
    db.lab("p1", h(2), 20.0)
    db.lab("p1", h(-2), 10.0)
    db.lab("p1", h(-24), 5.0)
    frames = extract_cohort(db.con, study)
    assert roles(frames)["baseline"] == 10.0


def test_day7_window_edges_and_closest(study):
    db = Db()
    one_patient(db)
    db.lab("p1", h(0), 100.0)
    db.lab("p1", h(168 - 24.5), 1.0)  # just outside the window
    db.lab("p1", h(168 + 24), 2.0)    # inclusive edge
    frames = extract_cohort(db.con, study)
    assert roles(frames) == {"baseline": 100.0, "day7": 2.0}

    db.lab("p1", h(168 - 24), 3.0)   # inclusive edge, equidistant with +192 h -> the earlier
    frames = extract_cohort(db.con, study)
    assert roles(frames)["day7"] == 3.0

    db.lab("p1", h(170), 4.0)        # closest to +168 h wins
    frames = extract_cohort(db.con, study)
    assert roles(frames)["day7"] == 4.0


def test_second_stay_is_not_a_second_member_and_prior_exposure_is_flagged(study):
    db = Db()
    db.person("p1")
    # First stay: anakinra on the ward before PICU admission only -> not an index.
    db.stay("s1", "p1", h(0), h(48))
    db.drug("p1", h(-10))
    # Second stay: anakinra within the stay -> index; third stay also has anakinra.
    db.stay("s2", "p1", h(24 * 30), h(24 * 40))
    db.drug("p1", h(24 * 30 + 5))
    db.drug("p1", h(24 * 30 + 29))
    db.stay("s3", "p1", h(24 * 60), None)
    db.drug("p1", h(24 * 61))
    frames = extract_cohort(db.con, study)
    assert frames.flow["stays"] == 3
    assert frames.flow["stays_with_index_drug"] == 2
    assert frames.flow["cohort"] == 1
    member = frames.cohort.iloc[0]
    assert member["stay_id"] == "s2"
    assert member["index_time"] == h(24 * 30 + 5)
    assert bool(member["prior_index_drug_exposure"]) is True
    assert frames.flow["prior_index_drug_exposure"] == 1


def test_anakinra_only_before_admission_is_not_index(study):
    db = Db()
    db.person("p1")
    db.stay("s1", "p1", h(0), h(100))
    db.drug("p1", h(-1))
    db.drug("p1", h(101))  # after discharge
    frames = extract_cohort(db.con, study)
    assert frames.flow["stays_with_index_drug"] == 0
    assert frames.flow["cohort"] == 0
    assert frames.cohort.empty


def test_age_and_calendar_filters():
    db = Db()
    for pid, birth in (("young", date(2020, 3, 2)), ("old", date(2002, 3, 2)),
                       ("edge", date(2002, 3, 1))):
        db.person(pid, birth=birth)
        db.stay(f"{pid}-s", pid, h(0), h(100))
        db.drug(pid, h(1))
    # On 2024-03-01: 'young' is 3, 'old' is 21 (birthday tomorrow), 'edge' turns 22 today.
    study = parse_study({"study": {"id": "t", "title": "t"},
                         "cohort": {"age_min_years": 4, "age_max_years": 21}})
    frames = extract_cohort(db.con, study)
    assert sorted(frames.cohort["person_id"]) == ["old"]
    assert frames.flow["stays_in_age_range"] == 1

    study = parse_study({"study": {"id": "t", "title": "t"},
                         "cohort": {"admitted_from": "2024-03-02"}})
    assert extract_cohort(db.con, study).flow["cohort"] == 0


def test_required_marker_threshold_on_baseline_value():
    db = Db()
    for pid, ferritin in (("hi", 800.0), ("lo", 300.0), ("none", None)):
        one_patient(db, pid)
        if ferritin is not None:
            db.lab(pid, h(-1), ferritin, variable="ferritin", unit="ng/mL")
    study = parse_study({"study": {"id": "t", "title": "t"},
                         "cohort": {"require": "ferritin >= 500"}})
    frames = extract_cohort(db.con, study)
    assert list(frames.cohort["person_id"]) == ["hi"]
    assert frames.flow["stays_meeting_requirement"] == 1


def test_required_criterion_output_that_does_not_exist_is_a_definition_error():
    """A require naming a column the criterion does not output is found when the study meets the
    data: a StudyDefinitionError listing the criterion's real outputs (one message, no traceback
    in the CLI), not a bare ValueError."""
    from hyperinflam.errors import StudyDefinitionError

    db = Db()
    one_patient(db, "p1")
    study = parse_study({"study": {"id": "t", "title": "t"},
                         "cohort": {"require": "hscore_points_total >= 169"}})
    with pytest.raises(StudyDefinitionError, match="its outputs are .*hscore_points"):
        extract_cohort(db.con, study)


def test_characteristics_cotherapy_and_events(study):
    db = Db()
    one_patient(db, "p1")
    db.condition("p1", "acute lymphoblastic leukaemia", underlying=True)
    db.support("p1", "invasive_ventilation", h(-5), h(30))
    db.support("p1", "epinephrine", h(40), h(50))
    db.drug("p1", h(-20), drug="methylprednisolone", drug_class="corticosteroid")
    db.drug("p1", h(24 * 10), drug="ivig", drug_class="ivig")   # in stay, after day 7
    db.event("p1", "infection", h(-30))        # before index: not an outcome
    db.event("p1", "infection", h(72))
    db.event("p1", "death", h(24 * 25))        # after discharge (day 20), within 28 days
    one_patient(db, "p2", index_hours=1)
    db.condition("p2", "splenomegaly", underlying=False)
    frames = extract_cohort(db.con, study)
    c = frames.cohort.set_index("person_id")
    assert c.loc["p1", ["underlying_disease", "invasive_ventilation",
                        "vasoactive_infusion"]].tolist() == [True, True, True]
    assert c.loc["p2", ["underlying_disease", "invasive_ventilation",
                        "vasoactive_infusion"]].tolist() == [False, False, False]
    cot = frames.cotherapy.set_index("drug_class")
    assert cot.loc["corticosteroid", ["in_window", "in_stay"]].tolist() == [True, False]
    assert cot.loc["ivig", ["in_window", "in_stay"]].tolist() == [False, True]
    ev = frames.events.set_index("event_type")
    assert len(frames.events) == 2
    assert ev.loc["infection", "days_from_index"] == pytest.approx(3.0)
    assert bool(ev.loc["infection", "in_stay"]) is True
    assert ev.loc["death", "days_from_index"] == pytest.approx(25.0)
    assert bool(ev.loc["death", "in_stay"]) is False
    assert bool(ev.loc["death", "within_followup"]) is True
