//! One DynamoDB Streams batch in, one `DynamoDbEventResponse` out.
//!
//! The CDC sink, the event sink and ordered partial failures arrive with issue #5. Until then
//! the handler decodes the batch and refuses it with a typed error, so the event source keeps
//! the records (retry / on-failure destination) instead of acknowledging what was not written.

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use dynabridge_shared::DynabridgeError;
use dynabridge_shared::clients::AwsClients;
use lambda_runtime::LambdaEvent;

use crate::config::Config;

/// Handles one stream batch.
pub async fn handle(
    config: &Config,
    _clients: &AwsClients,
    event: LambdaEvent<Event>,
) -> Result<DynamoDbEventResponse, DynabridgeError> {
    let records = event.payload.records.len();
    tracing::info!(records, table = %config.common.table_name, "stream batch received");
    Err(DynabridgeError::Other(
        "stream-fanout: CDC and event sinks are not implemented yet (issue #5); batch not acknowledged".into(),
    ))
}
