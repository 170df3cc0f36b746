# Databricks notebook source
# MAGIC %md
# MAGIC # Writing to DynamoDB through dynabridge (`inbound/`)
# MAGIC
# MAGIC incremental-sync upserts (or deletes) DynamoDB items from Parquet files that appear under
# MAGIC `<lake>inbound/<Entity>/`: every new object raises an S3 *Object Created* event, and a
# MAGIC catch-up schedule picks up anything an event missed. This notebook shows the write side.
# MAGIC
# MAGIC Rules (docs/databricks/README.md has the reasons):
# MAGIC * one folder per entity of the schema registry: `inbound/Order/` (or `inbound/entity=Order/`);
# MAGIC * **plain Parquet**, not Delta: only `*.parquet` objects are read; names starting with `_` or
# MAGIC   `.` (`_SUCCESS`, `_committed_*`, `.crc`) are ignored;
# MAGIC * columns: the table keys (`pk`, `sk`) and the entity's registry fields, with the registry's
# MAGIC   types (decimals as `DECIMAL(p,s)` with p <= 38, timestamps as `TIMESTAMP`, never
# MAGIC   `TIMESTAMP_NTZ`); optional `_op`: `UPSERT` (default) or `DELETE` (only keys needed);
# MAGIC * new data = **new files** (`mode("append")`): a file is synced once per (key, ETag);
# MAGIC * rows incremental-sync refuses are written to `quarantine/` with the reason.

# COMMAND ----------

lake = spark.conf.get("dynabridge.lake")  # e.g. s3://my-lake-bucket/ (stack output LakeRootUri)

# COMMAND ----------

from pyspark.sql import functions as F

changes = spark.sql("""
  SELECT concat('ORDER#', order_id)              AS pk,
         'ORDER'                                 AS sk,
         concat('CUSTOMER#', customer_id)        AS customer_id,
         CAST(total AS DECIMAL(18, 2))           AS total,
         CAST(placed_at AS TIMESTAMP)            AS placed_at,
         currency,
         status,
         CASE WHEN cancelled THEN 'DELETE' ELSE 'UPSERT' END AS _op
  FROM main.sales.order_updates
  WHERE updated_at >= current_timestamp() - INTERVAL 1 HOUR
""")

# A few files of reasonable size: each file is one incremental-sync unit of work.
(changes
   .repartition(4)
   .write
   .mode("append")
   .option("compression", "zstd")
   .parquet(f"{lake}inbound/Order/"))
