"""Writers that turn the canonical tables into other formats: an OMOP CDM 5.4 schema
(:mod:`hyperinflam.exports.omop`) and FHIR R4 NDJSON (:mod:`hyperinflam.exports.fhir`). The
readers of those formats are under :mod:`hyperinflam.sources`."""
