//! # dynabridge-shared
//!
//! The one library every dynabridge Lambda function links. Anything two functions need lives
//! here, in a module named for the concept it holds:
//!
//! - [`config`]: typed configuration read once from environment variables at cold start; an
//!   invalid or missing setting fails the cold start with the variable's name.
//! - [`clients`]: the AWS SDK clients, built once from `aws-config`. Endpoints come from the
//!   standard `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` variables, so the same binary
//!   talks to AWS or to the local stack without custom endpoint code.
//! - [`telemetry`]: JSON logs through `tracing`, honouring `AWS_LAMBDA_LOG_LEVEL` / `RUST_LOG`,
//!   with the Lambda request id on every line logged during an invocation.
//! - [`boot`]: the cold start every `main.rs` runs (logging → config → clients).
//! - [`events`]: domain events on EventBridge (limits, claim checks, per-entry retries) and
//!   DynamoDB images as plain JSON.
//! - [`idempotency`]: Powertools-style idempotency records in the control table, plus a
//!   transactional claim written together with DynamoDB side effects.
//! - [`checkpoint`]: ordered per-(consumer, shard, sink) checkpoints with pending ranges, so a
//!   retried stream batch rewrites exactly the same output object; O(1) writes per batch.
//! - [`writer`]: the DynamoDB batch writer (25-item chunks, key de-duplication, retries of
//!   UnprocessedItems and throttling, AIMD concurrency, rate ceiling, guarded writes).
//! - [`scan`]: resumable reads of a table or sparse index in independent segments (parallel
//!   scan segments or index partitions) with checkpointable cursors.
//! - [`expire`]: guarded expiry — set the TTL or delete an item only if it is unchanged since
//!   it was read.
//! - [`progress`]: durable, forward-only positions of work spanning invocations (a large
//!   file, an export), so a continuation or a takeover resumes exactly where work stopped.
//! - [`continuation`]: handing the rest of the work to a new invocation before the deadline
//!   (asynchronous self-invoke in AWS; returned in the response for the local harness).
//! - [`metrics`]: CloudWatch metrics as Embedded Metric Format lines.
//! - [`clock`] and [`retry`]: injectable time and full-jitter backoff for all of the above.
//! - [`schema`]: the schema registry — entities, numbered versions, upcasts, fingerprints and
//!   the BACKWARD compatibility check (`schema-check` binary).
//! - [`codec`]: DynamoDB items ⇄ Arrow record batches in the lake schema, exact for numbers
//!   and timestamps, with per-row errors callers quarantine.
//! - [`lake`]: deterministic object keys, Spark-safe Parquet writing (in memory or streamed
//!   to S3 as multipart) and reading (including Spark's INT96 timestamps).
//! - [`stream`]: DynamoDB Streams batches decoded into change records (TTL deletions as
//!   EXPIRE, poison records kept with a reason), ordered batch responses, and the range sink
//!   that writes a checkpointed range to the lake exactly once.
//! - [`condition`]: conditions that make deletes and expiries safe ("unchanged since read").
//! - [`crashpoint`]: named abort points the reliability tests use (no-op unless configured).
//! - [`error`]: the [`error::DynabridgeError`] type and its mapping to Lambda diagnostics
//!   (`errorType` / `errorMessage` posted to the Runtime API).
//!
//! Design decisions that apply to the whole suite are written down in `docs/decisions.md`.

pub mod boot;
pub mod checkpoint;
pub mod clients;
pub mod clock;
pub mod codec;
pub mod condition;
pub mod config;
pub mod continuation;
pub mod crashpoint;
pub mod error;
pub mod events;
pub mod expire;
pub mod idempotency;
pub mod lake;
pub mod metrics;
pub mod progress;
pub mod retry;
pub mod scan;
pub mod schema;
pub mod stream;
pub mod telemetry;
pub mod writer;

pub use error::{DynabridgeError, Result};
