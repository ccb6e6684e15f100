"""Recorded severity scores and computed scores that are not computable (issue 12 item 4).

Phoenix and pSOFA at the index time likewise (their authors score a missing input 0, §5.4,
§6.3): the inputs observed are counted, and a stay with none observed has no score and an
unknown Phoenix sepsis. Here only the "pim" stay has an input of either (platelets 80).

A PRISM III the site recorded (variable ``prism3_recorded``) is the baseline PRISM III; else the
computed PRISM III-24 (clinical reference §7.3: unmeasured items count as normal, as the authors
do), shown with the number of its 17 items observed; a stay with no PRISM III input at all is
"not computable", never 0 points. Expected values by hand from §7.2 / §7.4 (example 2: an infant
with SBP 44 mmHg scores 7) and the unit factors of vocabulary/units.csv rows written here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hyperinflam.engine import connect_memory
from hyperinflam.sources.csv import load_csv_folder
from hyperinflam.study.phenotype import (PRISM_RECORDED_LABEL, phenotype_frames,
                                         phenotype_results)
from hyperinflam.study.run import _with_prism

ADMIT = "2024-03-01 08:00"


def write(folder: Path) -> Path:
    folder.mkdir()
    stays = ["recorded", "computed", "nothing", "pim"]
    (folder / "person.csv").write_text("person_id,birth_date,sex\n" + "".join(
        f"{s},2023-11-01,male\n" for s in stays))  # 4 months old on 2024-03-01 (infant)
    (folder / "stay.csv").write_text("stay_id,person_id,admit_time,discharge_time\n" + "".join(
        f"{s},{s},{ADMIT},2024-03-05 08:00\n" for s in stays))
    (folder / "measurement.csv").write_text(
        "person_id,stay_id,time,variable,value,unit\n"
        # the site's PRISM III (12), and SBP 44 that would compute 7: the recorded one is used
        "recorded,recorded,2024-03-02 09:00,prism3_recorded,12,points\n"
        "recorded,recorded,2024-03-01 10:00,sbp,44,mm[Hg]\n"
        "recorded,recorded,2024-03-03 09:00,prism3_recorded,15,points\n"  # later: not the first
        # §7.4 example 2: infant, SBP 44 (< 45) -> 7, all else unmeasured
        "computed,computed,2024-03-01 10:00,sbp,44,mm[Hg]\n"
        # a PIM2 risk recorded as a fraction: 0.052 x 100 = 5.2 %
        "pim,pim,2024-03-01 09:00,pim2_recorded,0.052,1\n"
        "pim,pim,2024-03-01 10:00,heart_rate,150,/min\n"
        # after the first 24 h (no PRISM item), 2 h before the index time: Phoenix coagulation
        # (< 100 -> 1 point, §5.2) and pSOFA coagulation (50-99 -> 2 points, §6.1)
        "pim,pim,2024-03-02 10:00,platelets,80,10*3/uL\n")
    return folder


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    con = connect_memory()
    assert load_csv_folder(con, write(tmp_path_factory.mktemp("scores") / "csv")).reconciles
    stay = con.table("stay").to_pandas()
    cohort = pd.DataFrame({"stay_id": stay.stay_id, "person_id": stay.person_id,
                           "index_time": pd.Timestamp("2024-03-02 12:00"),
                           "admit_time": stay.admit_time, "discharge_time": stay.discharge_time})
    return phenotype_frames(con, cohort)


def test_recorded_and_computed_prism(frames):
    _, prism = frames
    p = prism.set_index("stay_id")
    assert p.loc["recorded", "prism3_recorded"] == 12
    assert p.loc["computed", "prism3_points"] == 7
    assert p.loc["computed", "prism3_n_observed"] == 1       # SBP only, of 17 items
    assert np.isnan(p.loc["nothing", "prism3_points"])        # not computable, not 0
    assert p.loc["nothing", "prism3_n_observed"] == 0
    assert p.loc["pim", "prism3_points"] == 0                 # HR 150 observed, normal: 0
    assert p.loc["pim", "pim2_recorded"] == 5.2


def test_baseline_rows_say_recorded_computed_and_not_computable(frames):
    rows = phenotype_results("toy", *frames)
    prism = rows[(rows.section == "baseline") & (rows.variable == "prism3_points")]
    stat = prism.set_index("stat_name").value
    # recorded 12, computed 7 and 0; "nothing" has no value: n = 3, median 7
    assert (stat["n"], stat["median"], stat["min"], stat["max"]) == (3, 7, 0, 12)
    assert set(prism.label) == {PRISM_RECORDED_LABEL}
    warning = prism.warning.iloc[0]
    assert "1 recorded by the site, 2 computed" in warning
    assert "1 not computable (no PRISM III input observed)" in warning
    assert "items observed: median 1 of 17" in warning
    pim = rows[(rows.section == "baseline") & (rows.variable == "pim2_recorded")]
    assert pim.set_index("stat_name").value["median"] == 5.2


def test_listing_source_of_each_patients_prism(frames):
    _, prism = frames
    patients = pd.DataFrame({"stay_id": ["recorded", "computed", "nothing"],
                             "prism3": np.nan, "prism3_source": None})
    out = _with_prism(patients, prism)
    assert list(out.prism3_source) == ["recorded", "computed", "not computable"]
    assert out.prism3.iloc[:2].tolist() == [12, 7] and np.isnan(out.prism3.iloc[2])


def test_phoenix_and_psofa_not_computable_without_an_input(frames):
    index, _ = frames
    i = index.set_index("stay_id")
    assert i.loc["pim", "phoenix_score"] == 1 and i.loc["pim", "phoenix_n_observed"] == 1
    assert i.loc["pim", "psofa_score"] == 2 and i.loc["pim", "psofa_n_observed"] == 1
    assert i.loc["pim", "phoenix_sepsis"] == "not_met"           # 1 point < 2
    for stay in ("recorded", "computed", "nothing"):             # SBP and HR: no input of either
        assert np.isnan(i.loc[stay, "phoenix_score"]) and np.isnan(i.loc[stay, "psofa_score"])
        assert i.loc[stay, "phoenix_n_observed"] == 0 and i.loc[stay, "psofa_n_observed"] == 0
        assert i.loc[stay, "phoenix_sepsis"] == "unknown"        # not "not met"
        assert i.loc[stay, "phoenix_septic_shock"] == "unknown"


def test_phenotype_rows_count_inputs_observed(frames):
    rows = phenotype_results("toy", *frames)
    for score, median, what in (("phoenix_score", 1, "organ inputs observed: median 0 of 13"),
                                ("psofa_score", 2, "organ systems observed: median 0 of 6")):
        r = rows[(rows.section == "phenotype") & (rows.variable == score)]
        stat = r.set_index("stat_name").value
        assert (stat["n"], stat["median"]) == (1, median)
        assert what in r.warning.iloc[0]
        assert "3 not computable (no input observed)" in r.warning.iloc[0]
