"""Python peer of stream-fanout, run under awslambdaric: a Powertools batch processor doing
stream-fanout's work for each DynamoDB Streams batch.

Per record (Powertools `BatchProcessor`, `EventType.DynamoDBStreams`): the images
deserialized by Powertools' data class (TypeDeserializer), the entity and version resolved
and the row built with the same schema mapping as the other peers (common.py), and the
domain event built (plain-JSON images, exact numbers as text). After the records: one
Parquet file per entity (pyarrow, ZSTD) put to the lake bucket with boto3 at a
deterministic key, then PutEvents in chunks of 10. With BENCH_IDEMPOTENCY=1 each record
goes through Powertools' `@idempotent_function` (DynamoDB persistence layer, keyed on the
stream eventID): what a Powertools user adds to avoid re-emitting on retries.

Clients and the registry are created at import, as Lambda best practice has it; that import
is what the cold-start benchmark times.
"""

import io
import json
import os

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
from aws_lambda_powertools.shared.dynamodb_deserializer import TypeDeserializer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from botocore.config import Config

import common

TABLE = os.environ["DYNABRIDGE_TABLE_NAME"]
BUCKET = os.environ["DYNABRIDGE_LAKE_BUCKET"]
BUS = os.environ.get("DYNABRIDGE_EVENT_BUS", "default")
SOURCE = os.environ.get("DYNABRIDGE_EVENT_SOURCE", f"dynabridge.{TABLE}")
REGISTRY = common.Registry(os.environ["DYNABRIDGE_SCHEMA_PATH"])
PATH_STYLE = os.environ.get("DYNABRIDGE_S3_FORCE_PATH_STYLE") == "true"
VERBS = {"INSERT": "Inserted", "MODIFY": "Modified", "REMOVE": "Removed", "EXPIRE": "Expired"}

s3 = boto3.client("s3", config=Config(s3={"addressing_style": "path" if PATH_STYLE else "auto"}))
events = boto3.client("events")
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
persistence = DynamoDBPersistenceLayer(table_name=os.environ.get("BENCH_IDEMPOTENCY_TABLE", "idempotency"))
idempotency = IdempotencyConfig(event_key_jmespath="eventID")
IDEMPOTENT = os.environ.get("BENCH_IDEMPOTENCY") == "1"
_deserialize = TypeDeserializer().deserialize


class Batch:
    rows = {}
    entries = []


def process(record):
    ddb = record.dynamodb
    raw = record.raw_event["dynamodb"]
    name = record.event_name.name if record.event_name else "INSERT"
    identity = record.raw_event.get("userIdentity") or {}
    op = "EXPIRE" if name == "REMOVE" and identity.get("principalId") == "dynamodb.amazonaws.com" else name
    if op in ("INSERT", "MODIFY"):
        image, raw_image = ddb.new_image, raw.get("NewImage", {})
    else:
        image, raw_image = ddb.old_image, raw.get("OldImage", {})
    entity = REGISTRY.select(image)
    seq = ddb.sequence_number.rjust(40, "0")
    event_time = common.EPOCH + common.dt.timedelta(microseconds=round(float(raw["ApproximateCreationDateTime"]) * 1e6))
    row = entity.row(image, raw_image, op, seq, event_time, _deserialize)
    Batch.rows.setdefault(entity, []).append(row)
    detail = {
        "eventId": record.event_id,
        "sequenceNumber": ddb.sequence_number,
        "table": TABLE,
        "entity": entity.name,
        "schemaVersion": entity.latest,
        "op": op,
        "eventTime": event_time.isoformat(),
        "keys": json.loads(common.plain_json(ddb.keys)),
        "newImage": json.loads(common.plain_json(ddb.new_image)) if "NewImage" in raw else None,
        "oldImage": json.loads(common.plain_json(ddb.old_image)) if "OldImage" in raw else None,
    }
    Batch.entries.append(
        {
            "Source": SOURCE,
            "DetailType": f"{entity.name} {VERBS[op]}",
            "Detail": json.dumps(detail, separators=(",", ":")),
            "EventBusName": BUS,
        }
    )
    return entity.name


@idempotent_function(data_keyword_argument="record", config=idempotency, persistence_store=persistence)
def idempotent_record_handler(record):
    return process(record)


def record_handler(record):
    return process(record)


def flush(shard, first_seq, last_seq):
    for entity, rows in Batch.rows.items():
        table = pa.Table.from_pylist(rows, schema=entity.schema)
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        key = f"cdc/entity={entity.name}/shard={shard}/{first_seq}-{last_seq}.parquet"
        s3.put_object(Bucket=BUCKET, Key=key, Body=buf.getvalue())
    for i in range(0, len(Batch.entries), 10):
        out = events.put_events(Entries=Batch.entries[i : i + 10])
        if out.get("FailedEntryCount"):
            raise RuntimeError(f"PutEvents failed entries: {out['FailedEntryCount']}")
    Batch.rows = {}
    Batch.entries = []


def handler(event, context):
    if IDEMPOTENT:
        idempotency.register_lambda_context(context)
    Batch.rows = {}
    Batch.entries = []
    handler_fn = idempotent_record_handler if IDEMPOTENT else record_handler
    response = process_partial_response(event=event, record_handler=handler_fn, processor=processor, context=context)
    records = event.get("Records", [])
    if records:
        first = records[0]["dynamodb"]["SequenceNumber"]
        last = records[-1]["dynamodb"]["SequenceNumber"]
        flush(event.get("shardId", "stream"), first, last)
    return response
