//! # dynabridge-devstack
//!
//! Everything needed to run dynabridge's real function binaries on one machine with no Docker,
//! no cloud and no internet:
//!
//! - [`stack`]: the local AWS stack — embedded DynamoDB + Streams (`dynoxide`, served over
//!   HTTP on 127.0.0.1, with an on-demand TTL sweep), embedded file-backed S3 (`s3s-fs`, so the
//!   lake is a plain folder), and `moto_server` from the project venv for EventBridge + SQS.
//!   Ephemeral ports; everything stops when the [`stack::LocalStack`] is dropped.
//! - [`harness`]: runs a compiled function binary under a Lambda Runtime API server, returns
//!   its response or `/error` payload, notices a crashed child at once and enforces deadlines.
//! - [`sources`]: event sources with AWS semantics on top of the harness — a DynamoDB Streams
//!   event source mapping (batching, partial batch failures, bisection, retries, record age,
//!   filter criteria, on-failure destination), EventBridge schedules and S3 "Object Created"
//!   events.
//! - [`faults`]: fault-injecting proxies in front of the stack's endpoints (throttling, 5xx,
//!   connection resets, latency, partial batch results), seeded and deterministic.
//! - [`provision`]: creates the resources `template.yaml` declares, on the local stack.
//! - [`sample`]: a realistic, deterministic sample dataset.
//!
//! The tests crate and the local runner (`dynabridge-local`) are both built on this crate.

pub mod faults;
pub mod harness;
pub mod provision;
pub mod sample;
pub mod sources;
pub mod stack;
pub mod venv;

pub use harness::{FunctionProcess, FunctionSpec, InvokeOutcome};
pub use stack::{LocalStack, StackOptions};
