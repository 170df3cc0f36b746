//! Hook for the aged-export benchmark (issue #10, item 4): peak RSS and items/s for 100k and
//! 1M items vs awswrangler `read_items` + `to_parquet`; target RSS ≤ 64 MB, flat with input
//! size, against the peer's linear growth.
//!
//! To fill in: load `ctx.items_file(n)` into the local DynamoDB table (see
//! `devstack::sample::load`, or the writer benchmark), run the aged-export binary through the
//! harness while sampling `measure::proc_peak_rss_kb`, run the awswrangler peer as a child
//! (`measure::run_child`), then `ctx.results.add(..)` / `ctx.results.compare(..)` under the
//! bench id `aged-export`. Until then the report lists it as pending.

use anyhow::Result;

use super::Ctx;
use crate::report::Pending;

/// Records the benchmark (pending until implemented).
pub async fn run(ctx: &mut Ctx) -> Result<()> {
    ctx.results.pending.push(Pending {
        bench: "aged-export".into(),
        reason: "hook only; the aged-export benchmark lands with the function (#6)".into(),
    });
    Ok(())
}
