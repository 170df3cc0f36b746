//! Column builders: one per lake column, validating each value against its field type and
//! appending it straight to Arrow-shaped buffers.
//!
//! A value is parsed exactly once, from the borrowed item, into its column's buffer — no
//! intermediate owned value per cell. A row is made atomic by truncation instead: when a
//! later column of the row refuses its value, [`ColumnBuilder::truncate`] brings every column
//! back to the row count before it (nested children included, since their lengths follow
//! from their parent's offsets), so a bad row leaves nothing behind.
//!
//! The validation rules are the codec's contract (module docs of `codec`): exact numbers,
//! µs timestamps within Spark's years 1–9999 and no sub-µs digits, `YYYY-MM-DD` dates, sets
//! without duplicates, struct fields the schema names, string maps of strings, and
//! DynamoDB's own limits for `json` values.

use std::borrow::Cow;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int64Array,
    ListArray, MapArray, StringArray, StructArray, TimestampMicrosecondArray,
};
use arrow::buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::DataType;
use arrow::error::ArrowError;
use chrono::{DateTime, Datelike, NaiveDate};

use super::view::AttrRef;
use super::{UTC, list_element, number};
use crate::schema::{FieldDef, FieldType, ItemError, TimestampEncoding};

/// Where a value sits in the item (`address.city`), rendered only for an error.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Path<'p> {
    /// A top-level attribute.
    Top(&'p str),
    /// A field inside a struct.
    Field(&'p Path<'p>, &'p str),
    /// A key inside a map.
    Key(&'p Path<'p>, &'p str),
}

impl Path<'_> {
    pub(crate) fn render(&self) -> String {
        match self {
            Path::Top(name) => (*name).to_string(),
            Path::Field(parent, name) | Path::Key(parent, name) => {
                format!("{}.{name}", parent.render())
            }
        }
    }
}

fn wrong(path: &Path<'_>, ty: &FieldType, v: &AttrRef<'_>) -> ItemError {
    ItemError::WrongType {
        attribute: path.render(),
        expected: ty.describe(),
        found: v.dynamo_type().to_string(),
    }
}

fn invalid(path: &Path<'_>, reason: String) -> ItemError {
    ItemError::InvalidValue {
        attribute: path.render(),
        reason,
    }
}

/// Variable-length values (UTF-8 or binary) as Arrow lays them out.
#[derive(Debug)]
struct VarData {
    offsets: Vec<i32>,
    bytes: Vec<u8>,
}

impl VarData {
    fn new() -> Self {
        VarData {
            offsets: vec![0],
            bytes: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Closes the value whose bytes were appended since the last one.
    fn close(&mut self, path: &Path<'_>) -> Result<(), ItemError> {
        let end = i32::try_from(self.bytes.len()).map_err(|_| {
            invalid(
                path,
                "more than 2 GiB of values in one batch; flush smaller batches".into(),
            )
        })?;
        self.offsets.push(end);
        Ok(())
    }

    fn push(&mut self, value: &[u8], path: &Path<'_>) -> Result<(), ItemError> {
        self.bytes.extend_from_slice(value);
        self.close(path)
    }

    fn push_empty(&mut self) {
        let end = self.offsets.last().copied().unwrap_or(0);
        self.offsets.push(end);
    }

    fn value(&self, i: usize) -> &[u8] {
        let (start, end) = (self.offsets[i] as usize, self.offsets[i + 1] as usize);
        &self.bytes[start..end]
    }

    fn truncate(&mut self, len: usize) {
        self.offsets.truncate(len + 1);
        let end = self.offsets.last().copied().unwrap_or(0);
        self.bytes.truncate(end as usize);
    }

    fn take(&mut self) -> (OffsetBuffer<i32>, Buffer) {
        let offsets = std::mem::replace(&mut self.offsets, vec![0]);
        let bytes = std::mem::take(&mut self.bytes);
        (
            OffsetBuffer::new(ScalarBuffer::from(offsets)),
            Buffer::from_vec(bytes),
        )
    }
}

fn offset_of(len: usize, path: &Path<'_>) -> Result<i32, ItemError> {
    i32::try_from(len).map_err(|_| {
        invalid(
            path,
            "more than 2^31 elements in one batch; flush smaller batches".into(),
        )
    })
}

#[derive(Debug)]
enum Data {
    /// `string`, `number`, `json` (UTF-8) and `binary`.
    Var(VarData),
    /// `int` and `timestamp` (µs).
    I64(Vec<i64>),
    /// `date` (days since the epoch).
    I32(Vec<i32>),
    /// `double`.
    F64(Vec<f64>),
    /// `decimal` (unscaled).
    I128(Vec<i128>),
    /// `bool`.
    Bool(Vec<bool>),
    /// Sets: element offsets and the elements (never null).
    List {
        offsets: Vec<i32>,
        child: Box<ColumnBuilder>,
    },
    /// `struct`: one child per field.
    Struct(Vec<(FieldDef, ColumnBuilder)>),
    /// `string_map`: entry offsets, keys and values.
    Map {
        offsets: Vec<i32>,
        keys: VarData,
        values: VarData,
    },
}

/// The values of one column of a batch being built.
#[derive(Debug)]
pub(crate) struct ColumnBuilder {
    ty: FieldType,
    valid: Vec<bool>,
    data: Data,
}

/// The field type of a set's elements.
fn element_type(ty: &FieldType) -> FieldType {
    match ty {
        FieldType::NumberSet { precision, scale } => FieldType::Decimal {
            precision: *precision,
            scale: *scale,
        },
        FieldType::BinarySet => FieldType::Binary,
        _ => FieldType::String,
    }
}

impl ColumnBuilder {
    /// An empty column of `ty`.
    pub(crate) fn new(ty: &FieldType) -> Self {
        let data = match ty {
            FieldType::String | FieldType::Number | FieldType::Json | FieldType::Binary => {
                Data::Var(VarData::new())
            }
            FieldType::Int | FieldType::Timestamp(_) => Data::I64(Vec::new()),
            FieldType::Date => Data::I32(Vec::new()),
            FieldType::Double => Data::F64(Vec::new()),
            FieldType::Decimal { .. } => Data::I128(Vec::new()),
            FieldType::Bool => Data::Bool(Vec::new()),
            FieldType::StringSet | FieldType::NumberSet { .. } | FieldType::BinarySet => {
                Data::List {
                    offsets: vec![0],
                    child: Box::new(ColumnBuilder::new(&element_type(ty))),
                }
            }
            FieldType::Struct { fields } => Data::Struct(
                fields
                    .iter()
                    .map(|f| (f.clone(), ColumnBuilder::new(&f.ty)))
                    .collect(),
            ),
            FieldType::StringMap => Data::Map {
                offsets: vec![0],
                keys: VarData::new(),
                values: VarData::new(),
            },
        };
        ColumnBuilder {
            ty: ty.clone(),
            valid: Vec::new(),
            data,
        }
    }

    /// Rows (values, nulls included) in the column.
    pub(crate) fn len(&self) -> usize {
        self.valid.len()
    }

    /// Drops every value from row `len` on (a refused row's partial writes).
    pub(crate) fn truncate(&mut self, len: usize) {
        self.valid.truncate(len);
        match &mut self.data {
            Data::Var(v) => v.truncate(len),
            Data::I64(v) => v.truncate(len),
            Data::I32(v) => v.truncate(len),
            Data::F64(v) => v.truncate(len),
            Data::I128(v) => v.truncate(len),
            Data::Bool(v) => v.truncate(len),
            Data::List { offsets, child } => {
                offsets.truncate(len + 1);
                child.truncate(offsets.last().copied().unwrap_or(0) as usize);
            }
            Data::Struct(children) => {
                for (_, c) in children {
                    c.truncate(len);
                }
            }
            Data::Map {
                offsets,
                keys,
                values,
            } => {
                offsets.truncate(len + 1);
                let end = offsets.last().copied().unwrap_or(0) as usize;
                keys.truncate(end);
                values.truncate(end);
            }
        }
    }

    /// Appends a null.
    pub(crate) fn push_null(&mut self) {
        self.valid.push(false);
        match &mut self.data {
            Data::Var(v) => v.push_empty(),
            Data::I64(v) => v.push(0),
            Data::I32(v) => v.push(0),
            Data::F64(v) => v.push(0.0),
            Data::I128(v) => v.push(0),
            Data::Bool(v) => v.push(false),
            Data::List { offsets, .. } | Data::Map { offsets, .. } => {
                let end = offsets.last().copied().unwrap_or(0);
                offsets.push(end);
            }
            Data::Struct(children) => {
                for (_, c) in children {
                    c.push_null();
                }
            }
        }
    }

    /// Validates `value` against the column's type and appends it. On error the column may
    /// hold partial writes of this row: the caller truncates.
    pub(crate) fn push(
        &mut self,
        value: Option<&AttrRef<'_>>,
        path: &Path<'_>,
        required: bool,
    ) -> Result<(), ItemError> {
        let v = match value {
            None | Some(AttrRef::Null(_)) => {
                return if required {
                    Err(ItemError::Missing {
                        attribute: path.render(),
                    })
                } else {
                    self.push_null();
                    Ok(())
                };
            }
            Some(v) => v,
        };
        self.push_value(v, path)?;
        self.valid.push(true);
        Ok(())
    }

    fn push_value(&mut self, v: &AttrRef<'_>, path: &Path<'_>) -> Result<(), ItemError> {
        use AttrRef as A;
        let bad = |r: String| invalid(path, r);
        match (&self.ty, &mut self.data, v) {
            (FieldType::String, Data::Var(d), A::S(s)) => d.push(s.as_bytes(), path),
            (FieldType::Number, Data::Var(d), A::N(n)) => {
                number::parse(n).map_err(bad)?;
                d.push(n.as_bytes(), path)
            }
            (FieldType::Json, Data::Var(d), v) => {
                v.check_storable().map_err(bad)?;
                v.write_dynamodb_json(&mut d.bytes);
                d.close(path)
            }
            (FieldType::Binary, Data::Var(d), A::B(b)) => d.push(b, path),
            (FieldType::Int, Data::I64(d), A::N(n)) => {
                d.push(number::to_i64(n).map_err(bad)?);
                Ok(())
            }
            (FieldType::Timestamp(enc), Data::I64(d), v) => {
                let micros = match (enc, v) {
                    (TimestampEncoding::Iso8601, A::S(s)) => parse_iso(s),
                    (TimestampEncoding::EpochSeconds, A::N(n)) => epoch_micros(n, 6),
                    (TimestampEncoding::EpochMillis, A::N(n)) => epoch_micros(n, 3),
                    _ => return Err(wrong(path, &self.ty, v)),
                };
                d.push(micros.map_err(bad)?);
                Ok(())
            }
            (FieldType::Date, Data::I32(d), A::S(s)) => {
                d.push(parse_date(s).map_err(bad)?);
                Ok(())
            }
            (FieldType::Double, Data::F64(d), A::N(n)) => {
                d.push(number::to_f64(n).map_err(bad)?);
                Ok(())
            }
            (FieldType::Decimal { precision, scale }, Data::I128(d), A::N(n)) => {
                d.push(number::to_unscaled(n, *precision, *scale).map_err(bad)?);
                Ok(())
            }
            (FieldType::Bool, Data::Bool(d), A::Bool(b)) => {
                d.push(*b);
                Ok(())
            }
            (FieldType::StringSet, Data::List { offsets, child }, A::Ss(items)) => {
                let start = child.len();
                for s in items {
                    child.push_value(&A::S(Cow::Borrowed(s)), path)?;
                    child.valid.push(true);
                }
                child.check_unique(start, path)?;
                offsets.push(offset_of(child.len(), path)?);
                Ok(())
            }
            (FieldType::NumberSet { .. }, Data::List { offsets, child }, A::Ns(items)) => {
                let start = child.len();
                for n in items {
                    child.push_value(&A::N(Cow::Borrowed(n)), path)?;
                    child.valid.push(true);
                }
                child.check_unique(start, path)?;
                offsets.push(offset_of(child.len(), path)?);
                Ok(())
            }
            (FieldType::BinarySet, Data::List { offsets, child }, A::Bs(items)) => {
                let start = child.len();
                for b in items {
                    child.push_value(&A::B(Cow::Borrowed(b)), path)?;
                    child.valid.push(true);
                }
                child.check_unique(start, path)?;
                offsets.push(offset_of(child.len(), path)?);
                Ok(())
            }
            (FieldType::Struct { fields }, Data::Struct(children), A::M(m)) => {
                if let Some((unknown, _)) =
                    m.iter().find(|(k, _)| !fields.iter().any(|f| f.name == *k))
                {
                    return Err(ItemError::UnknownField {
                        attribute: Path::Field(path, unknown).render(),
                    });
                }
                for (f, c) in children.iter_mut() {
                    c.push(m.get(&f.name), &Path::Field(path, &f.name), f.required)?;
                }
                Ok(())
            }
            (
                FieldType::StringMap,
                Data::Map {
                    offsets,
                    keys,
                    values,
                },
                A::M(m),
            ) => {
                let mut entries: Vec<(&str, &str)> = Vec::with_capacity(m.len());
                for (k, v) in m.iter() {
                    match v {
                        A::S(s) => entries.push((k, s)),
                        other => {
                            return Err(ItemError::WrongType {
                                attribute: Path::Key(path, k).render(),
                                expected: "string (string_map value)".into(),
                                found: other.dynamo_type().into(),
                            });
                        }
                    }
                }
                entries.sort_unstable();
                for (k, v) in entries {
                    keys.push(k.as_bytes(), path)?;
                    values.push(v.as_bytes(), path)?;
                }
                offsets.push(offset_of(keys.len(), path)?);
                Ok(())
            }
            (ty, _, v) => Err(wrong(path, ty, v)),
        }
    }

    /// DynamoDB sets have unique members; a duplicate would make the item unwritable on the
    /// way back, so it is refused here. Checks the elements from `start` on.
    fn check_unique(&self, start: usize, path: &Path<'_>) -> Result<(), ItemError> {
        let end = self.len();
        let duplicate = match &self.data {
            Data::Var(d) => has_duplicate((start..end).map(|i| d.value(i))),
            Data::I128(d) => has_duplicate(d[start..end].iter()),
            _ => false,
        };
        if duplicate {
            Err(invalid(path, "duplicate set member".into()))
        } else {
            Ok(())
        }
    }

    /// Emits the column as an Arrow array and empties it.
    pub(crate) fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        let nulls = take_nulls(&mut self.valid);
        Ok(match (&self.ty, &mut self.data) {
            (FieldType::Binary, Data::Var(d)) => {
                let (offsets, values) = d.take();
                Arc::new(BinaryArray::try_new(offsets, values, nulls)?)
            }
            (_, Data::Var(d)) => {
                let (offsets, values) = d.take();
                Arc::new(StringArray::try_new(offsets, values, nulls)?)
            }
            (FieldType::Timestamp(_), Data::I64(v)) => Arc::new(
                TimestampMicrosecondArray::new(ScalarBuffer::from(std::mem::take(v)), nulls)
                    .with_timezone(UTC),
            ),
            (_, Data::I64(v)) => Arc::new(Int64Array::new(
                ScalarBuffer::from(std::mem::take(v)),
                nulls,
            )),
            (_, Data::I32(v)) => Arc::new(Date32Array::new(
                ScalarBuffer::from(std::mem::take(v)),
                nulls,
            )),
            (_, Data::F64(v)) => Arc::new(Float64Array::new(
                ScalarBuffer::from(std::mem::take(v)),
                nulls,
            )),
            (FieldType::Decimal { precision, scale }, Data::I128(v)) => Arc::new(
                Decimal128Array::new(ScalarBuffer::from(std::mem::take(v)), nulls)
                    .with_precision_and_scale(*precision, *scale)?,
            ),
            (_, Data::I128(v)) => Arc::new(Decimal128Array::new(
                ScalarBuffer::from(std::mem::take(v)),
                nulls,
            )),
            (_, Data::Bool(v)) => Arc::new(BooleanArray::new(
                BooleanBuffer::from(std::mem::take(v)),
                nulls,
            )),
            (_, Data::List { offsets, child }) => {
                let offsets = std::mem::replace(offsets, vec![0]);
                let child_type = super::arrow_type(&child.ty);
                let values = child.finish()?;
                Arc::new(ListArray::try_new(
                    list_element(child_type),
                    OffsetBuffer::new(ScalarBuffer::from(offsets)),
                    values,
                    nulls,
                )?)
            }
            (FieldType::Struct { fields }, Data::Struct(children)) => {
                let arrays = children
                    .iter_mut()
                    .map(|(_, c)| c.finish())
                    .collect::<Result<Vec<_>, _>>()?;
                Arc::new(StructArray::try_new(
                    super::struct_fields(fields),
                    arrays,
                    nulls,
                )?)
            }
            (_, Data::Struct(_)) => {
                return Err(ArrowError::SchemaError(
                    "struct column without fields".into(),
                ));
            }
            (
                _,
                Data::Map {
                    offsets,
                    keys,
                    values,
                },
            ) => {
                let offsets = std::mem::replace(offsets, vec![0]);
                let entries_field = super::map_entries_field();
                let DataType::Struct(entry_fields) = entries_field.data_type() else {
                    return Err(ArrowError::SchemaError(
                        "map entries must be a struct".into(),
                    ));
                };
                let (ko, kv) = keys.take();
                let (vo, vv) = values.take();
                let entries = StructArray::try_new(
                    entry_fields.clone(),
                    vec![
                        Arc::new(StringArray::try_new(ko, kv, None)?),
                        Arc::new(StringArray::try_new(vo, vv, None)?),
                    ],
                    None,
                )?;
                Arc::new(MapArray::try_new(
                    entries_field,
                    OffsetBuffer::new(ScalarBuffer::from(offsets)),
                    entries,
                    nulls,
                    false,
                )?)
            }
        })
    }
}

fn take_nulls(valid: &mut Vec<bool>) -> Option<NullBuffer> {
    let valid = std::mem::take(valid);
    if valid.iter().all(|v| *v) {
        None
    } else {
        Some(NullBuffer::from(valid))
    }
}

/// Whether any two members are equal (sets are small: pairwise below 16 members).
fn has_duplicate<T: Ord>(members: impl Iterator<Item = T>) -> bool {
    let mut all: Vec<T> = members.collect();
    if all.len() < 16 {
        return all
            .iter()
            .enumerate()
            .any(|(i, a)| all[i + 1..].iter().any(|b| a == b));
    }
    all.sort_unstable();
    all.windows(2).any(|w| w[0] == w[1])
}

/// Validates one value of `ty` without keeping it (schema defaults, decoded rows).
pub(crate) fn check_value(
    ty: &FieldType,
    value: Option<&AttrRef<'_>>,
    path: &str,
    required: bool,
) -> Result<(), ItemError> {
    ColumnBuilder::new(ty).push(value, &Path::Top(path), required)
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

/// Days from 0001-01-01 (CE day 1) to 1970-01-01.
const UNIX_EPOCH_CE_DAYS: i32 = 719_163;

fn digits_at(b: &[u8], range: std::ops::Range<usize>) -> Option<u32> {
    b.get(range)?.iter().try_fold(0u32, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

/// The common shape `YYYY-MM-DDTHH:MM:SS[.f…]Z` without a general parser; `None` when the
/// text has another shape (chrono decides then).
fn parse_iso_utc_fast(s: &str) -> Option<Result<i64, String>> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[b.len() - 1] != b'Z'
    {
        return None;
    }
    let (year, month, day) = (
        digits_at(b, 0..4)?,
        digits_at(b, 5..7)?,
        digits_at(b, 8..10)?,
    );
    let (hour, minute, second) = (
        digits_at(b, 11..13)?,
        digits_at(b, 14..16)?,
        digits_at(b, 17..19)?,
    );
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
    let frac = &b[19..b.len() - 1];
    let mut nanos: i64 = 0;
    if !frac.is_empty() {
        let digits = frac.strip_prefix(b".")?;
        if digits.is_empty() || digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        for (i, d) in digits.iter().enumerate().take(9) {
            nanos += i64::from(d - b'0') * 10_i64.pow(8 - i as u32);
        }
    }
    if nanos % 1_000 != 0 {
        return Some(Err(format!("{s} has sub-microsecond digits (no rounding)")));
    }
    let days = i64::from(date.num_days_from_ce() - UNIX_EPOCH_CE_DAYS);
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    Some(check_range(secs * 1_000_000 + nanos / 1_000, s))
}

fn parse_iso(s: &str) -> Result<i64, String> {
    if let Some(fast) = parse_iso_utc_fast(s) {
        return fast;
    }
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
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(bad());
    }
    let (Some(y), Some(m), Some(d)) = (digits_at(b, 0..4), digits_at(b, 5..7), digits_at(b, 8..10))
    else {
        return Err(bad());
    };
    let date = i32::try_from(y)
        .ok()
        .and_then(|y| NaiveDate::from_ymd_opt(y, m, d))
        .ok_or_else(bad)?;
    Ok(date.num_days_from_ce() - UNIX_EPOCH_CE_DAYS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_iso_agrees_with_chrono() {
        for s in [
            "2026-03-01T16:34:25.000Z",
            "2026-03-01T16:34:25Z",
            "1970-01-01T00:00:00.000001Z",
            "1969-12-31T23:59:59.999999Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999Z",
            "2024-02-29T12:00:00.5Z",
            "2026-03-01T16:34:25.123456789Z",
            "2023-02-29T12:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-03-01T24:00:00Z",
        ] {
            let slow = DateTime::parse_from_rfc3339(s)
                .map_err(|e| e.to_string())
                .and_then(|t| {
                    if t.timestamp_subsec_nanos() % 1_000 != 0 {
                        Err("sub-µs".into())
                    } else {
                        check_range(t.timestamp_micros(), s)
                    }
                });
            assert_eq!(parse_iso(s).ok(), slow.ok(), "{s}");
        }
        assert_eq!(
            parse_iso("2026-03-01T17:34:25+01:00"),
            parse_iso("2026-03-01T16:34:25Z")
        );
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date("1970-01-01"), Ok(0));
        assert_eq!(parse_date("1969-12-31"), Ok(-1));
        assert_eq!(parse_date("2026-11-21"), Ok(20_778));
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        for s in ["0001-01-01", "9999-12-31", "2024-02-29", "1900-03-01"] {
            let chrono = (NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap() - epoch).num_days();
            assert_eq!(parse_date(s).map(i64::from), Ok(chrono), "{s}");
        }
        for bad in [
            "2026-02-30",
            "2026-1-01",
            "20261121",
            "2026-11-21T00:00:00Z",
            "abcd-ef-gh",
        ] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_refused_row_is_truncated_away() {
        let ty = FieldType::Struct {
            fields: vec![
                FieldDef {
                    name: "a".into(),
                    ty: FieldType::StringSet,
                    required: false,
                },
                FieldDef {
                    name: "b".into(),
                    ty: FieldType::Int,
                    required: true,
                },
            ],
        };
        let mut col = ColumnBuilder::new(&ty);
        let item = |json: &str| -> AttrRef<'static> {
            let v: AttrRef<'_> = serde_json::from_str(json).unwrap();
            v.into_owned()
        };
        let good = item(r#"{"M":{"a":{"SS":["x","y"]},"b":{"N":"1"}}}"#);
        let bad = item(r#"{"M":{"a":{"SS":["z"]},"b":{"N":"1.5"}}}"#);
        col.push(Some(&good), &Path::Top("s"), false).unwrap();
        let err = col.push(Some(&bad), &Path::Top("s"), false).unwrap_err();
        assert_eq!(err.attribute(), Some("s.b"));
        col.truncate(1);
        col.push(None, &Path::Top("s"), false).unwrap();
        let array = col.finish().unwrap();
        assert_eq!(array.len(), 2);
        assert_eq!(array.null_count(), 1);
        let s = array.as_any().downcast_ref::<StructArray>().unwrap();
        let list = s.column(0).as_any().downcast_ref::<ListArray>().unwrap();
        assert_eq!(
            list.values().len(),
            2,
            "the refused row's set member is gone"
        );
    }
}
