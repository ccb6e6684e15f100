"""Declarative studies: definition, cohort extraction, analysis -> results dataset."""

from hyperinflam.study.definition import StudyDefinition, load_study
from hyperinflam.study.results import StudyResults
from hyperinflam.study.run import run_study

__all__ = ["StudyDefinition", "StudyResults", "load_study", "run_study"]
