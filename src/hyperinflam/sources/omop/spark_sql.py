"""Run the loaders' DuckDB SQL on Apache Spark: one copy of the mapping and validation logic.

The OMOP reader (:mod:`hyperinflam.sources.omop.mapping`) and the shared validation pipeline
(:mod:`hyperinflam.sources.ingest`) are DuckDB SQL texts executed on a DuckDB connection. For
``hyperinflam load omop --engine spark`` the very same texts run on Spark:

* :func:`to_spark_sql` transpiles one statement with sqlglot (DuckDB -> Spark SQL) after a few
  rewrites of DuckDB functions whose generic translation is wrong or missing on Spark
  (:data:`REWRITES` lists them; each gives the same value on both engines).
* :class:`SparkLoadConnection` answers the small part of the DuckDB connection API the loaders use
  (``execute``, ``executemany``, ``register``, ``unregister``, ``fetchone``, ``fetchall``,
  ``description``). A temporary table that reads data is computed once and checkpointed on the
  executors (two that one later statement reads once stay views; the small driver-built code
  and vocabulary tables are local relations), ``INSERT INTO`` a canonical table appends Parquet files to the output folder (written by the
  executors), and every ``SELECT`` the loaders run for themselves returns counts only: no source
  row ever comes back to the driver.

The canonical tables of the output folder are re-read after each write, as new views; a view
read earlier keeps its list of files, and writes only ever append, so every statement sees the
tables exactly as DuckDB would inside its transaction.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence

import sqlglot
from sqlglot import exp

from hyperinflam.errors import SourceError
from hyperinflam.schema import TABLES_BY_NAME, Table

__all__ = ["to_spark_sql", "SparkLoadConnection", "REWRITES", "SPARK_TYPES"]

#: Spark SQL types of the canonical SQL types (naive timestamps are TIMESTAMP_NTZ on Spark).
SPARK_TYPES = {"VARCHAR": "string", "DATE": "date", "TIMESTAMP": "timestamp_ntz",
               "DOUBLE": "double", "BOOLEAN": "boolean", "BIGINT": "bigint"}

#: DuckDB constructs rewritten before sqlglot's generic DuckDB -> Spark translation, and why.
REWRITES = {
    "regexp_full_match(x, p)": "x RLIKE '^(?:p)\\z' (Spark has no full-match function)",
    "isfinite(x)": "NOT isnan(x) AND abs(x) <> Infinity",
    "printf(fmt, ...)": "format_string(fmt, ...), NULL when an argument is NULL (DuckDB); '%g' "
                        "without Java's trailing zeros ('50', not '50.0000')",
    "CAST(TRY_CAST(x AS DOUBLE) AS VARCHAR)": "DuckDB's shortest text of a double: plain for "
                                              "1e-4 <= |x| < 1e16 ('10000000.0', not '1.0E7')",
    "TRY_CAST(x AS TIMESTAMPTZ) AT TIME ZONE 'UTC'": "CAST(TRY_CAST(x AS TIMESTAMP) AS "
                                                     "TIMESTAMP_NTZ) (session time zone UTC)",
    "timezone(tz, t) AT TIME ZONE 'UTC'": "CAST(to_utc_timestamp(t, tz) AS TIMESTAMP_NTZ)",
    "json_object(k, v, ...)": "to_json(named_struct(k, v, ...)) keeping null fields",
    "string_agg(x, sep ORDER BY x)": "array_join(array_sort(collect_list(x)), sep)",
    "regexp_replace(x, p, '\\1')": "regexp_replace(x, p, '$1') (Java's group references)",
}


def _spark(sql: str) -> exp.Expression:
    return sqlglot.parse_one(sql, read="spark")


def _fill(template: str, **parts: exp.Expression) -> exp.Expression:
    """A Spark expression from ``template`` whose placeholder columns __name are ``parts``."""
    tree = _spark(template)

    def put(node):
        if isinstance(node, exp.Column) and node.name.startswith("__") and not node.table:
            return parts[node.name[2:]].copy()
        return node
    return tree.transform(put)


def _is_type(node: exp.Expression, *types: exp.DataType.Type) -> bool:
    return isinstance(node, exp.DataType) and node.this in types


def _double_text(x: exp.Expression) -> exp.Expression:
    """DuckDB's CAST(DOUBLE AS VARCHAR): shortest round-trip digits, plain notation (with '.0'
    for whole numbers) when 1e-4 <= |x| < 1e16, else d.ddde+XX. Java's Double.toString gives
    the same digits; the decimal cast prints them plainly."""
    return _fill(
        "CASE WHEN __x IS NULL THEN NULL "
        "WHEN isnan(__x) THEN 'nan' WHEN __x = CAST('Infinity' AS DOUBLE) THEN 'inf' "
        "WHEN __x = CAST('-Infinity' AS DOUBLE) THEN '-inf' WHEN __x = 0 THEN "
        "CASE WHEN CAST(__x AS STRING) LIKE '-%' THEN '-0.0' ELSE '0.0' END "
        "WHEN abs(__x) >= 1e-4D AND abs(__x) < 1e16D THEN regexp_replace(regexp_replace("
        "CAST(CAST(CAST(__x AS STRING) AS DECIMAL(38, 20)) AS STRING), '0+$', ''), '\\\\.$', '.0') "
        "ELSE regexp_replace(regexp_replace(regexp_replace(CAST(__x AS STRING), '\\\\.0E', 'E'), "
        "'E(-?)(\\\\d)$', 'E$10$2'), 'E(\\\\d)', 'e+$1') END", x=x)


def _java_g(x: exp.Expression) -> exp.Expression:
    """C's printf('%g'): Java's %g, then the trailing zeros of the fraction removed."""
    text = _fill("format_string('%g', __x)", x=x)
    text = _fill("regexp_replace(__t, '(\\\\.\\\\d*?)0+(e|$)', '$1$2')", t=text)
    return _fill("regexp_replace(__t, '\\\\.(e|$)', '$1')", t=text)


def _rewrite(node: exp.Expression) -> exp.Expression:
    """One DuckDB node -> a node whose Spark translation means the same (see REWRITES)."""
    if isinstance(node, exp.RegexpFullMatch):
        pattern = node.expression
        if isinstance(pattern, exp.Literal) and pattern.is_string:
            anchored = exp.Literal.string(f"^(?:{pattern.this})\\z")
        else:
            anchored = exp.func("CONCAT", exp.Literal.string("^(?:"), pattern.copy(),
                                exp.Literal.string(")\\z"))
        return exp.RegexpLike(this=node.this.copy(), expression=anchored)
    if isinstance(node, exp.Anonymous):
        name = node.name.lower()
        args = node.expressions
        if name == "isfinite":
            return exp.paren(_fill("NOT isnan(__x) AND abs(__x) <> CAST('Infinity' AS DOUBLE)",
                                   x=args[0]))
        if name == "printf":
            fmt = args[0]
            if isinstance(fmt, exp.Literal) and fmt.this == "%g":
                body = _java_g(args[1])
            else:
                body = exp.Anonymous(this="FORMAT_STRING", expressions=[a.copy() for a in args])
            nulls = exp.or_(*(exp.Is(this=a.copy(), expression=exp.Null()) for a in args[1:]))
            return exp.Case(ifs=[exp.If(this=nulls, true=exp.Null())], default=body)
    if isinstance(node, exp.AtTimeZone) and node.args.get("zone") is not None \
            and node.args["zone"].name.upper() == "UTC":
        inner = node.this
        if isinstance(inner, exp.TryCast) and _is_type(inner.to, exp.DataType.Type.TIMESTAMPTZ):
            return exp.Cast(this=inner.copy(), to=exp.DataType.build("TIMESTAMP"))
        if isinstance(inner, exp.Anonymous) and inner.name.lower() == "timezone":
            zone, value = inner.expressions
            return exp.Cast(this=exp.Anonymous(this="TO_UTC_TIMESTAMP",
                                               expressions=[value.copy(), zone.copy()]),
                            to=exp.DataType.build("TIMESTAMP"))
    if isinstance(node, exp.Cast) and not isinstance(node, exp.TryCast) \
            and _is_type(node.to, exp.DataType.Type.VARCHAR, exp.DataType.Type.TEXT) \
            and isinstance(node.this, exp.TryCast) \
            and _is_type(node.this.to, exp.DataType.Type.DOUBLE):
        return _double_text(node.this)
    if isinstance(node, exp.JSONObject):
        parts = []
        for kv in node.expressions:
            parts += [kv.this.copy(), kv.expression.copy()]
        struct = exp.Anonymous(this="NAMED_STRUCT", expressions=parts)
        return exp.Anonymous(this="TO_JSON", expressions=[
            struct, _spark("MAP('ignoreNullFields', 'false')")])
    if isinstance(node, exp.GroupConcat) and isinstance(node.this, exp.Order):
        order = node.this
        value = order.this
        keys = order.expressions
        if len(keys) == 1 and keys[0].this == value and not keys[0].args.get("desc"):
            sep = node.args.get("separator") or exp.Literal.string(",")
            return _fill("array_join(array_sort(collect_list(__v)), __s)", v=value, s=sep)
    return node


@functools.lru_cache(maxsize=4096)
def to_spark_sql(duckdb_sql: str) -> str:
    """One DuckDB statement as Spark SQL (sqlglot, after the :data:`REWRITES`)."""
    tree = sqlglot.parse_one(duckdb_sql, read="duckdb")
    for node in tree.find_all(exp.RegexpReplace):  # before: a rewritten node is not revisited
        replacement = node.args.get("replacement")
        if isinstance(replacement, exp.Literal):
            java = re.sub(r"\\(\d)", r"$\1", replacement.this.replace("$", "\\$"))
            node.set("replacement", exp.Literal.string(java))
    return tree.transform(_rewrite).sql(dialect="spark")


# ---------------------------------------------------------------------------------------------
#: Temporary tables of :mod:`hyperinflam.sources.ingest` that exactly one later statement reads
#: (the staged rows, the duplicate ranks): views, computed inside that statement.
READ_ONCE = frozenset({"_hi_stg", "_hi_dups"})


class _Result:
    """What ``execute`` returns: a lazy Spark DataFrame (or nothing) with DuckDB's fetch API.
    Only the loaders' own small queries (counts per reason) are ever fetched."""

    def __init__(self, frame=None):
        self._frame = frame

    @property
    def description(self):
        return [(name, None, None, None, None, None, None) for name in self._frame.columns]

    def fetchall(self) -> list[tuple]:
        return [tuple(row) for row in self._frame.collect()] if self._frame is not None else []

    def fetchone(self):
        if self._frame is None:
            return None
        rows = self._frame.take(1)
        return tuple(rows[0]) if rows else None


class SparkLoadConnection:
    """The DuckDB connection API the loaders use, on a Spark session (see the module docstring).

    ``write(table, frame)`` appends the rows of a canonical table (a Spark DataFrame with the
    canonical columns and types) to the output, and ``view(table)`` returns the current canonical
    table as a DataFrame; both are given by the caller (:mod:`hyperinflam.sources.omop.spark`).
    """

    def __init__(self, session, *, write: Callable[[Table, object], None],
                 view: Callable[[Table], object]):
        self.session = session
        self._write = write
        self._view = view
        self._temp: dict[str, object] = {}  # temporary table -> its DataFrame
        #: temporary tables built on the driver from the vocabulary and code lists (small)
        self._local: set[str] = set()
        self._reliable = bool(session.sparkContext.getCheckpointDir())
        for table in TABLES_BY_NAME.values():
            self.refresh(table)

    # -- canonical tables --------------------------------------------------------------------
    def refresh(self, table: Table) -> None:
        """(Re)register the canonical table's view: after a write, the new files are seen."""
        self._view(table).createOrReplaceTempView(table.name)

    def _sql(self, duckdb_sql: str):
        spark_sql = to_spark_sql(duckdb_sql)
        try:
            return self.session.sql(spark_sql)
        except Exception as exc:  # noqa: BLE001 - any analysis error: say which statement
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SourceError(f"Spark could not run a load statement ({first}). Statement: "
                              f"{' '.join(spark_sql.split())[:2000]}") from exc

    # -- the DuckDB connection API -------------------------------------------------------------
    def execute(self, sql: str, params: Sequence | None = None) -> _Result:
        tree = sqlglot.parse_one(sql, read="duckdb")
        if isinstance(tree, (exp.Set, exp.Transaction, exp.Commit, exp.Rollback)) or (
                isinstance(tree, exp.Command) and tree.name.upper() in ("DETACH", "SET")):
            return _Result()  # session settings and transactions: Spark appends atomically
        if isinstance(tree, (exp.Select, exp.Union, exp.Subquery)):
            return _Result(self._sql(sql))
        if isinstance(tree, exp.Create):
            return self._create(tree, sql)
        if isinstance(tree, exp.Drop):
            self._drop(tree.this.name)
            return _Result()
        if isinstance(tree, exp.Insert):
            return self._insert(tree, params)
        if isinstance(tree, exp.Delete):
            # The output folder is new: it holds no earlier quarantine rows of this source.
            return _Result()
        raise SourceError(f"the Spark load does not support the statement: {sql[:200]}")

    def executemany(self, sql: str, rows: Sequence[Sequence]) -> None:
        tree = sqlglot.parse_one(sql, read="duckdb")
        if not isinstance(tree, exp.Insert):
            raise SourceError(f"the Spark load does not support executemany of: {sql[:200]}")
        self._insert(tree, None, rows=rows)

    def register(self, name: str, frame) -> None:
        """A small pandas frame (the vocabulary) as a temporary view."""
        self._replace(name, self.session.createDataFrame(frame), local=True)

    def unregister(self, name: str) -> None:
        self._drop(name)

    def close(self) -> None:
        """Drop every temporary table (Spark's context cleaner then releases the checkpoints)."""
        for name in list(self._temp):
            self._drop(name)

    # -- statements ----------------------------------------------------------------------------
    def _create(self, tree: exp.Create, sql: str) -> _Result:
        target = tree.this
        name = (target.this if isinstance(target, exp.Schema) else target).name
        query = tree.expression
        if query is not None:
            frame = self._sql(query.sql(dialect="duckdb"))
            local = all(t.name in self._local for t in query.find_all(exp.Table))
        else:
            frame = literal_frame(self.session, [(c.name, c.kind.sql(dialect="spark"))
                                                 for c in target.expressions], [])
            local = True
        self._replace(name, frame, local=local)
        return _Result()

    def _replace(self, name: str, frame, *, local: bool) -> None:
        """Register a temporary table. Like DuckDB's CREATE TEMP TABLE AS, one that reads data
        is computed now, once, and kept on the executors (a checkpoint: reliable when the
        SparkContext has a checkpoint directory, else local, memory then disk); its plan is cut
        there, so later statements stay small (a view would be recomputed, and its plan copied,
        in every statement that reads it). Small driver-built tables stay plain views."""
        if local:
            self._local.add(name)
        elif name in READ_ONCE:
            self._local.discard(name)
        else:
            self._local.discard(name)
            frame = frame.checkpoint(eager=True) if self._reliable else \
                frame.localCheckpoint(eager=True)
        frame.createOrReplaceTempView(name)
        self._temp[name] = frame

    def _drop(self, name: str) -> None:
        """Drop a temporary table: once neither the view nor Python refers to a checkpoint,
        Spark's context cleaner releases it."""
        self._temp.pop(name, None)
        self._local.discard(name)
        self.session.catalog.dropTempView(name)

    def _insert(self, tree: exp.Insert, params, rows=None) -> _Result:
        target = tree.this
        columns = None
        if isinstance(target, exp.Schema):
            columns = [c.name for c in target.expressions]
            target = target.this
        name = target.name
        query = tree.expression
        if isinstance(query, exp.Values):
            if rows is None:
                rows = [params] if params is not None else [
                    [v.to_py() for v in t.expressions] for t in query.expressions]
            schema = self._temp[name].schema
            frame = literal_frame(self.session, [(f.name, f.dataType.simpleString())
                                                 for f in schema.fields], rows)
        elif name in TABLES_BY_NAME and name not in self._temp:
            # The order of the rows in the files does not matter: no sort before writing.
            unordered = query.copy()
            unordered.set("order", None)
            frame = self._sql(unordered.sql(dialect="duckdb"))
        else:
            frame = self._sql(query.sql(dialect="duckdb"))
        if name in TABLES_BY_NAME and name not in self._temp:
            table = TABLES_BY_NAME[name]
            self._write(table, _canonical(frame, table, columns))
            self.refresh(table)
            return _Result()
        existing = self._temp[name]
        local = name in self._local and (isinstance(query, exp.Values) or all(
            t.name in self._local for t in query.find_all(exp.Table)))
        frame = frame.toDF(*existing.columns) if columns is None else frame.toDF(*columns)
        self._replace(name, existing.unionByName(frame, allowMissingColumns=True), local=local)
        return _Result()


def literal_frame(session, columns: Sequence[tuple[str, str]], rows: Sequence[Sequence]):
    """A small table written into the plan (a local relation: no scan, no Spark job), from
    Python values; ``columns`` are (name, Spark SQL type)."""
    if not rows:
        typed = ", ".join(f"CAST(NULL AS {t}) AS `{n}`" for n, t in columns)
        return session.sql(f"SELECT {typed} WHERE false")
    values = ", ".join("(" + ", ".join(exp.convert(v).sql(dialect="spark") for v in row) + ")"
                       for row in rows)
    names = ", ".join(f"c{i}" for i in range(len(columns)))
    typed = ", ".join(f"CAST(c{i} AS {t}) AS `{n}`" for i, (n, t) in enumerate(columns))
    return session.sql(f"SELECT {typed} FROM VALUES {values} AS v({names})")


def _canonical(frame, table: Table, columns: list[str] | None):
    """The rows of an INSERT as the canonical table: columns named, ordered and typed."""
    from pyspark.sql import functions as F

    names = columns or table.column_names[:len(frame.columns)]
    frame = frame.toDF(*names)
    cols = []
    for c in table.columns:
        spark_type = SPARK_TYPES[c.sql_type]
        if c.name in names:
            cols.append(F.col(c.name).cast(spark_type).alias(c.name))
        else:
            cols.append(F.lit(None).cast(spark_type).alias(c.name))
    return frame.select(*cols)


def spark_identifier(name: str) -> str:
    """A Spark view name for an OMOP table (letters, digits, _)."""
    return re.sub(r"[^0-9a-zA-Z_]", "_", name)
