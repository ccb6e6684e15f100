"""Study definition: defaults from the clinical reference (10.4; section 12) and readable errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from hyperinflam.errors import StudyDefinitionError
from hyperinflam.study.definition import load_study, parse_study

MINIMAL = {"study": {"id": "x", "title": "X"}}


def test_shipped_study_defaults_follow_the_clinical_reference():
    s = load_study("rajasekaran2014")
    assert s.study.id == "rajasekaran2014"
    assert (s.windows.baseline_from_hours, s.windows.baseline_to_hours) == (-24, 12)
    assert (s.windows.day7_from_hours, s.windows.day7_to_hours) == (144, 192)
    assert s.cohort.index_drug == "anakinra"
    assert s.markers.variables == ["crp", "ferritin", "fibrinogen", "anc", "alc"]
    assert s.cotherapies.classes == ["corticosteroid", "ivig"]
    assert (s.cotherapies.window_from_hours, s.cotherapies.window_to_hours) == (-24, 168)
    assert s.outcomes.followup_days == 28
    assert s.analysis.sem_ddof == 1 and s.analysis.wilcoxon_exact_max_n == 25


def test_repo_symlink_and_path_load_the_same_study():
    repo_file = Path(__file__).resolve().parents[1] / "studies" / "rajasekaran2014.toml"
    assert load_study(repo_file).model_dump() == load_study("rajasekaran2014").model_dump()


def test_drug_alias_resolves_and_requirement_parses():
    s = parse_study({**MINIMAL, "cohort": {"index_drug": "Kineret",
                                           "require": "ferritin >= 500"}})
    assert s.cohort.index_drug == "anakinra"
    req = s.cohort.required_criterion
    assert (req.variable, req.operator, req.threshold) == ("ferritin", ">=", 500.0)


@pytest.mark.parametrize("data, expected", [
    ({**MINIMAL, "windows": {"baseline_to_hour": 12}},
     ["studies/x.toml: [windows] baseline_to_hour:", "unknown key", "baseline_to_hours"]),
    ({**MINIMAL, "windows": {"baseline_from_hours": "minus one day"}},
     ["[windows] baseline_from_hours:", "valid number"]),
    ({**MINIMAL, "windows": {"baseline_from_hours": 24, "baseline_to_hours": 12}},
     ["[windows] baseline_from_hours:", "must be <= baseline_to_hours"]),
    ({**MINIMAL, "markers": {"variables": ["crp", "il6"]}},
     ["[markers] variables:", "il6", "ferritin"]),
    ({**MINIMAL, "cohort": {"index_drug": "aspirin"}}, ["[cohort] index_drug:", "anakinra"]),
    ({**MINIMAL, "analysis": {"tests": ["anova"]}}, ["[analysis] tests", "'paired_t'"]),
    ({**MINIMAL, "cohort": {"require": "ferritin is high"}}, ["[cohort] require:", "NAME OP NUMBER"]),
    ({**MINIMAL, "plots": {}}, ["plots: unknown section", "[windows]"]),
    ({"study": {"title": "X"}}, ["[study] id: required key is missing"]),
])
def test_errors_name_the_key_and_the_allowed_values(data, expected):
    with pytest.raises(StudyDefinitionError) as err:
        parse_study(data, source="studies/x.toml")
    assert isinstance(err.value, ValueError)
    for fragment in expected:
        assert fragment in str(err.value)


def test_unknown_study_name_and_bad_toml(tmp_path):
    with pytest.raises(StudyDefinitionError, match="rajasekaran2014"):
        load_study("no_such_study")
    bad = tmp_path / "bad.toml"
    bad.write_text("[study\nid = 1\n", encoding="utf-8")
    with pytest.raises(StudyDefinitionError, match="bad.toml: not valid TOML"):
        load_study(bad)


def test_requirement_on_a_screening_output():
    s = parse_study({**MINIMAL, "cohort": {"require": "hscore_ge_169 == met"}})
    req = s.cohort.required_criterion
    assert (req.variable, req.threshold, req.criterion, req.is_marker) == (
        "hscore_ge_169", "met", "hscore", False)
    s = parse_study({**MINIMAL, "cohort": {"require": "phoenix8_score >= 3"}})
    assert s.cohort.required_criterion.criterion == "phoenix8"  # longest prefix, not phoenix
    with pytest.raises(StudyDefinitionError, match="unknown name 'hscroe_points'"):
        parse_study({**MINIMAL, "cohort": {"require": "hscroe_points >= 169"}})


def test_timepoints_default_to_the_founding_day_7():
    s = load_study("rajasekaran2014")
    assert [(t.name, t.label, t.target_hours, t.tolerance_hours) for t in s.timepoints] == [
        ("day7", "day 7", 168, 24)]
    assert s.fits_mixed_model is False  # one timepoint: the paired tests only
    s = parse_study({**MINIMAL, "windows": {"day7_target_hours": 72, "day7_tolerance_hours": 12}})
    assert [(t.name, t.label, t.from_hours, t.to_hours) for t in s.timepoints] == [
        ("day3", "day 3", 60, 84)]


def test_timepoints_as_an_array_of_tables():
    s = parse_study({**MINIMAL, "timepoints": [
        {"target_hours": 36, "tolerance_hours": 6},
        {"target_hours": 72, "tolerance_hours": 24},
        {"name": "week1", "label": "one week", "target_hours": 168, "tolerance_hours": 24}]})
    assert [(t.name, t.label) for t in s.timepoints] == [("h36", "36 h"), ("day3", "day 3"),
                                                        ("week1", "one week")]
    assert s.fits_mixed_model is True
    s = parse_study({**MINIMAL, "analysis": {"mixed_model": False},
                     "timepoints": [{"target_hours": 72, "tolerance_hours": 24},
                                    {"target_hours": 168, "tolerance_hours": 24}]})
    assert s.fits_mixed_model is False


@pytest.mark.parametrize("timepoints, expected", [
    ([{"target_hours": 168, "tolerance_hours": 24}, {"target_hours": 72, "tolerance_hours": 24}],
     "[[timepoints]]: list the timepoints in order of target_hours"),
    ([{"target_hours": 72, "tolerance_hours": 48}, {"target_hours": 96, "tolerance_hours": 24}],
     "the windows of 'day3' (24 .. 120 h) and 'day4' (72 .. 120 h) overlap"),
    ([{"target_hours": 24, "tolerance_hours": 12}],
     "must start after the baseline window ends (baseline_to_hours = 12)"),
    ([{"name": "baseline", "target_hours": 72, "tolerance_hours": 24}],
     "[[timepoints]] entry 1 name: 'baseline' is reserved"),
    ([{"target_hours": 72, "tolerance_hours": 24, "window": 3}],
     "[[timepoints]] entry 1 window: unknown key; allowed keys in [[timepoints]]: name, label, "
     "target_hours, tolerance_hours"),
    ([{"name": "d", "target_hours": 72, "tolerance_hours": 2},
      {"name": "d", "target_hours": 96, "tolerance_hours": 2}], "each name may be used once"),
])
def test_timepoint_errors_name_the_entry_and_the_fix(timepoints, expected):
    with pytest.raises(StudyDefinitionError) as err:
        parse_study({**MINIMAL, "timepoints": timepoints}, source="studies/x.toml")
    assert expected in str(err.value)


def test_day7_keys_and_timepoints_together_is_an_error():
    with pytest.raises(StudyDefinitionError, match=r"\[windows\]: day7_target_hours and "
                                                   r"\[\[timepoints\]\] both given"):
        parse_study({**MINIMAL, "windows": {"day7_target_hours": 100},
                     "timepoints": [{"target_hours": 72, "tolerance_hours": 24}]})


def test_published_rows_of_the_founding_study():
    s = load_study("rajasekaran2014")
    crp = next(r for r in s.published.rows if r.label.startswith("CRP at the start"))
    assert (crp.published, crp.section, crp.variable, crp.comparison, crp.timepoint,
            crp.stat_name) == ("206 ± 50", "marker", "crp", "day7", "baseline", "mean_sem")
    assert "§10.1" in s.published.citation
