//! Durable positions of long-running work on one unit (a file, an export run): how far it got,
//! so the next invocation — a planned continuation or a takeover after a crash — resumes
//! exactly there.
//!
//! One control-table item per unit of work, keyed by the caller's work key (typically the
//! same key as its idempotency record). The position is any serialisable value plus an
//! **ordinal** (e.g. rows done) that only moves forward: every save is conditional on the
//! stored ordinal being at most the new one, so a late writer (an invocation whose claim was
//! taken over) can never move the position backwards.
//!
//! ## Guarantees
//! - A position read after a save sees that save (strongly consistent read).
//! - The ordinal never decreases ([`ProgressError::Regressed`] instead).
//! - Saving costs one conditional `PutItem`, loading one `GetItem`.
//!
//! ## Record layout (control table, `pk` (S) hash + `sk` (S) range)
//!
//! | attribute | type | meaning |
//! |---|---|---|
//! | `pk` | S | `progress#<namespace>#<work key>` |
//! | `sk` | S | `progress` |
//! | `ordinal` | N | monotonic measure of progress (e.g. rows done) |
//! | `position` | S | the caller's position, JSON |
//! | `updated_at_ms` | N | when saved |
//! | `ttl_epoch_s` | N | when DynamoDB may delete it (epoch seconds) |

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::clock::{Clock, SystemClock, duration_ms, ttl_epoch_seconds};
use crate::error::render_chain;

const SK: &str = "progress";

/// Why a position could not be read or saved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProgressError {
    /// A save would move the position backwards: another invocation got further.
    #[error("progress of {key:?} is already past ordinal {ordinal}")]
    Regressed {
        /// The work key.
        key: String,
        /// The ordinal refused.
        ordinal: u64,
    },
    /// The stored record cannot be read.
    #[error("progress record {key:?} is corrupt: {reason}")]
    Corrupt {
        /// The work key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A DynamoDB call failed (after the SDK's retries).
    #[error("DynamoDB {operation} failed: {message}")]
    Aws {
        /// Operation name.
        operation: &'static str,
        /// The error with its source chain.
        message: String,
    },
}

/// A saved position.
#[derive(Debug, Clone, PartialEq)]
pub struct Saved<T> {
    /// The ordinal saved with it.
    pub ordinal: u64,
    /// The position.
    pub position: T,
}

/// Positions in the control table. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ProgressStore {
    client: Client,
    table: String,
    namespace: String,
    ttl: Duration,
    clock: Arc<dyn Clock>,
}

impl ProgressStore {
    /// A store in `table`, keys separated by `namespace`, records kept for `ttl`.
    pub fn new(client: Client, table: &str, namespace: &str, ttl: Duration) -> Self {
        ProgressStore {
            client,
            table: table.to_string(),
            namespace: namespace.to_string(),
            ttl,
            clock: Arc::new(SystemClock),
        }
    }

    /// Replaces the clock (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    fn pk(&self, key: &str) -> String {
        format!("progress#{}#{key}", self.namespace)
    }

    /// The position saved for `key`, if any.
    pub async fn load<T: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<Saved<T>>, ProgressError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(self.pk(key)))
            .key("sk", AttributeValue::S(SK.into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| ProgressError::Aws {
                operation: "GetItem",
                message: render_chain(&e),
            })?;
        let Some(item) = out.item() else {
            return Ok(None);
        };
        let corrupt = |reason: String| ProgressError::Corrupt {
            key: key.to_string(),
            reason,
        };
        let ordinal = match item.get("ordinal") {
            Some(AttributeValue::N(n)) => n
                .parse::<u64>()
                .map_err(|e| corrupt(format!("ordinal {n:?}: {e}")))?,
            _ => return Err(corrupt("no ordinal".into())),
        };
        let position = match item.get("position") {
            Some(AttributeValue::S(text)) => {
                serde_json::from_str(text).map_err(|e| corrupt(format!("position: {e}")))?
            }
            _ => return Err(corrupt("no position".into())),
        };
        Ok(Some(Saved { ordinal, position }))
    }

    /// Saves `position` at `ordinal` unless a position further on is stored.
    pub async fn save<T: Serialize>(
        &self,
        key: &str,
        ordinal: u64,
        position: &T,
    ) -> Result<(), ProgressError> {
        let text = serde_json::to_string(position).map_err(|e| ProgressError::Corrupt {
            key: key.to_string(),
            reason: format!("position does not serialise: {e}"),
        })?;
        let now = self.clock.now_ms();
        let expires = now.saturating_add(duration_ms(self.ttl));
        let item = HashMap::from([
            ("pk".to_string(), AttributeValue::S(self.pk(key))),
            ("sk".to_string(), AttributeValue::S(SK.into())),
            (
                "ordinal".to_string(),
                AttributeValue::N(ordinal.to_string()),
            ),
            ("position".to_string(), AttributeValue::S(text)),
            (
                "updated_at_ms".to_string(),
                AttributeValue::N(now.to_string()),
            ),
            (
                "ttl_epoch_s".to_string(),
                AttributeValue::N(ttl_epoch_seconds(expires).to_string()),
            ),
        ]);
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR #o <= :o")
            .expression_attribute_names("#o", "ordinal")
            .expression_attribute_values(":o", AttributeValue::N(ordinal.to_string()))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), PutItemError::ConditionalCheckFailedException(_)) =>
            {
                Err(ProgressError::Regressed {
                    key: key.to_string(),
                    ordinal,
                })
            }
            Err(e) => Err(ProgressError::Aws {
                operation: "PutItem",
                message: render_chain(&e),
            }),
        }
    }
}
