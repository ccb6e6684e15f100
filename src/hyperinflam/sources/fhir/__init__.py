"""The FHIR R4 reader: files parsed into staging rows (:mod:`hyperinflam.sources.fhir.parse`),
then mapped into the canonical tables (:mod:`hyperinflam.sources.fhir.reader`)."""
