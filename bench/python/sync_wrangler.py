"""incremental-sync benchmark: the inbound file, and the awswrangler peer.

  sync_wrangler.py gen --rows N --out FILE
      Writes N Order rows (example registry) as a Spark job writes them: pyarrow with Spark's
      types (decimal(18,2), INT96 timestamps (Spark's default `outputTimestampType`), date, array<decimal(10,3)>, double,
      boolean, a 38-digit number as string, `_op`), snappy, Spark's flavor, one row group.
      Seeded: the same N gives the same file.

  sync_wrangler.py put --path s3://bucket/key --table TABLE
      The peer: `wr.s3.read_parquet` of the object, the columns converted the way a user must
      before DynamoDB accepts them (timestamps to the registry's epoch numbers, dates to ISO
      text, doubles to Decimal, decimal arrays to number sets, `_op` dropped), then
      `wr.dynamodb.put_df`. Prints one JSON line: items, seconds (read → last write, imports
      excluded).
"""

import argparse
import datetime as dt
import json
import os
import random
import time
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 21, tzinfo=UTC)


def gen(rows, out):
    rnd = random.Random(20261121)
    cols = {k: [] for k in [
        "pk", "sk", "customer_id", "total", "placed_at", "currency", "weights", "discount",
        "ref_number", "gift", "expires_at", "shipped_on", "status", "_op"]}
    for i in range(rows):
        cols["pk"].append(f"ORDER#{i:09d}")
        cols["sk"].append("ORDER")
        cols["customer_id"].append(f"CUSTOMER#{rnd.randrange(50_000):07d}")
        cols["total"].append(Decimal(rnd.randrange(-100, 500_000)) / 100)
        cols["placed_at"].append(NOW - dt.timedelta(milliseconds=rnd.randrange(400 * 86_400_000)))
        cols["currency"].append(rnd.choice(["EUR", "USD", "JPY"]))
        cols["weights"].append(
            # A number set: distinct values (DynamoDB refuses a set with duplicates).
            [Decimal(w) / 1000 for w in rnd.sample(range(1, 10_000), rnd.randrange(1, 4))])
        cols["discount"].append(rnd.randrange(1, 60) / 100 if rnd.randrange(3) == 0 else None)
        cols["ref_number"].append(str(rnd.randrange(10**37, 10**38)))
        cols["gift"].append(rnd.randrange(5) == 0)
        cols["expires_at"].append(
            NOW + dt.timedelta(days=30 + rnd.randrange(365)) if rnd.randrange(5) == 0 else None)
        status = rnd.choice(["PLACED", "SHIPPED", "DELIVERED"])
        cols["shipped_on"].append(
            (NOW - dt.timedelta(days=rnd.randrange(365))).date() if status != "PLACED" else None)
        cols["status"].append(status)
        cols["_op"].append("UPSERT")
    ts = pa.timestamp("us", tz="UTC")
    schema = pa.schema([
        ("pk", pa.string()), ("sk", pa.string()), ("customer_id", pa.string()),
        ("total", pa.decimal128(18, 2)), ("placed_at", ts), ("currency", pa.string()),
        ("weights", pa.list_(pa.decimal128(10, 3))), ("discount", pa.float64()),
        ("ref_number", pa.string()), ("gift", pa.bool_()), ("expires_at", ts),
        ("shipped_on", pa.date32()), ("status", pa.string()), ("_op", pa.string()),
    ])
    table = pa.table(cols, schema=schema)
    pq.write_table(
        table, out, compression="snappy", flavor="spark", coerce_timestamps="us",
        row_group_size=max(rows, 1), use_compliant_nested_type=True)
    print(json.dumps({"rows": rows, "bytes": os.path.getsize(out)}))


def put(path, table_name):
    import awswrangler as wr
    import pandas as pd

    if os.environ.get("AWS_ENDPOINT_URL_S3"):
        wr.config.s3_endpoint_url = os.environ["AWS_ENDPOINT_URL_S3"]
    if os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"):
        wr.config.dynamodb_endpoint_url = os.environ["AWS_ENDPOINT_URL_DYNAMODB"]
    started = time.perf_counter()
    df = wr.s3.read_parquet(path)
    df = df.drop(columns=["_op"])
    # What DynamoDB accepts, in the registry's encodings: epoch ms / s, ISO dates, Decimals,
    # number sets; the version attribute the Rust side writes.
    def conv(col, f):
        return pd.Series(
            [None if v is None or (not hasattr(v, "__len__") and pd.isna(v)) else f(v) for v in df[col]],
            index=df.index, dtype=object)

    df["placed_at"] = conv("placed_at", lambda t: int(t.timestamp() * 1000))
    df["expires_at"] = conv("expires_at", lambda t: int(t.timestamp()))
    df["shipped_on"] = conv("shipped_on", lambda d: d.isoformat())
    df["discount"] = conv("discount", lambda x: Decimal(repr(x)))
    df["weights"] = conv("weights", set)
    df["schema_version"] = 2
    df = df.astype(object)
    wr.dynamodb.put_df(df=df, table_name=table_name)
    print(json.dumps({"items": len(df), "seconds": time.perf_counter() - started}))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("--rows", type=int, required=True)
    g.add_argument("--out", required=True)
    p = sub.add_parser("put")
    p.add_argument("--path", required=True)
    p.add_argument("--table", required=True)
    args = ap.parse_args()
    if args.cmd == "gen":
        gen(args.rows, args.out)
    else:
        put(args.path, args.table)


if __name__ == "__main__":
    main()
