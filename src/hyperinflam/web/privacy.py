"""Identifiers, pseudonyms and date shifting for the two roles.

* Every URL names a stay by an opaque key (``stay_key``: keyed HMAC of the stay_id), never by the
  hospital identifier, for both roles: identifiers stay out of browser history and server logs.
* Clinicians see person_id and stay_id in the page. Researchers see pseudonyms only
  (``P-`` + HMAC of person_id, ``S-`` + HMAC of stay_id) and every time shifted by a per-patient
  offset: a whole number of days in [-MAX_SHIFT_DAYS, MAX_SHIFT_DAYS], never 0, derived from a
  keyed HMAC of the person_id (deterministic for a server key, not reversible without it).
  Intervals within a patient (hours since admission, days since the first dose) are unchanged.
  Birth dates are never shown to researchers; ages are.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac

#: Largest date shift for researchers, in days (project choice; documented in docs/web.md).
MAX_SHIFT_DAYS = 182


class Pseudonymizer:
    def __init__(self, key: str):
        self._key = key.encode()

    def _digest(self, kind: str, value: str) -> bytes:
        return hmac.new(self._key, f"{kind}:{value}".encode(), hashlib.sha256).digest()

    def _code(self, kind: str, value: str, n: int = 10) -> str:
        return base64.b32encode(self._digest(kind, value)).decode()[:n]

    def stay_key(self, stay_id: str) -> str:
        """Opaque URL key of a stay (both roles)."""
        return "k" + self._code("url-stay", str(stay_id), 16).lower()

    def person_pseudonym(self, person_id: str) -> str:
        return "P-" + self._code("person", str(person_id))

    def stay_pseudonym(self, stay_id: str) -> str:
        return "S-" + self._code("stay", str(stay_id))

    def shift_days(self, person_id: str) -> int:
        """Per-patient shift in days, in [-MAX, -1] U [1, MAX]."""
        n = int.from_bytes(self._digest("shift", str(person_id))[:4], "big")
        magnitude = 1 + n % MAX_SHIFT_DAYS
        return magnitude if (n >> 31) & 1 else -magnitude

    def shift(self, value, person_id: str):
        """Shift a timestamp/datetime (or None/NaT) by the patient's offset."""
        if value is None:
            return None
        try:
            if value != value:  # NaT
                return value
        except (TypeError, ValueError):
            return value
        return value + dt.timedelta(days=self.shift_days(person_id))
