"""Screening criteria and severity scores, one module each.

Each module defines::

    NAME: str                      # e.g. "hscore"; prefix of every output column
    TITLE: str                     # human title
    REFERENCE: str                 # clinical reference section and primary publication
    INPUTS: list[FeatureSpec]      # what it reads from the wide feature table
    def evaluate(t: ibis.Table) -> dict[str, ibis.Value]:
        '''Output columns (all prefixed NAME_) as ibis expressions over the wide table t.'''

and is listed in :data:`REGISTRY`. Adding a criterion is one module plus vocabulary entries.
"""
