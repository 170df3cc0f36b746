//! Benchmark of `incremental-sync` (not a test): generates an Order file of N rows, syncs it
//! through the real binary on the local stack and prints items/s and DynamoDB requests per
//! 1,000 items, for `upsert` and `guarded` modes.
//!
//! ```sh
//! cargo build --release -p incremental-sync -p dynabridge-e2e --bins
//! DYNABRIDGE_BIN_DIR=target/release target/release/sync-bench 20000
//! ```
//!
//! The awswrangler `wr.dynamodb.put_df` side of the comparison (same file, same run) belongs
//! to the benchmark issue; this is the Rust side. Numbers against dynoxide measure the
//! function's own overhead and request economy, not DynamoDB's service latency.

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use dynabridge_e2e::env;
use dynabridge_e2e::sync::{
    example_registry, final_report, order, orders_file, run_chain, start, upload,
};

#[tokio::main]
async fn main() -> Result<()> {
    let rows: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(20_000);
    let registry = example_registry()?;
    let items: Vec<_> = (0..rows)
        .map(|i| order(i, 1_000 + i as u64, "12.34"))
        .collect();
    let body = orders_file(&registry, &items, 64 * 1024, &[])?;
    println!(
        "incremental-sync benchmark: {rows} Order rows, {} bytes of Parquet",
        body.len()
    );
    println!(
        "{:<9} {:>10} {:>12} {:>14} {:>12}",
        "mode", "seconds", "items/s", "requests/1k", "invocations"
    );
    for mode in ["upsert", "guarded"] {
        let e = env(true).await?;
        let mut extra = vec![("DYNABRIDGE_SYNC_MODE", mode), ("RUST_LOG", "warn")];
        if mode == "guarded" {
            extra.push(("DYNABRIDGE_SYNC_GUARD_ATTRIBUTE", "placed_at"));
        }
        let mut f = start(&e, e.stack.aws_env(), &extra, Duration::from_secs(900)).await?;
        f.start().await?;
        let ev = upload(&e, "inbound/Order/bench.parquet", body.clone()).await?;
        let t = Instant::now();
        let responses = run_chain(&mut f, &ev).await?;
        let secs = t.elapsed().as_secs_f64();
        let report = final_report(&responses, "inbound/Order/bench.parquet")
            .ok_or_else(|| anyhow!("no report"))?;
        let written = report["counts"]["written"].as_u64().unwrap_or(0);
        let requests = report["counts"]["dynamodb_requests"].as_u64().unwrap_or(0);
        if written != rows as u64 {
            return Err(anyhow!("{mode}: wrote {written} of {rows}: {report}"));
        }
        println!(
            "{mode:<9} {secs:>10.2} {:>12.0} {:>14.1} {:>12}",
            rows as f64 / secs,
            requests as f64 * 1000.0 / rows as f64,
            responses.len()
        );
    }
    Ok(())
}
