//! Event sources with AWS semantics, driving a [`crate::FunctionProcess`].
//!
//! - [`async_invoke`]: Lambda's asynchronous invocation queue, for self-invoking fan-out.
//! - [`streams`]: a DynamoDB Streams event source mapping, as Lambda runs it.
//! - [`filter`]: Lambda event filtering (`FilterCriteria` patterns).
//! - [`schedule`]: EventBridge scheduled events.
//! - [`s3_events`]: S3 "Object Created" events as EventBridge delivers them.

pub mod async_invoke;
pub mod filter;
pub mod s3_events;
pub mod schedule;
pub mod streams;
