"""Respiratory support of every kind and vasoactives however they arrive (issue 12 items 2, 3).

Small CSV folders written here, loaded with ``load csv`` and screened at one time, so the whole
path (reader -> canonical tables -> features -> Phoenix, pSOFA, IPSCC) is exercised. Expected
values are worked by hand from clinical reference §5.2 (Phoenix respiratory rule, "any respiratory
support incl. supplemental oxygen; FiO2 > 0.21 implies support"), §6.2 (pSOFA), §12.24 (vasoactive
counting, doses in ug/kg/min) and §12.34 (dosing weight), or come from the authors' package
``phoenix-sepsis`` (``import phoenix as phx``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import phoenix as phx
import pytest

from hyperinflam.criteria import phoenix, psofa
from hyperinflam.engine import connect_memory
from hyperinflam.features.support import support_intervals
from hyperinflam.screening.screen import screen_frame
from hyperinflam.sources.csv import load_csv_folder
from hyperinflam.vocabulary import Vocabulary
from hyperinflam.vocabulary.domain import OTHER_RESPIRATORY_SUPPORTS, RESPIRATORY_SUPPORTS

AT = "2024-03-01 12:00"


def write_folder(folder: Path, stays: list[str], measurements: list[str] = (),
                 supports: list[str] = (), drugs: list[str] = ()) -> Path:
    """A CSV folder: every stay a 5-year-old admitted 2024-03-01 06:00, weight 20 kg."""
    folder.mkdir()
    (folder / "person.csv").write_text("person_id,birth_date,sex\n" + "".join(
        f"{s},2019-01-15,female\n" for s in stays))
    (folder / "stay.csv").write_text("stay_id,person_id,admit_time,discharge_time,weight_kg\n"
                                     + "".join(f"{s},{s},2024-03-01 06:00,,20\n" for s in stays))
    (folder / "measurement.csv").write_text("person_id,stay_id,time,variable,value,unit\n"
                                            + "".join(r + "\n" for r in measurements))
    (folder / "organ_support.csv").write_text(
        "person_id,stay_id,support,start_time,end_time,dose,dose_unit\n"
        + "".join(r + "\n" for r in supports))
    (folder / "drug_administration.csv").write_text(
        "person_id,stay_id,drug,dose,dose_unit,route,start_time,end_time,weight_kg\n"
        + "".join(r + "\n" for r in drugs))
    return folder


def screened(folder: Path, criteria=("phoenix", "psofa", "ipscc")):
    con = connect_memory()
    report = load_csv_folder(con, folder)
    assert report.reconciles
    return screen_frame(con, at=AT, criteria=list(criteria)).set_index("stay_id"), report


def test_supports_csv_holds_the_respiratory_kinds():
    assert tuple(Vocabulary().supports) == RESPIRATORY_SUPPORTS
    assert set(OTHER_RESPIRATORY_SUPPORTS) == set(RESPIRATORY_SUPPORTS) - {"invasive_ventilation"}


def test_every_kind_has_a_code_for_each_reader():
    """Each kind has a SNOMED code (FHIR Procedure.code, OMOP through the concept table) and an
    OMOP concept id (matched without a concept table)."""
    vocab = Vocabulary()
    for kind in RESPIRATORY_SUPPORTS:
        assert vocab.first_code("support", kind, "SNOMED") is not None, kind
        assert vocab.first_code("support", kind, with_concept_id=True) is not None, kind


# --- item 2: other respiratory support ------------------------------------------------------

#: SpO2 92 % on FiO2 0.21 -> S/F = 92 / 0.21 = 438 (no point); on FiO2 0.35 -> 262.9 (< 292).
SF_ROOM_AIR = ["{s},{s},2024-03-01 11:00,spo2,92,%", "{s},{s},2024-03-01 11:00,fio2,21,%"]
SF_OXYGEN = ["{s},{s},2024-03-01 11:00,spo2,92,%", "{s},{s},2024-03-01 11:00,fio2,35,%"]
#: P/F 150 (PaO2 75 on FiO2 0.5): pSOFA 3 with support, 2 without; Phoenix 1 with any support.
PF_150 = ["{s},{s},2024-03-01 11:00,pao2,75,mm[Hg]", "{s},{s},2024-03-01 11:00,fio2,50,%"]


def _rows(template: list[str], stay: str) -> list[str]:
    return [r.format(s=stay) for r in template]


@pytest.fixture(scope="module")
def respiratory(tmp_path_factory):
    cases = {  # stay: (measurements, supports)
        "hfnc_room_air": (SF_ROOM_AIR, ["high_flow_nasal_cannula"]),
        "hfnc_sf_263": (SF_OXYGEN, ["high_flow_nasal_cannula"]),
        "cpap_pf_150": (PF_150, ["cpap"]),
        "niv_pf_150": (PF_150, ["noninvasive_ventilation"]),
        "o2_pf_150": (PF_150, ["supplemental_oxygen"]),
        "imv_pf_150": (PF_150, ["invasive_ventilation"]),
        "none_pf_150": (PF_150, []),
        "none_room_air": (SF_ROOM_AIR, []),
        "hfnc_ended": (PF_150, ["high_flow_nasal_cannula@2024-03-01 05:00"]),
    }
    measurements, supports = [], []
    for stay, (meas, kinds) in cases.items():
        measurements += _rows(meas, stay)
        for kind in kinds:
            kind, _, end = kind.partition("@")
            start, end = ("2024-02-29 20:00", end) if end else ("2024-03-01 07:00", "")
            supports.append(f"{stay},{stay},{kind},{start},{end},,")
    folder = write_folder(tmp_path_factory.mktemp("resp") / "csv", list(cases), measurements,
                          supports)
    return screened(folder)[0]


def test_phoenix_other_respiratory_support_and_which_rule_applied(respiratory):
    r = respiratory
    # high flow at FiO2 0.21 (S/F 438 >= 292): support documented, but no point to give
    assert r.loc["hfnc_room_air", "phoenix_respiratory_points"] == 0
    assert r.loc["hfnc_room_air", "phoenix_respiratory_support"] == "documented_support"
    # P/F 150 with any support other than IMV: 1 point (§5.2); with IMV: 2 (P/F < 200)
    for stay in ("cpap_pf_150", "niv_pf_150", "o2_pf_150"):
        assert r.loc[stay, "phoenix_respiratory_points"] == 1, stay
        assert r.loc[stay, "phoenix_respiratory_support"] == "documented_support", stay
    assert r.loc["imv_pf_150", "phoenix_respiratory_points"] == 2
    assert r.loc["imv_pf_150", "phoenix_respiratory_support"] == "invasive_ventilation"
    # no support documented, FiO2 0.50 > 0.21: the authors' EHR rule gives the point
    assert r.loc["none_pf_150", "phoenix_respiratory_points"] == 1
    assert r.loc["none_pf_150", "phoenix_respiratory_support"] == "fio2_above_room_air"
    assert r.loc["none_room_air", "phoenix_respiratory_support"] == "none"
    # high flow that ended 7 h before (look-back 6 h, §5.4): the FiO2 rule applies instead
    assert r.loc["hfnc_ended", "phoenix_respiratory_support"] == "fio2_above_room_air"


def test_phoenix_respiratory_points_agree_with_the_package(respiratory):
    r = respiratory.loc[["hfnc_sf_263", "cpap_pf_150", "imv_pf_150", "none_room_air"]]
    pf = np.array([np.nan, 150.0, 150.0, np.nan])
    sf = np.array([92 / 0.35, np.nan, np.nan, 92 / 0.21])
    imv = np.array([0.0, 0.0, 1.0, 0.0])
    ors = np.array([1.0, 1.0, 1.0, 0.0])
    expected = phx.phoenix_respiratory(pf, sf, imv, ors)
    assert list(r.phoenix_respiratory_points) == list(expected) == [1, 1, 2, 0]


def test_phoenix_fio2_rule_can_be_switched_off(respiratory, monkeypatch, tmp_path):
    folder = write_folder(tmp_path / "csv", ["none_pf_150", "cpap_pf_150"],
                          _rows(PF_150, "none_pf_150") + _rows(PF_150, "cpap_pf_150"),
                          ["cpap_pf_150,cpap_pf_150,cpap,2024-03-01 07:00,,,"])
    monkeypatch.setattr(phoenix, "FIO2_IMPLIES_SUPPORT", False)
    r = screened(folder, ["phoenix"])[0]
    assert r.loc["none_pf_150", "phoenix_respiratory_points"] == 0
    assert r.loc["none_pf_150", "phoenix_respiratory_support"] == "none"
    assert r.loc["cpap_pf_150", "phoenix_respiratory_points"] == 1


def test_psofa_reads_the_same_kinds(respiratory, monkeypatch, tmp_path):
    """§6.2: P/F [100, 200) scores 3 with respiratory support (IMV, BiPAP / NIV, CPAP), else 2."""
    r = respiratory
    for stay, points in (("imv_pf_150", 3), ("niv_pf_150", 3), ("cpap_pf_150", 3),
                         ("o2_pf_150", 2), ("none_pf_150", 2)):
        assert r.loc[stay, "psofa_respiratory_points"] == points, stay
    folder = write_folder(tmp_path / "csv", ["o2_pf_150"], _rows(PF_150, "o2_pf_150"),
                          ["o2_pf_150,o2_pf_150,supplemental_oxygen,2024-03-01 07:00,,,"])
    monkeypatch.setattr(psofa, "SUPPORT_INCLUDES_SUPPLEMENTAL_OXYGEN", True)
    assert screened(folder, ["psofa"])[0].loc["o2_pf_150", "psofa_respiratory_points"] == 3


def test_ipscc_respiratory_from_recorded_noninvasive_ventilation(respiratory):
    """§8.4: need for non-invasive mechanical ventilation is respiratory dysfunction."""
    assert respiratory.loc["niv_pf_150", "ipscc_respiratory"] == "met"
    assert respiratory.loc["cpap_pf_150", "ipscc_respiratory"] == "met"


# --- item 3: vasoactives recorded as drug administrations -----------------------------------

@pytest.fixture(scope="module")
def vasoactive_folder(tmp_path_factory):
    stays = ["epi_rate", "epi_ug_min", "epi_mg_h", "epi_bolus", "epi_neb", "both", "two_drugs",
             "dopa_rate", "vaso_u_h", "support_only", "epi_ug_min_measured"]
    s = "2024-03-01 08:00"
    drugs = [
        f"epi_rate,epi_rate,epinephrine,0.15,ug/kg/min,iv,{s},,",
        # 2 ug/min at a dosing weight of 20 kg = 0.1 ug/kg/min: pSOFA's edge (> 0.1 -> 4)
        f"epi_ug_min,epi_ug_min,adrenaline,2,mcg/min,iv,{s},,20",
        # 0.12 mg/h with the admission weight 20 kg = 120 / 60 / 20 = 0.1 ug/kg/min
        f"epi_mg_h,epi_mg_h,epinephrine,0.12,mg/h,iv,{s},,",
        f"epi_bolus,epi_bolus,epinephrine,0.2,mg,iv,2024-03-01 11:30,,",
        f"epi_neb,epi_neb,epinephrine,5,mg,inhalation,{s},,",
        f"both,both,epinephrine,0.05,ug/kg/min,iv,{s},,",
        f"two_drugs,two_drugs,epinephrine,0.05,ug/kg/min,,{s},,",
        f"two_drugs,two_drugs,milrinone,0.5,ug/kg/min,iv,{s},,",
        f"dopa_rate,dopa_rate,dopamine,7,ug/kg/min,iv,{s},,",
        f"vaso_u_h,vaso_u_h,vasopressin,0.06,U/h,iv,{s},,",
        f"epi_ug_min_measured,epi_ug_min_measured,epinephrine,3,ug/min,iv,{s},,",
    ]
    supports = [f"both,both,epinephrine,{s},,0.05,ug/kg/min",
                f"support_only,support_only,norepinephrine,{s},,0.2,ug/kg/min"]
    # a weight measured at 07:00 (15 kg) is the latest before the dose: 3 / 15 = 0.2 ug/kg/min
    measurements = ["epi_ug_min_measured,epi_ug_min_measured,2024-03-01 07:00,weight,15,kg"]
    return write_folder(tmp_path_factory.mktemp("vaso") / "csv", stays, measurements,
                        supports, drugs)


@pytest.fixture(scope="module")
def vasoactive(vasoactive_folder):
    return screened(vasoactive_folder)


@pytest.fixture(scope="module")
def vasoactive_con(vasoactive_folder):
    con = connect_memory()
    load_csv_folder(con, vasoactive_folder)
    return con, Vocabulary()


def test_vasoactive_drug_administrations_count_as_support(vasoactive):
    r, report = vasoactive
    vaso = r[phoenix.VASOACTIVES.column]
    # one agent each, except two_drugs (epinephrine + milrinone); the nebulised dose is not
    # vasoactive support; epinephrine in both tables is one agent, never two
    expected = {"epi_rate": 1, "epi_ug_min": 1, "epi_mg_h": 1, "epi_bolus": 1, "epi_neb": 0,
                "both": 1, "two_drugs": 2, "dopa_rate": 1, "vaso_u_h": 1, "support_only": 1,
                "epi_ug_min_measured": 1}
    assert vaso.to_dict() == expected
    # Phoenix cardiovascular: 1 agent -> 1 point, 2 -> 2 (no lactate, MAP assumed normal)
    assert r.loc["two_drugs", "phoenix_cardiovascular_points"] == 2
    assert r.loc["epi_neb", "phoenix_cardiovascular_points"] == 0
    assert r.loc["both", "phoenix_cardiovascular_points"] == 1


def test_vasoactive_doses_from_rates_and_weights(vasoactive):
    r, _ = vasoactive
    epi = r[psofa.EPINEPHRINE_DOSE.column]
    assert epi["epi_rate"] == 0.15
    assert epi["epi_ug_min"] == 0.1          # 2 ug/min / 20 kg dosing weight
    assert epi["epi_mg_h"] == 0.1            # 0.12 mg/h = 2 ug/min, / 20 kg admission weight
    assert epi["epi_ug_min_measured"] == 0.2  # 3 ug/min / 15 kg measured weight
    assert np.isnan(epi["epi_bolus"])         # given, no rate: dose unknown
    # pSOFA cardiovascular (§6.2): epinephrine > 0.1 -> 4, <= 0.1 -> 3; no dose -> 3 (named)
    cv = r.psofa_cardiovascular_points
    assert (cv["epi_rate"], cv["epi_ug_min"], cv["epi_mg_h"], cv["epi_bolus"]) == (4, 3, 3, 3)
    assert "epinephrine_dose" in r.loc["epi_bolus", "psofa_missing"]
    assert cv["dopa_rate"] == 3 and cv["support_only"] == 4  # dopamine 7 > 5; norepi 0.2


def test_support_intervals_from_drug_administrations(vasoactive_con):
    """vasopressin 0.06 U/h, not per kg: 0.001 U/min / 20 kg = 0.00005 U/kg/min; a bolus runs
    from its start to its start; the nebulised dose is left out."""
    con, vocab = vasoactive_con
    rows = support_intervals(con, vocab).filter(
        lambda t: t.recorded_as == "drug_administration").to_pandas().set_index("person_id")
    assert rows.loc["vaso_u_h", "dose"] == 0.00005
    assert rows.loc["vaso_u_h", "dose_unit"] == "U/kg/min"
    assert rows.loc["epi_bolus", "end_time"] == rows.loc["epi_bolus", "start_time"]
    assert "epi_neb" not in rows.index
    assert len(rows) == 10  # 11 administrations less the nebulised one


def test_ipscc_cardiovascular_from_a_drug_administration(vasoactive):
    """§8.4: any epinephrine is cardiovascular dysfunction, however it was recorded."""
    r, _ = vasoactive
    assert r.loc["epi_ug_min", "ipscc_cardiovascular"] == "met"
    assert r.loc["dopa_rate", "ipscc_cardiovascular"] == "met"  # dopamine 7 > 5


def test_table_one_vasoactive_infusion_from_a_drug_administration(vasoactive_con):
    """Table 1 "vasoactive infusion" (§10.1) reads the same intervals: a stay whose only
    vasoactive is a drug administration has one; the nebulised dose is not one."""
    import ibis

    from hyperinflam.study.cohort import member_characteristics

    con, _ = vasoactive_con
    stay = con.table("stay")
    members = stay.select("stay_id", "person_id", "admit_time", "discharge_time").filter(
        stay.stay_id.isin(["epi_ug_min", "epi_neb", "support_only"]))
    out = member_characteristics(con, members).to_pandas().set_index("stay_id")
    assert out.vasoactive_infusion.to_dict() == {"epi_ug_min": True, "epi_neb": False,
                                                 "support_only": True}
    assert isinstance(members, ibis.Table)
