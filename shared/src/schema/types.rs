//! The declarative model of the registry file: entities, versions, fields, field types and
//! upcast steps, exactly as they appear in the JSON.
//!
//! The file format is plain serde so it stays readable and diffable:
//!
//! ```json
//! { "name": "total", "type": { "decimal": { "precision": 12, "scale": 2 } }, "required": true }
//! { "name": "email", "type": "string" }
//! { "name": "placed_at", "type": { "timestamp": "epoch_millis" } }
//! ```
//!
//! Unknown keys are refused so a typo in the registry fails the cold start instead of being
//! ignored.

use serde::{Deserialize, Serialize};

/// How a timestamp is stored in DynamoDB. In the lake it is always `Timestamp(µs, "UTC")`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimestampEncoding {
    /// An `S` in RFC 3339 / ISO 8601 with an offset, e.g. `2026-11-21T10:15:00.123456Z`.
    /// Read back as UTC with `Z` and only the fractional digits needed.
    Iso8601,
    /// An `N` of seconds since the Unix epoch (up to 6 fractional digits).
    EpochSeconds,
    /// An `N` of milliseconds since the Unix epoch (up to 3 fractional digits).
    EpochMillis,
}

/// The type of one field. Each maps to exactly one Spark-readable Arrow type (see
/// [`crate::codec`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum FieldType {
    /// `S` → `Utf8`.
    String,
    /// `N` holding an integer that fits `i64` → `Int64`.
    Int,
    /// `N` kept verbatim (any of DynamoDB's 38 digits) → `Utf8` of the original digits.
    Number,
    /// `N` as an exact decimal → `Decimal128(precision, scale)`; a value that does not fit is
    /// an error, never rounded.
    Decimal {
        /// Total digits, 1..=38.
        precision: u8,
        /// Digits after the point, 0..=precision.
        scale: i8,
    },
    /// `N` as a measurement → `Float64` (nearest double; not exact by design).
    Double,
    /// `S` (ISO) or `N` (epoch) → `Timestamp(Microsecond, "UTC")`.
    Timestamp(TimestampEncoding),
    /// `S` `YYYY-MM-DD` → `Date32`.
    Date,
    /// `BOOL` → `Boolean`.
    Bool,
    /// `B` → `Binary`.
    Binary,
    /// `SS` → `List<Utf8>`.
    StringSet,
    /// `NS` → `List<Decimal128(precision, scale)>`.
    NumberSet {
        /// Total digits, 1..=38.
        precision: u8,
        /// Digits after the point, 0..=precision.
        scale: i8,
    },
    /// `BS` → `List<Binary>`.
    BinarySet,
    /// `M` with known fields → `Struct`.
    Struct {
        /// The struct's fields (at least one: Spark cannot read empty structs).
        fields: Vec<FieldDef>,
    },
    /// `M` with dynamic keys and `S` values → `Map<Utf8, Utf8>`.
    StringMap,
    /// Any value (typically `L` or a mixed `M`) → `Utf8` holding its DynamoDB-JSON, which
    /// keeps every type distinction (sets vs lists, binary, exact numbers).
    Json,
}

impl FieldType {
    /// A short human-readable name, e.g. `decimal(12,2)`.
    pub fn describe(&self) -> String {
        match self {
            FieldType::String => "string".into(),
            FieldType::Int => "int".into(),
            FieldType::Number => "number".into(),
            FieldType::Decimal { precision, scale } => format!("decimal({precision},{scale})"),
            FieldType::Double => "double".into(),
            FieldType::Timestamp(e) => format!("timestamp({e:?})"),
            FieldType::Date => "date".into(),
            FieldType::Bool => "bool".into(),
            FieldType::Binary => "binary".into(),
            FieldType::StringSet => "string_set".into(),
            FieldType::NumberSet { precision, scale } => {
                format!("number_set({precision},{scale})")
            }
            FieldType::BinarySet => "binary_set".into(),
            FieldType::Struct { .. } => "struct".into(),
            FieldType::StringMap => "string_map".into(),
            FieldType::Json => "json".into(),
        }
    }
}

/// One field of an entity version (or of a struct).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldDef {
    /// The DynamoDB attribute name, also the lake column name.
    pub name: String,
    /// The field's type.
    #[serde(rename = "type")]
    pub ty: FieldType,
    /// Whether the attribute must be present (and not `NULL`). Default false.
    #[serde(default)]
    pub required: bool,
}

/// How items of an entity are recognised in a single-table design.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Selector {
    /// The item has attribute `attribute` equal to the string `equals` (e.g. `type = "Order"`).
    /// The attribute is implied by the entity, so it is not stored in `_extra` and is restored
    /// when reading the lake back.
    Attribute {
        /// The attribute name.
        attribute: String,
        /// The expected `S` value.
        equals: String,
    },
    /// The item's key attribute `attribute` is an `S` starting with `prefix` (e.g. `ORDER#`).
    KeyPrefix {
        /// The key attribute name.
        attribute: String,
        /// The prefix.
        prefix: String,
    },
}

/// One step of an upcast from version N-1 to version N, declared on version N.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Upcast {
    /// The attribute `from` is now called `to`.
    Rename {
        /// Old name.
        from: String,
        /// New name.
        to: String,
    },
    /// When `field` is absent, set it to `value` (given in DynamoDB-JSON, e.g. `{"S": "basic"}`).
    Default {
        /// The field.
        field: String,
        /// The value, DynamoDB-JSON.
        value: serde_json::Value,
    },
    /// The attribute `field` is removed (deliberately: it does not go to `_extra`).
    Drop {
        /// The field.
        field: String,
    },
    /// The type of `field` widens (e.g. `int` → `decimal(20,0)`); the stored DynamoDB value
    /// is unchanged, the declaration is what the compatibility check accepts.
    Widen {
        /// The field.
        field: String,
    },
}

/// One numbered version of an entity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionDef {
    /// The version number (consecutive, ascending).
    pub version: i64,
    /// How to turn an item of the previous version into this one (empty for the first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upcast: Vec<Upcast>,
    /// The typed fields (keys excluded: they are declared once per registry).
    pub fields: Vec<FieldDef>,
}

/// One entity of a single-table design.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntityDef {
    /// The entity name (`_entity`, partition `entity=<name>`): letters, digits, `_`, `-`.
    pub name: String,
    /// How its items are recognised.
    pub selector: Selector,
    /// Its versions, oldest first.
    pub versions: Vec<VersionDef>,
}

fn default_version_attribute() -> String {
    crate::schema::DEFAULT_VERSION_ATTRIBUTE.to_string()
}

/// The registry file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryDef {
    /// The attribute holding an item's schema version; default
    /// [`DEFAULT_VERSION_ATTRIBUTE`](crate::schema::DEFAULT_VERSION_ATTRIBUTE).
    #[serde(default = "default_version_attribute")]
    pub version_attribute: String,
    /// The table's key attributes, written as columns of every entity (typically the
    /// partition and sort key, `string`, `int`/`number` or `binary`).
    pub keys: Vec<FieldDef>,
    /// The entities, matched in order (first match wins).
    pub entities: Vec<EntityDef>,
}
