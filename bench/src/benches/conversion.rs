//! Benchmark 1: DynamoDB-JSON → Parquet.
//!
//! Subjects, each a separate process reading the same generated file:
//! - `rust codec`: `dynabridge-bench convert` (see `convert.rs`);
//! - `serde_json floor`: `dynabridge-bench floor`, the same bytes parsed and dropped;
//! - `python boto3+pyarrow (streaming)`: `bench/python/convert_stream.py`, boto3's
//!   `TypeDeserializer` + the same schema mapping + `pq.ParquetWriter`, 10k-item batches;
//! - `python awswrangler`: `bench/python/convert_wrangler.py`, the same rows as pandas
//!   DataFrames of 10k items appended with `wr.s3.to_parquet(dataset=True)` to the local S3.
//!
//! Throughput is items ÷ the program's own elapsed time (reading and writing included,
//! interpreter start and imports excluded); peak RSS and CPU come from `wait4`.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use dynabridge_devstack::{LocalStack, StackOptions};

use super::Ctx;
use crate::measure::run_child;

const BENCH: &str = "conversion";
/// Subject names (also the plot's legend).
pub const RUST: &str = "rust codec";
/// The parse-only floor.
pub const FLOOR: &str = "serde_json floor";
/// boto3 + pyarrow streaming peer.
pub const PY_STREAM: &str = "python boto3+pyarrow (streaming)";
/// awswrangler peer.
pub const PY_WRANGLER: &str = "python awswrangler";
const WRANGLER_BUCKET: &str = "bench-wrangler";

struct Sample {
    items_per_s: f64,
    rss_mib: f64,
    cpu_s: f64,
}

fn measure(cmd: &mut Command, expect_items: u64) -> Result<Sample> {
    let usage = run_child(cmd)?;
    let report = usage.report()?;
    let items = report["items"].as_u64().unwrap_or(0);
    if items != expect_items {
        bail!("expected {expect_items} items converted, got {report}");
    }
    if report["errors"].as_u64().unwrap_or(0) > 0 {
        bail!("rows refused: {report}");
    }
    let seconds = report["seconds"]
        .as_f64()
        .context("report without seconds")?;
    Ok(Sample {
        items_per_s: items as f64 / seconds.max(1e-9),
        rss_mib: usage.max_rss_kb as f64 / 1024.0,
        cpu_s: usage.cpu.as_secs_f64(),
    })
}

fn record(ctx: &mut Ctx, subject: &str, size: u64, samples: &[Sample]) {
    let r = &mut ctx.results;
    r.add(
        BENCH,
        subject,
        size,
        "throughput",
        "items/s",
        samples.iter().map(|s| s.items_per_s).collect(),
    );
    r.add(
        BENCH,
        subject,
        size,
        "peak RSS",
        "MiB",
        samples.iter().map(|s| s.rss_mib).collect(),
    );
    r.add(
        BENCH,
        subject,
        size,
        "CPU time",
        "s",
        samples.iter().map(|s| s.cpu_s).collect(),
    );
}

fn fresh_dir(p: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(p);
    std::fs::create_dir_all(p)?;
    Ok(())
}

/// Runs the benchmark.
pub async fn run(ctx: &mut Ctx) -> Result<()> {
    let smoke = ctx.args.smoke;
    let mut sizes = ctx.args.sizes.clone().unwrap_or_else(|| {
        if smoke {
            vec![2_000]
        } else {
            vec![10_000, 100_000, 1_000_000]
        }
    });
    sizes.sort_unstable();
    let python_max = ctx
        .args
        .python_max
        .unwrap_or(if smoke { 2_000 } else { 100_000 });
    let exe = std::env::current_exe()?;
    let out = ctx.scratch("conversion-out");

    // awswrangler only writes to S3: give it the local stack's (file-backed) S3.
    let stack = LocalStack::start(StackOptions {
        eventbridge: false,
        data_dir: Some(ctx.fresh_dir("conversion-stack")?),
        persistent_dynamodb: false,
    })?;
    stack
        .s3()
        .create_bucket()
        .bucket(WRANGLER_BUCKET)
        .send()
        .await
        .context("CreateBucket")?;
    let aws_env = stack.aws_env();

    for &size in &sizes {
        let input = ctx.items_file(size)?;
        eprintln!(
            "    {size} items ({} MB)",
            input.metadata()?.len() / 1_000_000
        );
        let mut rust = Vec::new();
        let mut floor = Vec::new();
        let mut py = Vec::new();
        let mut wr = Vec::new();
        for run in 0..ctx.runs() {
            fresh_dir(&out)?;
            rust.push(measure(
                Command::new(&exe)
                    .arg("convert")
                    .arg("--input")
                    .arg(&input)
                    .arg("--out")
                    .arg(&out)
                    .arg("--registry")
                    .arg(&ctx.registry),
                size,
            )?);
            floor.push(measure(
                Command::new(&exe).arg("floor").arg("--input").arg(&input),
                size,
            )?);
            if size <= python_max {
                fresh_dir(&out)?;
                py.push(measure(
                    Command::new(&ctx.python)
                        .arg(ctx.script("convert_stream.py"))
                        .arg("--input")
                        .arg(&input)
                        .arg("--out")
                        .arg(&out)
                        .arg("--registry")
                        .arg(&ctx.registry),
                    size,
                )?);
                wr.push(measure(
                    Command::new(&ctx.python)
                        .arg(ctx.script("convert_wrangler.py"))
                        .arg("--input")
                        .arg(&input)
                        .arg("--path")
                        .arg(format!("s3://{WRANGLER_BUCKET}/run-{size}-{run}/"))
                        .arg("--registry")
                        .arg(&ctx.registry)
                        .envs(aws_env.iter().map(|(k, v)| (k, v))),
                    size,
                )?);
                // The file-backed bucket holds the run's output; drop it before the next.
                let _ = std::fs::remove_dir_all(
                    stack
                        .lake_root()
                        .join(WRANGLER_BUCKET)
                        .join(format!("run-{size}-{run}")),
                );
            }
        }
        record(ctx, RUST, size, &rust);
        record(ctx, FLOOR, size, &floor);
        if !py.is_empty() {
            record(ctx, PY_STREAM, size, &py);
            record(ctx, PY_WRANGLER, size, &wr);
        }
        let _ = std::fs::remove_file(&input);
    }
    let _ = std::fs::remove_dir_all(&out);
    drop(stack);

    // Comparisons at the largest size every subject ran at, and Rust's RSS growth.
    let r = &mut ctx.results;
    let largest = *sizes.last().unwrap_or(&0);
    let peer_size = sizes
        .iter()
        .copied()
        .filter(|s| *s <= python_max)
        .max()
        .unwrap_or(0);
    let tp = |r: &crate::report::Results, subject: &str, size: u64| {
        r.get(BENCH, subject, size, "throughput")
            .unwrap_or(f64::NAN)
    };
    if peer_size > 0 {
        let (rust, py, wr) = (
            tp(r, RUST, peer_size),
            tp(r, PY_STREAM, peer_size),
            tp(r, PY_WRANGLER, peer_size),
        );
        let n = crate::report::fmt_int(peer_size);
        r.compare(
            BENCH,
            &format!("throughput vs boto3 TypeDeserializer + pyarrow streaming, {n} items"),
            rust,
            py,
            "items/s",
            rust / py,
            "≥ 15×",
            Some(rust / py >= 15.0),
        );
        r.compare(
            BENCH,
            &format!("throughput vs awswrangler (pandas → wr.s3.to_parquet), {n} items"),
            rust,
            wr,
            "items/s",
            rust / wr,
            "—",
            None,
        );
        let rss = |s: &str| r.get(BENCH, s, peer_size, "peak RSS").unwrap_or(f64::NAN);
        let (rr, pr, wrr) = (rss(RUST), rss(PY_STREAM), rss(PY_WRANGLER));
        r.compare(
            BENCH,
            &format!("peak RSS vs boto3 + pyarrow streaming, {n} items (peer ÷ Rust)"),
            rr,
            pr,
            "MiB",
            pr / rr,
            "—",
            None,
        );
        r.compare(
            BENCH,
            &format!("peak RSS vs awswrangler, {n} items (peer ÷ Rust)"),
            rr,
            wrr,
            "MiB",
            wrr / rr,
            "—",
            None,
        );
    }
    let (rust, floor) = (tp(r, RUST, largest), tp(r, FLOOR, largest));
    r.compare(
        BENCH,
        &format!(
            "time vs the serde_json parse floor, {} items (Rust time ÷ floor time)",
            crate::report::fmt_int(largest)
        ),
        rust,
        floor,
        "items/s",
        floor / rust,
        "≤ 2×",
        Some(floor / rust <= 2.0),
    );
    if sizes.len() >= 2 {
        let prev = sizes[sizes.len() - 2];
        let rss = |s: u64| r.get(BENCH, RUST, s, "peak RSS").unwrap_or(f64::NAN);
        let (a, b) = (rss(prev), rss(largest));
        r.compare(
            BENCH,
            &format!(
                "Rust peak RSS growth {} → {} items (RSS ratio)",
                crate::report::fmt_int(prev),
                crate::report::fmt_int(largest)
            ),
            b,
            a,
            "MiB",
            b / a,
            "flat (≤ 1.25×)",
            Some(b / a <= 1.25),
        );
    }
    r.note(
        BENCH,
        format!(
            "Input: DynamoDB-JSON lines as DynamoDB's S3 export writes them, generated by \
             `devstack::sample::SampleStream` (seed {}); Customer/Order/Session in two schema \
             versions each, upcast to the latest; one Parquet file per entity, ZSTD.",
            crate::data::SEED
        ),
    );
    r.note(
        BENCH,
        format!(
            "Python peers ran up to {} items (they are one to two orders of magnitude \
             slower; larger inputs only lengthen the run). awswrangler writes to the local \
             file-backed S3 (s3s-fs on 127.0.0.1) because `wr.s3.to_parquet` only writes to \
             S3; the other subjects write local files.",
            crate::report::fmt_int(python_max)
        ),
    );
    Ok(())
}
