//! Fault injection between the functions (or any SDK client) and the local stack.
//!
//! The local servers never throttle, never fail and never drop a connection, so the code
//! paths that keep dynabridge correct under real AWS — retries, `UnprocessedItems`,
//! `PutEvents` per-entry failures, idempotent re-execution after an ambiguous write — would
//! go untested. A [`FaultProxy`] is an HTTP/1.1 proxy on an ephemeral 127.0.0.1 port in front
//! of one local-stack endpoint. Clients are pointed at it instead of the endpoint
//! ([`FaultyEndpoints`] does that for a whole [`LocalStack`](crate::LocalStack), including
//! the `AWS_ENDPOINT_URL_*` variables for function processes); it forwards every request and
//! injects, per service and operation, at a configured rate:
//!
//! | [`Fault`] | what the client gets | forwarded? |
//! |---|---|---|
//! | `Throttle` | DynamoDB `400 ProvisionedThroughputExceededException`, EventBridge / Streams `400 ThrottlingException`, SQS `400 RequestThrottled`, S3 `503 SlowDown` | no |
//! | `ThrottlingException` | `400 ThrottlingException` (S3: `503 SlowDown`) | no |
//! | `InternalError` | `500` `InternalServerError` / `InternalException` / `InternalError` | no |
//! | `ServiceUnavailable` | `503 ServiceUnavailable` | no |
//! | `ConnectionReset` | TCP RST, no response (an I/O error in the SDK) | no |
//! | `ResetAfterForward` | TCP RST after the upstream applied the request | yes |
//! | `Latency(d)` | the normal answer, `d` later | yes |
//! | `PartialBatch` | `200` with `UnprocessedItems` (BatchWriteItem) or `FailedEntryCount` + per-entry `InternalFailure` (PutEvents) | a subset |
//!
//! Error bodies and headers have the shape each protocol uses (see `shapes.rs`), so the SDK
//! parses them into the same modeled errors and retry classes as real AWS responses: with
//! retries disabled, a throttled `PutItem` surfaces as
//! `is_provisioned_throughput_exceeded_exception()`.
//!
//! # Guarantees
//!
//! - **Transparent forwarding.** Method, path, query, headers and body go upstream as the
//!   client sent them. `Host` is not rewritten: s3s verifies SigV4 against the host the
//!   client signed. Only the hop-by-hop headers are dropped and `Content-Length` is set from
//!   the (buffered) body. Requests and responses are buffered whole; fine for the suite's
//!   sizes (multipart parts are 5 MiB).
//! - **Partial results are real.** A partial batch forwards only the kept entries, so the
//!   held-back ones are exactly the ones the upstream never saw: after a `BatchWriteItem`
//!   the table lacks precisely the `UnprocessedItems`; after `PutEvents` only the entries
//!   without an `ErrorCode` are delivered. This rewrites a signed body, which works because
//!   dynoxide and moto_server do not verify signatures (s3s does, and no S3 fault rewrites a
//!   body).
//! - **Deterministic.** Decisions come from SplitMix64 streams, one per operation, seeded
//!   from the plan's seed and the operation's name; each matching rule takes exactly one draw
//!   per request whatever happens. So the n-th request of an operation meets the same faults
//!   under the same seed regardless of how other operations interleave (a background stream
//!   poller does not shift the faults a writer sees) and regardless of earlier outcomes.
//!   Concurrent requests *of the same operation* are numbered in arrival order.
//! - **Rules.** For each request every matching rule is drawn in order. Latencies add up; the
//!   first error or reset that fires wins; a partial batch applies only when no error or reset
//!   fired and the body is a non-empty batch (otherwise the request is forwarded unchanged
//!   and nothing is counted). A partial batch holds back each entry with probability ½ and at
//!   least one; when all are held back nothing is forwarded.
//! - **Accounting.** [`FaultProxy::stats`] counts requests received and forwarded per
//!   operation and each fault actually applied per operation and kind;
//!   [`FaultProxy::journal`] lists the applied faults in order with the request's position.
//! - **Lifecycle.** Each proxy runs on its own thread and current-thread Tokio runtime (so it
//!   serves while the caller blocks, under any runtime); dropping it stops the accept loop
//!   and drops the runtime, cancelling every connection task. [`FaultProxy::set_plan`]
//!   changes the faults for the requests that arrive next.
//!
//! Not covered: S3 virtual-hosted-style addressing (the local stack uses path style) and
//! HTTP/2 or TLS between client and proxy (the SDKs speak HTTP/1.1 to `http://` endpoints).
//!
//! ```no_run
//! use dynabridge_devstack::faults::{Fault, FaultPlan, FaultyEndpoints, Service};
//! use dynabridge_devstack::{LocalStack, StackOptions};
//!
//! # fn main() -> anyhow::Result<()> {
//! let stack = LocalStack::start(StackOptions::default())?;
//! let plan = FaultPlan::new(42)
//!     .on(Service::DynamoDb, "BatchWriteItem", Fault::PartialBatch, 0.3)
//!     .on(Service::S3, "PutObject", Fault::Throttle, 0.2);
//! let faulty = FaultyEndpoints::start(&stack, plan)?;
//! let env = faulty.aws_env(); // for the function process
//! # let _ = env;
//! // ... run the scenario, then:
//! faulty.set_plan(FaultPlan::none())?;
//! println!("{:?}", faulty.stats());
//! # Ok(())
//! # }
//! ```

mod classify;
mod endpoints;
mod partial;
mod plan;
mod proxy;
mod shapes;

pub use endpoints::FaultyEndpoints;
pub use plan::{Fault, FaultKind, FaultPlan, FaultRule, Operation, Service};
pub use proxy::{FaultProxy, FaultStats, InjectedFault};
