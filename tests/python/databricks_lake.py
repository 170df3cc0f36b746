"""Reads a dynabridge lake the way docs/databricks/dynabridge_pipeline.sql does, with local
pyspark, and checks it against the DynamoDB table it came from.

  databricks_lake.py LAKE_ROOT EXPECTED_JSON REGISTRY_JSON

LAKE_ROOT      the lake folder (bucket folder of the file-backed local S3, plus any prefix):
               holds cdc/entity=<E>/dt=<day>/*.parquet as stream-fanout writes them.
EXPECTED_JSON  {"items": [<DynamoDB-JSON item>, ...]}: a Scan of the application table.
REGISTRY_JSON  the schema registry (entity selectors and field types).

What it checks, per entity found under cdc/:
1. Schema as Auto Loader infers it from the Parquet files: `_op`, `_seq` strings, `_event_time`
   TIMESTAMP (UTC instant, not TIMESTAMP_NTZ), `_schema_version` int, decimals as
   DECIMAL(p,s), timestamps as TIMESTAMP; `dt` discovered as the Hive partition.
2. `_seq` is 40 digits and unique per key, so `SEQUENCE BY _seq` orders a key's changes.
3. AUTO CDC (SCD type 1, KEYS (pk, sk), APPLY AS DELETE WHEN _op IN ('REMOVE','EXPIRE'),
   SEQUENCE BY _seq) reproduced as a MERGE per micro-batch: one micro-batch per file, applied
   in *reverse* file order (Auto Loader gives no cross-file order), each batch reduced to its
   latest row per key and merged into the target only where its `_seq` is newer; deletes leave
   a tombstone so an older, late row cannot resurrect the item (what AUTO CDC does). Local
   Spark has no Delta Lake, so the MERGE is expressed with DataFrame operations
   (full outer join on the keys, newer `_seq` wins).
4. The final table equals the table's items: same keys, and every typed column equal to the
   item's attribute - decimals compared exactly (Decimal, no float), timestamps compared as
   UTC microseconds (`unix_micros`, independent of the session time zone).
5. EXPIRE rows form the expired view (`_op = 'EXPIRE'`), with the item's last image.

Exit status: 0 ok, 1 a check failed, 3 pyspark or Java unavailable.
"""

import json
import os
import shutil
import sys
from datetime import datetime, timezone
from decimal import Decimal

DELETE_OPS = ("REMOVE", "EXPIRE")
KEYS = ["pk", "sk"]
META = ["_op", "_seq", "_event_time", "_schema_version", "_entity", "_extra", "dt"]

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print(f"FAIL {msg}", file=sys.stderr)


def entity_of(item, registry):
    for e in registry["entities"]:
        sel = e["selector"]
        if "key_prefix" in sel:
            kp = sel["key_prefix"]
            v = item.get(kp["attribute"], {}).get("S")
            if v is not None and v.startswith(kp["prefix"]):
                return e
        elif "attribute" in sel:
            at = sel["attribute"]
            if item.get(at["attribute"], {}).get("S") == at["equals"]:
                return e
    return None


def iso_to_micros(text):
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    delta = dt - epoch
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def expected_value(ftype, attr):
    """(kind, value) of a DynamoDB attribute for a registry field type; None to skip."""
    if attr is None or "NULL" in attr:
        return ("null", None)
    if ftype == "string" and "S" in attr:
        return ("str", attr["S"])
    if ftype == "int" and "N" in attr:
        return ("int", int(attr["N"]))
    if ftype == "bool" and "BOOL" in attr:
        return ("bool", attr["BOOL"])
    if isinstance(ftype, dict) and "decimal" in ftype and "N" in attr:
        return ("decimal", Decimal(attr["N"]))
    if isinstance(ftype, dict) and "timestamp" in ftype:
        enc = ftype["timestamp"]
        if enc == "iso8601" and "S" in attr:
            return ("micros", iso_to_micros(attr["S"]))
        if enc == "epoch_seconds" and "N" in attr:
            return ("micros", int(Decimal(attr["N"]) * 1_000_000))
        if enc == "epoch_millis" and "N" in attr:
            return ("micros", int(Decimal(attr["N"]) * 1_000))
    return None


def merge_batch(target, batch, F, Window):
    """One AUTO CDC micro-batch: latest row per key of `batch`, merged into `target` where
    newer by `_seq`. Rows stay in the target with `_deleted` (tombstones)."""
    w = Window.partitionBy(*KEYS).orderBy(F.col("_seq").desc())
    latest = (
        batch.withColumn("_rn", F.row_number().over(w))
        .filter("_rn = 1")
        .drop("_rn")
        .withColumn("_deleted", F.col("_op").isin(*DELETE_OPS))
    )
    if target is None:
        return latest
    # MERGE INTO target USING latest ON keys
    #   WHEN MATCHED AND latest._seq > target._seq THEN UPDATE SET *
    #   WHEN NOT MATCHED THEN INSERT *
    t, s = target.alias("t"), latest.alias("s")
    joined = t.join(s, on=KEYS, how="full_outer")
    take_source = F.col("t._seq").isNull() | (
        F.col("s._seq").isNotNull() & (F.col("s._seq") > F.col("t._seq"))
    )
    cols = [c for c in latest.columns if c not in KEYS]
    return joined.select(
        *KEYS,
        *[F.when(take_source, F.col(f"s.`{c}`")).otherwise(F.col(f"t.`{c}`")).alias(c) for c in cols],
    )


def main(lake_root, expected_path, registry_path):
    try:
        from pyspark.sql import SparkSession, Window
        from pyspark.sql import functions as F
        from pyspark.sql import types as T
    except ImportError:
        print("pyspark is not installed in the project venv", file=sys.stderr)
        return 3
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        print("java is not available", file=sys.stderr)
        return 3

    registry = json.load(open(registry_path))
    expected = json.load(open(expected_path))["items"]
    spark = (
        SparkSession.builder.master("local[1]")
        .appName("dynabridge-databricks-lake")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    try:
        cdc = os.path.join(lake_root, "cdc")
        entities = sorted(d.split("=", 1)[1] for d in os.listdir(cdc) if d.startswith("entity="))
        check(entities, f"no entity partitions under {cdc}")
        by_entity = {}
        for item in expected:
            e = entity_of(item, registry)
            check(e is not None, f"table item {item.get('pk')} matches no registry entity")
            if e is not None:
                by_entity.setdefault(e["name"], []).append(item)
        check(set(by_entity) <= set(entities),
              f"entities in the table but not in cdc/: {set(by_entity) - set(entities)}")

        expired_rows = 0
        for name in entities:
            edef = next(e for e in registry["entities"] if e["name"] == name)
            fields = {f["name"]: f["type"] for f in edef["versions"][-1]["fields"]}
            path = os.path.join(cdc, f"entity={name}")
            # Auto Loader equivalent: all files of the entity, Hive partitions discovered.
            df = spark.read.parquet(path)
            schema = {f.name: f.dataType for f in df.schema.fields}

            # 1. Types as Databricks sees them.
            check(isinstance(schema.get("_op"), T.StringType), f"{name}: _op is {schema.get('_op')}")
            check(isinstance(schema.get("_seq"), T.StringType), f"{name}: _seq is {schema.get('_seq')}")
            check(type(schema.get("_event_time")) is T.TimestampType,
                  f"{name}: _event_time is {schema.get('_event_time')} (want TIMESTAMP, UTC)")
            check(isinstance(schema.get("_schema_version"), (T.IntegerType, T.LongType)),
                  f"{name}: _schema_version is {schema.get('_schema_version')}")
            check("dt" in schema, f"{name}: dt partition not discovered")
            for fname, ftype in fields.items():
                if fname not in schema:
                    continue
                if isinstance(ftype, dict) and "decimal" in ftype:
                    p, s = ftype["decimal"]["precision"], ftype["decimal"]["scale"]
                    check(schema[fname] == T.DecimalType(p, s),
                          f"{name}.{fname}: {schema[fname]} != DECIMAL({p},{s})")
                if isinstance(ftype, dict) and "timestamp" in ftype:
                    check(type(schema[fname]) is T.TimestampType,
                          f"{name}.{fname}: {schema[fname]} (want TIMESTAMP)")

            # 2. _seq orders a key's changes.
            bad_seq = df.filter(~F.col("_seq").rlike("^[0-9]{40}$")).count()
            check(bad_seq == 0, f"{name}: {bad_seq} rows with a _seq that is not 40 digits")
            dup = df.groupBy(*KEYS, "_seq").count().filter("count > 1").count()
            check(dup == 0, f"{name}: {dup} (key, _seq) pairs appear twice (duplicate rows)")
            ops = {r["_op"] for r in df.select("_op").distinct().collect()}
            check(ops <= {"INSERT", "MODIFY", "REMOVE", "EXPIRE"}, f"{name}: unexpected ops {ops}")
            rendered = df.select(
                F.date_format("_event_time", "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX").alias("t")
            ).first()["t"]
            check(rendered.endswith("Z"), f"{name}: _event_time renders as {rendered} (want UTC)")

            # 3. AUTO CDC as MERGE micro-batches, files in reverse order.
            files = sorted(
                os.path.join(root, f)
                for root, _, names in os.walk(path)
                for f in names
                if f.endswith(".parquet")
            )
            target = None
            for f in reversed(files):
                batch = df.filter(F.input_file_name().endswith(os.path.basename(f)))
                target = merge_batch(target, batch, F, Window)
                target = target.localCheckpoint()
            final = target.filter(~F.col("_deleted"))

            # Cross-check: the same result as "latest row per key overall".
            w = Window.partitionBy(*KEYS).orderBy(F.col("_seq").desc())
            latest = (df.withColumn("_rn", F.row_number().over(w)).filter("_rn = 1")
                      .filter(~F.col("_op").isin(*DELETE_OPS)))
            check(sorted(tuple(r) for r in final.select(*KEYS, "_seq").collect())
                  == sorted(tuple(r) for r in latest.select(*KEYS, "_seq").collect()),
                  f"{name}: incremental MERGE differs from latest-per-key")

            # 4. The final table equals the DynamoDB items.
            items = {(i["pk"]["S"], i["sk"]["S"]): i for i in by_entity.get(name, [])}
            select = [*KEYS]
            for fname, ftype in fields.items():
                if fname not in schema:
                    continue
                if isinstance(ftype, dict) and "timestamp" in ftype:
                    select.append(F.unix_micros(F.col(fname)).alias(fname))
                else:
                    select.append(F.col(fname))
            rows = {(r["pk"], r["sk"]): r for r in final.select(*select).collect()}
            check(set(rows) == set(items),
                  f"{name}: keys differ: lake-only {sorted(set(rows) - set(items))}, "
                  f"table-only {sorted(set(items) - set(rows))}")
            compared = 0
            for key, item in items.items():
                row = rows.get(key)
                if row is None:
                    continue
                for fname, ftype in fields.items():
                    if fname not in schema:
                        continue
                    want = expected_value(ftype, item.get(fname))
                    if want is None:
                        continue
                    kind, value = want
                    got = row[fname]
                    if kind == "decimal":
                        check(isinstance(got, Decimal) and got == value,
                              f"{name}{key}.{fname}: {got!r} != {value!r} (exact decimal)")
                    else:
                        check(got == value, f"{name}{key}.{fname}: {got!r} != {value!r} ({kind})")
                    compared += 1
            print(f"{name}: {df.count()} cdc rows in {len(files)} files -> {final.count()} current rows "
                  f"({compared} typed values equal to the table)")

            # 5. Expired view.
            expired = df.filter(F.col("_op") == "EXPIRE")
            expired_rows += expired.count()
            if "ttl" in schema:
                check(expired.filter(F.col("ttl").isNull()).count() == 0,
                      f"{name}: EXPIRE rows without the last image's ttl")
        print(f"expired (EXPIRE) rows: {expired_rows}")
    finally:
        spark.stop()
    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print("ok: the lake reads back as the table")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(*sys.argv[1:]))
