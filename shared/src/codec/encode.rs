//! Item → Arrow: [`BatchEncoder`] accumulates validated rows of one entity and emits
//! [`RecordBatch`]es in the lake schema.
//!
//! Each row is first converted into owned, already-validated cells; only when the whole row
//! is valid are the cells pushed to the column buffers. A bad value therefore never leaves a
//! half-written row behind, and the caller can quarantine that one item and continue.
//! Memory is bounded by the rows buffered between two [`BatchEncoder::finish`] calls, which
//! the caller chooses (e.g. flush every 8,192 rows).

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int32Array,
    Int64Array, ListArray, MapArray, RecordBatch, StringArray, StructArray,
    TimestampMicrosecondArray,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::error::ArrowError;
use chrono::{DateTime, NaiveDate};
use serde_dynamo::AttributeValue;

use super::number;
use super::{UTC, dynamo_type, dynamodb_json, dynamodb_json_map, lake_schema, list_element};
use crate::schema::{Attributes, Entity, FieldDef, FieldType, ItemError, TimestampEncoding};

/// The operation a lake row records (`_op`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// A stream INSERT.
    Insert,
    /// A stream MODIFY.
    Modify,
    /// A stream REMOVE by a user.
    Remove,
    /// A REMOVE by DynamoDB's TTL process.
    Expire,
    /// A row of a full or aged export.
    Snapshot,
}

impl Op {
    /// The `_op` text.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Insert => "INSERT",
            Op::Modify => "MODIFY",
            Op::Remove => "REMOVE",
            Op::Expire => "EXPIRE",
            Op::Snapshot => "SNAPSHOT",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Op {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "INSERT" => Op::Insert,
            "MODIFY" => Op::Modify,
            "REMOVE" => Op::Remove,
            "EXPIRE" => Op::Expire,
            "SNAPSHOT" => Op::Snapshot,
            other => return Err(format!("unknown op {other:?}")),
        })
    }
}

/// The lake metadata of one row.
#[derive(Debug, Clone, Copy)]
pub struct RowMeta<'a> {
    /// `_op`.
    pub op: Op,
    /// `_seq`: orderable per key; for stream rows use [`stream_seq`].
    pub seq: &'a str,
    /// `_event_time` in microseconds since the Unix epoch (UTC).
    pub event_time_micros: i64,
}

/// A stream sequence number left-padded with zeros to 40 digits, so `_seq` sorts as text.
pub fn stream_seq(sequence_number: &str) -> String {
    format!("{sequence_number:0>40}")
}

/// One validated value, owned so the source item can be dropped.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Null,
    Str(String),
    I64(i64),
    Dec(i128),
    F64(f64),
    Micros(i64),
    Days(i32),
    Bool(bool),
    Bin(Vec<u8>),
    List(Vec<Cell>),
    Struct(Vec<Cell>),
    Map(Vec<(String, String)>),
}

static NULL: Cell = Cell::Null;

/// Converts items of one entity into record batches of its latest version's lake schema.
///
/// ```
/// # use dynabridge_shared::schema::Registry;
/// # use dynabridge_shared::codec::{BatchEncoder, Op, RowMeta};
/// # use serde_dynamo::AttributeValue as V;
/// let registry = Registry::from_json_str(r#"{
///   "keys": [{"name": "pk", "type": "string", "required": true}],
///   "entities": [{"name": "Order", "selector": {"key_prefix": {"attribute": "pk", "prefix": "ORDER#"}},
///     "versions": [{"version": 1, "fields": [{"name": "total", "type": {"decimal": {"precision": 12, "scale": 2}}}]}]}]
/// }"#, "doc").unwrap();
/// let mut enc = BatchEncoder::new(registry.entity("Order").unwrap());
/// let item = [("pk".to_string(), V::S("ORDER#1".into())), ("total".to_string(), V::N("19.90".into()))].into();
/// enc.append(&item, &RowMeta { op: Op::Insert, seq: "1", event_time_micros: 0 }).unwrap();
/// let batch = enc.finish().unwrap();
/// assert_eq!(batch.num_rows(), 1);
/// ```
#[derive(Debug)]
pub struct BatchEncoder {
    entity: Entity,
    schema: arrow::datatypes::SchemaRef,
    columns: Vec<FieldDef>,
    named: HashSet<String>,
    cells: Vec<Vec<Cell>>,
    ops: Vec<&'static str>,
    seqs: Vec<String>,
    event_times: Vec<i64>,
    extras: Vec<Option<String>>,
}

impl BatchEncoder {
    /// An encoder for `entity`; rows are written in its latest version.
    pub fn new(entity: &Entity) -> Self {
        let latest = entity.latest();
        let columns: Vec<FieldDef> = latest.columns().cloned().collect();
        let mut named: HashSet<String> = columns.iter().map(|c| c.name.clone()).collect();
        named.extend(crate::schema::implied_names(entity));
        BatchEncoder {
            entity: entity.clone(),
            schema: lake_schema(latest),
            cells: vec![Vec::new(); columns.len()],
            columns,
            named,
            ops: Vec::new(),
            seqs: Vec::new(),
            event_times: Vec::new(),
            extras: Vec::new(),
        }
    }

    /// The lake schema of the batches this encoder produces.
    pub fn schema(&self) -> &arrow::datatypes::SchemaRef {
        &self.schema
    }

    /// The entity encoded.
    pub fn entity(&self) -> &Entity {
        &self.entity
    }

    /// Rows buffered since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether no row is buffered.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Validates `item` (any known version of the entity; it is upcast to the latest) and
    /// buffers it as one row. On error nothing is buffered.
    pub fn append(&mut self, item: &Attributes, meta: &RowMeta<'_>) -> Result<(), ItemError> {
        let resolved = self.entity.resolve(item)?;
        let item = resolved.item;
        let mut row = Vec::with_capacity(self.columns.len());
        for col in &self.columns {
            row.push(to_cell(
                &col.ty,
                item.get(&col.name),
                &col.name,
                col.required,
            )?);
        }
        let extra: Vec<_> = item
            .iter()
            .filter(|(k, _)| !self.named.contains(k.as_str()))
            .collect();
        for (k, v) in &extra {
            super::check_storable(v).map_err(|r| invalid(k, r))?;
        }
        let extra = if extra.is_empty() {
            None
        } else {
            Some(dynamodb_json_map(extra.into_iter()).to_string())
        };
        self.push_row(row, meta, extra);
        Ok(())
    }

    /// Buffers a row that carries only the key attributes (a keys-only REMOVE or EXPIRE):
    /// fields are null and required fields are not checked.
    pub fn append_keys(&mut self, keys: &Attributes, meta: &RowMeta<'_>) -> Result<(), ItemError> {
        let n_keys = self.entity.latest().keys().len();
        let mut row = Vec::with_capacity(self.columns.len());
        for (i, col) in self.columns.iter().enumerate() {
            if i < n_keys {
                row.push(to_cell(&col.ty, keys.get(&col.name), &col.name, true)?);
            } else {
                row.push(Cell::Null);
            }
        }
        self.push_row(row, meta, None);
        Ok(())
    }

    fn push_row(&mut self, row: Vec<Cell>, meta: &RowMeta<'_>, extra: Option<String>) {
        for (col, cell) in self.cells.iter_mut().zip(row) {
            col.push(cell);
        }
        self.ops.push(meta.op.as_str());
        self.seqs.push(meta.seq.to_string());
        self.event_times.push(meta.event_time_micros);
        self.extras.push(extra);
    }

    /// Emits the buffered rows as one batch and empties the buffer.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let rows = self.len();
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for (col, cells) in self.columns.iter().zip(self.cells.iter_mut()) {
            let taken = std::mem::take(cells);
            let refs: Vec<&Cell> = taken.iter().collect();
            arrays.push(build_array(&col.ty, &refs)?);
        }
        let latest = self.entity.latest();
        let version = i32::try_from(latest.version())
            .map_err(|_| ArrowError::InvalidArgumentError("schema version exceeds i32".into()))?;
        arrays.push(Arc::new(StringArray::from_iter_values(
            std::iter::repeat_n(self.entity.name(), rows),
        )));
        arrays.push(Arc::new(Int32Array::from(vec![version; rows])));
        arrays.push(Arc::new(StringArray::from_iter_values(std::mem::take(
            &mut self.ops,
        ))));
        arrays.push(Arc::new(StringArray::from_iter_values(std::mem::take(
            &mut self.seqs,
        ))));
        arrays.push(Arc::new(
            TimestampMicrosecondArray::from(std::mem::take(&mut self.event_times))
                .with_timezone(UTC),
        ));
        arrays.push(Arc::new(StringArray::from(std::mem::take(
            &mut self.extras,
        ))));
        RecordBatch::try_new(self.schema.clone(), arrays)
    }
}

fn wrong(path: &str, ty: &FieldType, v: &AttributeValue) -> ItemError {
    ItemError::WrongType {
        attribute: path.to_string(),
        expected: ty.describe(),
        found: dynamo_type(v).to_string(),
    }
}

fn invalid(path: &str, reason: String) -> ItemError {
    ItemError::InvalidValue {
        attribute: path.to_string(),
        reason,
    }
}

/// Converts one attribute to a validated cell.
pub(crate) fn to_cell(
    ty: &FieldType,
    value: Option<&AttributeValue>,
    path: &str,
    required: bool,
) -> Result<Cell, ItemError> {
    let v = match value {
        None | Some(AttributeValue::Null(_)) => {
            return if required {
                Err(ItemError::Missing {
                    attribute: path.to_string(),
                })
            } else {
                Ok(Cell::Null)
            };
        }
        Some(v) => v,
    };
    use AttributeValue as A;
    Ok(match (ty, v) {
        (FieldType::String, A::S(s)) => Cell::Str(s.clone()),
        (FieldType::Int, A::N(n)) => Cell::I64(number::to_i64(n).map_err(|r| invalid(path, r))?),
        (FieldType::Number, A::N(n)) => {
            number::parse(n).map_err(|r| invalid(path, r))?;
            Cell::Str(n.clone())
        }
        (FieldType::Decimal { precision, scale }, A::N(n)) => {
            Cell::Dec(number::to_unscaled(n, *precision, *scale).map_err(|r| invalid(path, r))?)
        }
        (FieldType::Double, A::N(n)) => Cell::F64(number::to_f64(n).map_err(|r| invalid(path, r))?),
        (FieldType::Timestamp(TimestampEncoding::Iso8601), A::S(s)) => {
            Cell::Micros(parse_iso(s).map_err(|r| invalid(path, r))?)
        }
        (FieldType::Timestamp(TimestampEncoding::EpochSeconds), A::N(n)) => {
            Cell::Micros(epoch_micros(n, 6).map_err(|r| invalid(path, r))?)
        }
        (FieldType::Timestamp(TimestampEncoding::EpochMillis), A::N(n)) => {
            Cell::Micros(epoch_micros(n, 3).map_err(|r| invalid(path, r))?)
        }
        (FieldType::Date, A::S(s)) => Cell::Days(parse_date(s).map_err(|r| invalid(path, r))?),
        (FieldType::Bool, A::Bool(b)) => Cell::Bool(*b),
        (FieldType::Binary, A::B(b)) => Cell::Bin(b.clone()),
        (FieldType::StringSet, A::Ss(items)) => {
            no_duplicates(path, items.iter().map(|s| s.as_bytes()))?;
            Cell::List(items.iter().map(|s| Cell::Str(s.clone())).collect())
        }
        (FieldType::NumberSet { precision, scale }, A::Ns(items)) => {
            let values = items
                .iter()
                .map(|n| number::to_unscaled(n, *precision, *scale).map_err(|r| invalid(path, r)))
                .collect::<Result<Vec<_>, _>>()?;
            let bytes: Vec<[u8; 16]> = values.iter().map(|v| v.to_le_bytes()).collect();
            no_duplicates(path, bytes.iter().map(|b| b.as_slice()))?;
            Cell::List(values.into_iter().map(Cell::Dec).collect())
        }
        (FieldType::BinarySet, A::Bs(items)) => {
            no_duplicates(path, items.iter().map(Vec::as_slice))?;
            Cell::List(items.iter().map(|b| Cell::Bin(b.clone())).collect())
        }
        (FieldType::Struct { fields }, A::M(m)) => {
            if let Some(unknown) = m.keys().find(|k| !fields.iter().any(|f| &f.name == *k)) {
                return Err(ItemError::UnknownField {
                    attribute: format!("{path}.{unknown}"),
                });
            }
            Cell::Struct(
                fields
                    .iter()
                    .map(|f| {
                        to_cell(
                            &f.ty,
                            m.get(&f.name),
                            &format!("{path}.{}", f.name),
                            f.required,
                        )
                    })
                    .collect::<Result<_, _>>()?,
            )
        }
        (FieldType::StringMap, A::M(m)) => {
            let mut entries = Vec::with_capacity(m.len());
            for (k, v) in m {
                match v {
                    A::S(s) => entries.push((k.clone(), s.clone())),
                    other => {
                        return Err(ItemError::WrongType {
                            attribute: format!("{path}.{k}"),
                            expected: "string (string_map value)".into(),
                            found: dynamo_type(other).into(),
                        });
                    }
                }
            }
            entries.sort();
            Cell::Map(entries)
        }
        (FieldType::Json, v) => {
            super::check_storable(v).map_err(|r| invalid(path, r))?;
            Cell::Str(dynamodb_json(v).to_string())
        }
        (ty, v) => return Err(wrong(path, ty, v)),
    })
}

/// DynamoDB sets have unique members; a duplicate would make the item unwritable on the way
/// back, so it is refused here.
fn no_duplicates<'a>(path: &str, members: impl Iterator<Item = &'a [u8]>) -> Result<(), ItemError> {
    let mut seen = HashSet::new();
    for m in members {
        if !seen.insert(m) {
            return Err(invalid(path, "duplicate set member".into()));
        }
    }
    Ok(())
}

/// Spark's timestamp range: 0001-01-01 to 9999-12-31 (in µs since the epoch).
const MIN_MICROS: i64 = -62_135_596_800_000_000;
const MAX_MICROS: i64 = 253_402_300_799_999_999;

fn check_range(micros: i64, text: &str) -> Result<i64, String> {
    if (MIN_MICROS..=MAX_MICROS).contains(&micros) {
        Ok(micros)
    } else {
        Err(format!("{text} is outside years 1..=9999"))
    }
}

fn parse_iso(s: &str) -> Result<i64, String> {
    let t = DateTime::parse_from_rfc3339(s)
        .map_err(|e| format!("{s:?} is not an RFC 3339 timestamp: {e}"))?;
    if t.timestamp_subsec_nanos() % 1_000 != 0 {
        return Err(format!("{s} has sub-microsecond digits (no rounding)"));
    }
    check_range(t.timestamp_micros(), s)
}

fn epoch_micros(n: &str, scale: i8) -> Result<i64, String> {
    // Seconds at scale 6 and milliseconds at scale 3 are both microseconds once unscaled.
    let unscaled = number::to_unscaled(n, 38, scale)?;
    let micros = i64::try_from(unscaled).map_err(|_| format!("{n} is outside years 1..=9999"))?;
    check_range(micros, n)
}

fn parse_date(s: &str) -> Result<i32, String> {
    let bad = || format!("{s:?} is not a YYYY-MM-DD date");
    if s.len() != 10 {
        return Err(bad());
    }
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| bad())?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).ok_or_else(bad)?;
    i32::try_from((d - epoch).num_days()).map_err(|_| bad())
}

/// Builds the Arrow array of `ty` from validated cells (`Cell::Null` is a null).
pub(crate) fn build_array(ty: &FieldType, cells: &[&Cell]) -> Result<ArrayRef, ArrowError> {
    Ok(match ty {
        FieldType::String | FieldType::Number | FieldType::Json => Arc::new(
            cells
                .iter()
                .map(|c| match c {
                    Cell::Str(s) => Some(s.as_str()),
                    _ => None,
                })
                .collect::<StringArray>(),
        ),
        FieldType::Int => Arc::new(
            cells
                .iter()
                .map(|c| match c {
                    Cell::I64(v) => Some(*v),
                    _ => None,
                })
                .collect::<Int64Array>(),
        ),
        FieldType::Decimal { precision, scale } => {
            Arc::new(decimal_array(cells, *precision, *scale)?)
        }
        FieldType::Double => Arc::new(
            cells
                .iter()
                .map(|c| match c {
                    Cell::F64(v) => Some(*v),
                    _ => None,
                })
                .collect::<Float64Array>(),
        ),
        FieldType::Timestamp(_) => Arc::new(
            cells
                .iter()
                .map(|c| match c {
                    Cell::Micros(v) => Some(*v),
                    _ => None,
                })
                .collect::<TimestampMicrosecondArray>()
                .with_timezone(UTC),
        ),
        FieldType::Date => Arc::new(
            cells
                .iter()
                .map(|c| match c {
                    Cell::Days(v) => Some(*v),
                    _ => None,
                })
                .collect::<Date32Array>(),
        ),
        FieldType::Bool => Arc::new(
            cells
                .iter()
                .map(|c| match c {
                    Cell::Bool(v) => Some(*v),
                    _ => None,
                })
                .collect::<BooleanArray>(),
        ),
        FieldType::Binary => Arc::new(binary_array(cells)),
        FieldType::StringSet | FieldType::NumberSet { .. } | FieldType::BinarySet => {
            let mut lengths = Vec::with_capacity(cells.len());
            let mut valid = Vec::with_capacity(cells.len());
            let mut children: Vec<&Cell> = Vec::new();
            for c in cells {
                match c {
                    Cell::List(items) => {
                        lengths.push(items.len());
                        valid.push(true);
                        children.extend(items.iter());
                    }
                    _ => {
                        lengths.push(0);
                        valid.push(false);
                    }
                }
            }
            let (child_ty, values): (_, ArrayRef) = match ty {
                FieldType::NumberSet { precision, scale } => (
                    arrow::datatypes::DataType::Decimal128(*precision, *scale),
                    Arc::new(decimal_array(&children, *precision, *scale)?),
                ),
                FieldType::BinarySet => (
                    arrow::datatypes::DataType::Binary,
                    Arc::new(binary_array(&children)),
                ),
                _ => (
                    arrow::datatypes::DataType::Utf8,
                    build_array(&FieldType::String, &children)?,
                ),
            };
            Arc::new(ListArray::try_new(
                list_element(child_ty),
                OffsetBuffer::from_lengths(lengths),
                values,
                Some(NullBuffer::from(valid)),
            )?)
        }
        FieldType::Struct { fields } => {
            let valid: Vec<bool> = cells.iter().map(|c| matches!(c, Cell::Struct(_))).collect();
            let mut children = Vec::with_capacity(fields.len());
            for (i, f) in fields.iter().enumerate() {
                let column: Vec<&Cell> = cells
                    .iter()
                    .map(|c| match c {
                        Cell::Struct(values) => values.get(i).unwrap_or(&NULL),
                        _ => &NULL,
                    })
                    .collect();
                children.push(build_array(&f.ty, &column)?);
            }
            Arc::new(StructArray::try_new(
                super::struct_fields(fields),
                children,
                Some(NullBuffer::from(valid)),
            )?)
        }
        FieldType::StringMap => {
            let mut lengths = Vec::with_capacity(cells.len());
            let mut valid = Vec::with_capacity(cells.len());
            let mut keys = Vec::new();
            let mut values = Vec::new();
            for c in cells {
                match c {
                    Cell::Map(entries) => {
                        lengths.push(entries.len());
                        valid.push(true);
                        for (k, v) in entries {
                            keys.push(k.as_str());
                            values.push(v.as_str());
                        }
                    }
                    _ => {
                        lengths.push(0);
                        valid.push(false);
                    }
                }
            }
            let entries_field = super::map_entries_field();
            let arrow::datatypes::DataType::Struct(entry_fields) = entries_field.data_type() else {
                return Err(ArrowError::SchemaError(
                    "map entries must be a struct".into(),
                ));
            };
            let entries = StructArray::try_new(
                entry_fields.clone(),
                vec![
                    Arc::new(StringArray::from(keys)),
                    Arc::new(StringArray::from(values)),
                ],
                None,
            )?;
            Arc::new(MapArray::try_new(
                entries_field,
                OffsetBuffer::from_lengths(lengths),
                entries,
                Some(NullBuffer::from(valid)),
                false,
            )?)
        }
    })
}

fn decimal_array(cells: &[&Cell], precision: u8, scale: i8) -> Result<Decimal128Array, ArrowError> {
    cells
        .iter()
        .map(|c| match c {
            Cell::Dec(v) => Some(*v),
            _ => None,
        })
        .collect::<Decimal128Array>()
        .with_precision_and_scale(precision, scale)
}

fn binary_array(cells: &[&Cell]) -> BinaryArray {
    cells
        .iter()
        .map(|c| match c {
            Cell::Bin(b) => Some(b.as_slice()),
            _ => None,
        })
        .collect()
}
