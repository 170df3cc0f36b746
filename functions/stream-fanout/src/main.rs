//! `stream-fanout` Lambda entry point: cold start (logging, config, clients), then the runtime
//! loop.

mod config;
mod handler;

dynabridge_shared::lambda_main!(config::Config, handler::handle);
