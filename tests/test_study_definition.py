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
