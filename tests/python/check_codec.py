#!/usr/bin/env python3
"""Independent reader check for Parquet files written by dynabridge's codec.

Usage:
  check_codec.py check FILE.parquet EXPECTED.json
      Reads FILE with pyarrow (and with pyspark when it is installed and Java is available)
      and checks column types and exact values against EXPECTED (written by the Rust test
      `python_reader`). Exit 0 on success, 1 on a mismatch, 2 when pyarrow is missing.
  check_codec.py write-spark OUT_DIR
      Writes a Parquet file with Spark the way Databricks does (INT96 timestamps, decimals,
      date, array, struct, map) for the Rust reader to decode. Exit 3 when pyspark is missing.

EXPECTED keys:
  rows            number of rows
  types           {column: pyarrow type string}
  spark_types     {column: Spark simpleString}          (checked with pyspark only)
  decimal_sums    {column: exact sum as a decimal string}
  timestamps      {column: [ISO-8601 instant or null, ...]}  (compared as instants)
  values          {column: [expected Python value, ...]}     (JSON-comparable)
  metadata        {key: value} expected in the file's key-value metadata
"""

import datetime as dt
import json
import os
import shutil
import sys
from decimal import Decimal

FAILURES = []


def fail(msg):
    FAILURES.append(msg)
    print(f"MISMATCH: {msg}", file=sys.stderr)


def instant(text):
    if text is None:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.timezone.utc)


def check_pyarrow(path, exp):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        print("pyarrow is not installed in this Python: run scripts/bootstrap", file=sys.stderr)
        sys.exit(2)
    pf = pq.ParquetFile(path)
    table = pf.read()
    if table.num_rows != exp["rows"]:
        fail(f"pyarrow rows {table.num_rows} != {exp['rows']}")
    for col, want in exp.get("types", {}).items():
        got = str(table.schema.field(col).type)
        if got != want:
            fail(f"pyarrow type of {col}: {got!r} != {want!r}")
    meta = {k.decode(): v.decode() for k, v in (pf.metadata.metadata or {}).items()}
    for k, v in exp.get("metadata", {}).items():
        if meta.get(k) != v:
            fail(f"metadata {k}: {meta.get(k)!r} != {v!r}")
    for col, want in exp.get("decimal_sums", {}).items():
        total = sum((v for v in table.column(col).to_pylist() if v is not None), Decimal(0))
        if total != Decimal(want) or not isinstance(total, Decimal):
            fail(f"pyarrow sum({col}) = {total} != {want}")
    for col, want in exp.get("timestamps", {}).items():
        got = table.column(col).to_pylist()
        for i, (g, w) in enumerate(zip(got, want)):
            w = instant(w)
            if g is None or w is None:
                if g is not w and not (g is None and w is None):
                    fail(f"pyarrow {col}[{i}]: {g} != {w}")
                continue
            if g.tzinfo is None or g != w:
                fail(f"pyarrow {col}[{i}]: {g!r} != {w!r}")
    for col, want in exp.get("values", {}).items():
        got = [normalise(v) for v in table.column(col).to_pylist()]
        if got != want:
            fail(f"pyarrow {col}: {got!r} != {want!r}")
    print(f"pyarrow {pq.__name__}: {table.num_rows} rows checked")


def normalise(v):
    """Python values as JSON-comparable ones (decimals and dates as strings, bytes as lists)."""
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, (dt.date, dt.datetime)):
        return v.isoformat()
    if isinstance(v, bytes):
        return list(v)
    if isinstance(v, list):
        # pyarrow returns maps as lists of (key, value) tuples.
        return [normalise(x) for x in v]
    if isinstance(v, tuple):
        return [normalise(x) for x in v]
    if isinstance(v, dict):
        return {k: normalise(x) for k, x in v.items()}
    return v


def spark_session():
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        return None
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return None
    return (
        SparkSession.builder.master("local[1]")
        .appName("dynabridge-check-codec")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .getOrCreate()
    )


def check_spark(spark, path, exp):
    df = spark.read.parquet(path)
    if df.count() != exp["rows"]:
        fail(f"spark rows {df.count()} != {exp['rows']}")
    fields = {f.name: f.dataType.simpleString() for f in df.schema.fields}
    for col, want in exp.get("spark_types", {}).items():
        if fields.get(col) != want:
            fail(f"spark type of {col}: {fields.get(col)!r} != {want!r}")
    for col, want in exp.get("decimal_sums", {}).items():
        got = df.selectExpr(f"sum(`{col}`) AS s").collect()[0]["s"]
        if Decimal(got) != Decimal(want):
            fail(f"spark sum({col}) = {got} != {want}")
    for col, want in exp.get("timestamps", {}).items():
        rows = df.selectExpr(f"CAST(unix_micros(`{col}`) AS STRING) AS us").collect()
        got = [r["us"] for r in rows]
        expected = [
            None if w is None else str(int((instant(w) - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)) // dt.timedelta(microseconds=1)))
            for w in want
        ]
        if got != expected:
            fail(f"spark {col} µs: {got} != {expected}")
    print(f"pyspark {spark.version}: {exp['rows']} rows checked")


def write_spark(out_dir):
    spark = spark_session()
    if spark is None:
        print("pyspark (or Java) is not available", file=sys.stderr)
        sys.exit(3)
    spark.conf.set("spark.sql.parquet.outputTimestampType", "INT96")
    df = spark.sql(
        """
        SELECT * FROM VALUES
          ('ORDER#1', 'ORDER', 'C1', CAST('12.34' AS DECIMAL(18,2)),
           TIMESTAMP '2026-11-21 10:15:00.123456', DATE '2026-11-21',
           array(CAST('1.5' AS DECIMAL(10,3)), CAST('-0.001' AS DECIMAL(10,3))),
           'EUR', TIMESTAMP '2500-01-01 00:00:00'),
          ('ORDER#2', 'ORDER', 'C2', CAST('-99999999.99' AS DECIMAL(18,2)),
           TIMESTAMP '1900-01-01 00:00:00', NULL, NULL, 'USD', NULL)
        AS t(pk, sk, customer_id, total, placed_at, shipped_on, weights, currency, expires_at)
        """
    )
    df.coalesce(1).write.mode("overwrite").parquet(out_dir)
    spark.stop()
    print(f"wrote {out_dir}")


def main(argv):
    if len(argv) >= 2 and argv[1] == "write-spark" and len(argv) == 3:
        write_spark(argv[2])
        return 0
    if len(argv) != 4 or argv[1] != "check":
        print(__doc__, file=sys.stderr)
        return 64
    path, exp_path = argv[2], argv[3]
    with open(exp_path, encoding="utf-8") as f:
        exp = json.load(f)
    check_pyarrow(path, exp)
    spark = spark_session()
    if spark is None:
        print("pyspark: not installed, skipped")
    else:
        try:
            check_spark(spark, path, exp)
        finally:
            spark.stop()
    if FAILURES:
        print(f"{len(FAILURES)} mismatch(es)", file=sys.stderr)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
