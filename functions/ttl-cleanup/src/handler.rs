//! Two triggers: TTL deletions from the stream (archive mode) and a schedule (sweep mode).
//!
//! Both arrive with issue #8. Until then the handler tells the triggers apart and refuses the
//! event with a typed error, so stream records are not acknowledged.

use dynabridge_shared::DynabridgeError;
use dynabridge_shared::clients::AwsClients;
use lambda_runtime::LambdaEvent;
use serde_json::Value;

use crate::config::Config;

/// Handles one stream batch or schedule tick.
pub async fn handle(
    _config: &Config,
    _clients: &AwsClients,
    event: LambdaEvent<Value>,
) -> Result<Value, DynabridgeError> {
    let trigger = if event.payload.get("Records").is_some() {
        "stream"
    } else if event.payload.get("detail-type").is_some() {
        "schedule"
    } else {
        return Err(DynabridgeError::InvalidEvent(
            "neither a stream batch (Records) nor an EventBridge event (detail-type)".into(),
        ));
    };
    tracing::info!(trigger, "ttl-cleanup trigger received");
    Err(DynabridgeError::Other(format!(
        "ttl-cleanup {trigger} mode is not implemented yet (issue #8)"
    )))
}
