"""Python peer of the conversion benchmark: DynamoDB-JSON lines -> Parquet, streaming.

boto3's TypeDeserializer for every item, the registry's schema mapping (common.py), rows
buffered per entity and written every 10,000 items with `pyarrow.parquet.ParquetWriter`
(ZSTD, one file per entity), so memory stays bounded like the Rust converter's.
Prints one JSON line: items, errors, seconds (after imports and registry load).
"""

import argparse
import datetime as dt
import json
import os
import time

import pyarrow as pa
import pyarrow.parquet as pq
from boto3.dynamodb.types import TypeDeserializer

import common

BATCH = 10_000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--registry", required=True)
    args = ap.parse_args()
    registry = common.Registry(args.registry)
    deser = TypeDeserializer()
    started = time.perf_counter()
    event_time = dt.datetime.now(common.UTC)
    buffers = {}
    writers = {}
    items = errors = 0

    def flush():
        for entity, rows in buffers.items():
            if not rows:
                continue
            table = pa.Table.from_pylist(rows, schema=entity.schema)
            writer = writers.get(entity.name)
            if writer is None:
                folder = os.path.join(args.out, f"entity={entity.name}")
                os.makedirs(folder, exist_ok=True)
                writer = pq.ParquetWriter(
                    os.path.join(folder, "part-00000.parquet"), entity.schema, compression="zstd"
                )
                writers[entity.name] = writer
            writer.write_table(table)
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
            except (common.ItemError, TypeError) as e:
                errors += 1
                continue
            buffers.setdefault(entity, []).append(row)
            items += 1
            if items % BATCH == 0:
                flush()
    flush()
    for w in writers.values():
        w.close()
    print(json.dumps({"items": items, "errors": errors, "seconds": time.perf_counter() - started}))


if __name__ == "__main__":
    main()
