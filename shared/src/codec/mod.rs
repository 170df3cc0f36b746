//! DynamoDB items ⇄ Arrow record batches, driven by the schema registry.
//!
//! ## Why an explicit schema
//! Every column's Arrow type comes from the entity's latest [`EntityVersion`]; nothing is
//! inferred from data. Two batches of the same entity version therefore always have the same
//! schema, and only the types of the lake contract are ever written (no ns/second timestamps,
//! no unsigned integers, no decimals over 38 digits, no `Null` type, no empty structs) — so
//! Spark, pyarrow and DuckDB read every file.
//!
//! | field type | DynamoDB | Arrow |
//! |---|---|---|
//! | `string` | S | Utf8 |
//! | `int` / `decimal(p,s)` / `double` | N | Int64 / Decimal128(p,s) / Float64 |
//! | `number` | N | Utf8 (the original digits) |
//! | `timestamp(..)` | S ISO-8601, or N epoch s/ms | Timestamp(µs, "UTC") |
//! | `date` | S `YYYY-MM-DD` | Date32 |
//! | `binary` / `bool` | B / BOOL | Binary / Boolean |
//! | `string_set` / `number_set(p,s)` / `binary_set` | SS / NS / BS | List<Utf8 / Decimal128 / Binary> |
//! | `struct` / `string_map` | M | Struct / Map<Utf8, Utf8> |
//! | `json` | anything | Utf8 (DynamoDB-JSON) |
//!
//! ## Guarantees
//! - **Exact**: numbers are parsed as decimal digits, never through a float (except for the
//!   `double` type, a measurement by declaration). A value that does not fit its declared type
//!   is an [`ItemError`], never rounded or truncated; timestamps with sub-microsecond digits
//!   are refused for the same reason.
//! - **Nothing lost**: attributes the schema does not name go to `_extra` as DynamoDB-JSON
//!   (keys sorted, so output is deterministic); the selector and version attributes are implied
//!   by `_entity`/`_schema_version` and restored on read.
//! - **Per-row errors**: [`BatchEncoder::append`] validates a whole row before touching the
//!   batch, so a bad row leaves nothing behind and the caller quarantines it and goes on.
//!   Reading ([`decode`]) reports errors per row the same way.
//!
//! `NULL` on a typed field is written as a null and reads back as an absent attribute.

pub(crate) mod columns;
pub mod decode;
pub mod encode;
pub mod number;
pub mod route;
pub mod size;
pub mod view;

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use serde_dynamo::AttributeValue;

use crate::schema::{Attributes, EntityVersion, FieldType};

pub use decode::{BatchDecoder, DecodedRow};
pub use encode::{BatchEncoder, Op, RowMeta, stream_seq};
pub use number::numbers_equal;
pub use route::EntityEncoders;
pub use size::{item_size, sdk_item_size};
pub use view::{AttrRef, ItemRef, write_json_str};

/// The Arrow time zone of every timestamp column.
pub const UTC: &str = "UTC";

/// Metadata column: entity name.
pub const COL_ENTITY: &str = "_entity";
/// Metadata column: schema version (Int32).
pub const COL_SCHEMA_VERSION: &str = "_schema_version";
/// Metadata column: operation.
pub const COL_OP: &str = "_op";
/// Metadata column: per-key orderable sequence (non-null).
pub const COL_SEQ: &str = "_seq";
/// Metadata column: event time, Timestamp(µs, UTC).
pub const COL_EVENT_TIME: &str = "_event_time";
/// Metadata column: DynamoDB-JSON of the attributes the schema does not name.
pub const COL_EXTRA: &str = "_extra";

/// The Arrow type of a field type (see the module table).
pub fn arrow_type(ty: &FieldType) -> DataType {
    match ty {
        FieldType::String | FieldType::Number | FieldType::Json => DataType::Utf8,
        FieldType::Int => DataType::Int64,
        FieldType::Decimal { precision, scale } => DataType::Decimal128(*precision, *scale),
        FieldType::Double => DataType::Float64,
        FieldType::Timestamp(_) => timestamp_type(),
        FieldType::Date => DataType::Date32,
        FieldType::Bool => DataType::Boolean,
        FieldType::Binary => DataType::Binary,
        FieldType::StringSet => list_of(DataType::Utf8),
        FieldType::NumberSet { precision, scale } => {
            list_of(DataType::Decimal128(*precision, *scale))
        }
        FieldType::BinarySet => list_of(DataType::Binary),
        FieldType::Struct { fields } => DataType::Struct(struct_fields(fields)),
        FieldType::StringMap => DataType::Map(map_entries_field(), false),
    }
}

pub(crate) fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()))
}

pub(crate) fn list_element(dt: DataType) -> Arc<Field> {
    // Parquet's LIST convention names the element `element`; sets never hold nulls.
    Arc::new(Field::new("element", dt, false))
}

fn list_of(dt: DataType) -> DataType {
    DataType::List(list_element(dt))
}

pub(crate) fn struct_fields(fields: &[crate::schema::FieldDef]) -> Fields {
    // Children are nullable whatever `required` says: a null parent struct must stay valid.
    fields
        .iter()
        .map(|f| Field::new(&f.name, arrow_type(&f.ty), true))
        .collect()
}

pub(crate) fn map_entries_field() -> Arc<Field> {
    Arc::new(Field::new(
        "key_value",
        DataType::Struct(Fields::from(vec![
            Field::new("key", DataType::Utf8, false),
            Field::new("value", DataType::Utf8, false),
        ])),
        false,
    ))
}

/// The Arrow schema of an entity version's lake files: keys, fields, then the metadata
/// columns. Keys and metadata columns (except `_extra`) are non-nullable.
pub fn lake_schema(version: &EntityVersion) -> SchemaRef {
    let mut fields: Vec<Field> = version
        .keys()
        .iter()
        .map(|k| Field::new(&k.name, arrow_type(&k.ty), false))
        .collect();
    fields.extend(
        version
            .fields()
            .iter()
            .map(|f| Field::new(&f.name, arrow_type(&f.ty), true)),
    );
    fields.extend([
        Field::new(COL_ENTITY, DataType::Utf8, false),
        Field::new(COL_SCHEMA_VERSION, DataType::Int32, false),
        Field::new(COL_OP, DataType::Utf8, false),
        Field::new(COL_SEQ, DataType::Utf8, false),
        Field::new(COL_EVENT_TIME, timestamp_type(), false),
        Field::new(COL_EXTRA, DataType::Utf8, true),
    ]);
    Arc::new(Schema::new(fields))
}

/// DynamoDB's document nesting limit: the top-level attribute value is level 1 and every value
/// counts, scalars included, so 31 nested maps holding a scalar is the deepest storable value
/// (as DynamoDB answers, and dynoxide reproduces: "Nesting Levels have exceeded supported
/// limits" from 32 maps around a scalar).
pub const MAX_NESTING_LEVELS: usize = 32;

/// Checks what the schema does not type (`json` fields, attributes bound for `_extra`) against
/// DynamoDB's own rules: nesting of at most [`MAX_NESTING_LEVELS`] and every number (`N`, `NS`)
/// within DynamoDB's limits. A value failing it cannot come from DynamoDB and could not be
/// written back, so it is refused rather than carried into the lake. Returns the reason.
pub fn check_storable(v: &AttributeValue) -> Result<(), String> {
    AttrRef::from_attribute(v).check_storable()
}

/// The DynamoDB type tag of a value (`S`, `N`, `M`, ...), for error messages.
pub fn dynamo_type(v: &AttributeValue) -> &'static str {
    match v {
        AttributeValue::N(_) => "N",
        AttributeValue::S(_) => "S",
        AttributeValue::Bool(_) => "BOOL",
        AttributeValue::B(_) => "B",
        AttributeValue::Null(_) => "NULL",
        AttributeValue::M(_) => "M",
        AttributeValue::L(_) => "L",
        AttributeValue::Ss(_) => "SS",
        AttributeValue::Ns(_) => "NS",
        AttributeValue::Bs(_) => "BS",
    }
}

/// Converts an aws-sdk-dynamodb item (GetItem, Query, Scan) to the codec's item type.
pub fn from_sdk_item(item: HashMap<String, aws_sdk_dynamodb::types::AttributeValue>) -> Attributes {
    serde_dynamo::Item::from(item).into_inner()
}

/// Converts an aws-sdk-dynamodbstreams image (GetRecords) to the codec's item type.
pub fn from_streams_item(
    item: HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>,
) -> Attributes {
    serde_dynamo::Item::from(item).into_inner()
}

/// Converts a codec item to an aws-sdk-dynamodb item (PutItem, BatchWriteItem).
pub fn to_sdk_item(item: Attributes) -> HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
    serde_dynamo::Item::from(item).into()
}

/// DynamoDB-JSON of a value, with map keys sorted so equal items give equal text (the text
/// [`AttrRef::write_dynamodb_json`] writes, as a `serde_json::Value`).
pub fn dynamodb_json(v: &AttributeValue) -> serde_json::Value {
    let mut out = Vec::new();
    AttrRef::from_attribute(v).write_dynamodb_json(&mut out);
    serde_json::from_slice(&out).unwrap_or(serde_json::Value::Null)
}

/// DynamoDB-JSON object of attributes, keys sorted (see [`dynamodb_json`]).
pub fn dynamodb_json_map<'a>(
    attrs: impl Iterator<Item = (&'a String, &'a AttributeValue)>,
) -> serde_json::Value {
    let mut item = ItemRef::new();
    for (k, v) in attrs {
        item.insert(k.as_str(), AttrRef::from_attribute(v));
    }
    let mut out = Vec::new();
    item.write_dynamodb_json(&mut out);
    serde_json::from_slice(&out).unwrap_or(serde_json::Value::Null)
}
