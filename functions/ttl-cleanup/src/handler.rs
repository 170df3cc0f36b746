//! Two triggers, one function: TTL deletions from the stream (archive mode, see
//! [`crate::archive`]) and an EventBridge schedule (sweep mode, see [`crate::sweep`]).

use dynabridge_shared::DynabridgeError;
use dynabridge_shared::clients::AwsClients;
use lambda_runtime::LambdaEvent;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::config::Config;

/// The function name used for quarantine objects and metrics.
pub const FUNCTION: &str = "ttl-cleanup";

/// Which trigger an event came from (the fields that tell them apart).
#[derive(Deserialize)]
struct Trigger {
    #[serde(rename = "Records")]
    records: Option<IgnoredAny>,
    #[serde(rename = "detail-type")]
    detail_type: Option<IgnoredAny>,
}

/// Handles one stream batch or schedule tick. The payload stays raw JSON so a stream batch
/// is parsed once, borrowing (`shared::stream`).
pub async fn handle(
    config: &Config,
    clients: &AwsClients,
    event: LambdaEvent<Box<RawValue>>,
) -> Result<Value, DynabridgeError> {
    let deadline_ms = event.context.deadline as i64;
    let payload = event.payload.get();
    let trigger: Trigger = serde_json::from_str(payload)
        .map_err(|e| DynabridgeError::InvalidEvent(format!("not a JSON object: {e}")))?;
    if trigger.records.is_some() {
        return crate::archive::archive(config, clients, payload).await;
    }
    if trigger.detail_type.is_some() {
        return crate::sweep::sweep(config, clients, deadline_ms).await;
    }
    Err(DynabridgeError::InvalidEvent(
        "neither a stream batch (Records) nor an EventBridge event (detail-type)".into(),
    ))
}
