//! `ttl-cleanup` Lambda entry point: cold start (logging, config, clients), then the runtime
//! loop.

mod archive;
mod cascade;
mod config;
mod guarded_delete;
mod handler;
mod sweep;

dynabridge_shared::lambda_main!(config::Config, handler::handle);
