"""A small PICU database for the study-report tests, written row by row into the canonical
tables (no generator, no reader): eight children, each given an index drug in the PICU, with
inflammatory markers at baseline and on days 3, 7 and 14, co-therapies, ventilation, vasoactive
support, an underlying disease for some, one infection and one death. Every value is chosen
here, so the tests can compute what to expect by hand.

``build_database(index_drug="anakinra")`` gives the founding design; with
``index_drug="dexamethasone"`` the same children get dexamethasone instead (and no anakinra at
all), for the study with another index drug.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from hyperinflam.engine import connect_memory

T0 = datetime(2024, 3, 1, 8, 0)

#: Per child: CRP (mg/L) at baseline, day 3, day 7, day 14 (None: not measured).
CRP = [
    (250.0, 160.0, 60.0, 20.0),
    (180.0, 120.0, 40.0, 15.0),
    (120.0, 130.0, 90.0, 70.0),
    (300.0, 150.0, 30.0, None),
    (210.0, 90.0, 80.0, 35.0),
    (95.0, 110.0, 100.0, 60.0),
    (330.0, 200.0, 45.0, 25.0),
    (160.0, None, 70.0, 40.0),
]
#: Ferritin (ng/mL) at baseline and day 7 only; child 3 without a day-7 value.
FERRITIN = [(12000.0, 4000.0), (8000.0, 3500.0), (2500.0, 2600.0), (15000.0, None),
            (6000.0, 2000.0), (3000.0, 2800.0), (20000.0, 5000.0), (4000.0, 1500.0)]
#: Hours from PICU admission to the first dose of the index drug.
ADMISSION_TO_DOSE_H = [4.0, 30.0, 12.5, 50.0, 8.0, 72.0, 20.0, 6.0]
#: Days (24-h periods from the first dose) with a dose, and route.
DOSE_DAYS = [7, 10, 5, 8, 6, 9, 12, 7]
ROUTES = ["iv", "sc", "iv", "iv", "sc", "iv", "iv", "sc"]
BIRTH = [date(2010, 5, 1), date(2016, 1, 15), date(2006, 9, 30), date(2012, 2, 29),
         date(2019, 7, 4), date(2008, 11, 11), date(2013, 3, 3), date(2004, 12, 24)]
SEX = ["female", "male", "female", "male", "male", "female", "female", "male"]
REASON = ["respiratory distress", "cardiovascular instability", "respiratory distress",
          "chest pain", "respiratory distress", "cardiovascular instability",
          "respiratory distress", "cardiovascular instability"]
UNDERLYING = {1: "systemic juvenile idiopathic arthritis", 3: "acute lymphoblastic leukaemia",
              5: "trisomy 21", 6: "Crohn disease"}
VENTILATED = {0, 1, 3, 4, 6}
VASOACTIVE = {0, 2, 3, 6, 7}
STEROIDS = {0, 1, 3, 6}
IVIG = {2, 6}
INFECTION_DAY = {4: 5.5}   # child 4: an infection 5.5 days after the first dose
DEATH_DAY = {6: 40.0}      # child 6: dies 40 days after the first dose, after PICU discharge
PICU_DAYS = [16.0, 20.0, 9.0, 25.0, 11.0, 14.0, 21.0, 10.0]
WEIGHT_KG = [30.0, 22.0, 48.0, 35.0, 14.0, 45.0, 28.0, 60.0]
#: Potassium (mmol/L) 2 h after admission, PRISM III's only input here (> 6.9 -> 3 points, §7.2):
#: PRISM III-24 = 0, 3, 0, 3, 0, 0, 3, 0 (no other PRISM input is measured).
POTASSIUM = [4.0, 7.2, 4.5, 7.0, 5.0, 4.1, 7.5, 3.9]
DOSE_MG_KG = 2.0


def build_database(index_drug: str = "anakinra"):
    """The in-memory database (an ibis DuckDB connection)."""
    con = connect_memory()
    raw = con.con
    drug_class = {"anakinra": "il1_blocker", "dexamethasone": "corticosteroid"}[index_drug]
    for i in range(len(CRP)):
        pid, sid = f"src-{i}", f"stay-{i}"
        admit = T0 + timedelta(days=3 * i)
        index = admit + timedelta(hours=ADMISSION_TO_DOSE_H[i])
        raw.execute("INSERT INTO person VALUES (?, ?, ?)", [pid, BIRTH[i], SEX[i]])
        raw.execute("INSERT INTO stay VALUES (?,?,?,?,?,?)",
                    [sid, pid, admit, admit + timedelta(days=PICU_DAYS[i]), REASON[i],
                     WEIGHT_KG[i]])
        for day in range(DOSE_DAYS[i]):
            raw.execute("INSERT INTO drug_administration VALUES (?,?,?,?,?,?,?,?,?,?)",
                        [pid, sid, index_drug, drug_class, DOSE_MG_KG, "mg/kg", ROUTES[i],
                         index + timedelta(days=day), None, WEIGHT_KG[i]])
        if i in STEROIDS and index_drug != "dexamethasone":
            raw.execute("INSERT INTO drug_administration VALUES (?,?,?,?,?,?,?,?,?,?)",
                        [pid, sid, "methylprednisolone", "corticosteroid", 30.0, "mg/kg", "iv",
                         index + timedelta(hours=2), None, WEIGHT_KG[i]])
        if i in IVIG:
            raw.execute("INSERT INTO drug_administration VALUES (?,?,?,?,?,?,?,?,?,?)",
                        [pid, sid, "ivig", "ivig", 1.0, "g/kg", "iv",
                         index + timedelta(hours=30), None, WEIGHT_KG[i]])
        for hours, value in zip((-3.0, 74.0, 170.0, 330.0), CRP[i]):
            if value is not None:
                raw.execute("INSERT INTO measurement VALUES (?,?,?,?,?,?,?,?,?)",
                            [pid, sid, index + timedelta(hours=hours), "crp", value, "mg/L",
                             str(value), "mg/L", None])
        for hours, value in zip((-2.0, 166.0), FERRITIN[i]):
            if value is not None:
                raw.execute("INSERT INTO measurement VALUES (?,?,?,?,?,?,?,?,?)",
                            [pid, sid, index + timedelta(hours=hours), "ferritin", value,
                             "ng/mL", str(value), "ng/mL", None])
        raw.execute("INSERT INTO measurement VALUES (?,?,?,?,?,?,?,?,?)",
                    [pid, sid, admit + timedelta(hours=2), "potassium", POTASSIUM[i], "mmol/L",
                     str(POTASSIUM[i]), "mmol/L", None])
        if i in VENTILATED:
            raw.execute("INSERT INTO organ_support VALUES (?,?,?,?,?,?,?)",
                        [pid, sid, "invasive_ventilation", admit + timedelta(hours=1),
                         admit + timedelta(days=5), None, None])
        if i in VASOACTIVE:
            raw.execute("INSERT INTO organ_support VALUES (?,?,?,?,?,?,?)",
                        [pid, sid, "epinephrine", admit + timedelta(hours=2),
                         admit + timedelta(days=2), 0.1, "ug/kg/min"])
        if i in UNDERLYING:
            raw.execute("INSERT INTO condition VALUES (?,?,?,?,?,?,?)",
                        [pid, None, UNDERLYING[i], None, None, admit - timedelta(days=400),
                         True])
        if i in INFECTION_DAY:
            raw.execute("INSERT INTO event VALUES (?,?,?,?,?)",
                        [pid, sid, "infection", index + timedelta(days=INFECTION_DAY[i]),
                         "line infection"])
        if i in DEATH_DAY:
            raw.execute("INSERT INTO event VALUES (?,?,?,?,?)",
                        [pid, None, "death", index + timedelta(days=DEATH_DAY[i]), None])
    # one child of the database without the index drug, one aged 25 (outside 0-21)
    raw.execute("INSERT INTO person VALUES ('src-x', DATE '2015-01-01', 'female')")
    raw.execute("INSERT INTO stay VALUES ('stay-x', 'src-x', ?, ?, 'sepsis', 20.0)",
                [T0, T0 + timedelta(days=4)])
    raw.execute("INSERT INTO person VALUES ('src-old', DATE '1990-01-01', 'male')")
    raw.execute("INSERT INTO stay VALUES ('stay-old', 'src-old', ?, ?, 'sepsis', 70.0)",
                [T0, T0 + timedelta(days=4)])
    raw.execute("INSERT INTO drug_administration VALUES (?,?,?,?,?,?,?,?,?,?)",
                ["src-old", "stay-old", index_drug, drug_class, DOSE_MG_KG, "mg/kg", "iv",
                 T0 + timedelta(hours=5), None, 70.0])
    return con


def three_timepoint_study(index_drug: str = "dexamethasone") -> dict:
    """A study (plain data, as parsed TOML) with another index drug and three timepoints."""
    return {
        "study": {"id": "other_drug", "title": f"Markers after {index_drug} in the PICU"},
        "cohort": {"index_drug": index_drug},
        "windows": {"baseline_from_hours": -24, "baseline_to_hours": 12,
                    "trajectory_from_days": -1, "trajectory_to_days": 15},
        "timepoints": [
            {"name": "day3", "label": "day 3", "target_hours": 72, "tolerance_hours": 12},
            {"name": "week1", "label": "one week", "target_hours": 168, "tolerance_hours": 24},
            {"name": "day14", "label": "day 14", "target_hours": 336, "tolerance_hours": 48},
        ],
        "markers": {"variables": ["crp", "ferritin"]},
        "cotherapies": {"classes": ["corticosteroid", "ivig"]},
    }
