"""Phoenix and Phoenix-8 through the CSV layout against the authors' package (issue 12, Done when).

24,000 generated stays are written as a CSV folder (``docs/csv-layout.md``) with values on every
threshold of clinical reference §5.2 / §5.3 and just either side, missing values, respiratory
support of every kind (IMV, BiPAP / NIV, CPAP, high flow, oxygen; some ended before the
look-back), vasoactives recorded as organ support, as drug administrations (rates in ug/kg/min
or ug/min with a dosing weight, boluses in mg), or both, a nebulised epinephrine that is not
vasoactive support, fixed or reactive pupils, recorded infections; half the stays in canonical
units, half in other accepted units (kPa, %, mg/dL lactate, /uL, g/L, ng/mL FEU, mmol/L glucose,
umol/L, ukat/L). ``hyperinflam load csv`` then ``hyperinflam screen --at`` run in real processes.

The expected values come from ``phoenix-sepsis`` 1.1.3 (``import phoenix as phx``), given each
stay's inputs in canonical units computed here with 60-digit decimal arithmetic from the text
written and the factors of clinical reference §11.1 (never from hyperinflam's loader), P/F and S/F
as double divisions of those values. Two rules differ from the package on purpose, both documented
(clinical reference §5.2, docs/csv-layout.md): (1) "FiO2 > 0.21 implies support" where no support
is recorded (the authors' EHR rule; the package takes ``other_respiratory_support`` as given),
(2) S/F only when SpO2 <= 97 % (the package does not check). The test applies both before
calling the package and checks every subscore and flag exactly; it also counts the stays where
either rule changes the package's answer, so that each departure is named with its size.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta
from decimal import Decimal, localcontext
from pathlib import Path

import numpy as np
import pandas as pd
import phoenix as phx
import pytest

pytestmark = pytest.mark.slow

HYPERINFLAM = str(Path(sys.executable).with_name("hyperinflam"))
N = 24_000
AT = datetime(2024, 3, 1, 12, 0)
OBSERVED = AT - timedelta(hours=1)
ADMIT = AT - timedelta(hours=10)
#: Other units (clinical reference §11.1): canonical = text x a / c.
OTHER_UNIT = {
    "pao2": ("kPa", "7.50062", "1"), "fio2": ("%", "1", "100"), "spo2": ("1", "100", "1"),
    "lactate": ("mg/dL", "1", "9.008"), "map": ("kPa", "7.50062", "1"),
    "platelets": ("/uL", "1", "1000"), "inr": ("ratio", "1", "1"),
    "d_dimer": ("ng/mL FEU", "1", "1000"), "fibrinogen": ("g/L", "100", "1"),
    "gcs_total": ("points", "1", "1"), "glucose": ("mmol/L", "18.016", "1"),
    "anc": ("/uL", "1", "1000"), "alc": ("cells/uL", "1", "1000"),
    "creatinine": ("umol/L", "1", "88.40"), "bilirubin_total": ("umol/L", "1", "17.104"),
    "alt": ("ukat/L", "60", "1"),
}
CANONICAL_UNIT = {
    "pao2": "mm[Hg]", "fio2": "1", "spo2": "%", "lactate": "mmol/L", "map": "mm[Hg]",
    "platelets": "10*3/uL", "inr": "{INR}", "d_dimer": "mg/L{FEU}", "fibrinogen": "mg/dL",
    "gcs_total": "{score}", "glucose": "mg/dL", "anc": "10*3/uL", "alc": "10*3/uL",
    "creatinine": "mg/dL", "bilirubin_total": "mg/dL", "alt": "U/L",
}
#: (thresholds of §5.2 / §5.3, uniform low, uniform high) in canonical units; within the
#: plausible ranges of §11.2 so that nothing is quarantined.
DRAWS = {
    "lactate": ([5, 11], 0, 20), "map": ([17, 31, 25, 39, 44, 45, 32, 36, 49, 38, 52], 5, 120),
    "platelets": ([100], 0, 500), "inr": ([1.3], 0.8, 4), "d_dimer": ([2], 0, 10),
    "fibrinogen": ([100], 20, 600), "glucose": ([50, 150], 10, 400), "anc": ([0.5], 0, 15),
    "alc": ([1.0], 0, 8), "creatinine": ([0.3, 0.4, 0.6, 0.7, 0.8, 1.0], 0, 3),
    "bilirubin_total": ([4], 0, 12), "alt": ([102], 0, 400),
}
AGES_MONTHS = [0.5, 1, 12, 24, 60, 144, 216, 222]
NICE_FIO2 = ["0.21", "0.25", "0.3", "0.4", "0.5", "0.6", "0.8", "1"]
AGENTS = ["dobutamine", "dopamine", "epinephrine", "milrinone", "norepinephrine", "vasopressin"]
OTHER_KINDS = ["noninvasive_ventilation", "cpap", "high_flow_nasal_cannula", "supplemental_oxygen"]


def _text(value: Decimal, decimals: int = 6) -> str:
    """A decimal rounded to ``decimals`` as plain text (no exponent, no trailing zeros)."""
    text = format(value.quantize(Decimal(1).scaleb(-decimals)), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _exact(text: str, a: str, c: str) -> float:
    """text x a / c as the double nearest the exact value (60 significant digits first)."""
    with localcontext() as ctx:
        ctx.prec = 60
        return float(Decimal(text) * Decimal(a) / Decimal(c))


def _targets(rng, n, edges, lo, hi) -> list[Decimal | None]:
    """15 % missing, 35 % on a threshold, 20 % 0.01 / 0.001 either side, 30 % uniform."""
    kind = rng.choice(4, size=n, p=[0.15, 0.35, 0.20, 0.30])
    at = rng.choice(len(edges), size=n)
    step = rng.choice(["-0.01", "0.01", "-0.001", "0.001"], size=n)
    uni = rng.uniform(lo, hi, size=n)
    out = []
    for k, a, s, u in zip(kind, at, step, uni):
        if k == 0:
            out.append(None)
        elif k == 1:
            out.append(Decimal(str(edges[a])))
        elif k == 2:
            out.append(max(Decimal(0), Decimal(str(edges[a])) + Decimal(s)))
        else:
            out.append(Decimal(f"{u:.2f}"))
    return out


class Case:
    """The generated cohort: CSV rows and the canonical inputs the package is given."""

    def __init__(self, seed: int = 20241202):
        rng = np.random.default_rng(seed)
        self.mixed = np.arange(N) % 2 == 1
        self.ids = [f"s{i:05d}" for i in range(N)]
        self.meas: list[tuple] = []
        self.x: dict[str, np.ndarray] = {}
        self._ages(rng)
        self._respiratory(rng)
        for var, (edges, lo, hi) in DRAWS.items():
            self.x[var] = self._write(var, _targets(rng, N, edges, lo, hi))
        gcs = rng.integers(3, 16, N)
        self.x["gcs_total"] = self._write("gcs_total", [
            None if m else Decimal(int(g)) for g, m in zip(gcs, rng.random(N) < 0.15)])
        self._supports(rng)
        self._vasoactives(rng)
        self._pupils_and_infection(rng)

    # -- inputs ----------------------------------------------------------------------------
    def _ages(self, rng):
        months = np.where(rng.random(N) < 0.5, rng.choice(AGES_MONTHS, N),
                          rng.uniform(0.1, 230, N))
        births = [(AT - timedelta(days=float(m) * 30.4375)).date() for m in months]
        self.births = births
        seconds = np.array([(AT - datetime(b.year, b.month, b.day)).total_seconds()
                            for b in births])
        self.age = seconds / 86400.0 / 30.4375  # clinical reference §11.1 (days / 30.4375)

    def _write(self, var: str, values: list[Decimal | None]) -> np.ndarray:
        """Measurement rows of ``var`` at OBSERVED; the canonical values as doubles."""
        out = np.full(N, np.nan)
        unit_alt, a, c = OTHER_UNIT[var]
        time = OBSERVED.isoformat(" ")
        with localcontext() as ctx:
            ctx.prec = 60
            for i, v in enumerate(values):
                if v is None:
                    continue
                if self.mixed[i]:
                    text, unit = _text(v * Decimal(c) / Decimal(a)), unit_alt
                    out[i] = _exact(text, a, c)
                else:
                    text, unit = _text(v), CANONICAL_UNIT[var]
                    out[i] = float(Decimal(text))
                self.meas.append((self.ids[i], self.ids[i], time, var, text, unit))
        return out

    def _respiratory(self, rng):
        fio2 = [Decimal(f) for f in rng.choice(NICE_FIO2, N)]
        uniform = rng.random(N) < 0.3
        fio2 = [Decimal(f"{rng.uniform(0.21, 1.0):.2f}") if u else f
                for f, u in zip(fio2, uniform)]
        fio2 = [None if m else f for f, m in zip(fio2, rng.random(N) < 0.1)]
        pf = _targets(rng, N, [100, 200, 400], 20, 700)
        sf = _targets(rng, N, [148, 220, 292], 60, 480)
        pao2 = [None if p is None or f is None else Decimal(_text(p * f, 2))
                for p, f in zip(pf, fio2)]
        spo2 = [None if s is None or f is None else Decimal(min(100, max(50, round(s * f))))
                for s, f in zip(sf, fio2)]
        spo2 = [Decimal(int(v)) if (s is None and r < 0.3) else s  # SpO2 without FiO2
                for s, v, r in zip(spo2, rng.integers(80, 101, N), rng.random(N))]
        self.x["fio2"] = self._write("fio2", fio2)
        self.x["pao2"] = self._write("pao2", pao2)
        self.x["spo2"] = self._write("spo2", spo2)
        self.x["pf"] = self.x["pao2"] / self.x["fio2"]
        self.x["sf_any"] = self.x["spo2"] / self.x["fio2"]
        self.x["sf"] = np.where(self.x["spo2"] <= 97, self.x["sf_any"], np.nan)

    def _supports(self, rng):
        self.support_rows: list[tuple] = []
        self.imv = rng.random(N) < 0.25
        kind = rng.choice(len(OTHER_KINDS) + 1, size=N, p=[0.12, 0.12, 0.12, 0.12, 0.52])
        ended = rng.random(N) < 0.2  # ended 8 h before: outside the 6-h look-back (§5.4)
        self.other = np.zeros(N, bool)
        for i in range(N):
            if self.imv[i]:
                self.support_rows.append((self.ids[i], self.ids[i], "invasive_ventilation",
                                          (AT - timedelta(hours=5)).isoformat(" "), "", "", ""))
            if kind[i] < len(OTHER_KINDS):
                end = (AT - timedelta(hours=8)).isoformat(" ") if ended[i] else ""
                self.support_rows.append((self.ids[i], self.ids[i], OTHER_KINDS[kind[i]],
                                          (AT - timedelta(hours=9)).isoformat(" "), end, "", ""))
                self.other[i] = not ended[i]

    def _vasoactives(self, rng):
        self.drug_rows: list[tuple] = []
        self.vaso = np.zeros(N)
        n_agents = rng.choice(4, size=N, p=[0.55, 0.25, 0.12, 0.08])
        start = (AT - timedelta(hours=3)).isoformat(" ")
        for i in range(N):
            for agent in rng.choice(AGENTS, size=n_agents[i], replace=False):
                unit = "U/kg/min" if agent == "vasopressin" else "ug/kg/min"
                how = rng.choice(["support", "drug_rate", "drug_per_min", "both", "bolus"],
                                 p=[0.35, 0.25, 0.1, 0.2, 0.1])
                if how in ("support", "both"):
                    self.support_rows.append((self.ids[i], self.ids[i], agent, start, "",
                                              "0.05", unit))
                if how in ("drug_rate", "both"):
                    self.drug_rows.append((self.ids[i], self.ids[i], agent, "0.05", unit, "iv",
                                           start, "", ""))
                if how == "drug_per_min":
                    per_min = "U/min" if agent == "vasopressin" else "ug/min"
                    self.drug_rows.append((self.ids[i], self.ids[i], agent, "1", per_min, "iv",
                                           start, "", "20"))
                if how == "bolus":
                    self.drug_rows.append((self.ids[i], self.ids[i], agent, "1", "mg", "",
                                           start, "", ""))
                self.vaso[i] += 1
            if rng.random() < 0.05:  # nebulised racemic epinephrine: not vasoactive support
                self.drug_rows.append((self.ids[i], self.ids[i], "epinephrine", "5", "mg",
                                       "inhalation", (AT - timedelta(hours=2)).isoformat(" "),
                                       "", ""))

    def _pupils_and_infection(self, rng):
        pupils = rng.choice(3, size=N, p=[0.1, 0.4, 0.5])  # fixed, reactive, not documented
        names = {0: "bilaterally fixed pupils", 1: "pupils reactive"}
        onset = (AT - timedelta(hours=2)).isoformat(" ")
        self.condition_rows = [(self.ids[i], self.ids[i], names[p], "", "", onset, "false")
                               for i, p in enumerate(pupils) if p in names]
        self.pupils = np.where(pupils == 0, 1.0, np.where(pupils == 1, 0.0, np.nan))
        self.infection = rng.random(N) < 0.5
        self.event_rows = [(self.ids[i], self.ids[i], "infection",
                            (AT - timedelta(hours=5)).isoformat(" "), "")
                           for i in range(N) if self.infection[i]]

    # -- files -----------------------------------------------------------------------------
    def write(self, folder: Path) -> Path:
        folder.mkdir()
        pd.DataFrame({"person_id": self.ids, "birth_date": [b.isoformat() for b in self.births],
                      "sex": "female"}).to_csv(folder / "person.csv", index=False)
        pd.DataFrame({"stay_id": self.ids, "person_id": self.ids,
                      "admit_time": ADMIT.isoformat(" "), "discharge_time": "",
                      "weight_kg": "20"}).to_csv(folder / "stay.csv", index=False)
        frames = {
            "measurement": (self.meas, "person_id,stay_id,time,variable,value,unit"),
            "organ_support": (self.support_rows,
                              "person_id,stay_id,support,start_time,end_time,dose,dose_unit"),
            "drug_administration": (self.drug_rows, "person_id,stay_id,drug,dose,dose_unit,route,"
                                                    "start_time,end_time,weight_kg"),
            "condition": (self.condition_rows, "person_id,stay_id,condition,code_system,code,"
                                               "onset_time,is_underlying"),
            "event": (self.event_rows, "person_id,stay_id,event_type,time,detail"),
        }
        for name, (rows, header) in frames.items():
            pd.DataFrame(rows, columns=header.split(",")).to_csv(folder / f"{name}.csv",
                                                                 index=False)
        return folder

    # -- the authors' package --------------------------------------------------------------
    def expected(self, *, fio2_rule: bool = True, sf_rule: bool = True) -> pd.DataFrame:
        x = self.x
        ors = self.imv | self.other
        if fio2_rule:
            ors = ors | (x["fio2"] > 0.21)
        return phx.phoenix8(
            pf_ratio=x["pf"], sf_ratio=x["sf"] if sf_rule else x["sf_any"],
            imv=self.imv.astype(float), other_respiratory_support=ors.astype(float),
            vasoactives=self.vaso, lactate=x["lactate"], age=self.age, map=x["map"],
            platelets=x["platelets"], inr=x["inr"], d_dimer=x["d_dimer"],
            fibrinogen=x["fibrinogen"], gcs=x["gcs_total"], fixed_pupils=self.pupils,
            glucose=x["glucose"], anc=x["anc"], alc=x["alc"], creatinine=x["creatinine"],
            bilirubin=x["bilirubin_total"], alt=x["alt"])


OURS_VS_PACKAGE = {
    "phoenix_respiratory_points": "phoenix_respiratory_score",
    "phoenix_cardiovascular_points": "phoenix_cardiovascular_score",
    "phoenix_coagulation_points": "phoenix_coagulation_score",
    "phoenix_neurologic_points": "phoenix_neurologic_score",
    "phoenix_score": "phoenix_sepsis_score",
    "phoenix8_endocrine_points": "phoenix_endocrine_score",
    "phoenix8_immunologic_points": "phoenix_immunologic_score",
    "phoenix8_renal_points": "phoenix_renal_score",
    "phoenix8_hepatic_points": "phoenix_hepatic_score",
    "phoenix8_score": "phoenix8_sepsis_score",
}


def _run(*args: str) -> str:
    done = subprocess.run([HYPERINFLAM, *args], capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, f"{' '.join(args)}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def screened(tmp_path_factory):
    case = Case()
    tmp = tmp_path_factory.mktemp("phoenix_csv")
    folder = case.write(tmp / "csv")
    db, out = tmp / "site.duckdb", tmp / "screen.parquet"
    loaded = _run("load", "csv", str(folder), "--db", str(db))
    assert "Loaded" in loaded or "loaded" in loaded
    _run("screen", "--db", str(db), "--at", AT.isoformat(" "), "-c", "phoenix", "-c",
         "phoenix8", "-o", str(out))
    ours = pd.read_parquet(out).set_index("stay_id").loc[case.ids]
    return case, ours, db


def test_nothing_is_quarantined(screened):
    import duckdb

    _, _, db = screened
    raw = duckdb.connect(str(db), read_only=True)
    try:
        assert raw.execute("SELECT count(*) FROM quarantine").fetchone()[0] == 0
        assert raw.execute("SELECT count(*) FROM stay").fetchone()[0] == N
    finally:
        raw.close()


def test_every_subscore_and_flag_agrees_with_the_package(screened):
    case, ours, _ = screened
    ref = case.expected()
    assert len(ours) == N
    for mine, theirs in OURS_VS_PACKAGE.items():
        got, want = ours[mine].to_numpy(int), ref[theirs].to_numpy(int)
        diff = np.flatnonzero(got != want)
        assert diff.size == 0, (f"{mine}: {diff.size} of {N} stays differ, e.g. "
                                f"{[case.ids[i] for i in diff[:5]]}")
    np.testing.assert_array_equal(ours.phoenix_score_ge_2.to_numpy(bool),
                                  ref.phoenix_sepsis.to_numpy(bool))
    sepsis = np.where(ref.phoenix_sepsis == 0, "not_met",
                      np.where(case.infection, "met", "unknown"))
    shock = np.where((ref.phoenix_sepsis == 0) | (ref.phoenix_cardiovascular_score == 0),
                     "not_met", np.where(case.infection, "met", "unknown"))
    np.testing.assert_array_equal(ours.phoenix_sepsis.to_numpy(str), sepsis)
    np.testing.assert_array_equal(ours.phoenix_septic_shock.to_numpy(str), shock)


def test_which_respiratory_support_rule_applied(screened):
    case, ours, _ = screened
    fio2_rule = (case.x["fio2"] > 0.21) & ~case.imv & ~case.other
    want = np.where(case.imv, "invasive_ventilation",
                    np.where(case.other, "documented_support",
                             np.where(fio2_rule, "fio2_above_room_air", "none")))
    np.testing.assert_array_equal(ours.phoenix_respiratory_support.to_numpy(str), want)


def test_the_documented_departures_are_counted(screened, capsys):
    """Each rule that differs from the package on purpose changes some stays; their number is
    printed (run with -s) and recorded in docs/csv-layout.md."""
    case, _, _ = screened
    ref = case.expected()
    cols = list(OURS_VS_PACKAGE.values()) + ["phoenix_sepsis", "phoenix_septic_shock"]
    counts = {}
    for name, kwargs in (("FiO2 > 0.21 implies support (no support recorded)",
                          {"fio2_rule": False}),
                         ("S/F only when SpO2 <= 97 %", {"sf_rule": False})):
        other = case.expected(**kwargs)
        counts[name] = int((other[cols].to_numpy() != ref[cols].to_numpy()).any(axis=1).sum())
    with capsys.disabled():
        print(f"\nPhoenix / Phoenix-8 via CSV, {N} stays: stays where a documented rule changes "
              f"the package's answer: {counts}")
    assert all(n > 0 for n in counts.values()), counts
