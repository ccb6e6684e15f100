"""The OMOP CDM reader: the CDM read into the canonical tables on DuckDB
(:mod:`hyperinflam.sources.omop.mapping`) or on Spark (:mod:`hyperinflam.sources.omop.spark`)."""
