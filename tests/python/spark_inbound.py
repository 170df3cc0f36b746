"""Writes inbound Parquet files with pyspark, the way a Databricks job writes them, for the
incremental-sync end-to-end tests and the local runner.

  spark_inbound.py OUT_DIR

Writes OUT_DIR/customers (Customer rows: INT96 timestamps, decimals, arrays, a map, a nested
struct, binary, date) and OUT_DIR/orders (Order rows: TIMESTAMP_MICROS, decimals, an array of
decimals, double, boolean, a 30-digit number as string, `_op` with a DELETE row). Each folder
holds Spark's own output: part files plus _SUCCESS and .crc files.
Exit 3 when pyspark (or Java) is not available.
"""
import os
import shutil
import sys


def main(out_dir):
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        print("pyspark is not installed", file=sys.stderr)
        return 3
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        print("java is not available", file=sys.stderr)
        return 3
    spark = (
        SparkSession.builder.master("local[1]")
        .appName("dynabridge-inbound")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .getOrCreate()
    )
    try:
        spark.conf.set("spark.sql.parquet.outputTimestampType", "INT96")
        spark.sql(
            """
            SELECT * FROM VALUES
              ('CUSTOMER#1', 'PROFILE', 'ada@example.com', 'Ada Lovelace',
               TIMESTAMP '2026-11-21 10:15:00.123456', array('vip', 'eu'),
               CAST('12345678901234567890' AS DECIMAL(20,0)), map('lang', 'en', 'theme', 'dark'),
               named_struct('street', '1 Main St', 'city', 'Paris', 'zip', '75001',
                            'geo', named_struct('lat', CAST('48.856613' AS DECIMAL(9,6)),
                                                'lon', CAST('-2.352222' AS DECIMAL(9,6)))),
               'gold', X'CAFE', DATE '1990-02-03'),
              ('CUSTOMER#2', 'PROFILE', 'bo@example.com', CAST(NULL AS STRING),
               TIMESTAMP '1900-01-01 00:00:00', CAST(NULL AS ARRAY<STRING>),
               CAST(NULL AS DECIMAL(20,0)), CAST(NULL AS MAP<STRING,STRING>),
               named_struct('street', CAST(NULL AS STRING), 'city', 'Oslo', 'zip', CAST(NULL AS STRING),
                            'geo', CAST(NULL AS STRUCT<lat: DECIMAL(9,6), lon: DECIMAL(9,6)>)),
               'basic', CAST(NULL AS BINARY), CAST(NULL AS DATE))
            AS t(pk, sk, email, full_name, created_at, tags, loyalty_points, prefs, address,
                 tier, avatar, birthday)
            """
        ).coalesce(1).write.mode("overwrite").parquet(os.path.join(out_dir, "customers"))

        spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        spark.sql(
            """
            SELECT * FROM VALUES
              ('ORDER#1', 'ORDER', 'CUSTOMER#1', CAST('12345.67' AS DECIMAL(18,2)),
               TIMESTAMP '2026-11-21 10:15:00.123', 'EUR',
               array(CAST('1.5' AS DECIMAL(10,3)), CAST('0.25' AS DECIMAL(10,3))),
               CAST(0.1 AS DOUBLE), '123456789012345678901234567890', true,
               TIMESTAMP '2027-01-01 00:00:00', DATE '2026-11-22', 'NEW', 'UPSERT'),
              ('ORDER#2', 'ORDER', 'CUSTOMER#2', CAST('-0.01' AS DECIMAL(18,2)),
               TIMESTAMP '2500-01-01 00:00:00', 'USD', CAST(NULL AS ARRAY<DECIMAL(10,3)>),
               CAST(NULL AS DOUBLE), CAST(NULL AS STRING), false, CAST(NULL AS TIMESTAMP),
               CAST(NULL AS DATE), CAST(NULL AS STRING), CAST(NULL AS STRING)),
              ('ORDER#3', 'ORDER', CAST(NULL AS STRING), CAST(NULL AS DECIMAL(18,2)),
               CAST(NULL AS TIMESTAMP), CAST(NULL AS STRING), CAST(NULL AS ARRAY<DECIMAL(10,3)>),
               CAST(NULL AS DOUBLE), CAST(NULL AS STRING), CAST(NULL AS BOOLEAN),
               CAST(NULL AS TIMESTAMP), CAST(NULL AS DATE), CAST(NULL AS STRING), 'DELETE')
            AS t(pk, sk, customer_id, total, placed_at, currency, weights, discount, ref_number,
                 gift, expires_at, shipped_on, status, _op)
            """
        ).coalesce(1).write.mode("overwrite").parquet(os.path.join(out_dir, "orders"))
    finally:
        spark.stop()
    print(f"wrote {out_dir}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(64)
    sys.exit(main(sys.argv[1]))
