//! Starting follow-up invocations: one per segment when a run starts, one to continue a
//! segment near the deadline, one to finalize.
//!
//! In AWS the function invokes **itself asynchronously** (`lambda:InvokeFunction`,
//! `InvocationType=Event`): each event is queued by Lambda, retried twice on error with
//! backoff, and sent to the function's on-failure destination after that, so no segment
//! depends on the invocation that started it. Offline there is no Lambda service to queue
//! them, so the `response` mode returns the events in the response's `dispatch` list and the
//! local driver (`devstack::sources::async_invoke`) invokes them with the same semantics.
//! Both modes carry the same events; only the transport differs.

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use dynabridge_shared::DynabridgeError;
use serde_json::Value;

use crate::config::DispatchMode;

/// How follow-up events leave this invocation.
#[derive(Debug, Clone)]
pub enum Dispatcher {
    /// Asynchronous self-invocation.
    Lambda(aws_sdk_lambda::Client),
    /// In the response (`dispatch`), for a local driver.
    Response,
}

impl Dispatcher {
    /// The dispatcher of `mode`, with a Lambda client built from `sdk_config` when needed.
    pub fn new(mode: DispatchMode, sdk_config: &aws_config::SdkConfig) -> Self {
        match mode {
            DispatchMode::Lambda => Dispatcher::Lambda(aws_sdk_lambda::Client::new(sdk_config)),
            DispatchMode::Response => Dispatcher::Response,
        }
    }

    /// Whether a dispatched event is durable as soon as [`Dispatcher::dispatch`] returns. In
    /// response mode it is not: the events live in a response a crash can lose, so the run is
    /// never marked dispatched and a duplicate tick re-sends segments that never started
    /// (their leases make a second delivery harmless).
    pub fn is_durable(&self) -> bool {
        matches!(self, Dispatcher::Lambda(_))
    }

    /// Sends `events` to `function_arn`; in response mode appends them to `returned`.
    pub async fn dispatch(
        &self,
        function_arn: &str,
        events: Vec<Value>,
        returned: &mut Vec<Value>,
    ) -> Result<(), DynabridgeError> {
        match self {
            Dispatcher::Response => {
                returned.extend(events);
                Ok(())
            }
            Dispatcher::Lambda(client) => {
                for event in events {
                    client
                        .invoke()
                        .function_name(function_arn)
                        .invocation_type(InvocationType::Event)
                        .payload(Blob::new(serde_json::to_vec(&event)?))
                        .send()
                        .await
                        .map_err(|e| DynabridgeError::aws("Lambda", "Invoke", e))?;
                }
                Ok(())
            }
        }
    }
}
