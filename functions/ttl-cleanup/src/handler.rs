//! Two triggers, one function: TTL deletions from the stream (archive mode, see
//! [`crate::archive`]) and an EventBridge schedule (sweep mode, see [`crate::sweep`]).

use dynabridge_shared::DynabridgeError;
use dynabridge_shared::clients::AwsClients;
use lambda_runtime::LambdaEvent;
use serde_json::Value;

use crate::config::Config;

/// The function name used for quarantine objects and metrics.
pub const FUNCTION: &str = "ttl-cleanup";

/// Handles one stream batch or schedule tick.
pub async fn handle(
    config: &Config,
    clients: &AwsClients,
    event: LambdaEvent<Value>,
) -> Result<Value, DynabridgeError> {
    let deadline_ms = event.context.deadline as i64;
    let payload = event.payload;
    if payload.get("Records").is_some() {
        return crate::archive::archive(config, clients, payload).await;
    }
    if payload.get("detail-type").is_some() {
        return crate::sweep::sweep(config, clients, deadline_ms).await;
    }
    Err(DynabridgeError::InvalidEvent(
        "neither a stream batch (Records) nor an EventBridge event (detail-type)".into(),
    ))
}
