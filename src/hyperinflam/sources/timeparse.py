"""Reading ISO 8601 times on the engine and storing them as naive UTC.

Convention (``schema.py``; clinical reference §0 for units and times being explicit): a time that
carries an offset (``Z``, ``+01:00``, ``-0500``) is converted to UTC; a time without an offset is
read in the **site time zone** (an IANA name, default ``UTC``); the engine stores naive UTC
``TIMESTAMP`` values.

On DuckDB this is done by casting the text to ``TIMESTAMPTZ`` while the session ``TimeZone`` is the
site zone, then taking the instant ``AT TIME ZONE 'UTC'``. :func:`site_time_zone` sets the zone
and always restores ``UTC`` afterwards, even on error.

Limitations (documented in docs/csv-layout.md): a local time that does not exist (the hour skipped
when clocks go forward) is moved forward by the gap, and a local time that occurs twice (clocks go
back) is read as the second of the two (standard time), as DuckDB's ICU time zones do (measured:
2024-10-27 02:30 Europe/Paris is 01:30 UTC; tests/test_cli_options.py).
"""

from __future__ import annotations

from contextlib import contextmanager

import duckdb

#: ISO 8601 date and time with an optional offset, as accepted in the CSV layout.
ISO_TIME_PATTERN = (r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?"
                    r" ?(Z|z|[+-]\d{2}(:?\d{2})?)?")
#: ISO 8601 calendar date (birth_date, and date-only condition onsets).
ISO_DATE_PATTERN = r"\d{4}-\d{2}-\d{2}"

TIME_EXAMPLES = "2024-03-01 14:30, 2024-03-01T14:30:00 or 2024-03-01T14:30:00+01:00"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


#: A time that ends in an offset (the date part alone never matches: it needs hh:mm before).
OFFSET_SUFFIX_PATTERN = r"\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)? ?(Z|z|[+-]\d{2}(:?\d{2})?)$"


def time_sql(column_sql: str, tz: str, *, allow_date_only: bool = False) -> str:
    """SQL for the naive-UTC ``TIMESTAMP`` of a text column, NULL when it is not ISO 8601.

    A time with an offset is cast to ``TIMESTAMPTZ`` (the offset fixes the instant); a time without
    one is read as local time in ``tz`` (``timezone(tz, local)`` is the same instant as a
    ``TIMESTAMPTZ`` cast with the session zone set to ``tz``, and about twice as fast; when ``tz``
    is UTC no conversion is needed). Evaluate it inside :func:`site_time_zone`.
    """
    pattern = ISO_TIME_PATTERN
    if allow_date_only:
        pattern = f"({ISO_TIME_PATTERN}|{ISO_DATE_PATTERN})"
    local = f"TRY_CAST({column_sql} AS TIMESTAMP)"
    if tz != "UTC":
        local = f"(timezone({_quote(tz)}, {local}) AT TIME ZONE 'UTC')"
    return (f"(CASE WHEN NOT regexp_full_match({column_sql}, {_quote(pattern)}) THEN NULL "
            f"WHEN regexp_matches({column_sql}, {_quote(OFFSET_SUFFIX_PATTERN)}) "
            f"THEN TRY_CAST({_offset_text(column_sql)} AS TIMESTAMPTZ) AT TIME ZONE 'UTC' "
            f"ELSE {local} END)")


#: (pattern, replacement) steps that put an ISO 8601 time with an offset in the form DuckDB casts
#: to ``TIMESTAMPTZ``: seconds added after hh:mm (``14:30Z`` -> ``14:30:00Z``), no space before
#: the offset, ``z`` as ``Z``. DuckDB gives NULL for each of the three; ISO 8601 and
#: :func:`parse_time` accept them.
_OFFSET_FORMS: tuple[tuple[str, str], ...] = (
    (r"^(.{10}[T ]\d{2}:\d{2}) ?([Zz+-])", r"\1:00\2"),
    (r" ([Zz+-])", r"\1"),
    (r"z$", "Z"),
)


def _offset_text(column_sql: str) -> str:
    """SQL for the text of ``column_sql`` (a time with an offset) as DuckDB casts it."""
    sql = column_sql
    for pattern, replacement in _OFFSET_FORMS:
        sql = f"regexp_replace({sql}, {_quote(pattern)}, {_quote(replacement)})"
    return sql


def date_sql(column_sql: str) -> str:
    """SQL for a ``DATE`` from ``YYYY-MM-DD`` text, NULL when it is not a valid date."""
    return (f"(CASE WHEN regexp_full_match({column_sql}, {_quote(ISO_DATE_PATTERN)}) "
            f"THEN TRY_CAST({column_sql} AS DATE) END)")


def check_time_zone(raw, tz: str) -> None:
    """Raise ``ValueError`` with a clear message if DuckDB does not know the zone ``tz``."""
    known = raw.execute("SELECT count(*) FROM pg_timezone_names() WHERE name = ?", [tz]).fetchone()[0]
    if not known:
        raise ValueError(
            f"time zone '{tz}' is not a known IANA time zone name; use a name such as "
            f"'UTC', 'Europe/Amsterdam' or 'America/Chicago'.")


@contextmanager
def site_time_zone(raw, tz: str):
    """Set the DuckDB session ``TimeZone`` to ``tz`` and restore ``UTC`` afterwards, even on error."""
    raw.execute(f"SET TimeZone = {_quote(tz)}")
    try:
        yield
    finally:
        try:
            raw.execute("SET TimeZone = 'UTC'")
        except duckdb.Error:  # an aborted transaction: roll it back, then restore
            try:
                raw.execute("ROLLBACK")
            except duckdb.Error:
                pass
            raw.execute("SET TimeZone = 'UTC'")


# ---------------------------------------------------------------------------------------------
# One time given on the command line or to the web application (--at, --as-of, ...)
def check_zone_name(tz: str):
    """The :class:`zoneinfo.ZoneInfo` of an IANA zone name; ``ValueError`` naming the zone as
    the problem otherwise (the same words as :func:`check_time_zone`)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        if not tz or tz != tz.strip():
            raise ValueError
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(
            f"time zone '{tz}' is not a known IANA time zone name; use a name such as "
            f"'UTC', 'Europe/Amsterdam' or 'America/Chicago'.") from None


def parse_time(text: str, tz: str = "UTC", *, what: str = "time"):
    """One ISO 8601 time -> a naive UTC :class:`datetime.datetime` (as the canonical tables
    store times).

    The accepted form is exactly the loaders' (:data:`ISO_TIME_PATTERN`): year-month-day, then
    hours and minutes, optional seconds and fraction, optional offset (``Z``, ``+01:00``,
    ``-0500``). A time with an offset is that instant; one without is read in the site zone
    ``tz`` as the loaders read it (a local time skipped when clocks go forward is moved forward
    by the gap; one that occurs twice is the second of the two). Anything else, such as
    ``11/03/2024`` (day/month is never guessed) or a date without a time, raises ``ValueError``
    naming ``what`` (e.g. ``--at``) and the accepted form; an unknown ``tz`` raises
    ``ValueError`` naming the zone.
    """
    import re
    from datetime import datetime, timezone

    zone = check_zone_name(tz)
    raw = "" if text is None else str(text)
    if not re.fullmatch(ISO_TIME_PATTERN, raw.strip()):
        raise ValueError(
            f"{what} '{raw}' is not an ISO 8601 time: write year-month-day and a time, such as "
            f"{TIME_EXAMPLES} (an offset is honoured; without one the time is read in the site "
            f"time zone, --tz).")
    clean = raw.strip().replace(" Z", "Z").replace(" z", "Z").replace("z", "Z")
    clean = re.sub(r" ([+-]\d{2}(:?\d{2})?)$", r"\1", clean)
    try:
        stamp = datetime.fromisoformat(clean)
    except ValueError:
        raise ValueError(f"{what} '{raw}' is not a valid time (a month, day, hour or minute out "
                         f"of range); write it as {TIME_EXAMPLES}.") from None
    if stamp.tzinfo is None:
        first, second = stamp.replace(tzinfo=zone, fold=0), stamp.replace(tzinfo=zone, fold=1)
        exists = first.astimezone(timezone.utc).astimezone(zone).replace(tzinfo=None) == stamp
        # a repeated hour: the second reading; a skipped one: the offset before the gap
        stamp = second if exists and first.utcoffset() != second.utcoffset() else first
    return stamp.astimezone(timezone.utc).replace(tzinfo=None)
