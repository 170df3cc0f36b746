//! Event sources with AWS semantics, driving a [`crate::FunctionProcess`].
//!
//! - [`streams`]: a DynamoDB Streams event source mapping, as Lambda runs it.
//! - [`filter`]: Lambda event filtering (`FilterCriteria` patterns).
//! - [`schedule`]: EventBridge scheduled events.
//! - [`s3_events`]: S3 "Object Created" events as EventBridge delivers them.

pub mod filter;
pub mod s3_events;
pub mod schedule;
pub mod streams;
