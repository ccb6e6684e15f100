"""Declarative studies: definition, cohort extraction, analysis -> results dataset."""
