"""Screening: every criterion evaluated on every stay over time (:mod:`.screen`), the census
status of a stay (:mod:`.approaching`) and the anakinra course (:mod:`.anakinra`)."""
