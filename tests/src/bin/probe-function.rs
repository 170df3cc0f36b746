//! `probe-function`: a real Lambda binary used to test the harness and the event sources.
//!
//! It records every record it receives (one JSON line per record in `$PROBE_LOG`) and acts on
//! a `probe` string attribute of each record's new image:
//! - `fail-once`: reported in `batchItemFailures` the first time it is seen;
//! - `fail-always`: always reported;
//! - `error-once`: the invocation returns an error the first time;
//! - `crash-once`: the process aborts the first time (no response, no `/error`);
//! - `sleep`: sleeps `$PROBE_SLEEP_MS` before answering.
//!
//! "First time" is remembered in files under `$PROBE_STATE`, so it survives a crash.

use std::io::Write;
use std::path::PathBuf;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

fn first_time(state: &Option<PathBuf>, tag: &str, seq: &str) -> bool {
    let Some(dir) = state else { return true };
    let marker = dir.join(format!("{tag}-{seq}"));
    if marker.exists() {
        return false;
    }
    let _ = std::fs::write(&marker, b"");
    true
}

async fn handle(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let log = std::env::var("PROBE_LOG").ok().map(PathBuf::from);
    let state = std::env::var("PROBE_STATE").ok().map(PathBuf::from);
    let records = event.payload["Records"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    tracing::info!(records = records.len(), "probe received batch");
    let mut failures = Vec::new();
    for r in &records {
        let seq = r["dynamodb"]["SequenceNumber"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if let Some(path) = &log {
            let line = json!({
                "requestId": event.context.request_id,
                "seq": seq,
                "eventName": r["eventName"],
                "userIdentity": r.get("userIdentity"),
                "keys": r["dynamodb"]["Keys"],
                "eventSourceARN": r["eventSourceARN"],
            });
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            writeln!(f, "{line}")?;
        }
        match r["dynamodb"]["NewImage"]["probe"]["S"].as_str() {
            Some("fail-once") if first_time(&state, "fail", &seq) => {
                tracing::warn!(seq = %seq, "probe reports a batch item failure");
                failures.push(json!({ "itemIdentifier": seq }));
            }
            Some("fail-always") => failures.push(json!({ "itemIdentifier": seq })),
            Some("error-once") if first_time(&state, "error", &seq) => {
                return Err(format!("probe error at {seq}").into());
            }
            Some("crash-once") if first_time(&state, "crash", &seq) => {
                tracing::error!(seq = %seq, "probe aborts the process");
                std::process::abort();
            }
            Some("sleep") => {
                let ms = std::env::var("PROBE_SLEEP_MS")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(5_000);
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            }
            _ => {}
        }
    }
    Ok(json!({ "batchItemFailures": failures }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    dynabridge_shared::telemetry::init();
    lambda_runtime::run(service_fn(handle)).await
}
