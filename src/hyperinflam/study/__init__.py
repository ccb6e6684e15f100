"""Declarative studies: definition, cohort extraction, analysis -> results dataset."""

from hyperinflam.study.definition import StudyDefinition, StudyDefinitionError, load_study
from hyperinflam.study.results import StudyResults
from hyperinflam.study.run import run_study

__all__ = ["StudyDefinition", "StudyDefinitionError", "StudyResults", "load_study", "run_study"]
