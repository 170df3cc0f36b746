//! Idempotency records: run an operation at most once per key, return its stored result to
//! every duplicate.
//!
//! Lambda delivers events at least once (retries, redrives, two schedules firing for one
//! window), so every side effect keyed by an event must be guarded. This module follows the
//! semantics of Powertools for AWS Lambda's idempotency utility (which has no Rust version)
//! and fixes its known pitfalls:
//!
//! - **Expiry is checked by timestamp**, in the condition expression. The TTL attribute only
//!   lets DynamoDB garbage-collect old records; TTL deletion can lag by up to 48 hours, so it
//!   never decides whether a record is still valid.
//! - **One unit**: every timestamp is epoch milliseconds (`*_ms`). The TTL attribute
//!   (`ttl_epoch_s`) is the single seconds value, because DynamoDB TTL requires seconds.
//! - **No extra read**: a claim is one conditional `PutItem` with
//!   `ReturnValuesOnConditionCheckFailure=ALL_OLD`; when it loses, DynamoDB returns the record
//!   that beat it, which says whether the duplicate is completed (return its result), still in
//!   progress ([`IdempotencyError::AlreadyInProgress`]) or carries another payload
//!   ([`IdempotencyError::PayloadMismatch`]).
//! - **Fenced completion**: each claim carries a random token; completing or releasing
//!   requires the token, so an invocation that overran its in-progress expiry (and whose key
//!   was taken over) gets [`IdempotencyError::LeaseLost`] instead of overwriting the new
//!   holder's record.
//! - **Transactional claim** ([`Idempotency::claim_with_side_effects`]): the record is written
//!   in the same `TransactWriteItems` as the caller's DynamoDB writes, so either both apply or
//!   neither does; a duplicate applies nothing.
//!
//! ## Guarantees
//! - At most one invocation at a time holds a key ([`Claim::Acquired`]); DynamoDB's
//!   conditional write is the only arbiter.
//! - A holder that crashes blocks its key until its *in-progress expiry*: the Lambda deadline
//!   of the invocation that claimed it, but never less than
//!   [`IdempotencyConfig::in_progress_floor`] from the claim. After that the key can be
//!   claimed again, before it cannot.
//! - A completed key returns the stored result until [`IdempotencyConfig::record_ttl`] has
//!   passed; after that the operation may run again (the record is reclaimed).
//! - Side effects outside DynamoDB are at least once across a crash between the effect and
//!   [`Idempotency::complete`]; make them idempotent themselves (deterministic keys) or use
//!   the transactional claim.
//!
//! ## Record layout (control table, `pk` (S) hash + `sk` (S) range)
//!
//! | attribute | type | meaning |
//! |---|---|---|
//! | `pk` | S | `idem#<namespace>#<key>` |
//! | `sk` | S | `idem` |
//! | `status` | S | `IN_PROGRESS` or `COMPLETED` |
//! | `payload_hash` | S | hex SHA-256 of the canonical JSON payload ([`payload_hash`]) |
//! | `claim_token` | S | random token of the claim that wrote the record |
//! | `claimed_at_ms` | N | when the record was claimed |
//! | `in_progress_expiry_ms` | N | while `IN_PROGRESS`: when the claim may be taken over |
//! | `completed_at_ms` | N | when `COMPLETED` |
//! | `result` | S | when `COMPLETED`: the stored result, JSON text |
//! | `expires_at_ms` | N | when the record stops counting (checked by the condition) |
//! | `ttl_epoch_s` | N | `expires_at_ms` in epoch **seconds**, rounded up: the table's TTL attribute |

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::clock::{Clock, SystemClock, duration_ms, ttl_epoch_seconds};
use crate::error::render_chain;

/// `status` of a record whose operation is running.
pub const STATUS_IN_PROGRESS: &str = "IN_PROGRESS";
/// `status` of a record whose operation finished and stored its result.
pub const STATUS_COMPLETED: &str = "COMPLETED";
/// Longest idempotency key accepted, in bytes (the partition key limit is 2048 bytes).
pub const MAX_KEY_BYTES: usize = 1024;
/// Largest stored result, in bytes of JSON; leaves room under the 400 KB item limit.
pub const MAX_RESULT_BYTES: usize = 350 * 1024;
/// Most side effects in one transactional claim (100 items per transaction, one is the claim).
pub const MAX_SIDE_EFFECTS: usize = 99;

const SK: &str = "idem";
// Control-table attribute names (see the module docs).
const A_PK: &str = "pk";
const A_SK: &str = "sk";
const A_STATUS: &str = "status";
const A_HASH: &str = "payload_hash";
const A_TOKEN: &str = "claim_token";
const A_CLAIMED: &str = "claimed_at_ms";
const A_IN_PROGRESS_EXPIRY: &str = "in_progress_expiry_ms";
const A_COMPLETED: &str = "completed_at_ms";
const A_RESULT: &str = "result";
const A_EXPIRES: &str = "expires_at_ms";
const A_TTL: &str = "ttl_epoch_s";

/// Why an idempotent operation cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdempotencyError {
    /// Another invocation holds the key and its in-progress expiry has not passed. The event
    /// source should retry later.
    #[error("idempotency key {key:?} is already in progress (until {in_progress_expiry_ms} ms)")]
    AlreadyInProgress {
        /// The key.
        key: String,
        /// When the holder's claim may be taken over, epoch ms.
        in_progress_expiry_ms: u64,
    },
    /// The key was used before with a different payload: a caller bug or a key collision;
    /// never silently return the other payload's result.
    #[error("idempotency key {key:?} was used with a different payload")]
    PayloadMismatch {
        /// The key.
        key: String,
        /// Hash stored with the record.
        stored_hash: String,
        /// Hash of the payload presented now.
        payload_hash: String,
    },
    /// The claim is no longer ours (it expired and was taken over, or was released).
    #[error("idempotency key {key:?}: claim lost before it could be completed or released")]
    LeaseLost {
        /// The key.
        key: String,
    },
    /// The key cannot be stored (empty or too long).
    #[error("invalid idempotency key: {reason}")]
    InvalidKey {
        /// Why.
        reason: String,
    },
    /// The result is too large to store in the record.
    #[error("result for idempotency key {key:?} is {bytes} bytes, above {MAX_RESULT_BYTES}")]
    ResultTooLarge {
        /// The key.
        key: String,
        /// Size of the result's JSON.
        bytes: usize,
    },
    /// More side effects than one transaction can hold.
    #[error("{count} side effects in one transactional claim, at most {MAX_SIDE_EFFECTS}")]
    TooManySideEffects {
        /// How many were given.
        count: usize,
    },
    /// One of the caller's side effects was refused (its own condition failed, or DynamoDB
    /// rejected it); nothing of the transaction was applied and the key stays free.
    #[error("side effect {index} for idempotency key {key:?} was rejected: {code}: {message}")]
    SideEffectRejected {
        /// The key.
        key: String,
        /// Index of the side effect in the caller's list.
        index: usize,
        /// DynamoDB's cancellation code, e.g. `ConditionalCheckFailed`.
        code: String,
        /// DynamoDB's message, if any.
        message: String,
    },
    /// A stored record does not have the expected shape.
    #[error("idempotency record {key:?} is corrupt: {reason}")]
    CorruptRecord {
        /// The key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The result could not be (de)serialised.
    #[error("idempotency result json: {0}")]
    Json(String),
    /// A DynamoDB call failed (after the SDK's own retries).
    #[error("DynamoDB {operation} failed: {message}")]
    Aws {
        /// Operation name.
        operation: &'static str,
        /// The error with its source chain.
        message: String,
    },
}

impl IdempotencyError {
    /// A stable name for the Lambda `errorType`.
    pub fn error_type(&self) -> &'static str {
        match self {
            IdempotencyError::AlreadyInProgress { .. } => "IdempotencyAlreadyInProgress",
            IdempotencyError::PayloadMismatch { .. } => "IdempotencyPayloadMismatch",
            IdempotencyError::LeaseLost { .. } => "IdempotencyLeaseLost",
            IdempotencyError::InvalidKey { .. } => "IdempotencyInvalidKey",
            IdempotencyError::ResultTooLarge { .. } => "IdempotencyResultTooLarge",
            IdempotencyError::TooManySideEffects { .. } => "IdempotencyTooManySideEffects",
            IdempotencyError::SideEffectRejected { .. } => "IdempotencySideEffectRejected",
            IdempotencyError::CorruptRecord { .. } => "IdempotencyCorruptRecord",
            IdempotencyError::Json(_) => "Json",
            IdempotencyError::Aws { .. } => "Aws",
        }
    }

    fn aws(operation: &'static str, err: &dyn std::error::Error) -> Self {
        IdempotencyError::Aws {
            operation,
            message: render_chain(err),
        }
    }
}

/// Settings of an [`Idempotency`] store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyConfig {
    /// The control table.
    pub table: String,
    /// Separates the keys of different functions/operations (e.g. the function name).
    pub namespace: String,
    /// How long a completed record keeps answering duplicates.
    pub record_ttl: Duration,
    /// The least time a claim blocks its key, even when the Lambda deadline is sooner or
    /// unknown (a retry arriving right after a crash must not run concurrently with a
    /// holder that is merely slow to write its completion).
    pub in_progress_floor: Duration,
}

impl IdempotencyConfig {
    /// Defaults: records kept 1 hour, in-progress floor 30 seconds.
    pub fn new(table: impl Into<String>, namespace: impl Into<String>) -> Self {
        IdempotencyConfig {
            table: table.into(),
            namespace: namespace.into(),
            record_ttl: Duration::from_secs(3600),
            in_progress_floor: Duration::from_secs(30),
        }
    }
}

/// What [`Idempotency::claim`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// The key is ours: run the operation, then [`Idempotency::complete`] or
    /// [`Idempotency::release`].
    Acquired(Lease),
    /// The operation already ran for this key and payload; here is its stored result.
    Completed(serde_json::Value),
}

/// Proof of holding a key, needed to complete or release it. Serializable, so work that
/// spans invocations can hand it to a continuation (see [`Idempotency::extend`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Lease {
    /// The caller's idempotency key.
    pub key: String,
    /// Random token written with the claim.
    pub token: String,
    /// Hash of the payload the key was claimed with.
    pub payload_hash: String,
    /// When the claim may be taken over, epoch ms.
    pub in_progress_expiry_ms: u64,
}

/// What [`Idempotency::claim_with_side_effects`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum TransactionalClaim {
    /// The record (completed with the given result) and every side effect were written.
    Applied,
    /// The key had already completed; nothing was written. Here is its stored result.
    AlreadyCompleted(serde_json::Value),
}

/// A record as stored (for inspection and tests).
#[derive(Debug, Clone, PartialEq)]
pub struct IdempotencyRecord {
    /// `IN_PROGRESS` or `COMPLETED`.
    pub status: String,
    /// Hash of the payload.
    pub payload_hash: String,
    /// Token of the claim that wrote the record.
    pub claim_token: String,
    /// While in progress: when it may be taken over.
    pub in_progress_expiry_ms: Option<u64>,
    /// When the record stops counting.
    pub expires_at_ms: u64,
    /// The DynamoDB TTL attribute (epoch seconds).
    pub ttl_epoch_s: u64,
    /// The stored result, when completed.
    pub result: Option<serde_json::Value>,
}

/// Idempotency records in the control table. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Idempotency {
    client: Client,
    config: IdempotencyConfig,
    clock: Arc<dyn Clock>,
}

impl Idempotency {
    /// A store using the system clock.
    pub fn new(client: Client, config: IdempotencyConfig) -> Self {
        Idempotency {
            client,
            config,
            clock: Arc::new(SystemClock),
        }
    }

    /// Replaces the clock (tests move time with [`crate::clock::ManualClock`]).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The settings.
    pub fn config(&self) -> &IdempotencyConfig {
        &self.config
    }

    /// Claims `key` for an operation on `payload`.
    ///
    /// `deadline_ms` is the invocation's deadline (`lambda_runtime::Context::deadline`, epoch
    /// ms); the claim blocks duplicates until then, or for at least the configured floor.
    ///
    /// Errors: [`IdempotencyError::AlreadyInProgress`] while another claim holds the key,
    /// [`IdempotencyError::PayloadMismatch`] when the key was used with another payload.
    pub async fn claim(
        &self,
        key: &str,
        payload: &serde_json::Value,
        deadline_ms: Option<u64>,
    ) -> Result<Claim, IdempotencyError> {
        let pk = self.pk(key)?;
        let now = self.clock.now_ms();
        let hash = payload_hash(payload);
        let token = new_token();
        let floor = now.saturating_add(duration_ms(self.config.in_progress_floor));
        let in_progress_expiry_ms = deadline_ms.unwrap_or(0).max(floor);
        let expires_at_ms = now
            .saturating_add(duration_ms(self.config.record_ttl))
            .max(in_progress_expiry_ms);

        let res = self
            .client
            .put_item()
            .table_name(&self.config.table)
            .set_item(Some(HashMap::from([
                (A_PK.to_string(), s(&pk)),
                (A_SK.to_string(), s(SK)),
                (A_STATUS.to_string(), s(STATUS_IN_PROGRESS)),
                (A_HASH.to_string(), s(&hash)),
                (A_TOKEN.to_string(), s(&token)),
                (A_CLAIMED.to_string(), n(now)),
                (A_IN_PROGRESS_EXPIRY.to_string(), n(in_progress_expiry_ms)),
                (A_EXPIRES.to_string(), n(expires_at_ms)),
                (A_TTL.to_string(), n(ttl_epoch_seconds(expires_at_ms))),
            ])))
            .condition_expression(CLAIM_CONDITION)
            .set_expression_attribute_names(Some(claim_names()))
            .set_expression_attribute_values(Some(claim_values(now)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match res {
            Ok(_) => Ok(Claim::Acquired(Lease {
                key: key.to_string(),
                token,
                payload_hash: hash,
                in_progress_expiry_ms,
            })),
            Err(SdkError::ServiceError(e)) => match e.err() {
                PutItemError::ConditionalCheckFailedException(ccf) => {
                    let existing = ccf.item().ok_or_else(|| IdempotencyError::CorruptRecord {
                        key: key.to_string(),
                        reason: "claim lost but DynamoDB returned no existing record".into(),
                    })?;
                    explain_lost_claim(key, &hash, existing).map(Claim::Completed)
                }
                other => Err(IdempotencyError::aws("PutItem", other)),
            },
            Err(e) => Err(IdempotencyError::aws("PutItem", &e)),
        }
    }

    /// Completes a claim, storing `result` for duplicates.
    ///
    /// [`IdempotencyError::LeaseLost`] when the claim expired and was taken over (or was
    /// released) meanwhile.
    pub async fn complete<T: Serialize + ?Sized>(
        &self,
        lease: &Lease,
        result: &T,
    ) -> Result<(), IdempotencyError> {
        let pk = self.pk(&lease.key)?;
        let result_json = self.result_json(&lease.key, result)?;
        let now = self.clock.now_ms();
        let expires_at_ms = now.saturating_add(duration_ms(self.config.record_ttl));
        let res = self
            .client
            .update_item()
            .table_name(&self.config.table)
            .key(A_PK, s(&pk))
            .key(A_SK, s(SK))
            .update_expression(
                "SET #st = :completed, #res = :result, #done = :now, #exp = :exp, #ttl = :ttl \
                 REMOVE #ipe",
            )
            .condition_expression("#st = :in_progress AND #tok = :token")
            .expression_attribute_names("#st", A_STATUS)
            .expression_attribute_names("#res", A_RESULT)
            .expression_attribute_names("#done", A_COMPLETED)
            .expression_attribute_names("#exp", A_EXPIRES)
            .expression_attribute_names("#ttl", A_TTL)
            .expression_attribute_names("#ipe", A_IN_PROGRESS_EXPIRY)
            .expression_attribute_names("#tok", A_TOKEN)
            .expression_attribute_values(":completed", s(STATUS_COMPLETED))
            .expression_attribute_values(":in_progress", s(STATUS_IN_PROGRESS))
            .expression_attribute_values(":result", s(&result_json))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":exp", n(expires_at_ms))
            .expression_attribute_values(":ttl", n(ttl_epoch_seconds(expires_at_ms)))
            .expression_attribute_values(":token", s(&lease.token))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), UpdateItemError::ConditionalCheckFailedException(_)) =>
            {
                Err(IdempotencyError::LeaseLost {
                    key: lease.key.clone(),
                })
            }
            Err(e) => Err(IdempotencyError::aws("UpdateItem", &e)),
        }
    }

    /// Releases a claim after the operation failed, so a retry can run it at once.
    ///
    /// [`IdempotencyError::LeaseLost`] when the key is no longer held by this claim.
    pub async fn release(&self, lease: &Lease) -> Result<(), IdempotencyError> {
        let pk = self.pk(&lease.key)?;
        let res = self
            .client
            .delete_item()
            .table_name(&self.config.table)
            .key(A_PK, s(&pk))
            .key(A_SK, s(SK))
            .condition_expression("#st = :in_progress AND #tok = :token")
            .expression_attribute_names("#st", A_STATUS)
            .expression_attribute_names("#tok", A_TOKEN)
            .expression_attribute_values(":in_progress", s(STATUS_IN_PROGRESS))
            .expression_attribute_values(":token", s(&lease.token))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), DeleteItemError::ConditionalCheckFailedException(_)) =>
            {
                Err(IdempotencyError::LeaseLost {
                    key: lease.key.clone(),
                })
            }
            Err(e) => Err(IdempotencyError::aws("DeleteItem", &e)),
        }
    }

    /// Claims `key` and applies `side_effects` in one `TransactWriteItems`: the record is
    /// written already `COMPLETED` with `result`, so the effects and the record stand or fall
    /// together. When the key is taken, no side effect is applied.
    ///
    /// Errors as [`Idempotency::claim`], plus [`IdempotencyError::SideEffectRejected`] when a
    /// side effect's own condition fails (then nothing was written and the key stays free).
    pub async fn claim_with_side_effects<T: Serialize + ?Sized>(
        &self,
        key: &str,
        payload: &serde_json::Value,
        side_effects: Vec<TransactWriteItem>,
        result: &T,
    ) -> Result<TransactionalClaim, IdempotencyError> {
        if side_effects.len() > MAX_SIDE_EFFECTS {
            return Err(IdempotencyError::TooManySideEffects {
                count: side_effects.len(),
            });
        }
        let pk = self.pk(key)?;
        let result_json = self.result_json(key, result)?;
        let now = self.clock.now_ms();
        let hash = payload_hash(payload);
        let token = new_token();
        let expires_at_ms = now.saturating_add(duration_ms(self.config.record_ttl));
        let put = Put::builder()
            .table_name(&self.config.table)
            .set_item(Some(HashMap::from([
                (A_PK.to_string(), s(&pk)),
                (A_SK.to_string(), s(SK)),
                (A_STATUS.to_string(), s(STATUS_COMPLETED)),
                (A_HASH.to_string(), s(&hash)),
                (A_TOKEN.to_string(), s(&token)),
                (A_CLAIMED.to_string(), n(now)),
                (A_COMPLETED.to_string(), n(now)),
                (A_RESULT.to_string(), s(&result_json)),
                (A_EXPIRES.to_string(), n(expires_at_ms)),
                (A_TTL.to_string(), n(ttl_epoch_seconds(expires_at_ms))),
            ])))
            .condition_expression(CLAIM_CONDITION)
            .set_expression_attribute_names(Some(claim_names()))
            .set_expression_attribute_values(Some(claim_values(now)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| IdempotencyError::aws("TransactWriteItems", &e))?;
        let mut items = Vec::with_capacity(side_effects.len() + 1);
        items.push(TransactWriteItem::builder().put(put).build());
        items.extend(side_effects);

        let res = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match res {
            Ok(_) => Ok(TransactionalClaim::Applied),
            Err(SdkError::ServiceError(e)) => match e.err() {
                TransactWriteItemsError::TransactionCanceledException(tce) => {
                    let reasons = tce.cancellation_reasons();
                    if let Some(claim) = reasons.first()
                        && claim.code() == Some("ConditionalCheckFailed")
                    {
                        let existing =
                            claim
                                .item()
                                .ok_or_else(|| IdempotencyError::CorruptRecord {
                                    key: key.to_string(),
                                    reason: "claim lost but DynamoDB returned no existing record"
                                        .into(),
                                })?;
                        return explain_lost_claim(key, &hash, existing)
                            .map(TransactionalClaim::AlreadyCompleted);
                    }
                    if let Some((i, r)) = reasons
                        .iter()
                        .enumerate()
                        .skip(1)
                        .find(|(_, r)| r.code().is_some_and(|c| c != "None"))
                    {
                        return Err(IdempotencyError::SideEffectRejected {
                            key: key.to_string(),
                            index: i - 1,
                            code: r.code().unwrap_or_default().to_string(),
                            message: r.message().unwrap_or_default().to_string(),
                        });
                    }
                    Err(IdempotencyError::aws("TransactWriteItems", tce))
                }
                other => Err(IdempotencyError::aws("TransactWriteItems", other)),
            },
            Err(e) => Err(IdempotencyError::aws("TransactWriteItems", &e)),
        }
    }

    /// Extends a claim's in-progress expiry to `in_progress_expiry_ms` (and its record expiry
    /// to at least that), for work that spans several invocations: a holder handing the rest
    /// of its work to a continuation extends the claim past the hand-off, and the
    /// continuation extends it to its own deadline. Returns the lease with the new expiry.
    ///
    /// The claim's token is rotated: the returned lease carries a new one and the old lease
    /// is dead, so if the lease was handed to two invocations (an event delivered twice),
    /// only the first to extend it goes on.
    ///
    /// [`IdempotencyError::LeaseLost`] when the claim is no longer this lease's (it expired
    /// and was taken over, completed or released): the caller must stop.
    pub async fn extend(
        &self,
        lease: &Lease,
        in_progress_expiry_ms: u64,
    ) -> Result<Lease, IdempotencyError> {
        let pk = self.pk(&lease.key)?;
        let token = new_token();
        let now = self.clock.now_ms();
        let expires_at_ms = now
            .saturating_add(duration_ms(self.config.record_ttl))
            .max(in_progress_expiry_ms);
        let res = self
            .client
            .update_item()
            .table_name(&self.config.table)
            .key(A_PK, s(&pk))
            .key(A_SK, s(SK))
            .update_expression("SET #ipe = :ipe, #exp = :exp, #ttl = :ttl, #tok = :new_token")
            .condition_expression("#st = :in_progress AND #tok = :token")
            .expression_attribute_names("#st", A_STATUS)
            .expression_attribute_names("#tok", A_TOKEN)
            .expression_attribute_names("#ipe", A_IN_PROGRESS_EXPIRY)
            .expression_attribute_names("#exp", A_EXPIRES)
            .expression_attribute_names("#ttl", A_TTL)
            .expression_attribute_values(":in_progress", s(STATUS_IN_PROGRESS))
            .expression_attribute_values(":token", s(&lease.token))
            .expression_attribute_values(":ipe", n(in_progress_expiry_ms))
            .expression_attribute_values(":exp", n(expires_at_ms))
            .expression_attribute_values(":ttl", n(ttl_epoch_seconds(expires_at_ms)))
            .expression_attribute_values(":new_token", s(&token))
            .send()
            .await;
        match res {
            Ok(_) => Ok(Lease {
                in_progress_expiry_ms,
                token,
                ..lease.clone()
            }),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), UpdateItemError::ConditionalCheckFailedException(_)) =>
            {
                Err(IdempotencyError::LeaseLost {
                    key: lease.key.clone(),
                })
            }
            Err(e) => Err(IdempotencyError::aws("UpdateItem", &e)),
        }
    }

    /// Reads the record of `key` (strongly consistent), for inspection and tests.
    pub async fn get(&self, key: &str) -> Result<Option<IdempotencyRecord>, IdempotencyError> {
        let pk = self.pk(key)?;
        let out = self
            .client
            .get_item()
            .table_name(&self.config.table)
            .key(A_PK, s(&pk))
            .key(A_SK, s(SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| IdempotencyError::aws("GetItem", &e))?;
        out.item().map(|item| parse_record(key, item)).transpose()
    }

    fn pk(&self, key: &str) -> Result<String, IdempotencyError> {
        if key.is_empty() {
            return Err(IdempotencyError::InvalidKey {
                reason: "empty key".into(),
            });
        }
        if key.len() > MAX_KEY_BYTES {
            return Err(IdempotencyError::InvalidKey {
                reason: format!("{} bytes, at most {MAX_KEY_BYTES}", key.len()),
            });
        }
        Ok(format!("idem#{}#{key}", self.config.namespace))
    }

    fn result_json<T: Serialize + ?Sized>(
        &self,
        key: &str,
        result: &T,
    ) -> Result<String, IdempotencyError> {
        let json =
            serde_json::to_string(result).map_err(|e| IdempotencyError::Json(e.to_string()))?;
        if json.len() > MAX_RESULT_BYTES {
            return Err(IdempotencyError::ResultTooLarge {
                key: key.to_string(),
                bytes: json.len(),
            });
        }
        Ok(json)
    }
}

/// Turns the record that beat a claim into the caller's answer: the stored result when it is
/// a completed record for the same payload, otherwise the typed error.
fn explain_lost_claim(
    key: &str,
    hash: &str,
    existing: &HashMap<String, AttributeValue>,
) -> Result<serde_json::Value, IdempotencyError> {
    let record = parse_record(key, existing)?;
    if record.payload_hash != hash {
        return Err(IdempotencyError::PayloadMismatch {
            key: key.to_string(),
            stored_hash: record.payload_hash,
            payload_hash: hash.to_string(),
        });
    }
    match (record.status.as_str(), record.result) {
        (STATUS_COMPLETED, Some(result)) => Ok(result),
        (STATUS_COMPLETED, None) => Err(IdempotencyError::CorruptRecord {
            key: key.to_string(),
            reason: "completed record without a result".into(),
        }),
        _ => Err(IdempotencyError::AlreadyInProgress {
            key: key.to_string(),
            in_progress_expiry_ms: record.in_progress_expiry_ms.unwrap_or(0),
        }),
    }
}

/// The claim wins when no record exists, the record expired, or an in-progress claim
/// passed its in-progress expiry. Timestamps, not TTL, decide.
const CLAIM_CONDITION: &str = "attribute_not_exists(#pk) OR #exp < :now \
     OR (#st = :in_progress AND #ipe < :now)";

fn claim_names() -> HashMap<String, String> {
    HashMap::from([
        ("#pk".to_string(), A_PK.to_string()),
        ("#exp".to_string(), A_EXPIRES.to_string()),
        ("#st".to_string(), A_STATUS.to_string()),
        ("#ipe".to_string(), A_IN_PROGRESS_EXPIRY.to_string()),
    ])
}

fn claim_values(now: u64) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (":now".to_string(), n(now)),
        (":in_progress".to_string(), s(STATUS_IN_PROGRESS)),
    ])
}

fn parse_record(
    key: &str,
    item: &HashMap<String, AttributeValue>,
) -> Result<IdempotencyRecord, IdempotencyError> {
    let corrupt = |reason: String| IdempotencyError::CorruptRecord {
        key: key.to_string(),
        reason,
    };
    let get_s = |name: &str| -> Result<String, IdempotencyError> {
        match item.get(name) {
            Some(AttributeValue::S(v)) => Ok(v.clone()),
            _ => Err(corrupt(format!("{name} missing or not a string"))),
        }
    };
    let get_n = |name: &str| -> Result<Option<u64>, IdempotencyError> {
        match item.get(name) {
            None => Ok(None),
            Some(AttributeValue::N(v)) => v
                .parse::<u64>()
                .map(Some)
                .map_err(|_| corrupt(format!("{name} is not an integer: {v:?}"))),
            Some(_) => Err(corrupt(format!("{name} is not a number"))),
        }
    };
    let result = match item.get(A_RESULT) {
        None => None,
        Some(AttributeValue::S(v)) => {
            Some(serde_json::from_str(v).map_err(|e| corrupt(format!("result is not JSON: {e}")))?)
        }
        Some(_) => return Err(corrupt("result is not a string".into())),
    };
    Ok(IdempotencyRecord {
        status: get_s(A_STATUS)?,
        payload_hash: get_s(A_HASH)?,
        claim_token: get_s(A_TOKEN)?,
        in_progress_expiry_ms: get_n(A_IN_PROGRESS_EXPIRY)?,
        expires_at_ms: get_n(A_EXPIRES)?.ok_or_else(|| corrupt(format!("{A_EXPIRES} missing")))?,
        ttl_epoch_s: get_n(A_TTL)?.unwrap_or(0),
        result,
    })
}

/// Hex SHA-256 of the canonical JSON text of `payload`: object keys sorted by code point at
/// every level, no insignificant whitespace, numbers as serde_json prints them. The same data
/// hashes the same whatever the key order it arrived in (and whether or not serde_json's
/// `preserve_order` feature is enabled somewhere in the build).
pub fn payload_hash(payload: &serde_json::Value) -> String {
    let mut canonical = String::new();
    write_canonical(payload, &mut canonical);
    let digest = Sha256::digest(canonical.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest.iter() {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// Appends the canonical JSON text of `value` (see [`payload_hash`]).
pub fn write_canonical(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// A random 128-bit token, hex. Not a secret: it only tells claims apart.
fn new_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let state = std::collections::hash_map::RandomState::new();
    let mut a = state.build_hasher();
    a.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    let mut b = state.build_hasher();
    b.write_u64(a.finish());
    format!("{:016x}{:016x}", a.finish(), b.finish())
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn payload_hash_ignores_key_order_and_whitespace() {
        let a = json!({"b": 1, "a": {"y": [1, 2], "x": "s"}});
        let b: serde_json::Value =
            serde_json::from_str(r#"{ "a": {"x":"s", "y":[1,2]}, "b":1 }"#).unwrap();
        assert_eq!(payload_hash(&a), payload_hash(&b));
        assert_ne!(
            payload_hash(&a),
            payload_hash(&json!({"b": 2, "a": {"y": [1, 2], "x": "s"}}))
        );
        let mut text = String::new();
        write_canonical(&a, &mut text);
        assert_eq!(text, r#"{"a":{"x":"s","y":[1,2]},"b":1}"#);
        assert_eq!(payload_hash(&a).len(), 64);
    }

    #[test]
    fn tokens_differ() {
        assert_ne!(new_token(), new_token());
    }

    #[test]
    fn parse_record_reports_corruption() {
        let item = HashMap::from([(A_STATUS.to_string(), s(STATUS_COMPLETED))]);
        let err = parse_record("k", &item).unwrap_err();
        assert!(
            matches!(err, IdempotencyError::CorruptRecord { .. }),
            "{err}"
        );
    }
}
