"""awswrangler peer of the conversion benchmark: DynamoDB-JSON lines -> Parquet on S3.

Items are deserialized with boto3's TypeDeserializer (what `wr.dynamodb.read_items` uses)
and mapped to the same rows as the other peers (common.py); every 10,000 items the rows of
each entity become a pandas DataFrame appended with `wr.s3.to_parquet(dataset=True,
mode="append", compression="zstd")` under `entity=<name>/`, with the column types given as
`dtype` (Athena type names derived from the registry; binaries are inferred).
`wr.s3.to_parquet` only writes to S3: the benchmark points it at the local file-backed S3.
Prints one JSON line: items, errors, seconds (after imports and registry load).
"""

import argparse
import datetime as dt
import json
import os
import time

import awswrangler as wr
import pandas as pd
import pyarrow as pa
from boto3.dynamodb.types import TypeDeserializer

import common

BATCH = 10_000


def athena_type(t):
    if pa.types.is_string(t):
        return "string"
    if pa.types.is_int64(t):
        return "bigint"
    if pa.types.is_int32(t):
        return "int"
    if pa.types.is_float64(t):
        return "double"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_binary(t):
        return "binary"
    if pa.types.is_date32(t):
        return "date"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_decimal(t):
        return f"decimal({t.precision},{t.scale})"
    if pa.types.is_map(t):
        return f"map<{athena_type(t.key_type)},{athena_type(t.item_type)}>"
    if pa.types.is_list(t):
        return f"array<{athena_type(t.value_type)}>"
    if pa.types.is_struct(t):
        return "struct<" + ",".join(f"{f.name}:{athena_type(f.type)}" for f in t) + ">"
    raise ValueError(t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True)
    ap.add_argument("--path", required=True, help="s3://bucket/prefix/")
    ap.add_argument("--registry", required=True)
    args = ap.parse_args()
    if os.environ.get("AWS_ENDPOINT_URL_S3"):
        wr.config.s3_endpoint_url = os.environ["AWS_ENDPOINT_URL_S3"]
    registry = common.Registry(args.registry)
    # Binary columns are left to inference: wr casts a `binary` dtype through pandas'
    # string dtype, which fails on non-UTF-8 bytes.
    dtypes = {
        e.name: {f.name: t for f in e.schema if "binary" not in (t := athena_type(f.type))}
        for e in registry.entities
    }
    deser = TypeDeserializer()
    started = time.perf_counter()
    event_time = dt.datetime.now(common.UTC)
    buffers = {}
    items = errors = 0

    def flush():
        for entity, rows in buffers.items():
            if not rows:
                continue
            df = pd.DataFrame(rows)
            wr.s3.to_parquet(
                df=df,
                path=f"{args.path}entity={entity.name}/",
                dataset=True,
                mode="append",
                compression="zstd",
                dtype=dtypes[entity.name],
            )
            rows.clear()

    with open(args.input, "rb") as f:
        for line in f:
            if not line.strip():
                continue
            raw = json.loads(line)["Item"]
            try:
                item = common.deserialize_item(raw, deser)
                entity = registry.select(item)
                row = entity.row(item, raw, "SNAPSHOT", f"{items:020d}", event_time, deser.deserialize)
            except (common.ItemError, TypeError):
                errors += 1
                continue
            buffers.setdefault(entity, []).append(row)
            items += 1
            if items % BATCH == 0:
                flush()
    flush()
    print(json.dumps({"items": items, "errors": errors, "seconds": time.perf_counter() - started}))


if __name__ == "__main__":
    main()
