"""The synthetic PICU cohort: generated stays (:mod:`.generator`) written as CSV folders or loaded
into a DuckDB database chunk by chunk (:mod:`.database`)."""
