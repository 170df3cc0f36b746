//! `incremental-sync` Lambda entry point: cold start (logging, config, clients), then the runtime loop.

mod config;
mod handler;

use lambda_runtime::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (config, clients) = dynabridge_shared::boot::cold_start::<config::Config>().await?;
    lambda_runtime::run(service_fn(|event| {
        handler::handle(&config, &clients, event)
    }))
    .await
}
