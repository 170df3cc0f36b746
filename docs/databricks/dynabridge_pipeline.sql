-- dynabridge -> Databricks: a Lakeflow (Spark) Declarative Pipeline in SQL that reads the lake
-- exactly as dynabridge writes it (docs/databricks/README.md explains every choice).
--
-- Pipeline configuration:
--   dynabridge.lake = s3://<LakeBucketName>/<LakePrefix>    (stack output LakeRootUri, ends with "/")
-- The storage credential's role needs the stack's DatabricksLakeAccessPolicy (output
-- DatabricksLakeAccessPolicyArn).
--
-- One block per entity of the schema registry (schemas/*.json). Shown for `Order`, whose
-- table keys are (pk, sk); copy the block for every entity and change the folder and names.
-- Each entity has its own folder (cdc/entity=<Entity>/) and its own Parquet schema: the
-- registry's latest version (older items are upcast before they are written).
--
-- Lake contract (every row): the key attributes, the entity's fields as typed columns,
-- _entity, _schema_version (int), _op (INSERT | MODIFY | REMOVE | EXPIRE | SNAPSHOT),
-- _seq (40-digit string, orderable per key), _event_time (TIMESTAMP, UTC, microseconds),
-- _extra (DynamoDB JSON of attributes the schema does not name). Partitions: dt=<UTC day>.

-- ============================================================ 1. bronze: CDC rows ==========
-- Auto Loader over cdc/. Object keys are deterministic (<shard>-<firstseq>-<lastseq>), and a
-- Lambda retry overwrites a key with identical content; Auto Loader's default
-- (cloudFiles.allowOverwrites = false) therefore reads every row once.
CREATE OR REFRESH STREAMING TABLE order_cdc
  COMMENT 'dynabridge change rows of Order (stream-fanout, cdc/)'
AS SELECT
  *,
  _metadata.file_path AS _source_file
FROM STREAM read_files(
  '${dynabridge.lake}cdc/entity=Order/',
  format => 'parquet',
  -- A new registry version adds columns: pick them up instead of failing the stream.
  schemaEvolutionMode => 'addNewColumns'
);

-- ============================================================ 2. silver: current state =====
-- The table as DynamoDB holds it now. SEQUENCE BY _seq orders a key's changes even when
-- files arrive out of order (_seq is the stream sequence number padded to 40 digits, so
-- string order is numeric order).
--
-- EXPIRE (DynamoDB's TTL process deleted the item; written with the item's last image) is a
-- delete here too: the item is gone from the table. Its last image stays queryable in
-- order_cdc, order_history and the expired view below. To keep expired items in the current
-- table instead, use `APPLY AS DELETE WHEN _op = 'REMOVE'`: an EXPIRE row then upserts the
-- last image with _op = 'EXPIRE'.
CREATE OR REFRESH STREAMING TABLE orders
  COMMENT 'Current Order items (SCD type 1), maintained from dynabridge CDC';

CREATE FLOW orders_auto_cdc AS AUTO CDC INTO orders
FROM STREAM(order_cdc)
KEYS (pk, sk)
APPLY AS DELETE WHEN _op IN ('REMOVE', 'EXPIRE')
SEQUENCE BY _seq
COLUMNS * EXCEPT (_source_file, _rescued_data)
STORED AS SCD TYPE 1;

-- Optional: full history (SCD type 2): one row per version with __START_AT / __END_AT.
CREATE OR REFRESH STREAMING TABLE orders_history
  COMMENT 'Order versions (SCD type 2) from dynabridge CDC';

CREATE FLOW orders_history_auto_cdc AS AUTO CDC INTO orders_history
FROM STREAM(order_cdc)
KEYS (pk, sk)
APPLY AS DELETE WHEN _op IN ('REMOVE', 'EXPIRE')
SEQUENCE BY _seq
COLUMNS * EXCEPT (_source_file, _rescued_data)
STORED AS SCD TYPE 2;

-- ============================================================ 3. expired items =============
-- ttl-cleanup archives every TTL deletion to expired/entity=<Entity>/ (same columns,
-- _op = 'EXPIRE', the item's last image). Append-only: one row per expired item version.
CREATE OR REFRESH STREAMING TABLE order_expired
  COMMENT 'Order items removed by DynamoDB TTL (ttl-cleanup, expired/)'
AS SELECT *, _metadata.file_path AS _source_file
FROM STREAM read_files(
  '${dynabridge.lake}expired/entity=Order/',
  format => 'parquet',
  schemaEvolutionMode => 'addNewColumns'
);

-- ============================================================ 4. archive ===================
-- aged-export writes items older than N days to archive/entity=<Entity>/dt=<day>/<run>-<part>
-- (_op = 'SNAPSHOT'); archive/_runs/ holds run manifests, not rows, and is not read here.
-- An item exported by two runs appears twice: the latest by _seq is the one to keep.
CREATE OR REFRESH STREAMING TABLE order_archive
  COMMENT 'Order items exported by age (aged-export, archive/)'
AS SELECT *, _metadata.file_path AS _source_file
FROM STREAM read_files(
  '${dynabridge.lake}archive/entity=Order/',
  format => 'parquet',
  schemaEvolutionMode => 'addNewColumns'
);

CREATE OR REFRESH MATERIALIZED VIEW order_archive_latest
  COMMENT 'One row per archived Order item: its latest snapshot'
AS SELECT * EXCEPT (_rn) FROM (
  SELECT *, row_number() OVER (PARTITION BY pk, sk ORDER BY _seq DESC) AS _rn
  FROM order_archive
) WHERE _rn = 1;
