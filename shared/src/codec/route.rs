//! Routing a mixed stream of items (a single-table design) to one encoder per entity.
//!
//! A DynamoDB stream batch interleaves entities; each entity has its own lake schema and its
//! own files (`entity=<name>` partitions). [`EntityEncoders`] selects the entity of each item
//! with the registry and appends it to that entity's [`BatchEncoder`], so a handler is a loop
//! over records plus one [`EntityEncoders::finish`] at the end.

use std::collections::BTreeMap;

use arrow::array::RecordBatch;
use arrow::error::ArrowError;

use super::encode::{BatchEncoder, RowMeta};
use super::view::ItemRef;
use crate::schema::{Attributes, Entity, ItemError, Registry, SchemaError};

/// The encoder of `entity`, created on first use (without allocating a key per row).
fn encoder_of<'e>(
    encoders: &'e mut BTreeMap<String, BatchEncoder>,
    entity: &Entity,
) -> &'e mut BatchEncoder {
    if !encoders.contains_key(entity.name()) {
        encoders.insert(entity.name().to_string(), BatchEncoder::new(entity));
    }
    encoders
        .get_mut(entity.name())
        .unwrap_or_else(|| unreachable!("inserted above"))
}

/// One [`BatchEncoder`] per entity, created on first use.
#[derive(Debug)]
pub struct EntityEncoders {
    registry: Registry,
    encoders: BTreeMap<String, BatchEncoder>,
}

impl EntityEncoders {
    /// Encoders for the entities of `registry`.
    pub fn new(registry: &Registry) -> Self {
        EntityEncoders {
            registry: registry.clone(),
            encoders: BTreeMap::new(),
        }
    }

    /// Selects the item's entity and buffers the row; returns the entity name. On error
    /// nothing is buffered and the caller quarantines the item.
    pub fn append(&mut self, item: &Attributes, meta: &RowMeta<'_>) -> Result<&str, ItemError> {
        self.append_view(&mut ItemRef::from_attributes(item), meta)
    }

    /// [`append`](Self::append) for a borrowed item, which is upcast in place.
    pub fn append_view(
        &mut self,
        item: &mut ItemRef<'_>,
        meta: &RowMeta<'_>,
    ) -> Result<&str, ItemError> {
        let entity = self.registry.select(item)?;
        let encoder = encoder_of(&mut self.encoders, entity);
        encoder.append_view(item, meta)?;
        Ok(entity.name())
    }

    /// Buffers an item already resolved to `entity`'s latest version (see
    /// [`crate::schema::Registry::resolve_view`]).
    pub fn append_resolved(
        &mut self,
        entity: &Entity,
        item: &ItemRef<'_>,
        meta: &RowMeta<'_>,
    ) -> Result<(), ItemError> {
        encoder_of(&mut self.encoders, entity).append_resolved(item, meta)
    }

    /// Buffers a keys-only row for `entity` from a borrowed key item.
    pub fn append_keys_view(
        &mut self,
        entity: &Entity,
        keys: &ItemRef<'_>,
        meta: &RowMeta<'_>,
    ) -> Result<(), ItemError> {
        encoder_of(&mut self.encoders, entity).append_keys_view(keys, meta)
    }

    /// Buffers a keys-only row (e.g. a REMOVE without an old image) for a known entity.
    pub fn append_keys(
        &mut self,
        entity: &str,
        keys: &Attributes,
        meta: &RowMeta<'_>,
    ) -> Result<(), SchemaError> {
        let e = self.registry.entity(entity)?;
        encoder_of(&mut self.encoders, e)
            .append_keys(keys, meta)
            .map_err(|err| SchemaError::Invalid {
                context: format!("keys of entity {entity}"),
                reason: err.to_string(),
            })
    }

    /// Rows buffered across all entities.
    pub fn len(&self) -> usize {
        self.encoders.values().map(BatchEncoder::len).sum()
    }

    /// Whether no row is buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One batch per entity with buffered rows, in entity-name order; buffers are emptied.
    pub fn finish(&mut self) -> Result<Vec<(String, RecordBatch)>, ArrowError> {
        let mut out = Vec::new();
        for (name, enc) in &mut self.encoders {
            if !enc.is_empty() {
                out.push((name.clone(), enc.finish()?));
            }
        }
        Ok(out)
    }
}
