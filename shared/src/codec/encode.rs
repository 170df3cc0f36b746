//! Item → Arrow: [`BatchEncoder`] accumulates validated rows of one entity and emits
//! [`RecordBatch`]es in the lake schema.
//!
//! Each attribute of a row is validated and appended straight to its column
//! (`codec::columns`); when a value is refused, every column is truncated back to the rows
//! before it, so a bad value never leaves a half-written row behind and the caller can
//! quarantine that one item and continue. Memory is bounded by the rows buffered between two
//! [`BatchEncoder::finish`] calls, which the caller chooses (e.g. flush every 8,192 rows).
//!
//! Items come in as [`ItemRef`]s (borrowed: nothing is copied per attribute) or as
//! `serde_dynamo` items, which are borrowed into one.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow::error::ArrowError;

use super::columns::{ColumnBuilder, Path};
use super::view::{ItemRef, write_sorted_object};
use super::{UTC, lake_schema};
use crate::schema::{Attributes, Entity, FieldDef, ItemError};

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

/// How an item attribute is used by an entity's encoder.
#[derive(Debug, Clone, Copy)]
enum Slot {
    /// The typed column at this index.
    Column(usize),
    /// Implied by the entity (selector, version): not stored.
    Implied,
}

/// No attribute of the item fills the column.
const ABSENT: usize = usize::MAX;

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
    builders: Vec<ColumnBuilder>,
    slot_of: HashMap<Box<str>, Slot, foldhash::fast::FixedState>,
    /// Per column, the index of the item attribute filling it (scratch of one row).
    filled_by: Vec<usize>,
    /// Indexes of the item attributes bound for `_extra` (scratch of one row).
    extra_attrs: Vec<usize>,
    rows: usize,
    ops: Vec<Op>,
    seq_offsets: Vec<i32>,
    seq_bytes: Vec<u8>,
    event_times: Vec<i64>,
    extras: Vec<Option<(usize, usize)>>,
    extra_bytes: Vec<u8>,
}

impl BatchEncoder {
    /// An encoder for `entity`; rows are written in its latest version.
    pub fn new(entity: &Entity) -> Self {
        let latest = entity.latest();
        let columns: Vec<FieldDef> = latest.columns().cloned().collect();
        let mut slot_of = HashMap::with_hasher(foldhash::fast::FixedState::default());
        for (name, _) in entity.implied_attributes() {
            slot_of.insert(name.into_boxed_str(), Slot::Implied);
        }
        for (i, c) in columns.iter().enumerate() {
            slot_of.insert(c.name.clone().into_boxed_str(), Slot::Column(i));
        }
        BatchEncoder {
            entity: entity.clone(),
            schema: lake_schema(latest),
            builders: columns.iter().map(|c| ColumnBuilder::new(&c.ty)).collect(),
            filled_by: vec![ABSENT; columns.len()],
            columns,
            slot_of,
            extra_attrs: Vec::new(),
            rows: 0,
            ops: Vec::new(),
            seq_offsets: vec![0],
            seq_bytes: Vec::new(),
            event_times: Vec::new(),
            extras: Vec::new(),
            extra_bytes: Vec::new(),
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
        self.rows
    }

    /// Whether no row is buffered.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Validates `item` (any known version of the entity; it is upcast to the latest) and
    /// buffers it as one row. On error nothing is buffered.
    pub fn append(&mut self, item: &Attributes, meta: &RowMeta<'_>) -> Result<(), ItemError> {
        let mut view = ItemRef::from_attributes(item);
        self.append_view(&mut view, meta)
    }

    /// Like [`append`](Self::append) for a borrowed item, which is upcast in place (see
    /// [`Entity::resolve_view`]). On error nothing is buffered.
    pub fn append_view(
        &mut self,
        item: &mut ItemRef<'_>,
        meta: &RowMeta<'_>,
    ) -> Result<(), ItemError> {
        self.entity.resolve_view(item)?;
        self.append_resolved(item, meta)
    }

    /// Buffers an item already at the entity's latest version (upcast by
    /// [`Entity::resolve_view`]). On error nothing is buffered.
    pub fn append_resolved(
        &mut self,
        item: &ItemRef<'_>,
        meta: &RowMeta<'_>,
    ) -> Result<(), ItemError> {
        self.filled_by.fill(ABSENT);
        self.extra_attrs.clear();
        for (i, (name, _)) in item.iter().enumerate() {
            match self.slot_of.get(name) {
                Some(Slot::Column(c)) => self.filled_by[*c] = i,
                Some(Slot::Implied) => {}
                None => self.extra_attrs.push(i),
            }
        }
        for (c, col) in self.columns.iter().enumerate() {
            let value = item.entry(self.filled_by[c]).map(|(_, v)| v);
            if let Err(e) = self.builders[c].push(value, &Path::Top(&col.name), col.required) {
                self.rollback();
                return Err(e);
            }
        }
        let mut extra = None;
        if !self.extra_attrs.is_empty() {
            for &i in &self.extra_attrs {
                if let Some((name, v)) = item.entry(i)
                    && let Err(reason) = v.check_storable()
                {
                    self.rollback();
                    return Err(ItemError::InvalidValue {
                        attribute: name.to_string(),
                        reason,
                    });
                }
            }
            let start = self.extra_bytes.len();
            write_sorted_object(
                &mut self.extra_bytes,
                self.extra_attrs.iter().filter_map(|&i| item.raw_entry(i)),
                |out, v| v.write_dynamodb_json(out),
            );
            extra = Some((start, self.extra_bytes.len()));
        }
        self.push_meta(meta, extra);
        Ok(())
    }

    fn rollback(&mut self) {
        for b in &mut self.builders {
            b.truncate(self.rows);
        }
    }

    /// Buffers a row that carries only the key attributes (a keys-only REMOVE or EXPIRE):
    /// fields are null and required fields are not checked.
    pub fn append_keys(&mut self, keys: &Attributes, meta: &RowMeta<'_>) -> Result<(), ItemError> {
        self.append_keys_view(&ItemRef::from_attributes(keys), meta)
    }

    /// [`append_keys`](Self::append_keys) for a borrowed item.
    pub fn append_keys_view(
        &mut self,
        keys: &ItemRef<'_>,
        meta: &RowMeta<'_>,
    ) -> Result<(), ItemError> {
        let n_keys = self.entity.latest().keys().len();
        for (i, col) in self.columns.iter().enumerate() {
            let pushed = if i < n_keys {
                self.builders[i].push(keys.get(&col.name), &Path::Top(&col.name), true)
            } else {
                self.builders[i].push_null();
                Ok(())
            };
            if let Err(e) = pushed {
                self.rollback();
                return Err(e);
            }
        }
        self.push_meta(meta, None);
        Ok(())
    }

    fn push_meta(&mut self, meta: &RowMeta<'_>, extra: Option<(usize, usize)>) {
        self.ops.push(meta.op);
        self.seq_bytes.extend_from_slice(meta.seq.as_bytes());
        // Sequence texts are short; a batch never holds 2 GiB of them.
        self.seq_offsets
            .push(i32::try_from(self.seq_bytes.len()).unwrap_or(i32::MAX));
        self.event_times.push(meta.event_time_micros);
        self.extras.push(extra);
        self.rows += 1;
    }

    /// Emits the buffered rows as one batch and empties the buffer.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let rows = self.rows;
        self.rows = 0;
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for b in &mut self.builders {
            arrays.push(b.finish()?);
        }
        let latest = self.entity.latest();
        let version = i32::try_from(latest.version())
            .map_err(|_| ArrowError::InvalidArgumentError("schema version exceeds i32".into()))?;
        arrays.push(Arc::new(StringArray::from_iter_values(
            std::iter::repeat_n(self.entity.name(), rows),
        )));
        arrays.push(Arc::new(Int32Array::from(vec![version; rows])));
        arrays.push(Arc::new(StringArray::from_iter_values(
            std::mem::take(&mut self.ops).into_iter().map(Op::as_str),
        )));
        let seq_offsets = std::mem::replace(&mut self.seq_offsets, vec![0]);
        arrays.push(Arc::new(StringArray::try_new(
            OffsetBuffer::new(ScalarBuffer::from(seq_offsets)),
            Buffer::from_vec(std::mem::take(&mut self.seq_bytes)),
            None,
        )?));
        arrays.push(Arc::new(
            TimestampMicrosecondArray::from(std::mem::take(&mut self.event_times))
                .with_timezone(UTC),
        ));
        let extra_bytes = std::mem::take(&mut self.extra_bytes);
        let extras = std::mem::take(&mut self.extras);
        arrays.push(Arc::new(
            extras
                .into_iter()
                .map(|r| r.and_then(|(a, b)| std::str::from_utf8(&extra_bytes[a..b]).ok()))
                .collect::<StringArray>(),
        ));
        RecordBatch::try_new(self.schema.clone(), arrays)
    }
}
