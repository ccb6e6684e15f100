"""Condition rows matched to the dictionary's condition concepts (``vocabulary/concepts.csv``: name
and free-text aliases; their SNOMED and ICD-10-CM codes are the ``condition`` rows of
``vocabulary/codes.csv``), by folded name, SNOMED code or ICD-10 code prefix.

Clinical reference §12.21: a condition is unknown when absent, never "no".
"""

from __future__ import annotations

from functools import lru_cache

import ibis
import ibis.expr.types as ir
import pandas as pd

from hyperinflam import vocabulary


def _fold_name(text: str) -> str:
    return " ".join(text.strip().lower().replace("_", " ").split())


def _fold_name_expr(expr: ir.StringValue) -> ir.StringValue:
    # Same folding as _fold_name (inner runs of spaces are not collapsed on the engine).
    return expr.strip().lower().replace("_", " ")


def _fold_code(text: str) -> str:
    return text.strip().upper().replace(".", "")


def _fold_code_expr(expr: ir.StringValue) -> ir.StringValue:
    return expr.strip().upper().replace(".", "")


#: Code systems of condition codes matched by exact code (SNOMED) or by code prefix (ICD-10).
EXACT_SYSTEMS = ("SNOMED",)
PREFIX_SYSTEMS = ("ICD10CM", "ICD10")


@lru_cache(maxsize=1)
def load_concepts() -> pd.DataFrame:
    """The dictionary's condition concepts, one row each: aliases, SNOMED and ICD-10 codes (as
    lists), the concept negated, the reference."""
    vocab = vocabulary.default()
    out = []
    for c in vocab.concepts.values():
        codes = vocab.concept_codes(c.name)
        out.append({"concept": c.name, "aliases": list(c.aliases),
                    "snomed": [k.code for k in codes if k.system in EXACT_SYSTEMS],
                    "icd10": [k.code for k in codes if k.system in PREFIX_SYSTEMS],
                    "negates": c.negates, "reference": c.reference})
    return pd.DataFrame(out)


def concept_keys() -> pd.DataFrame:
    """Matching keys of every concept: (match_kind, match_key, concept).

    match_kind 'name' (folded free text: the concept name and its aliases), 'snomed' (exact code)
    or 'icd10' (code prefix, dots removed: 'M08.2' matches 'M08.20').
    """
    rows = []
    for r in load_concepts().itertuples():
        for name in [r.concept, *r.aliases]:
            rows.append(("name", _fold_name(name), r.concept))
        rows += [("snomed", _fold_code(c), r.concept) for c in r.snomed]
        rows += [("icd10", _fold_code(c), r.concept) for c in r.icd10]
    frame = pd.DataFrame(rows, columns=["match_kind", "match_key", "concept"])
    return frame.drop_duplicates().reset_index(drop=True)


def matched_conditions(con) -> ir.Table:
    """Condition rows mapped to concepts: (c_person, c_onset, c_concept)."""
    cond = con.table("condition")
    keys = ibis.memtable(concept_keys())
    system = cond.code_system.strip().upper()
    cond = cond.select(
        c_person="person_id", c_onset="onset_time",
        c_name=_fold_name_expr(cond.condition),
        c_code=_fold_code_expr(cond.code),
        c_kind=ibis.cases((system.contains("SNOMED") | (system == "SCT"), "snomed"),
                          (system.contains("ICD"), "icd10"), else_=None),
    )
    by_name = cond.join(keys, [keys.match_kind == "name", cond.c_name == keys.match_key])
    by_snomed = cond.join(keys, [keys.match_kind == "snomed", cond.c_kind == "snomed",
                                 cond.c_code == keys.match_key])
    by_icd = cond.join(keys, [keys.match_kind == "icd10", cond.c_kind == "icd10",
                              cond.c_code.startswith(keys.match_key)])
    cols = dict(c_person="c_person", c_onset="c_onset", c_concept="concept")
    return ibis.union(by_name.select(**cols), by_snomed.select(**cols), by_icd.select(**cols),
                      distinct=True)
