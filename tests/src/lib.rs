//! Helpers shared by the end-to-end tests (`tests/tests/*.rs`).
//!
//! Each test starts its own [`LocalStack`] (ephemeral ports, temp folders), provisions the
//! template's resources and runs real binaries through the harness. Nothing outlives a test:
//! dropping the stack stops the servers and kills `moto_server`.

use std::collections::HashMap;
use std::path::PathBuf;

pub mod sync;

use anyhow::Result;
use aws_sdk_dynamodb::types::AttributeValue;
use dynabridge_devstack::provision::{self, ResourceNames, Resources};
use dynabridge_devstack::{LocalStack, StackOptions};

/// A started stack with the template's resources.
pub struct Env {
    /// The stack (drop to stop).
    pub stack: LocalStack,
    /// What was provisioned.
    pub resources: Resources,
}

/// Starts a stack and provisions it.
pub async fn env(eventbridge: bool) -> Result<Env> {
    let stack = LocalStack::start(StackOptions {
        eventbridge,
        ..Default::default()
    })?;
    let resources = provision::provision(&stack, ResourceNames::default()).await?;
    Ok(Env { stack, resources })
}

/// The path of the probe binary built with this package (integration tests pass
/// `env!("CARGO_BIN_EXE_probe-function")`, which cargo builds before running them).
pub fn probe_binary(from_test: &str) -> PathBuf {
    PathBuf::from(from_test)
}

/// Builds a string-attribute item.
pub fn item(pairs: &[(&str, &str)]) -> HashMap<String, AttributeValue> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), AttributeValue::S(v.to_string())))
        .collect()
}

/// Reads a JSON-lines file (missing file: no lines).
pub fn read_json_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}
