//! Continuations: handing the rest of a piece of work to a new invocation of the same
//! function before the current one reaches its deadline.
//!
//! Work that can outlast one invocation (a large file, a long export) saves its position
//! durably ([`crate::progress`]), then asks a [`Dispatcher`] to start a continuation with a
//! small event that names the work ([`Continuation`]). The continuation reads the position
//! and goes on. The event never carries the position itself, so a lost or duplicated
//! continuation cannot skip or repeat work; it carries only what is needed to find it.
//!
//! Two dispatchers exist, chosen by [`DispatchMode`] (`DYNABRIDGE_CONTINUATION_MODE`):
//! - [`LambdaDispatcher`] (`self-invoke`, the default, what runs in AWS): an asynchronous
//!   `Invoke` (`InvocationType=Event`) of the ARN this invocation was called with, so an
//!   alias or version is kept. Lambda queues the event and retries it on function errors like
//!   any async event (configure its DLQ / on-failure destination).
//! - [`ReturnDispatcher`] (`return`, for the local harness and tests, which have no Lambda
//!   service to invoke): nothing is sent; the caller puts the event in its response
//!   (`Dispatch::Returned`) and the driver invokes the function with it.
//!
//! A hop counter travels with the event so a bug that makes no progress cannot loop forever:
//! callers refuse to continue past their configured maximum.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{ConfigError, Env};
use crate::error::{DynabridgeError, render_chain};

/// The field of a continuation event holding the [`Continuation`].
pub const CONTINUATION_FIELD: &str = "dynabridgeContinuation";
/// Variable choosing the [`DispatchMode`].
pub const MODE_VAR: &str = "DYNABRIDGE_CONTINUATION_MODE";

/// The payload of a continuation event: `{"dynabridgeContinuation": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Continuation<T> {
    /// The function that dispatched it (a continuation for another function is refused).
    pub function: String,
    /// How many continuations came before this one in the chain (the first is 1).
    pub hop: u32,
    /// What the continuation must go on with (identifies the work; not its position).
    pub state: T,
}

impl<T: Serialize> Continuation<T> {
    /// The event to invoke the function with.
    pub fn to_event(&self) -> Result<Value, DynabridgeError> {
        let mut map = serde_json::Map::new();
        map.insert(CONTINUATION_FIELD.to_string(), serde_json::to_value(self)?);
        Ok(Value::Object(map))
    }
}

/// The continuation carried by `event`: `None` when the event is not a continuation,
/// `Some(Err)` when it is one but does not parse.
pub fn from_event<T: DeserializeOwned>(
    event: &Value,
) -> Option<Result<Continuation<T>, serde_json::Error>> {
    event
        .get(CONTINUATION_FIELD)
        .map(|v| serde_json::from_value(v.clone()))
}

/// What [`Dispatcher::dispatch`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Dispatch {
    /// The continuation was queued with Lambda (asynchronous invoke of `target`).
    Invoked {
        /// The function ARN or name invoked.
        target: String,
    },
    /// Nothing was sent: the caller must return this event in its response so the driver
    /// (local harness, test) invokes the function with it.
    Returned(Value),
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Starts continuation invocations.
pub trait Dispatcher: Debug + Send + Sync {
    /// Starts an invocation of `target` (the ARN the current invocation was called with)
    /// with `event`.
    fn dispatch<'a>(
        &'a self,
        target: &'a str,
        event: Value,
    ) -> BoxFuture<'a, Result<Dispatch, DynabridgeError>>;
}

/// Asynchronous self-invoke through the Lambda API.
#[derive(Debug, Clone)]
pub struct LambdaDispatcher {
    client: aws_sdk_lambda::Client,
}

impl LambdaDispatcher {
    /// A dispatcher using `client`.
    pub fn new(client: aws_sdk_lambda::Client) -> Self {
        LambdaDispatcher { client }
    }
}

impl Dispatcher for LambdaDispatcher {
    fn dispatch<'a>(
        &'a self,
        target: &'a str,
        event: Value,
    ) -> BoxFuture<'a, Result<Dispatch, DynabridgeError>> {
        Box::pin(async move {
            let payload = serde_json::to_vec(&event)?;
            let out = self
                .client
                .invoke()
                .function_name(target)
                .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
                .payload(aws_sdk_lambda::primitives::Blob::new(payload))
                .send()
                .await
                .map_err(|e| DynabridgeError::Aws {
                    service: "Lambda",
                    operation: "Invoke",
                    message: render_chain(&e),
                })?;
            // An accepted asynchronous invoke answers 202.
            if out.status_code() != 202 {
                return Err(DynabridgeError::Aws {
                    service: "Lambda",
                    operation: "Invoke",
                    message: format!(
                        "asynchronous invoke of {target} answered status {}",
                        out.status_code()
                    ),
                });
            }
            Ok(Dispatch::Invoked {
                target: target.to_string(),
            })
        })
    }
}

/// Returns the continuation to the caller instead of invoking (local harness, tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct ReturnDispatcher;

impl Dispatcher for ReturnDispatcher {
    fn dispatch<'a>(
        &'a self,
        _target: &'a str,
        event: Value,
    ) -> BoxFuture<'a, Result<Dispatch, DynabridgeError>> {
        Box::pin(async move { Ok(Dispatch::Returned(event)) })
    }
}

/// How continuations are started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DispatchMode {
    /// Asynchronous self-invoke (AWS).
    SelfInvoke,
    /// Returned in the response for the driver to invoke (local harness).
    Return,
}

impl DispatchMode {
    /// Reads [`MODE_VAR`]: `self-invoke` (default) or `return`.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        match env.optional(MODE_VAR).as_deref().map(str::trim) {
            None | Some("self-invoke") => Ok(DispatchMode::SelfInvoke),
            Some("return") => Ok(DispatchMode::Return),
            Some(other) => Err(ConfigError::Invalid {
                name: MODE_VAR.to_string(),
                value: other.to_string(),
                reason: "expected self-invoke or return".to_string(),
            }),
        }
    }

    /// The dispatcher for this mode.
    pub fn dispatcher(self, sdk_config: &aws_config::SdkConfig) -> std::sync::Arc<dyn Dispatcher> {
        match self {
            DispatchMode::SelfInvoke => std::sync::Arc::new(LambdaDispatcher::new(
                aws_sdk_lambda::Client::new(sdk_config),
            )),
            DispatchMode::Return => std::sync::Arc::new(ReturnDispatcher),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_and_others_are_not_continuations() {
        let c = Continuation {
            function: "f".to_string(),
            hop: 2,
            state: serde_json::json!({"file": "a"}),
        };
        let event = c.to_event().unwrap();
        let back: Continuation<Value> = from_event(&event).unwrap().unwrap();
        assert_eq!(back, c);
        assert!(from_event::<Value>(&serde_json::json!({"detail-type": "x"})).is_none());
        assert!(
            from_event::<u32>(&serde_json::json!({CONTINUATION_FIELD: {"function": 1}}))
                .unwrap()
                .is_err()
        );
    }

    #[test]
    fn mode_is_read_from_env() {
        let env = Env::from_pairs([(MODE_VAR, "return")]);
        assert_eq!(DispatchMode::from_env(&env).unwrap(), DispatchMode::Return);
        let env = Env::from_pairs::<[(&str, &str); 0], _, _>([]);
        assert_eq!(
            DispatchMode::from_env(&env).unwrap(),
            DispatchMode::SelfInvoke
        );
        let env = Env::from_pairs([(MODE_VAR, "later")]);
        assert!(DispatchMode::from_env(&env).is_err());
    }

    #[tokio::test]
    async fn return_dispatcher_hands_the_event_back() {
        let d = ReturnDispatcher;
        let out = d
            .dispatch("arn", serde_json::json!({"x": 1}))
            .await
            .unwrap();
        assert_eq!(out, Dispatch::Returned(serde_json::json!({"x": 1})));
    }
}
