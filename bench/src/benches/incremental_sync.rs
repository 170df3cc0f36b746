//! Hook for the incremental-sync benchmark (issue #10, item 5): items/s and DynamoDB
//! requests per 1,000 items vs awswrangler `dynamodb.put_df`; target ≤ 41 requests per
//! 1,000 items.
//!
//! To fill in: write `ctx.items_file(n)` as inbound Parquet (e.g. with `bench convert`), run
//! incremental-sync through the harness behind `devstack::faults::FaultyEndpoints` with
//! `FaultPlan::none()` (its stats count requests per operation, see the writer benchmark),
//! run the awswrangler peer against the same proxy, then record under the bench id
//! `incremental-sync`. Until then the report lists it as pending.

use anyhow::Result;

use super::Ctx;
use crate::report::Pending;

/// Records the benchmark (pending until implemented).
pub async fn run(ctx: &mut Ctx) -> Result<()> {
    ctx.results.pending.push(Pending {
        bench: "incremental-sync".into(),
        reason: "hook only; the incremental-sync benchmark lands with the function (#7)".into(),
    });
    Ok(())
}
