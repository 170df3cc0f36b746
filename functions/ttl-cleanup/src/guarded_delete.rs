//! The one delete ttl-cleanup makes (sweep and cascade alike): read the item, and delete it
//! only if its content still has the fingerprint recorded when it was archived — with the
//! same "unchanged" condition on the delete itself, so a write racing the delete wins.

use aws_sdk_dynamodb::types::AttributeValue;
use dynabridge_shared::DynabridgeError;
use dynabridge_shared::condition::{Condition, item_fingerprint, unchanged};
use dynabridge_shared::retry::RateLimiter;

/// What happened to one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Deleted.
    Deleted,
    /// Already gone (DynamoDB's TTL or a user got there first).
    Gone,
    /// Kept: it changed since it was archived (or `extra` no longer holds).
    Changed,
}

/// Deletes `key` from `table` if the item's fingerprint is `fingerprint` and `extra` (e.g.
/// "TTL still past") holds; waits for `limiter` before the delete.
pub async fn delete_if_unchanged(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    key: &std::collections::HashMap<String, AttributeValue>,
    fingerprint: &str,
    extra: Option<Condition>,
    limiter: Option<&RateLimiter>,
) -> Result<Outcome, DynabridgeError> {
    let current = ddb
        .get_item()
        .table_name(table)
        .set_key(Some(key.clone()))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| DynabridgeError::aws("DynamoDB", "GetItem", e))?;
    let Some(item) = current.item() else {
        return Ok(Outcome::Gone);
    };
    if item_fingerprint(item) != fingerprint {
        return Ok(Outcome::Changed);
    }
    if let Some(limiter) = limiter {
        let wait = limiter.reserve(1, chrono::Utc::now().timestamp_millis().max(0) as u64);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
    let cond = match extra {
        Some(extra) => unchanged(item).and(extra),
        None => unchanged(item),
    };
    let result = ddb
        .delete_item()
        .table_name(table)
        .set_key(Some(key.clone()))
        .condition_expression(cond.expression)
        .set_expression_attribute_names(Some(cond.names))
        .set_expression_attribute_values(Some(cond.values))
        .send()
        .await;
    match result {
        Ok(_) => Ok(Outcome::Deleted),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
        {
            Ok(Outcome::Changed)
        }
        Err(e) => Err(DynabridgeError::aws("DynamoDB", "DeleteItem", e)),
    }
}
