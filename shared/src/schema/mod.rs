//! Schema versions: which entity an item is, which version it was written with, and how to
//! bring it to the latest version.
//!
//! The registry is a JSON file (format: [`types`]) loaded once at cold start from
//! `DYNABRIDGE_SCHEMA_PATH` (a file) or `DYNABRIDGE_SCHEMA_JSON` (the text itself), so a
//! schema change is a configuration change, not a recompile. [`Registry`] validates it on
//! load; an invalid registry fails the cold start with the entity, version and field at fault.
//!
//! ## How an item is resolved
//! 1. **Entity**: the first entity whose [`Selector`] matches (an attribute value or a key
//!    prefix, for single-table designs). No match is [`ItemError::NoEntity`].
//! 2. **Version**: the `N` in the registry's `version_attribute` (default
//!    [`DEFAULT_VERSION_ATTRIBUTE`]). **When the attribute is absent the item is taken to be
//!    the entity's oldest version** (usually 1): items written before versioning began are
//!    the oldest shape by definition. A version newer than the registry knows is
//!    [`ItemError::UnknownVersion`] — the deployment is behind the writers, and the row must
//!    be quarantined rather than guessed at.
//! 3. **Upcast**: the declarative [`Upcast`] steps of every later version are applied in
//!    order (rename, default, drop, widen), so readers only ever see the latest version.
//!
//! Each entity version has a [fingerprint](EntityVersion::fingerprint) (SHA-256 of its
//! canonical JSON, keys included) written into every Parquet file's metadata, so a reader can
//! tell exactly which shape produced a file. [`compat`] refuses incompatible evolution.

pub mod compat;
mod error;
pub mod types;

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde_dynamo::AttributeValue;

use crate::codec::{AttrRef, ItemRef};
use crate::config::Env;
pub use error::{ItemError, SchemaError};
pub use types::{
    EntityDef, FieldDef, FieldType, RegistryDef, Selector, TimestampEncoding, Upcast, VersionDef,
};

/// A DynamoDB item as the codec sees it: the map inside `serde_dynamo::Item` (which is also
/// the Lambda stream event's image type). aws-sdk maps convert with
/// [`crate::codec::from_sdk_item`].
pub type Attributes = HashMap<String, AttributeValue>;

/// Version attribute used when the registry does not name one.
pub const DEFAULT_VERSION_ATTRIBUTE: &str = "schema_version";
/// Variable naming the registry file.
pub const SCHEMA_PATH_VAR: &str = "DYNABRIDGE_SCHEMA_PATH";
/// Variable holding the registry JSON itself (takes effect when the path variable is unset).
pub const SCHEMA_JSON_VAR: &str = "DYNABRIDGE_SCHEMA_JSON";

/// Names of the lake metadata columns; no field may use them.
pub const RESERVED_COLUMNS: [&str; 6] = [
    "_entity",
    "_schema_version",
    "_op",
    "_seq",
    "_event_time",
    "_extra",
];

/// A validated registry. Cloning it is cheap (the registry is shared, not copied): encoders
/// and sinks keep their own handle.
#[derive(Debug, Clone)]
pub struct Registry {
    data: std::sync::Arc<RegistryData>,
}

#[derive(Debug)]
struct RegistryData {
    def: RegistryDef,
    fingerprint: String,
    entities: Vec<Entity>,
}

/// A validated entity with its versions.
#[derive(Debug, Clone)]
pub struct Entity {
    name: String,
    selector: Selector,
    version_attribute: String,
    versions: Vec<EntityVersion>,
}

/// One version of an entity, ready for encoding: keys first, then the fields.
#[derive(Debug, Clone)]
pub struct EntityVersion {
    entity: String,
    version: i64,
    keys: Vec<FieldDef>,
    fields: Vec<FieldDef>,
    upcast: Vec<CompiledUpcast>,
    fingerprint: String,
}

#[derive(Debug, Clone)]
enum CompiledUpcast {
    Rename {
        from: String,
        to: String,
    },
    Default {
        field: String,
        value: AttributeValue,
    },
    Drop {
        field: String,
    },
    Widen,
}

/// The entity and version an item was resolved to, and the item at the latest version.
#[derive(Debug)]
pub struct Resolved<'r, 'i> {
    /// The entity.
    pub entity: &'r Entity,
    /// The version the item was written with.
    pub written_version: i64,
    /// The item upcast to [`Entity::latest`] (borrowed when no step applied).
    pub item: Cow<'i, Attributes>,
}

impl Registry {
    /// Parses and validates a registry from JSON text; `origin` names the source in errors.
    pub fn from_json_str(text: &str, origin: &str) -> Result<Self, SchemaError> {
        let def: RegistryDef = serde_json::from_str(text).map_err(|source| SchemaError::Parse {
            origin: origin.to_string(),
            source,
        })?;
        Self::from_def(def)
    }

    /// Reads, parses and validates a registry file.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, SchemaError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| SchemaError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json_str(&text, &path.display().to_string())
    }

    /// Loads the registry named by [`SCHEMA_PATH_VAR`], else the JSON in [`SCHEMA_JSON_VAR`].
    pub fn from_env(env: &Env) -> Result<Self, SchemaError> {
        if let Some(path) = env.optional(SCHEMA_PATH_VAR) {
            return Self::from_path(path);
        }
        if let Some(text) = env.optional(SCHEMA_JSON_VAR) {
            return Self::from_json_str(&text, SCHEMA_JSON_VAR);
        }
        Err(SchemaError::NotConfigured {
            path_var: SCHEMA_PATH_VAR,
            json_var: SCHEMA_JSON_VAR,
        })
    }

    /// Validates a parsed registry definition.
    pub fn from_def(def: RegistryDef) -> Result<Self, SchemaError> {
        validate_registry(&def)?;
        let fingerprint = fingerprint_of(&def);
        let mut entities = Vec::with_capacity(def.entities.len());
        for e in &def.entities {
            let mut versions = Vec::with_capacity(e.versions.len());
            for v in &e.versions {
                let upcast = v
                    .upcast
                    .iter()
                    .map(|u| compile_upcast(&e.name, v.version, u))
                    .collect::<Result<Vec<_>, _>>()?;
                // A default must itself be a valid value of its field, or every upcast item
                // would be quarantined: refuse it at cold start instead.
                for step in &upcast {
                    if let CompiledUpcast::Default { field, value } = step
                        && let Some(f) = v.fields.iter().find(|f| &f.name == field)
                    {
                        crate::codec::columns::check_value(
                            &f.ty,
                            Some(&AttrRef::from_attribute(value)),
                            field,
                            f.required,
                        )
                        .map_err(|err| {
                            invalid(
                                format!(
                                    "entity {} version {} default for {field}",
                                    e.name, v.version
                                ),
                                err.to_string(),
                            )
                        })?;
                    }
                }
                let fingerprint = fingerprint_of(&serde_json::json!({
                    "entity": e.name,
                    "version": v.version,
                    "keys": def.keys,
                    "fields": v.fields,
                }));
                versions.push(EntityVersion {
                    entity: e.name.clone(),
                    version: v.version,
                    keys: def.keys.clone(),
                    fields: v.fields.clone(),
                    upcast,
                    fingerprint,
                });
            }
            entities.push(Entity {
                name: e.name.clone(),
                selector: e.selector.clone(),
                version_attribute: def.version_attribute.clone(),
                versions,
            });
        }
        Ok(Registry {
            data: std::sync::Arc::new(RegistryData {
                def,
                fingerprint,
                entities,
            }),
        })
    }

    /// The definition as parsed.
    pub fn def(&self) -> &RegistryDef {
        &self.data.def
    }

    /// SHA-256 (hex) of the canonical JSON of the whole registry.
    pub fn fingerprint(&self) -> &str {
        &self.data.fingerprint
    }

    /// The attribute holding an item's version.
    pub fn version_attribute(&self) -> &str {
        &self.data.def.version_attribute
    }

    /// The table's key attributes.
    pub fn keys(&self) -> &[FieldDef] {
        &self.data.def.keys
    }

    /// All entities, in match order.
    pub fn entities(&self) -> &[Entity] {
        &self.data.entities
    }

    /// The entity called `name`.
    pub fn entity(&self, name: &str) -> Result<&Entity, SchemaError> {
        self.data
            .entities
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| SchemaError::UnknownEntity(name.to_string()))
    }

    /// The first entity whose selector matches `item`.
    pub fn select<I: ItemFields + ?Sized>(&self, item: &I) -> Result<&Entity, ItemError> {
        self.data
            .entities
            .iter()
            .find(|e| e.matches(item))
            .ok_or(ItemError::NoEntity)
    }

    /// Selects the entity, reads the version and upcasts the item to the latest version.
    pub fn resolve<'r, 'i>(&'r self, item: &'i Attributes) -> Result<Resolved<'r, 'i>, ItemError> {
        let entity = self.select(item)?;
        entity.resolve(item)
    }

    /// Selects the entity of a borrowed item and upcasts it in place (see
    /// [`Entity::resolve_view`]); returns the entity and the version the item was written with.
    pub fn resolve_view(&self, item: &mut ItemRef<'_>) -> Result<(&Entity, i64), ItemError> {
        let entity = self.select(item)?;
        let written = entity.resolve_view(item)?;
        Ok((entity, written))
    }
}

impl Entity {
    /// The entity name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How its items are recognised.
    pub fn selector(&self) -> &Selector {
        &self.selector
    }

    /// The attribute holding an item's version.
    pub fn version_attribute(&self) -> &str {
        &self.version_attribute
    }

    /// All versions, oldest first (never empty).
    pub fn versions(&self) -> &[EntityVersion] {
        &self.versions
    }

    /// The newest version: what readers see and what the lake stores.
    pub fn latest(&self) -> &EntityVersion {
        // Validation guarantees at least one version.
        &self.versions[self.versions.len() - 1]
    }

    /// The oldest version: assumed when an item has no version attribute.
    pub fn oldest(&self) -> &EntityVersion {
        &self.versions[0]
    }

    /// Version `v`, if defined.
    pub fn version(&self, v: i64) -> Option<&EntityVersion> {
        let first = self.oldest().version;
        usize::try_from(v - first)
            .ok()
            .and_then(|i| self.versions.get(i))
    }

    /// Whether `item` belongs to this entity.
    pub fn matches<I: ItemFields + ?Sized>(&self, item: &I) -> bool {
        match &self.selector {
            Selector::Attribute { attribute, equals } => {
                matches!(item.scalar(attribute), Some(("S", Some(s))) if s == equals)
            }
            Selector::KeyPrefix { attribute, prefix } => {
                matches!(item.scalar(attribute), Some(("S", Some(s))) if s.starts_with(prefix.as_str()))
            }
        }
    }

    /// The version `item` was written with (see the module docs for the default).
    pub fn item_version<I: ItemFields + ?Sized>(&self, item: &I) -> Result<i64, ItemError> {
        let attribute = &self.version_attribute;
        let version = match item.scalar(attribute) {
            None | Some(("NULL", _)) => return Ok(self.oldest().version),
            Some(("N", Some(n))) => {
                n.trim()
                    .parse::<i64>()
                    .map_err(|_| ItemError::InvalidVersion {
                        attribute: attribute.clone(),
                        reason: format!("{n:?} is not an integer"),
                    })?
            }
            Some((tag, _)) => {
                return Err(ItemError::InvalidVersion {
                    attribute: attribute.clone(),
                    reason: format!("expected N, found {tag}"),
                });
            }
        };
        if self.version(version).is_none() {
            return Err(ItemError::UnknownVersion {
                attribute: attribute.clone(),
                entity: self.name.clone(),
                version,
                known: format!("{}..={}", self.oldest().version, self.latest().version),
            });
        }
        Ok(version)
    }

    /// Reads the item's version and upcasts it to the latest version.
    pub fn resolve<'r, 'i>(&'r self, item: &'i Attributes) -> Result<Resolved<'r, 'i>, ItemError> {
        let written_version = self.item_version(item)?;
        let item = self.upcast_from(written_version, Cow::Borrowed(item))?;
        Ok(Resolved {
            entity: self,
            written_version,
            item,
        })
    }

    /// Applies the upcast steps of every version after `from` to `item`.
    pub fn upcast_from<'i>(
        &self,
        from: i64,
        mut item: Cow<'i, Attributes>,
    ) -> Result<Cow<'i, Attributes>, ItemError> {
        self.upcast(from, &mut item)?;
        Ok(item)
    }

    /// Reads the version of a borrowed item and upcasts it to the latest version in place;
    /// returns the version it was written with. An upcast item's version attribute is set to
    /// the latest version, so it describes the shape it now has (and resolving it again is a
    /// no-op).
    pub fn resolve_view(&self, item: &mut ItemRef<'_>) -> Result<i64, ItemError> {
        let written = self.item_version(item)?;
        let latest = self.latest().version;
        if written < latest {
            self.upcast(written, item)?;
            item.insert(
                self.version_attribute.clone(),
                AttrRef::N(Cow::Owned(latest.to_string())),
            );
        }
        Ok(written)
    }

    /// The upcast steps of every version after `from`, applied in order — the one
    /// implementation behind both item representations.
    fn upcast<T: UpcastTarget + ?Sized>(&self, from: i64, item: &mut T) -> Result<(), ItemError> {
        for v in self.versions.iter().filter(|v| v.version > from) {
            for step in &v.upcast {
                match step {
                    CompiledUpcast::Rename { from, to } => {
                        if item.has(from) {
                            if item.has(to) {
                                return Err(ItemError::InvalidValue {
                                    attribute: from.clone(),
                                    reason: format!(
                                        "cannot rename to {to} (version {}): {to} is already set",
                                        v.version
                                    ),
                                });
                            }
                            item.rename(from, to);
                        }
                    }
                    CompiledUpcast::Default { field, value } => {
                        if item.absent_or_null(field) {
                            item.set_default(field, value);
                        }
                    }
                    CompiledUpcast::Drop { field } => item.drop_attribute(field),
                    CompiledUpcast::Widen => {}
                }
            }
        }
        Ok(())
    }

    /// Attributes implied by the entity (its selector attribute and the version attribute),
    /// which the lake does not store and a reader restores.
    pub fn implied_attributes(&self) -> Vec<(String, AttributeValue)> {
        let mut out = vec![(
            self.version_attribute.clone(),
            AttributeValue::N(self.latest().version.to_string()),
        )];
        if let Selector::Attribute { attribute, equals } = &self.selector {
            out.push((attribute.clone(), AttributeValue::S(equals.clone())));
        }
        out
    }
}

impl EntityVersion {
    /// The entity name.
    pub fn entity(&self) -> &str {
        &self.entity
    }

    /// The version number.
    pub fn version(&self) -> i64 {
        self.version
    }

    /// The table's key attributes (columns first in every file).
    pub fn keys(&self) -> &[FieldDef] {
        &self.keys
    }

    /// The typed fields of this version.
    pub fn fields(&self) -> &[FieldDef] {
        &self.fields
    }

    /// Keys then fields: the typed columns in file order.
    pub fn columns(&self) -> impl Iterator<Item = &FieldDef> {
        self.keys.iter().chain(self.fields.iter())
    }

    /// SHA-256 (hex) of the canonical JSON of this version's columns.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

fn compile_upcast(entity: &str, version: i64, u: &Upcast) -> Result<CompiledUpcast, SchemaError> {
    Ok(match u {
        Upcast::Rename { from, to } => CompiledUpcast::Rename {
            from: from.clone(),
            to: to.clone(),
        },
        Upcast::Default { field, value } => {
            let value: AttributeValue =
                serde_json::from_value(value.clone()).map_err(|e| SchemaError::Invalid {
                    context: format!("entity {entity} version {version} default for {field}"),
                    reason: format!("not a DynamoDB-JSON value: {e}"),
                })?;
            CompiledUpcast::Default {
                field: field.clone(),
                value,
            }
        }
        Upcast::Drop { field } => CompiledUpcast::Drop {
            field: field.clone(),
        },
        Upcast::Widen { .. } => CompiledUpcast::Widen,
    })
}

/// Canonical JSON: serde's declaration order for structs, sorted keys for maps
/// (`serde_json::Value` objects are B-tree maps), no whitespace.
/// SHA-256 of the value's canonical JSON (object keys sorted by our own code: serde_json's
/// `preserve_order` feature, which feature unification can switch on, must not change it).
fn fingerprint_of<T: serde::Serialize>(value: &T) -> String {
    // Serialising plain structs cannot fail.
    let v = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
    crate::idempotency::payload_hash(&v)
}

fn invalid(context: impl Into<String>, reason: impl Into<String>) -> SchemaError {
    SchemaError::Invalid {
        context: context.into(),
        reason: reason.into(),
    }
}

fn valid_entity_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn validate_registry(def: &RegistryDef) -> Result<(), SchemaError> {
    if def.version_attribute.is_empty() {
        return Err(invalid("version_attribute", "must not be empty"));
    }
    if def.keys.is_empty() {
        return Err(invalid("keys", "at least one key attribute is required"));
    }
    let mut key_names = HashSet::new();
    for k in &def.keys {
        let ctx = format!("key {}", k.name);
        if !matches!(
            k.ty,
            FieldType::String | FieldType::Int | FieldType::Number | FieldType::Binary
        ) {
            return Err(invalid(ctx, "key types are string, int, number or binary"));
        }
        if !k.required {
            return Err(invalid(ctx, "keys must be required"));
        }
        validate_name(&ctx, &k.name)?;
        if !key_names.insert(k.name.as_str()) {
            return Err(invalid(ctx, "duplicate key"));
        }
    }
    if def.entities.is_empty() {
        return Err(invalid("entities", "at least one entity is required"));
    }
    let mut names = HashSet::new();
    for e in &def.entities {
        let ctx = format!("entity {}", e.name);
        if !valid_entity_name(&e.name) {
            return Err(invalid(ctx, "names use letters, digits, '_' and '-' only"));
        }
        if !names.insert(e.name.as_str()) {
            return Err(invalid(ctx, "duplicate entity"));
        }
        let selector_attr = match &e.selector {
            Selector::Attribute { attribute, .. } => Some(attribute.as_str()),
            Selector::KeyPrefix { attribute, prefix } => {
                if !key_names.contains(attribute.as_str()) {
                    return Err(invalid(
                        ctx,
                        format!("key_prefix attribute {attribute} is not a key"),
                    ));
                }
                if prefix.is_empty() {
                    return Err(invalid(ctx, "key_prefix prefix must not be empty"));
                }
                None
            }
        };
        if e.versions.is_empty() {
            return Err(invalid(ctx, "at least one version is required"));
        }
        let mut prev: Option<&VersionDef> = None;
        for v in &e.versions {
            let vctx = format!("entity {} version {}", e.name, v.version);
            match prev {
                _ if v.version > i64::from(i32::MAX) => {
                    return Err(invalid(
                        vctx,
                        "versions are at most 2^31-1 (`_schema_version` is an int)",
                    ));
                }
                None if v.version < 1 => return Err(invalid(vctx, "versions start at 1 or more")),
                None if !v.upcast.is_empty() => {
                    return Err(invalid(vctx, "the first version has no upcast"));
                }
                Some(p) if v.version != p.version + 1 => {
                    return Err(invalid(
                        vctx,
                        format!("must follow version {} directly", p.version),
                    ));
                }
                _ => {}
            }
            let mut seen = HashSet::new();
            for f in &v.fields {
                let fctx = format!("{vctx} field {}", f.name);
                validate_name(&fctx, &f.name)?;
                if key_names.contains(f.name.as_str())
                    || f.name == def.version_attribute
                    || Some(f.name.as_str()) == selector_attr
                {
                    return Err(invalid(
                        fctx,
                        "clashes with a key, the version or the selector attribute",
                    ));
                }
                if !seen.insert(f.name.as_str()) {
                    return Err(invalid(fctx, "duplicate field"));
                }
                validate_type(&fctx, &f.ty)?;
            }
            if let Some(p) = prev {
                validate_upcast(&vctx, p, v)?;
            }
            prev = Some(v);
        }
    }
    Ok(())
}

fn validate_name(ctx: &str, name: &str) -> Result<(), SchemaError> {
    if name.is_empty() {
        return Err(invalid(ctx, "names must not be empty"));
    }
    if RESERVED_COLUMNS.contains(&name) {
        return Err(invalid(ctx, "the name is a reserved lake column"));
    }
    Ok(())
}

fn validate_decimal(ctx: &str, precision: u8, scale: i8) -> Result<(), SchemaError> {
    if !(1..=38).contains(&precision) {
        return Err(invalid(ctx, "decimal precision must be 1..=38"));
    }
    if scale < 0 || scale as u8 > precision {
        return Err(invalid(ctx, "decimal scale must be 0..=precision"));
    }
    Ok(())
}

fn validate_type(ctx: &str, ty: &FieldType) -> Result<(), SchemaError> {
    match ty {
        FieldType::Decimal { precision, scale } | FieldType::NumberSet { precision, scale } => {
            validate_decimal(ctx, *precision, *scale)
        }
        FieldType::Struct { fields } => {
            if fields.is_empty() {
                return Err(invalid(
                    ctx,
                    "structs need at least one field (Spark cannot read empty structs)",
                ));
            }
            let mut seen = HashSet::new();
            for f in fields {
                let fctx = format!("{ctx}.{}", f.name);
                if f.name.is_empty() {
                    return Err(invalid(fctx, "names must not be empty"));
                }
                if !seen.insert(f.name.as_str()) {
                    return Err(invalid(fctx, "duplicate field"));
                }
                validate_type(&fctx, &f.ty)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn validate_upcast(ctx: &str, prev: &VersionDef, v: &VersionDef) -> Result<(), SchemaError> {
    let has = |def: &VersionDef, name: &str| def.fields.iter().any(|f| f.name == name);
    for u in &v.upcast {
        match u {
            Upcast::Rename { from, to } => {
                if !has(prev, from) {
                    return Err(invalid(
                        ctx,
                        format!("rename: {from} is not a field of version {}", prev.version),
                    ));
                }
                if !has(v, to) {
                    return Err(invalid(
                        ctx,
                        format!("rename: {to} is not a field of this version"),
                    ));
                }
            }
            Upcast::Default { field, .. } | Upcast::Widen { field } => {
                if !has(v, field) {
                    return Err(invalid(
                        ctx,
                        format!("{field} is not a field of this version"),
                    ));
                }
            }
            Upcast::Drop { field } => {
                if !has(prev, field) {
                    return Err(invalid(
                        ctx,
                        format!("drop: {field} is not a field of version {}", prev.version),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// What selecting an entity and reading an item's version look at, for both item
/// representations (`serde_dynamo` maps and borrowed [`ItemRef`]s).
pub trait ItemFields {
    /// The DynamoDB type tag of attribute `name` and, for `S` and `N`, its text; `None` when
    /// the attribute is absent.
    fn scalar(&self, name: &str) -> Option<(&'static str, Option<&str>)>;
}

impl ItemFields for Attributes {
    fn scalar(&self, name: &str) -> Option<(&'static str, Option<&str>)> {
        self.get(name).map(|v| match v {
            AttributeValue::S(s) => ("S", Some(s.as_str())),
            AttributeValue::N(n) => ("N", Some(n.as_str())),
            other => (crate::codec::dynamo_type(other), None),
        })
    }
}

impl ItemFields for ItemRef<'_> {
    fn scalar(&self, name: &str) -> Option<(&'static str, Option<&str>)> {
        self.get(name).map(|v| match v {
            AttrRef::S(s) => ("S", Some(s.as_ref())),
            AttrRef::N(n) => ("N", Some(n.as_ref())),
            other => (other.dynamo_type(), None),
        })
    }
}

/// The edits an upcast makes, for both item representations.
trait UpcastTarget {
    fn has(&self, name: &str) -> bool;
    fn absent_or_null(&self, name: &str) -> bool;
    fn rename(&mut self, from: &str, to: &str);
    fn set_default(&mut self, field: &str, value: &AttributeValue);
    fn drop_attribute(&mut self, name: &str);
}

impl UpcastTarget for Cow<'_, Attributes> {
    fn has(&self, name: &str) -> bool {
        self.contains_key(name)
    }
    fn absent_or_null(&self, name: &str) -> bool {
        matches!(self.get(name), None | Some(AttributeValue::Null(_)))
    }
    fn rename(&mut self, from: &str, to: &str) {
        let map = self.to_mut();
        if let Some(value) = map.remove(from) {
            map.insert(to.to_string(), value);
        }
    }
    fn set_default(&mut self, field: &str, value: &AttributeValue) {
        self.to_mut().insert(field.to_string(), value.clone());
    }
    fn drop_attribute(&mut self, name: &str) {
        if self.contains_key(name) {
            self.to_mut().remove(name);
        }
    }
}

impl UpcastTarget for ItemRef<'_> {
    fn has(&self, name: &str) -> bool {
        self.contains(name)
    }
    fn absent_or_null(&self, name: &str) -> bool {
        matches!(self.get(name), None | Some(AttrRef::Null(_)))
    }
    fn rename(&mut self, from: &str, to: &str) {
        ItemRef::rename(self, from, to);
    }
    fn set_default(&mut self, field: &str, value: &AttributeValue) {
        self.insert(
            field.to_string(),
            AttrRef::from_attribute(value).into_owned(),
        );
    }
    fn drop_attribute(&mut self, name: &str) {
        self.remove(name);
    }
}
