//! `bench-aged-export`: peak RSS and throughput of the real `aged-export` binary exporting
//! N aged items from the local stack, at several table sizes, to show memory does not grow
//! with the table.
//!
//! ```sh
//! cargo build --release --workspace --bins && DYNABRIDGE_BIN_DIR=target/release \
//!   target/release/bench-aged-export --sizes 250000,1000000
//! ```
//!
//! Each size gets a fresh table; one segment on one execution environment (the worst case
//! for one process). Peak RSS is the child's `VmHWM` (Linux) after the run. The scan cost is
//! measured separately (a plain paginated Scan of the same table from this process), so the
//! conversion throughput can be read apart from DynamoDB's.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use clap::Parser;
use dynabridge_devstack::provision::{self, ResourceNames};
use dynabridge_devstack::sources::async_invoke::AsyncInvoker;
use dynabridge_devstack::sources::schedule::scheduled_event;
use dynabridge_devstack::{FunctionProcess, FunctionSpec, LocalStack, StackOptions};
use futures::StreamExt;

#[derive(Debug, Parser)]
struct Args {
    /// Table sizes to export, comma-separated (items, all aged Orders).
    #[arg(long, value_delimiter = ',', default_value = "25000,100000")]
    sizes: Vec<usize>,
    /// Parallel-scan segments (1 puts every item through one process).
    #[arg(long, default_value_t = 1)]
    segments: u32,
}

fn order(i: usize, placed_ms: i64) -> HashMap<String, AttributeValue> {
    let s = |v: String| AttributeValue::S(v);
    let n = |v: String| AttributeValue::N(v);
    HashMap::from([
        ("pk".into(), s(format!("ORDER#{i:09}"))),
        ("sk".into(), s("ORDER".into())),
        ("schema_version".into(), n("2".into())),
        (
            "customer_id".into(),
            s(format!("CUSTOMER#{:06}", i % 50_000)),
        ),
        ("total".into(), n(format!("{}.{:02}", i % 5000, i % 100))),
        (
            "placed_at".into(),
            n((placed_ms - (i as i64 % 86_400_000)).to_string()),
        ),
        (
            "status".into(),
            s(["PLACED", "SHIPPED", "DELIVERED"][i % 3].into()),
        ),
        ("currency".into(), s("EUR".into())),
        (
            "lines".into(),
            AttributeValue::L(vec![AttributeValue::M(HashMap::from([
                ("sku".into(), s(format!("SKU-{}", i % 97))),
                ("qty".into(), n(format!("{}", 1 + i % 5))),
            ]))]),
        ),
        ("gift".into(), AttributeValue::Bool(i.is_multiple_of(7))),
    ])
}

async fn load(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    count: usize,
    placed_ms: i64,
) -> Result<()> {
    let chunks: Vec<std::ops::Range<usize>> = (0..count)
        .step_by(25)
        .map(|s| s..(s + 25).min(count))
        .collect();
    let results: Vec<Result<()>> = futures::stream::iter(chunks)
        .map(|range| async move {
            let mut requests: Vec<WriteRequest> = range
                .map(|i| {
                    Ok(WriteRequest::builder()
                        .put_request(
                            PutRequest::builder()
                                .set_item(Some(order(i, placed_ms)))
                                .build()?,
                        )
                        .build())
                })
                .collect::<Result<_>>()?;
            while !requests.is_empty() {
                let out = ddb
                    .batch_write_item()
                    .request_items(table, requests)
                    .send()
                    .await
                    .context("BatchWriteItem")?;
                requests = out
                    .unprocessed_items()
                    .and_then(|m| m.get(table))
                    .cloned()
                    .unwrap_or_default();
            }
            Ok(())
        })
        .buffer_unordered(8)
        .collect()
        .await;
    results.into_iter().collect()
}

fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let stack = LocalStack::start(StackOptions::default())?;
    let base = provision::provision(&stack, ResourceNames::default()).await?;
    let ddb = stack.dynamodb();
    let now = chrono::Utc::now();
    let placed_ms = (now - chrono::Duration::days(800)).timestamp_millis();
    println!(
        "| items | load s | scan-only s (items/s) | export s | export items/s | peak RSS MB |"
    );
    println!("|---|---|---|---|---|---|");
    for (run, &size) in args.sizes.iter().enumerate() {
        let names = ResourceNames {
            table: format!("bench-{run}"),
            control_table: format!("bench-control-{run}"),
            lake_bucket: format!("bench-lake-{run}"),
            ..base.names.clone()
        };
        provision::create_pk_sk_table(&ddb, &names.table, false, "ttl").await?;
        provision::create_pk_sk_table(&ddb, &names.control_table, false, "expires_at").await?;
        stack
            .s3()
            .create_bucket()
            .bucket(&names.lake_bucket)
            .send()
            .await?;
        let t = Instant::now();
        load(&ddb, &names.table, size, placed_ms).await?;
        let load_s = t.elapsed().as_secs_f64();

        // Scan cost alone: the same pages, nothing converted.
        let t = Instant::now();
        let mut start = None;
        let mut scanned = 0usize;
        loop {
            let page = ddb
                .scan()
                .table_name(&names.table)
                .set_exclusive_start_key(start)
                .send()
                .await?;
            scanned += page.items().len();
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                break;
            }
        }
        let scan_s = t.elapsed().as_secs_f64();

        let resources = provision::Resources {
            names: names.clone(),
            ..base.clone()
        };
        let mut env = stack.aws_env();
        env.extend(resources.function_env());
        env.extend(
            [
                ("DYNABRIDGE_EXPORT_DISPATCH", "response".to_string()),
                ("DYNABRIDGE_EXPORT_AGE_DAYS", "365".to_string()),
                (
                    "DYNABRIDGE_EXPORT_AGE_ATTRIBUTES",
                    "Order=placed_at".to_string(),
                ),
                ("DYNABRIDGE_EXPORT_SEGMENTS", args.segments.to_string()),
                ("DYNABRIDGE_EXPORT_DEADLINE_RESERVE_MS", "20000".to_string()),
                ("RUST_LOG", "warn".to_string()),
            ]
            .map(|(k, v)| (k.to_string(), v)),
        );
        let spec = FunctionSpec::workspace("aged-export")?
            .with_env(env)
            .with_timeout(Duration::from_secs(900));
        let mut fns = vec![FunctionProcess::new(spec).await?];
        let t = Instant::now();
        let deliveries = AsyncInvoker::default()
            .drain(&mut fns, vec![scheduled_event("bench", now, None)])
            .await?;
        let export_s = t.elapsed().as_secs_f64();
        let completed = deliveries
            .iter()
            .filter_map(|d| d.outcome.response())
            .find(|r| r["status"] == "completed")
            .cloned()
            .with_context(|| format!("run did not complete: {deliveries:?}"))?;
        let rows = completed["rows"].as_u64().unwrap_or(0);
        anyhow::ensure!(rows as usize == size, "exported {rows} of {size}");
        let pid = fns[0].pid().context("function process gone")?;
        let hwm = vm_hwm_kb(pid).context("VmHWM unavailable")?;
        println!(
            "| {size} | {load_s:.1} | {scan_s:.1} ({:.0}) | {export_s:.1} | {:.0} | {:.1} |",
            scanned as f64 / scan_s,
            size as f64 / export_s,
            hwm as f64 / 1024.0
        );
    }
    Ok(())
}
