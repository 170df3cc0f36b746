//! Arrow → items: reads lake files, including those Spark/Databricks writes, back into
//! DynamoDB items of an entity's latest version.
//!
//! Spark's physical choices are accepted wherever the value keeps its meaning: decimals of
//! any width (`Decimal32/64/128/256`, i.e. INT32/INT64/FIXED_LEN_BYTE_ARRAY in Parquet) as
//! long as the value fits the declared precision and scale *exactly*; timestamps in any unit
//! with or without a time zone (INT96 and `TIMESTAMP_NTZ` are taken as UTC instants; read
//! Parquet through [`crate::lake::read_parquet`], which maps INT96 to microseconds so dates
//! beyond 2262 survive); `Date32`/`Date64`; `List`/`LargeList`; `Struct`; `Map`; the large
//! and view variants of strings and binaries.
//!
//! A row is decoded with the fields of the version it was stored with (`_schema_version`,
//! else the latest), upcast, and — when it was older — validated again against the latest
//! version, so every item handed back satisfies the latest version exactly.
//!
//! Every problem is reported per row as an [`ItemError`] naming the column (dotted path into
//! structs): a missing required column, a type that cannot hold the declared field, a value
//! out of range, an unknown non-null column or struct field (nothing is dropped silently).
//! Columns starting with `_` other than the lake's metadata columns are ignored, so files
//! carrying Databricks' bookkeeping (`_rescued_data`, `_commit_version`, ...) still read.

use std::collections::HashSet;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{
    DataType, Date64Type, Decimal32Type, Decimal64Type, Decimal128Type, Decimal256Type,
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use chrono::{DateTime, NaiveDate, SecondsFormat};
use serde_dynamo::AttributeValue;

use super::columns::check_value;
use super::encode::Op;
use super::number;
use super::view::AttrRef;
use super::{COL_EVENT_TIME, COL_EXTRA, COL_OP, COL_SCHEMA_VERSION, COL_SEQ};
use crate::schema::{Attributes, Entity, FieldDef, FieldType, ItemError, TimestampEncoding};

/// One row read back.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedRow {
    /// The item at the entity's latest version, implied attributes restored.
    pub item: Attributes,
    /// The version the row was stored with (`_schema_version`, else the latest).
    pub stored_version: i64,
    /// `_op`, when the file has it.
    pub op: Option<Op>,
    /// `_seq`, when the file has it.
    pub seq: Option<String>,
    /// `_event_time` in µs, when the file has it.
    pub event_time_micros: Option<i64>,
}

/// Reads record batches of one entity back into items.
#[derive(Debug, Clone)]
pub struct BatchDecoder {
    entity: Entity,
}

impl BatchDecoder {
    /// A decoder producing items of `entity`'s latest version.
    pub fn new(entity: &Entity) -> Self {
        BatchDecoder {
            entity: entity.clone(),
        }
    }

    /// Decodes every row; each row is an item or the reason it was refused.
    pub fn decode(&self, batch: &RecordBatch) -> Vec<Result<DecodedRow, ItemError>> {
        (0..batch.num_rows())
            .map(|row| self.decode_row(batch, row))
            .collect()
    }

    /// Decodes row `row` of `batch` (see [`BatchDecoder::decode`]).
    pub fn decode_one(&self, batch: &RecordBatch, row: usize) -> Result<DecodedRow, ItemError> {
        self.decode_row(batch, row)
    }

    /// Decodes only the table's key columns and the named fields of the latest version from
    /// row `row`, ignoring every other column: what a delete needs (the key, and perhaps the
    /// attribute a guarded delete compares). Missing keys are errors; a missing named field
    /// is simply absent.
    pub fn decode_columns(
        &self,
        batch: &RecordBatch,
        row: usize,
        names: &[&str],
    ) -> Result<Attributes, ItemError> {
        let latest = self.entity.latest();
        let mut item = Attributes::new();
        for key in latest.keys() {
            let value = match batch.column_by_name(&key.name) {
                Some(array) => value_at(&key.ty, array, row, &key.name)?,
                None => None,
            };
            let value = value.ok_or_else(|| ItemError::Missing {
                attribute: key.name.clone(),
            })?;
            item.insert(key.name.clone(), value);
        }
        for field in latest
            .fields()
            .iter()
            .filter(|f| names.contains(&f.name.as_str()))
        {
            if let Some(array) = batch.column_by_name(&field.name)
                && let Some(v) = value_at(&field.ty, array, row, &field.name)?
            {
                item.insert(field.name.clone(), v);
            }
        }
        Ok(item)
    }

    fn decode_row(&self, batch: &RecordBatch, row: usize) -> Result<DecodedRow, ItemError> {
        let latest = self.entity.latest().version();
        let stored_version = match batch.column_by_name(COL_SCHEMA_VERSION) {
            Some(col) if !col.is_null(row) => {
                integer_at(col, row).ok_or_else(|| ItemError::InvalidVersion {
                    attribute: COL_SCHEMA_VERSION.into(),
                    reason: format!("not an integer column ({})", col.data_type()),
                })?
            }
            _ => latest,
        };
        let version =
            self.entity
                .version(stored_version)
                .ok_or_else(|| ItemError::UnknownVersion {
                    attribute: COL_SCHEMA_VERSION.into(),
                    entity: self.entity.name().into(),
                    version: stored_version,
                    known: format!("{}..={}", self.entity.oldest().version(), latest),
                })?;
        let mut item = Attributes::new();
        let mut known: HashSet<&str> = HashSet::new();
        for col in version.columns() {
            known.insert(col.name.as_str());
            let value = match batch.column_by_name(&col.name) {
                Some(array) => value_at(&col.ty, array, row, &col.name)?,
                None => None,
            };
            match value {
                Some(v) => {
                    item.insert(col.name.clone(), v);
                }
                None if col.required => {
                    return Err(ItemError::Missing {
                        attribute: col.name.clone(),
                    });
                }
                None => {}
            }
        }
        for (field, array) in batch.schema().fields().iter().zip(batch.columns()) {
            let name = field.name().as_str();
            if !known.contains(name) && !name.starts_with('_') && !array.is_null(row) {
                return Err(ItemError::UnknownField {
                    attribute: name.to_string(),
                });
            }
        }
        let implied = self.entity.implied_attributes();
        if let Some(extra) = batch.column_by_name(COL_EXTRA)
            && !extra.is_null(row)
        {
            let text = string_at(extra, row).ok_or_else(|| ItemError::WrongType {
                attribute: COL_EXTRA.into(),
                expected: "string".into(),
                found: extra.data_type().to_string(),
            })?;
            let attrs: Attributes =
                serde_json::from_str(text).map_err(|e| ItemError::InvalidValue {
                    attribute: COL_EXTRA.into(),
                    reason: format!("not DynamoDB-JSON: {e}"),
                })?;
            for (k, v) in attrs {
                super::check_storable(&v).map_err(|r| ItemError::InvalidValue {
                    attribute: format!("{COL_EXTRA}.{k}"),
                    reason: r,
                })?;
                if item.contains_key(&k) || implied.iter().any(|(n, _)| n == &k) {
                    return Err(ItemError::InvalidValue {
                        attribute: COL_EXTRA.into(),
                        reason: format!("{k} is also a typed column"),
                    });
                }
                item.insert(k, v);
            }
        }
        let mut item = self
            .entity
            .upcast_from(stored_version, std::borrow::Cow::Owned(item))?
            .into_owned();
        if stored_version != latest {
            // The upcast item must satisfy the latest version, exactly as on the write path.
            for col in self.entity.latest().columns() {
                check_value(
                    &col.ty,
                    item.get(&col.name).map(AttrRef::from_attribute).as_ref(),
                    &col.name,
                    col.required,
                )?;
            }
        }
        for (k, v) in implied {
            item.insert(k, v);
        }
        let op = match batch.column_by_name(COL_OP) {
            Some(c) if !c.is_null(row) => Some(
                string_at(c, row)
                    .and_then(|s| s.parse::<Op>().ok())
                    .ok_or_else(|| ItemError::InvalidValue {
                        attribute: COL_OP.into(),
                        reason: "not INSERT|MODIFY|REMOVE|EXPIRE|SNAPSHOT".into(),
                    })?,
            ),
            _ => None,
        };
        let seq = batch
            .column_by_name(COL_SEQ)
            .filter(|c| !c.is_null(row))
            .and_then(|c| string_at(c, row))
            .map(str::to_string);
        let event_time_micros = match batch.column_by_name(COL_EVENT_TIME) {
            Some(c) if !c.is_null(row) => Some(micros_at(c, row, COL_EVENT_TIME)?),
            _ => None,
        };
        Ok(DecodedRow {
            item,
            stored_version,
            op,
            seq,
            event_time_micros,
        })
    }
}

fn wrong(path: &str, ty: &FieldType, array: &dyn Array) -> ItemError {
    ItemError::WrongType {
        attribute: path.to_string(),
        expected: ty.describe(),
        found: array.data_type().to_string(),
    }
}

fn invalid(path: &str, reason: String) -> ItemError {
    ItemError::InvalidValue {
        attribute: path.to_string(),
        reason,
    }
}

fn string_at(array: &dyn Array, row: usize) -> Option<&str> {
    match array.data_type() {
        DataType::Utf8 => Some(array.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => Some(array.as_string::<i64>().value(row)),
        DataType::Utf8View => Some(array.as_string_view().value(row)),
        _ => None,
    }
}

fn binary_at(array: &dyn Array, row: usize) -> Option<&[u8]> {
    match array.data_type() {
        DataType::Binary => Some(array.as_binary::<i32>().value(row)),
        DataType::LargeBinary => Some(array.as_binary::<i64>().value(row)),
        DataType::BinaryView => Some(array.as_binary_view().value(row)),
        DataType::FixedSizeBinary(_) => Some(array.as_fixed_size_binary().value(row)),
        _ => None,
    }
}

fn integer_at(array: &dyn Array, row: usize) -> Option<i64> {
    Some(match array.data_type() {
        DataType::Int8 => array.as_primitive::<Int8Type>().value(row).into(),
        DataType::Int16 => array.as_primitive::<Int16Type>().value(row).into(),
        DataType::Int32 => array.as_primitive::<Int32Type>().value(row).into(),
        DataType::Int64 => array.as_primitive::<Int64Type>().value(row),
        DataType::UInt8 => array.as_primitive::<UInt8Type>().value(row).into(),
        DataType::UInt16 => array.as_primitive::<UInt16Type>().value(row).into(),
        DataType::UInt32 => array.as_primitive::<UInt32Type>().value(row).into(),
        DataType::UInt64 => i64::try_from(array.as_primitive::<UInt64Type>().value(row)).ok()?,
        _ => return None,
    })
}

/// `(unscaled, scale)` of an exact numeric cell.
fn decimal_at(array: &dyn Array, row: usize) -> Option<(i128, i8)> {
    Some(match array.data_type() {
        DataType::Decimal32(_, s) => (array.as_primitive::<Decimal32Type>().value(row).into(), *s),
        DataType::Decimal64(_, s) => (array.as_primitive::<Decimal64Type>().value(row).into(), *s),
        DataType::Decimal128(_, s) => (array.as_primitive::<Decimal128Type>().value(row), *s),
        DataType::Decimal256(_, s) => (
            array
                .as_primitive::<Decimal256Type>()
                .value(row)
                .to_i128()?,
            *s,
        ),
        _ => (integer_at(array, row)?.into(), 0),
    })
}

/// Rescales `(v, from)` to `scale` exactly, within `precision` digits.
fn rescale(v: i128, from: i8, precision: u8, scale: i8, path: &str) -> Result<i128, ItemError> {
    let text = number::format_unscaled_any(v, from);
    number::to_unscaled(&text, precision, scale).map_err(|r| invalid(path, r))
}

fn micros_at(array: &dyn Array, row: usize, path: &str) -> Result<i64, ItemError> {
    let overflow = || invalid(path, "timestamp out of range".into());
    match array.data_type() {
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            Ok(array.as_primitive::<TimestampMicrosecondType>().value(row))
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => array
            .as_primitive::<TimestampMillisecondType>()
            .value(row)
            .checked_mul(1_000)
            .ok_or_else(overflow),
        DataType::Timestamp(TimeUnit::Second, _) => array
            .as_primitive::<TimestampSecondType>()
            .value(row)
            .checked_mul(1_000_000)
            .ok_or_else(overflow),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            let ns = array.as_primitive::<TimestampNanosecondType>().value(row);
            if ns % 1_000 != 0 {
                return Err(invalid(
                    path,
                    format!("{ns} ns has sub-microsecond digits (no rounding)"),
                ));
            }
            Ok(ns / 1_000)
        }
        _ => Err(ItemError::WrongType {
            attribute: path.to_string(),
            expected: "timestamp".into(),
            found: array.data_type().to_string(),
        }),
    }
}

/// The attribute for `array[row]` under field type `ty` (`None` when null).
pub(crate) fn value_at(
    ty: &FieldType,
    array: &ArrayRef,
    row: usize,
    path: &str,
) -> Result<Option<AttributeValue>, ItemError> {
    if array.is_null(row) {
        return Ok(None);
    }
    let a = array.as_ref();
    Ok(Some(match ty {
        FieldType::String => AttributeValue::S(
            string_at(a, row)
                .ok_or_else(|| wrong(path, ty, a))?
                .to_string(),
        ),
        FieldType::Number => match string_at(a, row) {
            Some(s) => {
                number::parse(s).map_err(|r| invalid(path, r))?;
                AttributeValue::N(s.to_string())
            }
            None => {
                let (v, s) = decimal_at(a, row).ok_or_else(|| wrong(path, ty, a))?;
                let text = number::format_unscaled_any(v, s);
                number::parse(&text).map_err(|r| invalid(path, r))?;
                AttributeValue::N(text)
            }
        },
        FieldType::Int => {
            let (v, s) = decimal_at(a, row).ok_or_else(|| wrong(path, ty, a))?;
            let v = rescale(v, s, 38, 0, path)?;
            let v = i64::try_from(v)
                .map_err(|_| invalid(path, format!("{v} does not fit a 64-bit integer")))?;
            AttributeValue::N(v.to_string())
        }
        FieldType::Decimal { precision, scale } => {
            let (v, s) = decimal_at(a, row).ok_or_else(|| wrong(path, ty, a))?;
            let v = rescale(v, s, *precision, *scale, path)?;
            AttributeValue::N(number::format_unscaled(v, *scale))
        }
        FieldType::Double => {
            let v = match a.data_type() {
                DataType::Float64 => a.as_primitive::<Float64Type>().value(row),
                DataType::Float32 => a.as_primitive::<Float32Type>().value(row).into(),
                _ => {
                    let (v, s) = decimal_at(a, row).ok_or_else(|| wrong(path, ty, a))?;
                    number::to_f64(&number::format_unscaled_any(v, s))
                        .map_err(|r| invalid(path, r))?
                }
            };
            let text = number::format_f64(v).map_err(|r| invalid(path, r))?;
            number::parse(&text).map_err(|r| invalid(path, r))?;
            AttributeValue::N(text)
        }
        FieldType::Timestamp(enc) => {
            let micros = micros_at(a, row, path)?;
            match enc {
                TimestampEncoding::Iso8601 => {
                    let t = DateTime::from_timestamp_micros(micros)
                        .ok_or_else(|| invalid(path, format!("{micros} µs is out of range")))?;
                    AttributeValue::S(t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
                }
                TimestampEncoding::EpochSeconds => {
                    AttributeValue::N(number::format_unscaled(micros.into(), 6))
                }
                TimestampEncoding::EpochMillis => {
                    AttributeValue::N(number::format_unscaled(micros.into(), 3))
                }
            }
        }
        FieldType::Date => {
            let days: i64 = match a.data_type() {
                DataType::Date32 => a
                    .as_primitive::<arrow::datatypes::Date32Type>()
                    .value(row)
                    .into(),
                DataType::Date64 => {
                    let ms = a.as_primitive::<Date64Type>().value(row);
                    if ms % 86_400_000 != 0 {
                        return Err(invalid(path, format!("{ms} ms is not a whole day")));
                    }
                    ms / 86_400_000
                }
                _ => return Err(wrong(path, ty, a)),
            };
            let date = NaiveDate::from_ymd_opt(1970, 1, 1)
                .and_then(|e| {
                    chrono::TimeDelta::try_days(days).and_then(|d| e.checked_add_signed(d))
                })
                .ok_or_else(|| invalid(path, format!("{days} days is out of range")))?;
            AttributeValue::S(date.format("%Y-%m-%d").to_string())
        }
        FieldType::Bool => {
            let b = a.as_boolean_opt().ok_or_else(|| wrong(path, ty, a))?;
            AttributeValue::Bool(b.value(row))
        }
        FieldType::Binary => AttributeValue::B(
            binary_at(a, row)
                .ok_or_else(|| wrong(path, ty, a))?
                .to_vec(),
        ),
        FieldType::StringSet | FieldType::NumberSet { .. } | FieldType::BinarySet => {
            let elements = match a.data_type() {
                DataType::List(_) => a.as_list::<i32>().value(row),
                DataType::LargeList(_) => a.as_list::<i64>().value(row),
                _ => return Err(wrong(path, ty, a)),
            };
            if elements.is_empty() {
                // DynamoDB has no empty sets: an empty list is an absent attribute.
                return Ok(None);
            }
            let element_ty = match ty {
                FieldType::NumberSet { precision, scale } => FieldType::Decimal {
                    precision: *precision,
                    scale: *scale,
                },
                FieldType::BinarySet => FieldType::Binary,
                _ => FieldType::String,
            };
            let mut seen = HashSet::new();
            let mut strings = Vec::new();
            let mut bins = Vec::new();
            for i in 0..elements.len() {
                let epath = format!("{path}[{i}]");
                let v = value_at(&element_ty, &elements, i, &epath)?
                    .ok_or_else(|| invalid(&epath, "sets cannot hold nulls".into()))?;
                let duplicate = match v {
                    AttributeValue::S(s) | AttributeValue::N(s) => {
                        let dup = !seen.insert(s.clone().into_bytes());
                        strings.push(s);
                        dup
                    }
                    AttributeValue::B(b) => {
                        let dup = !seen.insert(b.clone());
                        bins.push(b);
                        dup
                    }
                    _ => false,
                };
                if duplicate {
                    return Err(invalid(&epath, "duplicate set member".into()));
                }
            }
            match ty {
                FieldType::NumberSet { .. } => AttributeValue::Ns(strings),
                FieldType::BinarySet => AttributeValue::Bs(bins),
                _ => AttributeValue::Ss(strings),
            }
        }
        FieldType::Struct { fields } => {
            let s = a.as_struct_opt().ok_or_else(|| wrong(path, ty, a))?;
            for (name, child) in s.column_names().iter().zip(s.columns()) {
                if !fields.iter().any(|f| f.name == *name) && !child.is_null(row) {
                    return Err(ItemError::UnknownField {
                        attribute: format!("{path}.{name}"),
                    });
                }
            }
            let mut map = std::collections::HashMap::new();
            for FieldDef { name, ty, required } in fields {
                let cpath = format!("{path}.{name}");
                let v = match s.column_by_name(name) {
                    Some(child) => value_at(ty, child, row, &cpath)?,
                    None => None,
                };
                match v {
                    Some(v) => {
                        map.insert(name.clone(), v);
                    }
                    None if *required => return Err(ItemError::Missing { attribute: cpath }),
                    None => {}
                }
            }
            AttributeValue::M(map)
        }
        FieldType::StringMap => {
            let m = a.as_map_opt().ok_or_else(|| wrong(path, ty, a))?;
            let entries = m.value(row);
            let (keys, values) = (entries.column(0), entries.column(1));
            let mut map = std::collections::HashMap::new();
            for i in 0..entries.len() {
                let k = string_at(keys.as_ref(), i).ok_or_else(|| wrong(path, ty, a))?;
                let vpath = format!("{path}.{k}");
                if values.is_null(i) {
                    return Err(ItemError::Missing { attribute: vpath });
                }
                let v = string_at(values.as_ref(), i).ok_or_else(|| wrong(&vpath, ty, a))?;
                map.insert(k.to_string(), AttributeValue::S(v.to_string()));
            }
            AttributeValue::M(map)
        }
        FieldType::Json => {
            let text = string_at(a, row).ok_or_else(|| wrong(path, ty, a))?;
            let v: AttributeValue = serde_json::from_str(text)
                .map_err(|e| invalid(path, format!("not DynamoDB-JSON: {e}")))?;
            super::check_storable(&v).map_err(|r| invalid(path, r))?;
            v
        }
    }))
}
