"""boto3 peer of the writer benchmark: the items file written with `Table.batch_writer()`
(25-item BatchWriteItem calls, unprocessed items resent). Prints items and seconds."""

import argparse
import json
import time

import boto3
from boto3.dynamodb.types import TypeDeserializer

import common


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True)
    ap.add_argument("--table", required=True)
    args = ap.parse_args()
    deser = TypeDeserializer()
    with open(args.input, "rb") as f:
        items = [common.deserialize_item(json.loads(line)["Item"], deser) for line in f if line.strip()]
    table = boto3.resource("dynamodb").Table(args.table)
    started = time.perf_counter()
    with table.batch_writer(overwrite_by_pkeys=["pk", "sk"]) as batch:
        for item in items:
            batch.put_item(Item=item)
    print(json.dumps({"items": len(items), "seconds": time.perf_counter() - started}))


if __name__ == "__main__":
    main()
