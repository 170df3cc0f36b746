//! One EventBridge schedule tick (or continuation) in, one export report out.
//!
//! Scanning, Parquet export and the guarded post-export action arrive with issue #7. Until
//! then the handler decodes the event and refuses it with a typed error.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use dynabridge_shared::DynabridgeError;
use dynabridge_shared::clients::AwsClients;
use lambda_runtime::LambdaEvent;
use serde_json::Value;

use crate::config::Config;

/// Handles one schedule tick.
pub async fn handle(
    _config: &Config,
    _clients: &AwsClients,
    event: LambdaEvent<EventBridgeEvent<Value>>,
) -> Result<Value, DynabridgeError> {
    tracing::info!(detail_type = %event.payload.detail_type, "schedule tick received");
    Err(DynabridgeError::Other(
        "aged-export is not implemented yet (issue #7)".into(),
    ))
}
