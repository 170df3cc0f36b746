//! Errors shared by all functions, and how they reach Lambda.
//!
//! Every fallible operation in `shared` returns [`DynabridgeError`]. Handlers return it too;
//! `lambda_runtime` turns it into a [`Diagnostic`] whose `errorType` is a stable, greppable
//! name (`Config`, `Aws`, `InvalidEvent`, ...) rather than a Rust type path, so CloudWatch
//! metric filters and alarms can match on it.
//!
//! Bad *input* is never a panic: it is either one of these typed errors (the whole invocation
//! fails and the event source retries) or a quarantine/reject record written by the caller
//! (the rest of the batch goes on).

use lambda_runtime::Diagnostic;

use crate::checkpoint::CheckpointError;
use crate::config::ConfigError;
use crate::idempotency::IdempotencyError;
use crate::lake::LakeError;
use crate::schema::SchemaError;

/// Convenience alias used across the crate.
pub type Result<T, E = DynabridgeError> = std::result::Result<T, E>;

/// The error type of every dynabridge function.
#[derive(Debug, thiserror::Error)]
pub enum DynabridgeError {
    /// A setting read at cold start is missing or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),

    /// The schema registry cannot be loaded or is invalid.
    #[error(transparent)]
    Schema(#[from] SchemaError),

    /// Writing or reading a lake file failed.
    #[error(transparent)]
    Lake(#[from] LakeError),

    /// The invocation payload could not be understood (wrong shape, missing field).
    #[error("invalid event: {0}")]
    InvalidEvent(String),

    /// An AWS call failed after the SDK's own retries.
    #[error("{service} {operation} failed: {message}")]
    Aws {
        /// Service name, e.g. `DynamoDB`.
        service: &'static str,
        /// Operation name, e.g. `PutItem`.
        operation: &'static str,
        /// The SDK's error, rendered with its source chain.
        message: String,
    },

    /// JSON (de)serialisation of a payload or record failed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),

    /// An idempotency record refused the operation (in progress, payload mismatch, ...).
    #[error(transparent)]
    Idempotency(#[from] IdempotencyError),

    /// A stream checkpoint could not be read or advanced.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),

    /// Any other failure with a clear message; prefer a dedicated variant when callers need to
    /// react to it.
    #[error("{0}")]
    Other(String),
}

impl DynabridgeError {
    /// Builds an [`DynabridgeError::Aws`] from any SDK error, keeping its whole source chain in
    /// the message (the SDK's `Display` alone often says only "service error").
    pub fn aws(
        service: &'static str,
        operation: &'static str,
        err: impl std::error::Error,
    ) -> Self {
        DynabridgeError::Aws {
            service,
            operation,
            message: render_chain(&err),
        }
    }

    /// The stable `errorType` reported to the Lambda Runtime API.
    pub fn error_type(&self) -> &'static str {
        match self {
            DynabridgeError::Config(_) => "Config",
            DynabridgeError::Schema(_) => "Schema",
            DynabridgeError::Lake(_) => "Lake",
            DynabridgeError::InvalidEvent(_) => "InvalidEvent",
            DynabridgeError::Aws { .. } => "Aws",
            DynabridgeError::Json(_) => "Json",
            DynabridgeError::Idempotency(e) => e.error_type(),
            DynabridgeError::Checkpoint(e) => e.error_type(),
            DynabridgeError::Other(_) => "Other",
        }
    }
}

/// An error and its whole source chain on one line (`outer: inner: root`); the SDK's
/// `Display` alone often says only "service error".
pub fn render_chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

impl From<DynabridgeError> for Diagnostic {
    fn from(err: DynabridgeError) -> Self {
        Diagnostic {
            error_type: err.error_type().to_string(),
            error_message: err.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnostic_carries_stable_type_and_message() {
        let err = DynabridgeError::Config(ConfigError::Missing {
            name: "DYNABRIDGE_TABLE".into(),
        });
        let d: Diagnostic = err.into();
        assert_eq!(d.error_type, "Config");
        assert!(
            d.error_message.contains("DYNABRIDGE_TABLE"),
            "{}",
            d.error_message
        );
    }

    #[test]
    fn aws_error_keeps_source_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let err = DynabridgeError::aws(
            "S3",
            "PutObject",
            Outer(std::io::Error::other("connection reset")),
        );
        assert_eq!(
            err.to_string(),
            "S3 PutObject failed: outer: connection reset"
        );
        assert_eq!(err.error_type(), "Aws");
    }
}
