//! `aged-export` Lambda entry point: cold start (logging, config, clients, dispatcher), then
//! the runtime loop. See `docs/functions/aged-export.md` for the design and guarantees.

mod age;
mod config;
mod control;
mod dispatch;
mod export;
mod finalize;
mod handler;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let (config, clients) = dynabridge_shared::boot::cold_start::<config::Config>().await?;
    let dispatcher = dispatch::Dispatcher::new(config.dispatch, &clients.sdk_config);
    let state = handler::State {
        config,
        clients,
        dispatcher,
    };
    let state = &state;
    lambda_runtime::run(lambda_runtime::service_fn(move |event| {
        handler::handle(state, event)
    }))
    .await
}
