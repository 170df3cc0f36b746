"""Shared by the Python peers: the registry's lake schema in pyarrow, and deserialized
DynamoDB items turned into rows of it.

This is the work dynabridge's codec does, written the way a careful Python user would:
select the entity (attribute value or key prefix), read the schema version, apply the
declarative upcasts (rename, default, drop, widen), convert each field to its declared type
(exact decimals via `Decimal`, µs UTC timestamps, dates, sets as sorted lists, structs, string
maps, JSON), keep unnamed attributes in `_extra` as DynamoDB-JSON, and add the lake's
metadata columns. pyarrow enforces the types (a decimal that does not fit raises).
"""

import base64
import datetime as dt
import json
from decimal import Decimal

import pyarrow as pa

UTC = dt.timezone.utc
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
META = ["_entity", "_schema_version", "_op", "_seq", "_event_time", "_extra"]


class ItemError(Exception):
    """An item that cannot become a row (the Rust side quarantines these)."""


def _list(t):
    return pa.list_(pa.field("element", t, nullable=False))


def arrow_type(ty):
    if isinstance(ty, str):
        return {
            "string": pa.string(),
            "number": pa.string(),
            "json": pa.string(),
            "int": pa.int64(),
            "double": pa.float64(),
            "date": pa.date32(),
            "bool": pa.bool_(),
            "binary": pa.binary(),
            "string_set": _list(pa.string()),
            "binary_set": _list(pa.binary()),
            "string_map": pa.map_(pa.string(), pa.string()),
        }[ty]
    ((kind, arg),) = ty.items()
    if kind == "decimal":
        return pa.decimal128(arg["precision"], arg["scale"])
    if kind == "timestamp":
        return pa.timestamp("us", tz="UTC")
    if kind == "number_set":
        return _list(pa.decimal128(arg["precision"], arg["scale"]))
    if kind == "struct":
        return pa.struct([pa.field(f["name"], arrow_type(f["type"])) for f in arg["fields"]])
    raise ValueError(f"unknown type {ty}")


def to_bytes(v):
    if isinstance(v, (bytes, bytearray)):
        return bytes(v)
    if isinstance(v, str):  # Lambda stream events carry binaries base64-encoded
        return base64.b64decode(v)
    return bytes(v.value)  # boto3 Binary


def converter(ty, raw_name=None):
    """A function: deserialized value (not None) -> the Python value pyarrow expects."""
    if isinstance(ty, str):
        if ty == "string":
            return lambda v: v if isinstance(v, str) else _bad(ty, v)
        if ty == "number":
            return str
        if ty == "int":
            def to_int(v):
                i = int(v)
                if i != v:
                    raise ItemError(f"{v} is not an integer")
                return i
            return to_int
        if ty == "double":
            return float
        if ty == "date":
            return dt.date.fromisoformat
        if ty == "bool":
            return bool
        if ty == "binary":
            return to_bytes
        if ty == "string_set":
            return sorted
        if ty == "binary_set":
            return lambda v: sorted(to_bytes(b) for b in v)
        if ty == "string_map":
            return lambda v: [(k, x if isinstance(x, str) else json.dumps(x, default=str)) for k, x in v.items()]
        if ty == "json":
            return None  # taken from the raw DynamoDB-JSON
    ((kind, arg),) = ty.items()
    if kind == "decimal":
        return lambda v: v if isinstance(v, Decimal) else Decimal(v)
    if kind == "number_set":
        return list
    if kind == "timestamp":
        if arg == "iso8601":
            return dt.datetime.fromisoformat
        if arg == "epoch_millis":
            return lambda v: EPOCH + dt.timedelta(milliseconds=int(v))
        return lambda v: EPOCH + dt.timedelta(seconds=int(v))
    if kind == "struct":
        subs = [(f["name"], converter(f["type"])) for f in arg["fields"]]

        def to_struct(v):
            if not isinstance(v, dict):
                _bad(ty, v)
            return {n: (None if v.get(n) is None else c(v[n])) for n, c in subs}
        return to_struct
    raise ValueError(f"unknown type {ty}")


def _bad(ty, v):
    raise ItemError(f"{v!r} is not a {ty}")


def _dj(raw):
    return json.dumps(raw, sort_keys=True, separators=(",", ":"))


class Entity:
    def __init__(self, registry, definition):
        self.name = definition["name"]
        self.selector = definition["selector"]
        self.version_attribute = registry.get("version_attribute", "schema_version")
        versions = sorted(definition["versions"], key=lambda v: v["version"])
        self.oldest = versions[0]["version"]
        self.latest = versions[-1]["version"]
        self.upcasts = [(v["version"], v.get("upcast", [])) for v in versions]
        keys = registry["keys"]
        fields = versions[-1]["fields"]
        self.columns = [(f["name"], f["type"], converter(f["type"])) for f in keys + fields]
        self.required = {f["name"] for f in keys + fields if f.get("required")}
        self.schema = pa.schema(
            [pa.field(k["name"], arrow_type(k["type"]), nullable=False) for k in keys]
            + [pa.field(f["name"], arrow_type(f["type"])) for f in fields]
            + [
                pa.field("_entity", pa.string(), nullable=False),
                pa.field("_schema_version", pa.int32(), nullable=False),
                pa.field("_op", pa.string(), nullable=False),
                pa.field("_seq", pa.string(), nullable=False),
                pa.field("_event_time", pa.timestamp("us", tz="UTC"), nullable=False),
                pa.field("_extra", pa.string()),
            ]
        )
        self.named = {c[0] for c in self.columns} | {self.version_attribute}
        if "attribute" in self.selector:
            self.named.add(self.selector["attribute"]["attribute"])

    def matches(self, item):
        sel = self.selector
        if "attribute" in sel:
            return item.get(sel["attribute"]["attribute"]) == sel["attribute"]["equals"]
        kp = sel["key_prefix"]
        v = item.get(kp["attribute"])
        return isinstance(v, str) and v.startswith(kp["prefix"])

    def upcast(self, item, deserialize):
        version = item.get(self.version_attribute)
        version = self.oldest if version is None else int(version)
        if version > self.latest or version < self.oldest:
            raise ItemError(f"{self.name} has no version {version}")
        for v, steps in self.upcasts:
            if v <= version:
                continue
            for step in steps:
                ((op, arg),) = step.items()
                if op == "rename":
                    if arg["from"] in item:
                        item[arg["to"]] = item.pop(arg["from"])
                elif op == "default":
                    if item.get(arg["field"]) is None:
                        item[arg["field"]] = deserialize(arg["value"])
                elif op == "drop":
                    item.pop(arg["field"], None)
        return item

    def row(self, item, raw, op, seq, event_time, deserialize):
        """`item`: deserialized attributes; `raw`: the same item as DynamoDB-JSON."""
        item = self.upcast(dict(item), deserialize)
        renamed = {}
        for v, steps in self.upcasts:
            for step in steps:
                if "rename" in step:
                    renamed[step["rename"]["to"]] = step["rename"]["from"]
        row = {}
        for name, ty, conv in self.columns:
            v = item.get(name)
            if v is None:
                if name in self.required:
                    raise ItemError(f"{self.name}.{name} is required")
                row[name] = None
            elif conv is None:  # json: the attribute's DynamoDB-JSON
                row[name] = _dj(raw.get(name) or raw.get(renamed.get(name, name)))
            else:
                try:
                    row[name] = conv(v)
                except (ValueError, TypeError, ArithmeticError) as e:
                    raise ItemError(f"{self.name}.{name}: {e}") from e
        extra = {k: raw[k] for k in item if k not in self.named and k in raw}
        row["_entity"] = self.name
        row["_schema_version"] = self.latest
        row["_op"] = op
        row["_seq"] = seq
        row["_event_time"] = event_time
        row["_extra"] = _dj(extra) if extra else None
        return row


class Registry:
    def __init__(self, path):
        with open(path) as f:
            definition = json.load(f)
        self.entities = [Entity(definition, e) for e in definition["entities"]]

    def select(self, item):
        for e in self.entities:
            if e.matches(item):
                return e
        raise ItemError("no entity matches")


def deserialize_item(raw, deserializer):
    """A DynamoDB-JSON item through boto3's TypeDeserializer. Files carry binaries base64
    (as DynamoDB's export does) while TypeDeserializer wants bytes: decode those first."""
    out = {}
    for k, v in raw.items():
        if "B" in v:
            out[k] = base64.b64decode(v["B"])
        elif "BS" in v:
            out[k] = {base64.b64decode(b) for b in v["BS"]}
        else:
            out[k] = deserializer.deserialize(v)
    return out


def plain_json(value):
    """A deserialized value as plain JSON (EventBridge detail): exact numbers as text."""
    return json.dumps(value, default=_default, separators=(",", ":"))


def _default(v):
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, (set, frozenset)):
        return sorted(v, key=str)
    if isinstance(v, (bytes, bytearray)):
        return base64.b64encode(v).decode()
    if hasattr(v, "value"):
        return base64.b64encode(bytes(v.value)).decode()
    raise TypeError(type(v))
