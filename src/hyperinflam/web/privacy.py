"""Identifiers, pseudonyms and the researcher's time frame for the two roles.

* Every URL names a stay by an opaque key (``stay_key``: keyed HMAC of the stay_id), never by the
  hospital identifier, for both roles: identifiers stay out of browser history and server logs.
* Clinicians see person_id and stay_id in the page. Researchers see pseudonyms only
  (``P-`` + HMAC of person_id, ``S-`` + HMAC of stay_id) and every time in the stay's own frame:
  the calendar day of PICU admission is :data:`FRAME_ORIGIN` (2000-01-01), every other time keeps
  its distance from that midnight (so the time of day and every interval within the stay are
  unchanged). A researcher sends times (``?at=``) in that frame too and gets them back in it.

Why not a secret per-patient offset: the bedside census is live, so a researcher always knows when
a child on it was admitted (hours in the PICU against the wall clock, or the newest measurement
against now). Any offset constant over a patient's records is then revealed by one subtraction,
and with it every date of the patient. In the stay frame that subtraction gives only the real
day of this admission, which the live census shows anyway; no other date of the patient, no
birth date (never shown to researchers; ages are) and no other stay's dates follow from it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac

import pandas as pd

#: The researcher frame's admission day (project choice; documented in docs/web.md).
FRAME_ORIGIN = dt.datetime(2000, 1, 1)


def _midnight(value) -> dt.datetime:
    stamp = pd.Timestamp(value)
    return stamp.normalize().to_pydatetime()


def to_frame(value, admit_time):
    """A real time (timestamp/datetime, or None/NaT) in the stay frame of ``admit_time``."""
    if value is None or admit_time is None or pd.isna(value) or pd.isna(admit_time):
        return None  # never the real time
    return pd.Timestamp(value) - _midnight(admit_time) + FRAME_ORIGIN


def from_frame(value: dt.datetime, admit_time) -> dt.datetime:
    """A time in the stay frame of ``admit_time`` as the real time."""
    return (pd.Timestamp(value) - FRAME_ORIGIN + _midnight(admit_time)).to_pydatetime()


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
