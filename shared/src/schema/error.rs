//! Errors of the schema registry.
//!
//! Two families, because callers react to them differently:
//!
//! - [`SchemaError`]: the registry itself is unusable (file missing, bad JSON, a rule of the
//!   registry broken). It fails the cold start, so a bad deployment is caught before any
//!   record is touched.
//! - [`ItemError`]: one item does not fit the registry (unknown entity, a newer version than
//!   this deployment knows, a value of the wrong type or out of range). It is a *per-row*
//!   outcome: the caller writes the row to quarantine and goes on with the rest of the batch.
//!   Every variant that concerns a value names the attribute (a dotted path for nested
//!   struct fields, e.g. `address.zip`).

use std::path::PathBuf;

/// The registry cannot be loaded or is invalid.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The registry file could not be read.
    #[error("cannot read schema registry {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The registry text is not valid JSON for the registry format.
    #[error("cannot parse schema registry from {origin}: {source}")]
    Parse {
        /// Where the text came from (a path or a variable name).
        origin: String,
        /// The parser's error (with line and column).
        #[source]
        source: serde_json::Error,
    },
    /// Neither the path nor the inline variable is set.
    #[error("no schema registry configured: set {path_var} or {json_var}")]
    NotConfigured {
        /// The path variable's name.
        path_var: &'static str,
        /// The inline JSON variable's name.
        json_var: &'static str,
    },
    /// The registry breaks one of its own rules (duplicate names, bad decimal, ...).
    #[error("invalid schema registry: {context}: {reason}")]
    Invalid {
        /// Where: entity, version and field.
        context: String,
        /// What is wrong.
        reason: String,
    },
    /// An entity was asked for that the registry does not define.
    #[error("entity {0} is not defined in the schema registry")]
    UnknownEntity(String),
}

/// One item does not fit the registry; the caller quarantines it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ItemError {
    /// No entity selector matches the item.
    #[error("no entity of the schema registry matches the item")]
    NoEntity,
    /// The version attribute is present but not a positive integer number.
    #[error("attribute {attribute}: invalid schema version: {reason}")]
    InvalidVersion {
        /// The version attribute's name.
        attribute: String,
        /// Why it was refused.
        reason: String,
    },
    /// The item claims a version this registry does not know (usually newer than deployed).
    #[error(
        "attribute {attribute}: entity {entity} has no schema version {version} (known: {known})"
    )]
    UnknownVersion {
        /// The version attribute's name.
        attribute: String,
        /// The entity.
        entity: String,
        /// The version found.
        version: i64,
        /// The known versions, e.g. `1..=3`.
        known: String,
    },
    /// A required attribute is absent or NULL.
    #[error("attribute {attribute}: required but missing")]
    Missing {
        /// The attribute (dotted path).
        attribute: String,
    },
    /// The attribute has a DynamoDB type the schema does not accept for it.
    #[error("attribute {attribute}: expected {expected}, found {found}")]
    WrongType {
        /// The attribute (dotted path).
        attribute: String,
        /// What the schema declares.
        expected: String,
        /// What the item holds (a DynamoDB type such as `S`, or an Arrow type when decoding).
        found: String,
    },
    /// The attribute has the right DynamoDB type but its value cannot be represented exactly.
    #[error("attribute {attribute}: {reason}")]
    InvalidValue {
        /// The attribute (dotted path).
        attribute: String,
        /// Why, e.g. `123.456 does not fit decimal(5,2)`.
        reason: String,
    },
    /// A struct holds a field its schema does not name (nothing is silently dropped).
    #[error("attribute {attribute}: not a field of the declared struct")]
    UnknownField {
        /// The unexpected nested attribute (dotted path).
        attribute: String,
    },
}

impl ItemError {
    /// The attribute concerned, when the error is about one.
    pub fn attribute(&self) -> Option<&str> {
        match self {
            ItemError::NoEntity => None,
            ItemError::InvalidVersion { attribute, .. }
            | ItemError::UnknownVersion { attribute, .. }
            | ItemError::Missing { attribute }
            | ItemError::WrongType { attribute, .. }
            | ItemError::InvalidValue { attribute, .. }
            | ItemError::UnknownField { attribute } => Some(attribute),
        }
    }

    /// A stable short name for metrics and quarantine records (`WrongType`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            ItemError::NoEntity => "NoEntity",
            ItemError::InvalidVersion { .. } => "InvalidVersion",
            ItemError::UnknownVersion { .. } => "UnknownVersion",
            ItemError::Missing { .. } => "Missing",
            ItemError::WrongType { .. } => "WrongType",
            ItemError::InvalidValue { .. } => "InvalidValue",
            ItemError::UnknownField { .. } => "UnknownField",
        }
    }
}
