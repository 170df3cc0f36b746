//! One EventBridge event in (S3 "Object Created" or the catch-up schedule), one sync report out.
//!
//! Reading inbound Parquet and writing to DynamoDB arrive with issue #6. Until then the handler
//! decodes the event and refuses it with a typed error, so nothing is reported as synced.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use dynabridge_shared::DynabridgeError;
use dynabridge_shared::clients::AwsClients;
use lambda_runtime::LambdaEvent;
use serde_json::Value;

use crate::config::Config;

/// Handles one trigger event.
pub async fn handle(
    _config: &Config,
    _clients: &AwsClients,
    event: LambdaEvent<EventBridgeEvent<Value>>,
) -> Result<Value, DynabridgeError> {
    tracing::info!(detail_type = %event.payload.detail_type, source = %event.payload.source, "trigger received");
    Err(DynabridgeError::Other(
        "incremental-sync is not implemented yet (issue #6)".into(),
    ))
}
