//! `incremental-sync` Lambda entry point: cold start (logging, config, clients), the sync
//! machinery built once (writer with its AIMD limit, claims, positions, events,
//! continuations), then the runtime loop.

mod config;
mod handler;
mod sync;
mod trigger;

use dynabridge_shared::boot::{FunctionConfig, cold_start};
use dynabridge_shared::events::EventPublisher;
use dynabridge_shared::idempotency::{Idempotency, IdempotencyConfig};
use dynabridge_shared::lake::LakeLayout;
use dynabridge_shared::progress::ProgressStore;
use dynabridge_shared::writer::{BatchWriter, KeySchema, WriterConfig};

use crate::sync::{App, FUNCTION};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let (config, clients) = cold_start::<config::Config>().await?;
    let app = build(config, clients)?;
    lambda_runtime::run(lambda_runtime::service_fn(|event| {
        handler::handle(&app, event)
    }))
    .await
}

fn build(
    config: config::Config,
    clients: dynabridge_shared::clients::AwsClients,
) -> Result<App, dynabridge_shared::DynabridgeError> {
    let common = config.common().clone();
    let keys = config.registry.keys();
    let key_schema = KeySchema::new(
        keys.first().map(|k| k.name.clone()).unwrap_or_default(),
        keys.get(1).map(|k| k.name.as_str()),
    );
    let mut writer_config = WriterConfig::new(&common.table_name, key_schema);
    writer_config.initial_concurrency = config.initial_concurrency;
    writer_config.max_concurrency = config.max_concurrency;
    writer_config.max_items_per_second = config.max_write_units_per_second;
    // The writer retries on its own: with the SDK's retries off, throttling reaches its
    // AIMD limit at once instead of after the SDK's hidden attempts.
    let table_client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&clients.sdk_config)
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
            .build(),
    );
    let writer = BatchWriter::new(table_client, writer_config);
    let mut idem_config = IdempotencyConfig::new(&common.control_table, FUNCTION);
    idem_config.record_ttl = config.record_ttl;
    let idempotency = Idempotency::new(clients.dynamodb.clone(), idem_config);
    let progress = ProgressStore::new(
        clients.dynamodb.clone(),
        &common.control_table,
        FUNCTION,
        config.record_ttl,
    );
    let publisher = EventPublisher::new(
        clients.eventbridge.clone(),
        &common.event_bus,
        &common.event_source,
    );
    let dispatcher = config.continuation.dispatcher(&clients.sdk_config);
    Ok(App {
        layout: LakeLayout::new(&common.lake_prefix),
        config,
        clients,
        writer,
        idempotency,
        progress,
        publisher,
        dispatcher,
    })
}
