"""Synthetic PICU cohort generator: writes the CSV folder layout read by ``sources.csv``.

What it generates
-----------------
One CSV file per canonical table (``person``, ``stay``, ``measurement``, ``drug_administration``,
``organ_support``, ``condition``, ``event``) plus ``truth.csv``, a manifest of the group each stay
was generated for (the group label is never written into the canonical files; readers ignore
``truth.csv``). Four groups (default mix, :class:`SynthParams`):

* ``treated`` (3 %): the hyperinflammatory phenotype (sHLH / MAS / sepsis-MODS) treated with
  anakinra started on day 0-3 of the stay. Their CRP, ferritin, fibrinogen, ANC and ALC at the
  start of anakinra and 7 days later follow the founding paper (clinical reference §10.1, §10.3):
  see :data:`FOUNDING_MARKERS`.
* ``untreated_phenotype`` (2 %): the same phenotype without anakinra.
* ``sepsis`` (20 %): Phoenix-positive sepsis (clinical reference §5.2: lactate, hypotension with
  vasoactive infusions, coagulopathy, respiratory failure) with only modest ferritin.
* ``other`` (75 %): other PICU admissions (respiratory, post-operative, trauma, neurological, ...).

Design
------
* **Streaming.** Stays are generated in fixed RNG blocks of :data:`BLOCK_STAYS` stays, each with
  its own random stream (``numpy.random.SeedSequence(seed, spawn_key=(block,))``), vectorised with
  numpy per block; ``chunk_stays`` blocks' worth of rows are formatted with pyarrow and appended to
  the CSV files, then dropped. Memory is flat in the number of stays; the files are byte-identical
  for a seed whatever ``chunk_stays`` is.
* **Times** are written without an offset (``YYYY-MM-DD HH:MM``) and are UTC: load the folder with
  the default site time zone (``tz="UTC"``).
* **Units** are chosen per person from a "hospital lab system" (:data:`LAB_SYSTEMS`): US
  conventional, SI, or US with cell counts per microlitre; every spelling is listed in
  ``vocabulary/units.csv`` and every value is rounded to the precision a laboratory reports and
  lies inside the plausible range of ``vocabulary/variables.csv`` (clinical reference §11.1, §11.2).
* **Weights** follow a simple sex-averaged growth curve (:data:`GROWTH_CURVE_KG`, approximate
  WHO/CDC 50th centiles) with lognormal noise (SD of log 0.14).
* **Vitals** are charted every 1-4 h (per stay), labs are drawn at admission (and in a quarter of
  stays in the emergency department up to 30 h before, without a stay_id), then once daily at
  04:00-06:00 with panel-specific ordering probabilities (ferritin, triglycerides and fibrinogen
  mainly when inflammation is suspected), blood gases every 6 h while ventilated.

Clinical choices (all synthetic, documented here, none used by any score): normal values and
illness peaks per variable (:data:`LAB_MODEL`, :data:`LAB_PEAKS`), age-dependent vital norms
(:data:`VITAL_NORMS`, approximate PALS medians), co-therapy doses (methylprednisolone,
dexamethasone, IVIG, hydrocortisone) are illustrative, not recommendations. Anakinra regimens follow
clinical reference §9.1 (2-10 mg/kg/day SC or IV divided q6-12 h, or continuous IV infusion).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from hyperinflam.synth.parameters import (ADMISSION_REASONS, COMPONENT_RESULTED, DAY7_PANEL_DRAWN,
                                          FINDINGS, FOUNDING_MARKERS, GROUPS, GROWTH_CURVE_KG,
                                          HOSPITAL_INFECTIONS, INDEX_PANEL_DRAWN, LAB_MODEL,
                                          LAB_PEAKS, LAB_SYSTEMS, LAB_SYSTEM_WEIGHTS, LAYOUT,
                                          OTHER, OTHER_UNDERLYING, PANELS, PANEL_ADMISSION,
                                          PANEL_DAILY, PHENOTYPE, SEPSIS, SEPSIS_INFECTIONS,
                                          SUPPORT_PROBABILITY, TREATED, TRIGGER_INFECTIONS,
                                          UNDERLYING_CONDITIONS, UNTREATED, VASOACTIVES,
                                          VASOACTIVE_DOSE, VASOACTIVE_WEIGHTS, VITAL_NORMS,
                                          PairedMarker, SynthParams)
from hyperinflam.vocabulary import Vocabulary, normalize_unit

#: Stays per random-number block. Fixed, so that output does not depend on ``chunk_stays``.
BLOCK_STAYS = 250



def lognormal_parameters(mean: float, sd: float) -> tuple[float, float]:
    """(mu, sigma) of the log of a lognormal variable with the given arithmetic mean and SD."""
    sigma2 = math.log1p((sd / mean) ** 2)
    return math.log(mean) - sigma2 / 2.0, math.sqrt(sigma2)


def sample_paired_marker(rng: np.random.Generator, marker: PairedMarker, n: int
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Draw n (baseline, day-7) pairs from a bivariate lognormal matching the marker's moments."""
    mu_b, s_b = lognormal_parameters(marker.baseline_mean, marker.baseline_sd)
    mu_d, s_d = lognormal_parameters(marker.day7_mean, marker.day7_sd)
    z1 = rng.standard_normal(n)
    z2 = marker.log_correlation * z1 + math.sqrt(1 - marker.log_correlation ** 2) * rng.standard_normal(n)
    baseline = np.clip(np.exp(mu_b + s_b * z1), marker.clip_low, marker.clip_high)
    day7 = np.clip(np.exp(mu_d + s_d * z2), marker.clip_low, marker.clip_high)
    return baseline, day7


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------
def _minutes(day: str) -> int:
    """A date 'YYYY-MM-DD' as minutes since 1970 (UTC)."""
    return int(np.datetime64(f"{day}T00:00", "m").astype(np.int64))


def _choice(rng: np.random.Generator, options, weights, n: int) -> np.ndarray:
    p = np.asarray(weights, dtype=float)
    return rng.choice(len(options), size=n, p=p / p.sum())


def _lognormal(rng, median, sigma, n):
    return np.asarray(median) * np.exp(np.asarray(sigma) * rng.standard_normal(n))


def _noise(rng, cv, n):
    """Mean-one multiplicative assay noise."""
    return np.exp(cv * rng.standard_normal(n) - cv * cv / 2.0)


def _interp_age(age_years, table_key):
    return np.interp(age_years, VITAL_NORMS["age"], VITAL_NORMS[table_key])


def growth_weight_kg(age_years: np.ndarray) -> np.ndarray:
    """Median weight for age from :data:`GROWTH_CURVE_KG` (linear interpolation)."""
    ages, kg = zip(*GROWTH_CURVE_KG)
    return np.interp(age_years, ages, kg)


def _golden_groups(seed: int, first: int, n: int, mix) -> np.ndarray:
    """Group of each stay from a golden-ratio low-discrepancy sequence: the realised shares match
    the mix closely for any number of stays, independently of blocks and chunks."""
    offset = np.random.SeedSequence(seed).generate_state(1)[0] / 2 ** 32
    index = np.arange(first, first + n, dtype=np.float64)
    u = np.mod(offset + index * 0.6180339887498949, 1.0)
    return np.searchsorted(np.cumsum(mix)[:-1], u, side="right")


class _Rows:
    """Collects columns of one table for a block (lists of numpy arrays, concatenated once)."""

    def __init__(self, columns):
        self.columns = columns
        self.parts: dict[str, list] = {c: [] for c in columns}

    def add(self, **cols):
        n = None
        for c in self.columns:
            v = cols.get(c)
            if v is None:
                continue
            n = len(v)
            break
        for c in self.columns:
            v = cols.get(c)
            if v is None:
                v = np.full(n, None, dtype=object)
            self.parts[c].append(v)

    def arrays(self) -> dict[str, np.ndarray]:
        out = {}
        for c in self.columns:
            if self.parts[c]:
                out[c] = np.concatenate([np.asarray(p, dtype=object) if np.asarray(p).dtype == object
                                         else np.asarray(p) for p in self.parts[c]])
            else:
                out[c] = np.empty(0, dtype=object)
        return out


# --------------------------------------------------------------------------------------------
# The block generator
# --------------------------------------------------------------------------------------------
class _Block:
    """All rows of BLOCK_STAYS (or fewer) consecutive stays, from one random stream."""

    def __init__(self, seed: int, block: int, first: int, n: int, params: SynthParams,
                 id_width: int, vocabulary: Vocabulary):
        self.rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(block,)))
        self.first, self.n, self.params, self.width = first, n, params, id_width
        self.vocab = vocabulary
        self.group = _golden_groups(seed, first, n, params.mix)
        self.tables: dict[str, dict[str, np.ndarray]] = {}
        self._stays()
        self._organ_support()
        self._drugs()
        self._measurements()
        self._conditions_events()

    # -- stays and persons ------------------------------------------------------------------
    def _stays(self):
        rng, n, g, p = self.rng, self.n, self.group, self.params
        stay_index = np.arange(self.first, self.first + n)
        # Readmission: the previous stay's child again (only plain admissions, never chained).
        eligible = np.zeros(n, dtype=bool)
        eligible[1:] = (g[1:] == OTHER) & np.isin(g[:-1], (SEPSIS, OTHER))
        readmit = eligible & (rng.random(n) < p.readmission_fraction)
        readmit[1:] &= ~readmit[:-1]
        first_of_person = np.where(readmit, stay_index - 1, stay_index)
        self.person_id = np.char.add("P", np.char.zfill((first_of_person + 1).astype(str), self.width))
        self.stay_id = np.char.add("S", np.char.zfill((stay_index + 1).astype(str), self.width))
        self.is_first = ~readmit
        self.readmitted_later = np.zeros(n, dtype=bool)  # the child comes back: no death here
        self.readmitted_later[:-1] = readmit[1:]

        # Age at admission (years): a PICU mix, many infants and toddlers. Treated: older
        # (paper median 14 y; ours ~13 y).
        bands = np.array([[0, 1 / 12], [1 / 12, 1], [1, 5], [5, 12], [12, 18], [18, 21]])
        w_general = (0.06, 0.2, 0.28, 0.2, 0.22, 0.04)
        w_treated = (0.0, 0.04, 0.12, 0.28, 0.46, 0.10)
        band = np.where(np.isin(g, PHENOTYPE), _choice(rng, bands, w_treated, n),
                        _choice(rng, bands, w_general, n))
        age = bands[band, 0] + rng.random(n) * (bands[band, 1] - bands[band, 0])
        sex = np.where(rng.random(n) < 0.55, "male", "female")
        lab_system = _choice(rng, list(LAB_SYSTEMS), LAB_SYSTEM_WEIGHTS, n)

        # Length of stay (hours) per group; treated stays last beyond day 7 of anakinra.
        med = np.array([p.los[k][0] for k in range(4)])[g]
        sig = np.array([p.los[k][1] for k in range(4)])[g]
        low = np.array([p.los[k][2] for k in range(4)])[g]
        los = np.maximum(_lognormal(rng, med, sig, n), low)
        self.index_h = np.where(g == TREATED, 2 + 70 * rng.random(n), np.nan)  # anakinra day 0-3
        los = np.where(g == TREATED, self.index_h + 8 * 24 + los, los)
        los = np.minimum(los, p.max_los_h)

        # Admission time (minutes since 1970), readmissions 7-180 days after the previous discharge.
        start, end = _minutes(p.admitted_from), _minutes(p.admitted_to) + 1439
        margin = int(p.max_los_h * 60) + 200 * 24 * 60  # stays and deaths end inside the window
        span = end - start - margin if end - start > 2 * margin else end - start
        admit = start + np.floor(rng.random(n) * span)
        gap_days = 7 + 173 * rng.random(n)
        prev = np.flatnonzero(readmit) - 1
        admit[readmit] = admit[prev] + los[prev] * 60 + gap_days[readmit] * 1440
        age[readmit] = age[prev] + (admit[readmit] - admit[prev]) / (1440 * 365.25)
        sex[readmit] = sex[prev]
        lab_system[readmit] = lab_system[prev]
        age = np.clip(age, 0, 21.0)
        admit = np.round(admit)

        weight = growth_weight_kg(age) * np.exp(np.clip(0.14 * rng.standard_normal(n), -0.35, 0.35))
        birth_day = np.floor(admit / 1440 - age * 365.25)  # days since 1970
        # The child cannot be born after admission.
        birth_day = np.minimum(birth_day, np.floor(admit / 1440))
        reasons = np.empty(n, dtype=object)
        for k in range(4):
            sel = g == k
            names = [r for r, _ in ADMISSION_REASONS[k]]
            reasons[sel] = np.array(names, dtype=object)[
                _choice(rng, names, [w for _, w in ADMISSION_REASONS[k]], int(sel.sum()))]
        # Death in the PICU ends the stay (discharge time = time of death).
        self.admit, self.los, self.age, self.weight = admit, los, age, weight
        self.reason, self.lab_system = reasons, lab_system
        self.ventilated = rng.random(n) < np.array([SUPPORT_PROBABILITY[k][0] for k in range(4)])[g]
        self.vasoactive = rng.random(n) < np.array([SUPPORT_PROBABILITY[k][1] for k in range(4)])[g]
        # Reason-driven support for other admissions.
        resp = reasons == "respiratory distress"
        self.ventilated |= (g == OTHER) & np.isin(reasons, ("post-operative care", "trauma", "neurological")) \
            & (rng.random(n) < 0.15)
        self.vasoactive |= (g == OTHER) & np.isin(reasons, ("cardiovascular instability",
                                                            "post-operative care")) & (rng.random(n) < 0.3)
        self.resp = resp
        self.underlying = np.where(np.isin(g, PHENOTYPE), rng.random(n) < 0.5, rng.random(n) < 0.2)
        # Illness course: peak time (h from admission) and resolution time constant.
        peak = np.select([g == TREATED, g == UNTREATED, g == SEPSIS],
                         [self.index_h + 12, 24 + 36 * rng.random(n), 3 + 9 * rng.random(n)],
                         6 * rng.random(n))
        tau = np.select([np.isin(g, PHENOTYPE), g == SEPSIS], [96.0, 40.0], 24.0) * \
            np.exp(0.3 * rng.standard_normal(n))
        self.peak_h, self.tau_h = peak, tau
        self.shock = self.vasoactive & (g != OTHER)

        weight_txt = np.where(weight < 10, np.round(weight, 2), np.round(weight, 1))
        weight_col = np.where(rng.random(n) < 0.02, None, weight_txt.astype(object))
        self.tables["stay"] = {
            "stay_id": self.stay_id, "person_id": self.person_id, "admit_time": admit,
            "discharge_time": admit + np.round(los * 60), "admission_reason": reasons,
            "weight_kg": weight_col,
        }
        sex_txt = np.where(rng.random(n) < 0.1, np.where(sex == "male", "M", "F"), sex)
        sex_txt = np.where(rng.random(n) < 0.003, "unknown", sex_txt)
        keep = self.is_first
        self.tables["person"] = {"person_id": self.person_id[keep],
                                 "birth_date": birth_day[keep] * 1440,
                                 "sex": sex_txt[keep]}

    # -- shared expansion helper --------------------------------------------------------------
    def _ids(self, stay_rows):
        return {"person_id": self.person_id[stay_rows], "stay_id": self.stay_id[stay_rows]}

    def _ill(self, s, t_h):
        """Illness intensity 0..1 at hours t_h after admission of stays s."""
        peak, tau = self.peak_h[s], self.tau_h[s]
        rising = 0.35 + 0.65 * np.clip(t_h / np.maximum(peak, 1e-6), 0, 1)
        falling = np.exp(-np.maximum(t_h - peak, 0) / tau)
        return np.where(t_h < peak, rising, falling)

    # -- organ support --------------------------------------------------------------------------
    def _organ_support(self):
        rng, n, g = self.rng, self.n, self.group
        rows = _Rows(LAYOUT["organ_support"])
        los = self.los
        # Invasive ventilation: from around admission (phenotype: before the index) for days.
        vent_start = np.where(np.isin(g, PHENOTYPE),
                              np.minimum(rng.random(n) * 12, np.nan_to_num(self.index_h, nan=12)),
                              rng.random(n) * 6)
        vent_med = np.select([np.isin(g, PHENOTYPE), g == SEPSIS], [150.0, 90.0], 40.0)
        vent_end = np.minimum(vent_start + np.maximum(_lognormal(rng, vent_med, 0.6, n), 6),
                              los - 2 * rng.random(n) - 1)
        vent_end = np.maximum(vent_end, vent_start + 2)
        self.vent_start, self.vent_end = vent_start, vent_end
        s = np.flatnonzero(self.ventilated)
        rows.add(**self._ids(s), support=np.full(len(s), "invasive_ventilation", dtype=object),
                 start_time=self.admit[s] + np.round(vent_start[s] * 60),
                 end_time=self.admit[s] + np.round(vent_end[s] * 60))
        # Vasoactive infusions: 1-3 distinct agents (Efraimidis-Spirakis weighted sampling).
        k_agents = np.where(self.vasoactive, 1 + (rng.random(n) < 0.45) + (rng.random(n) < 0.12), 0)
        keys = rng.random((n, len(VASOACTIVES))) ** (1.0 / np.asarray(VASOACTIVE_WEIGHTS))
        order = np.argsort(-keys, axis=1)
        vaso_start = np.where(np.isin(g, PHENOTYPE),
                              np.maximum(np.nan_to_num(self.index_h, nan=24) - 24 * rng.random(n), 0.5),
                              0.5 + 8 * rng.random(n))
        self.vaso_start = vaso_start
        for slot in range(3):
            s = np.flatnonzero(k_agents > slot)
            agent = order[s, slot]
            start = vaso_start[s] + slot * 6 * rng.random(len(s))
            end = np.minimum(start + np.maximum(_lognormal(rng, 50.0, 0.6, len(s)), 4), los[s] - 1)
            end = np.maximum(end, start + 1)
            lo = np.array([VASOACTIVE_DOSE[a][0] for a in VASOACTIVES])[agent]
            hi = np.array([VASOACTIVE_DOSE[a][1] for a in VASOACTIVES])[agent]
            dose = lo + (hi - lo) * rng.random(len(s))
            names = np.array(VASOACTIVES, dtype=object)[agent]
            is_vp = names == "vasopressin"
            milli = is_vp & (rng.random(len(s)) < 0.4)
            dose = np.where(milli, np.round(dose * 1000, 2), np.where(is_vp, np.round(dose, 4),
                                                                      np.round(dose, 2)))
            unit = np.where(milli, "mU/kg/min", np.where(is_vp, "U/kg/min", "ug/kg/min")).astype(object)
            rows.add(**self._ids(s), support=names,
                     start_time=self.admit[s] + np.round(start * 60),
                     end_time=self.admit[s] + np.round(end * 60),
                     dose=dose.astype(object), dose_unit=unit)
        self.tables["organ_support"] = rows.arrays()

    # -- drugs ------------------------------------------------------------------------------------
    def _scheduled(self, rows, s, drug, start_h, days, interval_h, dose, unit, route, weight):
        """Append intermittent doses for stays s: every interval_h from start_h for days (only
        doses given before discharge)."""
        valid = start_h < self.los[s] - 1
        if not valid.all():
            s, start_h = s[valid], start_h[valid]
            days = np.asarray(days)[valid] if np.ndim(days) else days
            interval_h = np.asarray(interval_h)[valid] if np.ndim(interval_h) else interval_h
            dose = np.asarray(dose)[valid] if np.ndim(dose) else dose
            weight = None if weight is None else np.asarray(weight)[valid]
        n_doses = np.maximum(np.floor(days * 24 / interval_h).astype(int), 1)
        n_doses = np.minimum(n_doses, np.maximum(
            np.floor((self.los[s] - start_h) / interval_h).astype(int), 1))
        rep = np.repeat(np.arange(len(s)), n_doses)
        k = np.arange(len(rep)) - np.repeat(np.cumsum(n_doses) - n_doses, n_doses)
        t = start_h[rep] + k * np.asarray(interval_h, dtype=float)[rep] if np.ndim(interval_h) \
            else start_h[rep] + k * interval_h
        ss = s[rep]
        rows.add(**self._ids(ss), drug=np.full(len(ss), drug, dtype=object),
                 dose=np.asarray(dose)[rep].astype(object) if np.ndim(dose) else
                 np.full(len(ss), dose, dtype=object),
                 dose_unit=np.full(len(ss), unit, dtype=object),
                 route=np.full(len(ss), route, dtype=object),
                 start_time=self.admit[ss] + np.round(t * 60),
                 weight_kg=None if weight is None else np.asarray(weight)[rep])
        return ss, t

    def _drugs(self):
        rng, n, g = self.rng, self.n, self.group
        rows = _Rows(LAYOUT["drug_administration"])
        wt = np.round(self.weight, 1)
        # Anakinra (clinical reference §9.1): 2-10 mg/kg/day, SC or IV divided q6-12 h, or
        # continuous IV infusion; 7-28 days (median ~11).
        s = np.flatnonzero(g == TREATED)
        m = len(s)
        daily = np.exp(np.log(2) + (np.log(10) - np.log(2)) * rng.random(m))
        regimen = _choice(rng, ("sc", "iv", "iv_continuous"), (0.4, 0.45, 0.15), m)
        interval = np.array([6.0, 8.0, 12.0])[_choice(rng, (6, 8, 12), (0.35, 0.2, 0.45), m)]
        days = np.clip(_lognormal(rng, 11.0, 0.35, m), 7, 28)
        dosing_weight = np.where(rng.random(m) < 0.8, wt[s], None)
        self.anakinra = {"stays": s, "daily_mg_kg": daily, "regimen": regimen}
        for code, route in ((0, "sc"), (1, "iv")):
            sel = regimen == code
            per_dose = daily[sel] * wt[s[sel]] * interval[sel] / 24
            per_dose = np.where(per_dose < 20, np.round(per_dose), np.round(per_dose / 5) * 5)
            per_dose = np.maximum(per_dose, 1)
            self._scheduled(rows, s[sel], "anakinra", self.index_h[s[sel]], days[sel],
                            interval[sel], per_dose, "mg", route, dosing_weight[sel])
        sel = regimen == 2
        if sel.any():  # continuous infusion in 24-h bags, mg/kg/h
            ss = s[sel]
            n_bags = np.ceil(np.minimum(days[sel] * 24, self.los[ss] - self.index_h[ss] - 1) / 24).astype(int)
            n_bags = np.maximum(n_bags, 1)
            rep = np.repeat(np.arange(len(ss)), n_bags)
            k = np.arange(len(rep)) - np.repeat(np.cumsum(n_bags) - n_bags, n_bags)
            start = self.index_h[ss][rep] + 24 * k
            end = np.minimum(start + 24, self.los[ss][rep] - 0.5)
            rows.add(**self._ids(ss[rep]), drug=np.full(len(rep), "anakinra", dtype=object),
                     dose=np.round(daily[sel][rep] / 24, 3).astype(object),
                     dose_unit=np.full(len(rep), "mg/kg/h", dtype=object),
                     route=np.full(len(rep), "iv", dtype=object),
                     start_time=self.admit[ss[rep]] + np.round(start * 60),
                     end_time=self.admit[ss[rep]] + np.round(end * 60),
                     weight_kg=dosing_weight[sel][rep])
        # Co-therapy of the phenotype (illustrative doses): methylprednisolone pulse 30 mg/kg/day
        # (max 1 g) for 3 days then 1 mg/kg q12h (max 30 mg); dexamethasone 0.15 mg/kg q12h
        # (max 10 mg); IVIG 1 g/kg/day (max 70 g) for 2 days.
        pheno = np.isin(g, PHENOTYPE)
        anchor = np.where(g == TREATED, self.index_h, self.peak_h)
        steroid = np.where(pheno, _choice(rng, ("none", "mp", "dex"), (0.35, 0.5, 0.15), n), 0)
        self.steroid = steroid
        s = np.flatnonzero(steroid == 1)
        start = np.maximum(anchor[s] - 24 * rng.random(len(s)), 0.5)
        self._scheduled(rows, s, "methylprednisolone", start, 3, 24.0,
                        np.minimum(np.round(30 * wt[s] / 10) * 10, 1000), "mg", "iv", None)
        self._scheduled(rows, s, "methylprednisolone", start + 72, 7, 12.0,
                        np.minimum(np.round(wt[s]), 30), "mg", "iv", None)
        s = np.flatnonzero(steroid == 2)
        start = np.maximum(anchor[s] - 24 * rng.random(len(s)), 0.5)
        self._scheduled(rows, s, "dexamethasone", start, 10, 12.0,
                        np.minimum(np.round(0.15 * wt[s], 1), 10), "mg", "iv", None)
        ivig = pheno & (rng.random(n) < 0.3)
        s = np.flatnonzero(ivig)
        start = np.maximum(anchor[s] + 48 * rng.random(len(s)) - 12, 1)
        self._scheduled(rows, s, "ivig", start, 2, 24.0,
                        np.minimum(np.round(wt[s] / 2.5) * 2.5, 70), "g", "iv", None)
        # Sepsis with shock: hydrocortisone 2 mg/kg/day q6h (max 50 mg/dose) for 5 days.
        s = np.flatnonzero((g == SEPSIS) & self.vasoactive & (rng.random(n) < 0.4))
        self._scheduled(rows, s, "hydrocortisone", self.vaso_start[s] + 6 * rng.random(len(s)), 5, 6.0,
                        np.minimum(np.round(0.5 * wt[s], 1), 50), "mg", "iv", None)
        # Asthma / croup among respiratory admissions: methylprednisolone 1 mg/kg q6h (max 60 mg)
        # for 3 days; dexamethasone 0.6 mg/kg once (max 16 mg).
        other_resp = (g == OTHER) & self.resp
        u = rng.random(n)
        s = np.flatnonzero(other_resp & (u < 0.2))
        self._scheduled(rows, s, "methylprednisolone", 1 + 3 * rng.random(len(s)), 3, 6.0,
                        np.minimum(np.round(wt[s]), 60), "mg", "iv", None)
        s = np.flatnonzero(other_resp & (u >= 0.2) & (u < 0.26))
        self._scheduled(rows, s, "dexamethasone", 0.5 + 2 * rng.random(len(s)), 0.01, 24.0,
                        np.minimum(np.round(0.6 * wt[s], 1), 16), "mg", "po", None)
        self.tables["drug_administration"] = rows.arrays()

    # -- measurements ---------------------------------------------------------------------------
    def _measurements(self):
        self._mrows = {"s": [], "t": [], "var": [], "value": []}
        self._vitals()
        self._labs()
        s = np.concatenate(self._mrows["s"])
        t = np.concatenate(self._mrows["t"])
        var = np.concatenate(self._mrows["var"])
        value = np.concatenate(self._mrows["value"])
        minutes = self.admit[s] + np.round(t * 60)
        order = np.lexsort((var, minutes, s))
        s, minutes, var, value = s[order], minutes[order], var[order], value[order]
        # Convert canonical values to the stay's lab-system unit and round to its precision.
        unit_txt, reported = self._report(var, value, self.lab_system[s])
        pre_admission = minutes < self.admit[s]
        stay_col = np.where(pre_admission, None, self.stay_id[s].astype(object))
        self.tables["measurement"] = {
            "person_id": self.person_id[s], "stay_id": stay_col, "time": minutes,
            "variable": np.array(VARIABLES, dtype=object)[var], "value": reported, "unit": unit_txt,
        }

    def _add(self, s, t, var_name, value):
        self._mrows["s"].append(s)
        self._mrows["t"].append(t)
        self._mrows["var"].append(np.full(len(s), VAR_CODE[var_name], dtype=np.int16))
        self._mrows["value"].append(np.asarray(value, dtype=float))

    def _report(self, var, value, system):
        codes = var.astype(np.int64) * len(LAB_SYSTEMS) + system
        table = _unit_table(self.vocab)
        factor, offset, decimals = table["factor"][codes], table["offset"][codes], table["decimals"][codes]
        x = (value - offset) / factor
        up = 10.0 ** np.maximum(decimals, 0)
        down = 10.0 ** np.maximum(-decimals, 0)  # e.g. platelets /uL reported to the thousand
        x = np.where(decimals >= 0, np.round(x * up) / up, np.round(x / down) * down)
        return table["unit"][codes], x

    def _vitals(self):
        rng, n, g = self.rng, self.n, self.group
        p = self.params
        interval = np.asarray(p.vitals_interval_h, dtype=float)[
            _choice(rng, p.vitals_interval_h, p.vitals_interval_p, n)]
        # Sicker children are charted more often.
        interval = np.where(np.isin(g, PHENOTYPE), np.minimum(interval, 3), interval)
        n_chart = np.floor((self.los - 0.5) / interval).astype(int) + 1
        s = np.repeat(np.arange(n), n_chart)
        k = np.arange(len(s)) - np.repeat(np.cumsum(n_chart) - n_chart, n_chart)
        t = np.minimum(0.25 + k * interval[s] + 0.3 * rng.random(len(s)), self.los[s] - 0.1)
        m = len(s)
        ill = self._ill(s, t)
        age = self.age[s]
        fever_amp = np.array([2.3, 2.3, 1.6, 0.4])[g[s]]
        temp = 36.9 + 0.3 * rng.standard_normal(m) + fever_amp * ill * (0.6 + 0.4 * rng.random(m))
        temp = np.clip(temp, 35.0, 41.5)
        hr = _interp_age(age, "heart_rate") * (1 + 0.12 * (temp - 37.0) / 2 + 0.15 * ill *
                                               np.array([1, 1, 1.3, 0.5])[g[s]])
        hr = np.clip(hr + 8 * rng.standard_normal(m), 40, 230)
        rr = np.clip(_interp_age(age, "resp_rate") * (1 + 0.35 * ill * self.resp[s] + 0.15 * ill)
                     + 3 * rng.standard_normal(m), 8, 90)
        on_vent = self.ventilated[s] & (t >= self.vent_start[s]) & (t <= self.vent_end[s])
        rr = np.where(on_vent, np.clip(_interp_age(age, "resp_rate") * 0.8 + 2 * rng.standard_normal(m), 10, 50), rr)
        hypo = np.where(self.shock[s], 0.28, np.where(g[s] == SEPSIS, 0.12, 0.03))
        sbp = np.clip(_interp_age(age, "sbp") * (1 - hypo * ill) + 8 * rng.standard_normal(m), 35, 200)
        dbp = sbp * (0.52 + 0.1 * rng.random(m))
        sbp, dbp = np.round(sbp), np.round(dbp)
        dbp = np.minimum(dbp, sbp - 5)
        mapv = np.round(dbp + (sbp - dbp) / 3)
        # Oxygen: ventilated, or respiratory illness with supplemental oxygen.
        on_o2 = on_vent | ((self.resp[s] | (g[s] != OTHER)) & (ill > 0.4))
        fio2 = np.where(on_vent, 0.3 + 0.55 * ill * rng.random(m) + 0.1 * rng.random(m),
                        0.25 + 0.2 * ill * rng.random(m))
        fio2 = np.clip(np.round(fio2 * 20) / 20, 0.21, 1.0)
        spo2 = np.where(on_o2, 98 - 7 * ill * rng.random(m), 98.5 - 2 * rng.random(m)) + \
            rng.standard_normal(m)
        spo2 = np.clip(np.round(spo2), 80, 100)
        gcs = np.where(on_vent, 3 + np.floor(5 * rng.random(m)),
                       np.where(self.reason[s] == "neurological", 8 + np.floor(7 * rng.random(m)),
                                15 - np.floor(2.5 * ill * rng.random(m))))
        present = rng.random((6, m)) < 0.98
        for i, (name, v) in enumerate((("heart_rate", hr), ("resp_rate", rr), ("sbp", sbp),
                                       ("dbp", dbp), ("map", mapv), ("spo2", spo2))):
            keep = present[i] if name not in ("sbp", "dbp", "map") else present[2]
            self._add(s[keep], t[keep], name, np.round(v[keep]))
        four_hourly = rng.random(m) < interval[s] / 4.0
        self._add(s[four_hourly], t[four_hourly], "temperature", temp[four_hourly])
        gcs_every_h = np.where(self.reason[s] == "neurological", 4.0, 8.0)
        gcs_rows = rng.random(m) < interval[s] / gcs_every_h
        self._add(s[gcs_rows], t[gcs_rows], "gcs_total", gcs[gcs_rows])
        self._add(s[on_o2], t[on_o2], "fio2", fio2[on_o2])

    def _lab_events(self):
        """(stay, hours from admission, kind) of every blood draw. kind: 0 admission, 1 daily,
        2 ED before admission, 3 index (treated), 4 day 7 (treated), 5 blood gas while ventilated."""
        rng, n, g = self.rng, self.n, self.group
        s_parts, t_parts, k_parts = [], [], []
        s = np.arange(n)
        s_parts.append(s), t_parts.append(0.3 + 1.5 * rng.random(n)), k_parts.append(np.zeros(n, int))
        ed = np.flatnonzero(rng.random(n) < self.params.ed_labs_fraction)
        s_parts.append(ed), t_parts.append(-(2 + 28 * rng.random(len(ed)))), k_parts.append(np.full(len(ed), 2))
        # Daily draws at 04:00-06:00 (clock time of the admission minute stream).
        admit_hour_of_day = (self.admit / 60.0) % 24
        first_draw = (24 - admit_hour_of_day + 4) % 24
        first_draw = np.where(first_draw < 3, first_draw + 24, first_draw)
        n_daily = np.maximum(np.floor((self.los - first_draw) / 24).astype(int) + 1, 0)
        rep = np.repeat(s, n_daily)
        k = np.arange(len(rep)) - np.repeat(np.cumsum(n_daily) - n_daily, n_daily)
        s_parts.append(rep), t_parts.append(first_draw[rep] + 24 * k + 2 * rng.random(len(rep)))
        k_parts.append(np.ones(len(rep), int))
        tr = np.flatnonzero(g == TREATED)
        drawn = tr[rng.random(len(tr)) < INDEX_PANEL_DRAWN]
        s_parts.append(drawn), t_parts.append(self.index_h[drawn] - 4 * rng.random(len(drawn)))
        k_parts.append(np.full(len(drawn), 3))
        drawn = tr[rng.random(len(tr)) < DAY7_PANEL_DRAWN]
        s_parts.append(drawn), t_parts.append(self.index_h[drawn] + 168 + 12 * rng.random(len(drawn)) - 6)
        k_parts.append(np.full(len(drawn), 4))
        vs = np.flatnonzero(self.ventilated)
        n_gas = np.floor((self.vent_end[vs] - self.vent_start[vs]) / 6).astype(int)
        rep = np.repeat(vs, n_gas)
        k = np.arange(len(rep)) - np.repeat(np.cumsum(n_gas) - n_gas, n_gas)
        s_parts.append(rep), t_parts.append(self.vent_start[rep] + 3 + 6 * k + rng.random(len(rep)))
        k_parts.append(np.full(len(rep), 5))
        s = np.concatenate(s_parts)
        t = np.concatenate(t_parts)
        kind = np.concatenate(k_parts)
        return s, np.minimum(t, self.los[s] - 0.2), kind

    def _labs(self):
        rng, g = self.rng, self.group
        s, t, kind = self._lab_events()
        e = len(s)
        ge = g[s]
        ordered: dict[str, np.ndarray] = {}
        for panel in PANELS:
            p = np.where(kind == 0, np.array(PANEL_ADMISSION[panel])[ge],
                         np.array(PANEL_DAILY[panel])[ge])
            p = np.where(kind == 2, 0.8 * np.array(PANEL_ADMISSION[panel])[ge], p)
            if panel in ("cbc", "diff", "crp", "ferritin", "fibrinogen"):
                p = np.where(np.isin(kind, (3, 4)), 1.0, p)
            else:
                p = np.where(np.isin(kind, (3, 4)), 0.3, p)
            p = np.where(kind == 5, 1.0 if panel == "gas" else 0.0, p)
            ordered[panel] = rng.random(e) < p
        ordered["diff"] &= ordered["cbc"]
        ordered["fibrinogen"] |= ordered["coag"] & (rng.random(e) < 0.3) & np.isin(ge, PHENOTYPE)
        # sCD25 rarely: once in a third of phenotype stays (send-out test).
        scd = np.zeros(e, dtype=bool)
        first_adm = np.flatnonzero((kind == 0) & np.isin(ge, PHENOTYPE))
        scd[first_adm[rng.random(len(first_adm)) < 0.33]] = True
        # Per-stay normals and illness peaks for each variable.
        age_e = self.age[s]
        for panel, variables in PANELS.items():
            for var in variables:
                rows = np.flatnonzero(ordered[panel] & (rng.random(e) < COMPONENT_RESULTED))
                self._lab_values(var, s[rows], t[rows], age_e[rows])
        rows = np.flatnonzero(scd)
        self._lab_values("scd25", s[rows], t[rows], age_e[rows])

    def _stay_level(self, var):
        """Per-stay normal and peak values of a lab variable (drawn once per block and variable)."""
        cache = self.__dict__.setdefault("_level_cache", {})
        if var not in cache:
            rng, n, g = self.rng, self.n, self.group
            med, sd, _, lo, hi = LAB_MODEL[var]
            if var == "creatinine":
                med = np.interp(self.age, (0, 0.1, 1, 3, 6, 10, 14, 18), (0.35, 0.25, 0.25, 0.35, 0.45,
                                                                          0.55, 0.7, 0.85))
            elif var == "alc":
                med = np.interp(self.age, (0, 2, 6, 12, 21), (5.0, 4.0, 2.8, 2.2, 2.0))
            elif var == "hemoglobin":
                med = np.interp(self.age, (0, 0.1, 0.5, 2, 12, 21), (16.0, 12.5, 11.2, 11.8, 13.0, 13.8))
            normal = np.clip(_lognormal(rng, med, sd, n), lo, hi)
            pm = np.array([LAB_PEAKS[k][var][0] for k in range(4)])[g]
            ps = np.array([LAB_PEAKS[k][var][1] for k in range(4)])[g]
            peak = np.clip(_lognormal(rng, pm, ps, n), lo, hi)
            if var == "creatinine":  # acute kidney injury relative to the child's own baseline
                peak = np.clip(normal * peak / 0.5, lo, hi)
            if var == "fibrinogen":  # consumptive coagulopathy in a third of sepsis
                dic = (g == SEPSIS) & (rng.random(n) < 0.3)
                peak = np.where(dic, np.clip(_lognormal(rng, 120, 0.35, n), lo, hi), peak)
            paired = None
            if var in FOUNDING_MARKERS:
                paired = sample_paired_marker(rng, FOUNDING_MARKERS[var], n)
            cache[var] = (normal, peak, paired)
        return cache[var]

    def _lab_values(self, var, s, t, age):
        if len(s) == 0:
            return
        rng, g = self.rng, self.group
        _, _, cv, lo, hi = LAB_MODEL[var]
        normal, peak, paired = self._stay_level(var)
        ill = self._ill(s, t)
        # Shock physiology: lactate follows hypotension in shock stays.
        if var == "lactate":
            peak_s = np.where(self.shock[s], peak[s] * 1.3, peak[s])
        else:
            peak_s = peak[s]
        value = np.exp(np.log(normal[s]) + (np.log(peak_s) - np.log(normal[s])) * ill)
        if paired is not None:
            value = np.where(g[s] == TREATED, _founding_course(t, self.index_h[s], normal[s],
                                                               paired[0][s], paired[1][s]), value)
        if var == "ph":
            value = np.clip(value + 0.02 * rng.standard_normal(len(s)), lo, hi)
        else:
            value = np.clip(value * _noise(rng, cv, len(s)), lo, hi)
        self._add(s, t, var, value)

    # -- conditions and events -------------------------------------------------------------------
    def _conditions_events(self):
        rng, n, g = self.rng, self.n, self.group
        cond = _Rows(LAYOUT["condition"])
        pheno = np.isin(g, PHENOTYPE)
        # Underlying diseases (is_underlying true): about half of the phenotype children.
        s = np.flatnonzero(self.underlying & self.is_first)
        table = np.where(pheno[s], _choice(rng, UNDERLYING_CONDITIONS, (0.3, 0.25, 0.15, 0.12, 0.1, 0.08),
                                           len(s)),
                         _choice(rng, OTHER_UNDERLYING, (0.3, 0.15, 0.25, 0.1, 0.1, 0.1), len(s)))
        names = np.where(pheno[s], np.array([c[0] for c in UNDERLYING_CONDITIONS], dtype=object)[table],
                         np.array([c[0] for c in OTHER_UNDERLYING], dtype=object)[table])
        codes = np.where(pheno[s], np.array([c[2] for c in UNDERLYING_CONDITIONS], dtype=object)[table],
                         np.array([c[2] for c in OTHER_UNDERLYING], dtype=object)[table])
        onset = self.admit[s] - np.round((0.2 + rng.random(len(s)) * 0.8) * self.age[s] * 365.25 * 1440)
        cond.add(**self._ids(s), condition=names, code_system=np.full(len(s), "ICD-10-CM", dtype=object),
                 code=codes, onset_time=np.where(rng.random(len(s)) < 0.3, None, onset.astype(object)),
                 is_underlying=np.full(len(s), "true", dtype=object))
        # Clinical findings of the phenotype during the stay.
        anchor = np.where(g == TREATED, self.index_h, self.peak_h)
        for name, system, code, prob in FINDINGS:
            s = np.flatnonzero(pheno & (rng.random(n) < prob))
            onset = self.admit[s] + np.round(np.maximum(anchor[s] - 24 + 48 * rng.random(len(s)), 0.5) * 60)
            cond.add(**self._ids(s), condition=np.full(len(s), name, dtype=object),
                     code_system=np.full(len(s), system or None, dtype=object),
                     code=np.full(len(s), code or None, dtype=object),
                     onset_time=onset, is_underlying=np.full(len(s), "false", dtype=object))
        self.tables["condition"] = cond.arrays()

        ev = _Rows(LAYOUT["event"])
        # Infections: sepsis at presentation; phenotype triggers before the index; rare later ones.
        s = np.flatnonzero(g == SEPSIS)
        ev.add(**self._ids(s), event_type=np.full(len(s), "infection", dtype=object),
               time=self.admit[s] - np.round(12 * 60 * rng.random(len(s))),
               detail=np.array(SEPSIS_INFECTIONS, dtype=object)[rng.integers(0, len(SEPSIS_INFECTIONS), len(s))])
        s = np.flatnonzero(pheno & (rng.random(n) < 0.4))
        ev.add(**self._ids(s), event_type=np.full(len(s), "infection", dtype=object),
               time=self.admit[s] + np.round(np.maximum(anchor[s] - 24 - 48 * rng.random(len(s)), -72) * 60),
               detail=np.array(TRIGGER_INFECTIONS, dtype=object)[rng.integers(0, len(TRIGGER_INFECTIONS), len(s))])
        late_p = np.select([pheno, g == SEPSIS], [0.04, 0.05], 0.02)
        s = np.flatnonzero((self.los > 72) & (rng.random(n) < late_p))
        start = np.where(g[s] == TREATED, self.index_h[s] + 48, 48.0)
        t = start + (self.los[s] - 2 - start) * rng.random(len(s))
        keep = t > start
        s, t = s[keep], t[keep]
        ev.add(**self._ids(s), event_type=np.full(len(s), "infection", dtype=object),
               time=self.admit[s] + np.round(t * 60),
               detail=np.array(HOSPITAL_INFECTIONS, dtype=object)[rng.integers(0, len(HOSPITAL_INFECTIONS), len(s))])
        # Deaths: in the PICU at discharge (untreated phenotype 12%, sepsis 6%, other 1.5%); treated
        # 5%, long after anakinra (20-200 days after discharge, outside the stay).
        death_p = np.array([0.0, 0.12, 0.06, 0.015])[g]
        s = np.flatnonzero((rng.random(n) < death_p) & ~self.readmitted_later)
        ev.add(**self._ids(s), event_type=np.full(len(s), "death", dtype=object),
               time=self.admit[s] + np.round(self.los[s] * 60), detail=np.full(len(s), "died in the PICU", dtype=object))
        s = np.flatnonzero((g == TREATED) & (rng.random(n) < 0.05))
        ev.add(person_id=self.person_id[s], stay_id=np.full(len(s), None, dtype=object),
               event_type=np.full(len(s), "death", dtype=object),
               time=self.admit[s] + np.round((self.los[s] + 24 * (20 + 180 * rng.random(len(s)))) * 60),
               detail=np.full(len(s), "died after PICU discharge", dtype=object))
        self.tables["event"] = ev.arrays()

        index_time = np.where(g == TREATED, self.admit + np.round(np.nan_to_num(self.index_h) * 60), np.nan)
        self.tables["truth"] = {
            "stay_id": self.stay_id, "person_id": self.person_id,
            "group": np.array(GROUPS, dtype=object)[g],
            "index_time": np.where(g == TREATED, index_time.astype(object), None),
            "ventilated": np.where(self.ventilated, "true", "false").astype(object),
            "vasoactive": np.where(self.vasoactive, "true", "false").astype(object),
            "previously_healthy": np.where(self.underlying, "false", "true").astype(object),
        }


def _founding_course(t, index_h, normal, baseline, day7):
    """Value of a founding-paper marker at hours t after admission (treated group).

    Plateaus at the baseline value from index - 24 h to index + 12 h and at the day-7 value from
    index + 156 h to index + 180 h (the study windows, clinical reference §10.4 / §12.1-§12.2);
    log-linear in between; rising from 60 % of baseline at admission before; back to the child's
    normal over the following week.
    """
    r = t - index_h
    lb, ld, ln = np.log(baseline), np.log(day7), np.log(normal)
    pre = np.log(0.6 * baseline) + (lb - np.log(0.6 * baseline)) * np.clip((t) / np.maximum(index_h - 24 + 1e-9, 1e-9), 0, 1)
    between = lb + (ld - lb) * np.clip((r - 12) / 144.0, 0, 1)
    after = ld + (ln - ld) * np.clip((r - 180) / 168.0, 0, 1)
    log_value = np.where(r < -24, pre, np.where(r <= 156, between, after))
    return np.exp(log_value)


# --------------------------------------------------------------------------------------------
# Variables and units
# --------------------------------------------------------------------------------------------
VARIABLES: tuple[str, ...] = tuple(LAB_MODEL) + ("heart_rate", "resp_rate", "sbp", "dbp", "map",
                                                 "spo2", "temperature", "gcs_total", "fio2")
VAR_CODE = {v: i for i, v in enumerate(VARIABLES)}
_UNIT_TABLE_CACHE: dict[int, dict[str, np.ndarray]] = {}


def _unit_table(vocabulary: Vocabulary) -> dict[str, np.ndarray]:
    """Lookup arrays indexed by variable code x lab system: unit text, factor, offset, decimals.

    Factors come from vocabulary/units.csv (clinical reference §11.1): canonical = received x factor
    + offset, so received = (canonical - offset) / factor.
    """
    key = id(vocabulary)
    if key not in _UNIT_TABLE_CACHE:
        systems = list(LAB_SYSTEMS.values())
        size = len(VARIABLES) * len(systems)
        unit = np.empty(size, dtype=object)
        factor, offset, decimals = np.ones(size), np.zeros(size), np.zeros(size)
        for v, var in enumerate(VARIABLES):
            for k, system in enumerate(systems):
                spelling, dp = system[var]
                entry = vocabulary.units.get((var, normalize_unit(spelling)))
                if entry is None or entry.status != "ok":
                    raise ValueError(f"synth: unit '{spelling}' for {var} is not an accepted spelling "
                                     f"in vocabulary/units.csv.")
                i = v * len(systems) + k
                unit[i], factor[i], offset[i] = spelling, float(entry.factor), float(entry.offset)
                decimals[i] = dp
        _UNIT_TABLE_CACHE.clear()
        _UNIT_TABLE_CACHE[key] = {"unit": unit, "factor": factor, "offset": offset, "decimals": decimals}
    return _UNIT_TABLE_CACHE[key]


# --------------------------------------------------------------------------------------------
# Formatting and writing
# --------------------------------------------------------------------------------------------
_TIME_COLUMNS = {"admit_time", "discharge_time", "time", "start_time", "end_time", "onset_time",
                 "index_time"}


def _format_column(name: str, values: np.ndarray) -> pa.Array:
    """Format one column as text: times as 'YYYY-MM-DD HH:MM' (UTC), dates, numbers, text."""
    if name in _TIME_COLUMNS or name == "birth_date":
        mask = np.asarray(pd.isna(values), dtype=bool)
        minutes = np.where(mask, 0, values).astype(np.float64)
        ts = pa.array((minutes.astype(np.int64) * 60).astype("datetime64[s]"), mask=mask)
        # ISO 'YYYY-MM-DD HH:MM:SS' cut to the minute (TIME_FORMAT); dates to the day.
        return pc.utf8_slice_codeunits(ts.cast(pa.string()), 0, 10 if name == "birth_date" else 16)
    if values.dtype.kind in "fiu":
        values = values.astype(np.float64)
        return pc.cast(pa.array(values, mask=np.isnan(values)), pa.string())
    if values.dtype == object:
        arr = pa.array(values, from_pandas=True)
        if pa.types.is_floating(arr.type) or pa.types.is_integer(arr.type):
            arr = arr.cast(pa.float64())
        return arr.cast(pa.string())
    return pa.array(values.astype(str), type=pa.string())


def _to_table(name: str, columns: dict[str, np.ndarray]) -> pa.Table:
    return pa.table({c: _format_column(c, columns[c]) for c in LAYOUT[name]})


def _concat(blocks: list[_Block], name: str) -> dict[str, np.ndarray]:
    out = {}
    for c in LAYOUT[name]:
        parts = [b.tables[name][c] for b in blocks]
        if any(p.dtype == object for p in parts):
            parts = [p.astype(object) for p in parts]
        out[c] = np.concatenate(parts)
    return out


def iter_chunks(n_stays: int, seed: int, *, chunk_stays: int = 2000, params: SynthParams | None = None,
                vocabulary: Vocabulary | None = None):
    """Yield (stays_in_chunk, {table: pyarrow.Table of text columns}, stays per group) chunk by
    chunk; the blocks behind a chunk are released before it is yielded."""
    params = params or SynthParams()
    vocabulary = vocabulary or Vocabulary()
    blocks_per_chunk = max(1, round(chunk_stays / BLOCK_STAYS))
    width = max(7, len(str(n_stays)))
    n_blocks = math.ceil(n_stays / BLOCK_STAYS)
    for first_block in range(0, n_blocks, blocks_per_chunk):
        blocks = []
        for b in range(first_block, min(first_block + blocks_per_chunk, n_blocks)):
            first = b * BLOCK_STAYS
            blocks.append(_Block(seed, b, first, min(BLOCK_STAYS, n_stays - first), params, width,
                                 vocabulary))
        stays = sum(b.n for b in blocks)
        group_counts = np.bincount(np.concatenate([b.group for b in blocks]), minlength=4)
        tables = {name: _to_table(name, _concat(blocks, name)) for name in LAYOUT}
        del blocks
        yield stays, tables, group_counts
