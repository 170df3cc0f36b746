"""awswrangler peer of the aged-export benchmark: a whole table → Parquet on S3.

`wr.dynamodb.read_items(allow_full_scan=True)` reads the table (a paginated Scan; boto3's
deserializer), then every item goes through the same mapping to the lake's typed rows as
the conversion peers (common.py: entity, upcasts, declared types, `_extra`, metadata
columns), and each entity's rows become one pandas DataFrame written with
`wr.s3.to_parquet(dataset=True, compression="zstd")` with the registry's column types.
This is what awswrangler offers for the job: read_items materialises the table in memory.
Prints one JSON line: items, errors, seconds, scan_seconds (read_items), write_seconds
(mapping + to_parquet); imports and registry load excluded.
"""

import argparse
import base64
import datetime as dt
import json
import os
import time

import awswrangler as wr
import pandas as pd
from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer

import common
from convert_wrangler import athena_type


def raw_json(item, ser):
    """The item as DynamoDB-JSON (what the mapping keeps for `json` columns and `_extra`),
    binaries base64 as DynamoDB's export writes them."""

    def b64(v):
        if isinstance(v, dict):
            return {k: b64(x) for k, x in v.items()}
        if isinstance(v, list):
            return [b64(x) for x in v]
        if isinstance(v, (bytes, bytearray, Binary)):
            return base64.b64encode(bytes(v.value if isinstance(v, Binary) else v)).decode()
        return v

    return {k: b64(ser.serialize(v)) for k, v in item.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--table", required=True)
    ap.add_argument("--path", required=True, help="s3://bucket/prefix/")
    ap.add_argument("--registry", required=True)
    args = ap.parse_args()
    if os.environ.get("AWS_ENDPOINT_URL_S3"):
        wr.config.s3_endpoint_url = os.environ["AWS_ENDPOINT_URL_S3"]
    if os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"):
        wr.config.dynamodb_endpoint_url = os.environ["AWS_ENDPOINT_URL_DYNAMODB"]
    registry = common.Registry(args.registry)
    dtypes = {
        e.name: {f.name: t for f in e.schema if "binary" not in (t := athena_type(f.type))}
        for e in registry.entities
    }
    deser, ser = TypeDeserializer(), TypeSerializer()

    started = time.perf_counter()
    items = wr.dynamodb.read_items(table_name=args.table, allow_full_scan=True, as_dataframe=False)
    scanned = time.perf_counter()

    event_time = dt.datetime.now(common.UTC)
    seq = f"{int(event_time.timestamp() * 1e6):040d}"
    rows = {}
    errors = 0
    for item in items:
        item = {k: (bytes(v.value) if isinstance(v, Binary) else v) for k, v in item.items()}
        try:
            entity = registry.select(item)
            row = entity.row(item, raw_json(item, ser), "SNAPSHOT", seq, event_time, deser.deserialize)
        except (common.ItemError, TypeError):
            errors += 1
            continue
        rows.setdefault(entity, []).append(row)
    exported = 0
    for entity, entity_rows in rows.items():
        wr.s3.to_parquet(
            df=pd.DataFrame(entity_rows),
            path=f"{args.path}entity={entity.name}/",
            dataset=True,
            mode="append",
            compression="zstd",
            dtype=dtypes[entity.name],
        )
        exported += len(entity_rows)
    done = time.perf_counter()
    print(json.dumps({
        "items": exported,
        "errors": errors,
        "seconds": done - started,
        "scan_seconds": scanned - started,
        "write_seconds": done - scanned,
    }))


if __name__ == "__main__":
    main()
