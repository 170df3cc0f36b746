//! Benchmarks 2 (stream-fanout CPU per record) and 4 (idempotency cost), from the same runs.
//!
//! One local stack (dynoxide, s3s-fs, moto) provisioned like the template, behind
//! [`FaultyEndpoints`] with no faults: the proxies only count requests per operation. Three
//! subjects run one after the other under the Lambda harness (Runtime API on 127.0.0.1),
//! each fed the same kind of 1,000-record tumbling-window batches (`data::StreamBatches`):
//!
//! - `rust stream-fanout`: the release binary — decode → checkpoint → CDC Parquet per entity
//!   → PutObject → checkpoint → PutEvents (10 per call) → checkpoint;
//! - `python powertools`: `bench/python/fanout_handler.py` under `awslambdaric` —
//!   Powertools `BatchProcessor` (DynamoDB Streams) with the same work: TypeDeserializer
//!   images, the same schema mapping, one Parquet file per entity with pyarrow (ZSTD) put with
//!   boto3, PutEvents in chunks of 10; no exactly-once bookkeeping;
//! - `python powertools + idempotency`: the same with Powertools' `@idempotent_function` on
//!   each record (DynamoDB persistence layer on the same local DynamoDB), which is how a
//!   Powertools user gets what dynabridge's checkpoints give.
//!
//! CPU is the function process's user + system time (`/proc/<pid>/stat`) across the batches
//! of a run, divided by the records; one warm-up batch after the cold start is not counted.
//! The control-table requests are the DynamoDB requests the proxy saw during the run.
//!
//! Two more figures split the Rust side's CPU: the same binary with the event sink off
//! (`rust stream-fanout, CDC only`), and the **SDK floor** — the CPU the AWS SDK for Rust
//! itself spends per event in `PutEvents` calls of 10 entries against an instant loopback
//! server (`dynabridge-bench sdk-floor`, its own process). EventBridge takes at most 10
//! entries per call, so no implementation that publishes one event per record through the
//! SDK gets below that floor.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use dynabridge_devstack::faults::{FaultPlan, FaultStats, FaultyEndpoints, Service};
use dynabridge_devstack::provision::{self, ResourceNames};
use dynabridge_devstack::{FunctionProcess, FunctionSpec, InvokeOutcome, LocalStack, StackOptions};

use super::Ctx;
use crate::data::StreamBatches;
use crate::measure::{proc_cpu, proc_peak_rss_kb};

const BENCH: &str = "stream-fanout";
const IDEMPOTENCY: &str = "idempotency";
/// Subjects.
pub const RUST: &str = "rust stream-fanout";
/// The same binary with the event sink off (`DYNABRIDGE_PUBLISH_ENTITIES=none`): what the
/// CDC sink and the checkpoints cost alone.
pub const RUST_CDC: &str = "rust stream-fanout, CDC only (events off)";
/// The AWS SDK's own CPU per event (`dynabridge-bench sdk-floor`).
pub const SDK_FLOOR: &str = "PutEvents through the Rust SDK (floor)";
/// Powertools batch processor.
pub const PY: &str = "python powertools";
/// Powertools batch processor + per-record idempotency.
pub const PY_IDEM: &str = "python powertools + idempotency";
/// The event bus both sides publish to (no rules).
pub const BENCH_BUS: &str = "bench-bus";
/// Powertools' idempotency table (its default key schema: `id` hash key).
pub const IDEMPOTENCY_TABLE: &str = "bench-powertools-idempotency";

/// The Python peer as a Lambda "binary": a shell wrapper exec'ing awslambdaric.
pub fn python_spec(ctx: &Ctx, name: &str, handler: &str, env: &[(String, String)]) -> FunctionSpec {
    FunctionSpec {
        name: name.to_string(),
        binary: ctx.script("lambda-python"),
        env: env.to_vec(),
        memory_mb: 512,
        timeout: Duration::from_secs(600),
        log_file: Some(ctx.scratch(&format!("{name}.log"))),
    }
    .with_env([
        ("_HANDLER", handler.to_string()),
        (
            "DYNABRIDGE_BENCH_PYTHON",
            ctx.python.to_string_lossy().into_owned(),
        ),
    ])
}

async fn create_idempotency_table(ddb: &aws_sdk_dynamodb::Client) -> Result<()> {
    ddb.create_table()
        .table_name(IDEMPOTENCY_TABLE)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::S)
                .build()?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(KeyType::Hash)
                .build()?,
        )
        .send()
        .await
        .context("CreateTable (idempotency)")?;
    Ok(())
}

fn ddb_requests(stats: &FaultStats, ops: &[&str]) -> u64 {
    ops.iter()
        .map(|op| stats.requests(Service::DynamoDb, op))
        .sum()
}

const WRITE_OPS: &[&str] = &[
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "BatchWriteItem",
    "TransactWriteItems",
];
const READ_OPS: &[&str] = &["GetItem", "Query", "BatchGetItem", "TransactGetItems"];

struct RunFigures {
    cpu_us_per_record: f64,
    wall_ms_per_batch: f64,
    writes_per_batch: f64,
    reads_per_batch: f64,
}

async fn invoke_ok(f: &mut FunctionProcess, event: &serde_json::Value) -> Result<()> {
    let inv = f.invoke(event).await?;
    match &inv.outcome {
        InvokeOutcome::Response(v)
            if v["batchItemFailures"].as_array().is_some_and(Vec::is_empty) =>
        {
            Ok(())
        }
        other => {
            let logs = f.logs();
            let tail = logs[logs.len().saturating_sub(20)..].join("\n");
            bail!(
                "{}: unexpected outcome {other:?}\n--- last log lines ---\n{tail}",
                f.spec().name
            )
        }
    }
}

async fn measure_subject(
    ctx: &mut Ctx,
    faulty: &FaultyEndpoints,
    spec: FunctionSpec,
    batches: &mut StreamBatches,
    batches_per_run: usize,
) -> Result<(Vec<RunFigures>, f64)> {
    let batches_per_run = batches_per_run.max(1);
    let size = ctx.args.batch_size;
    let mut f = FunctionProcess::new(spec).await?;
    f.start().await?;
    invoke_ok(&mut f, &batches.next_batch(size)).await?; // warm-up
    let pid = f.pid().context("function process not running")?;
    let mut figures = Vec::new();
    for _ in 0..ctx.runs() {
        let events: Vec<_> = (0..batches_per_run)
            .map(|_| batches.next_batch(size))
            .collect();
        let before = faulty.dynamodb_proxy().stats();
        let cpu0 = proc_cpu(pid)?;
        let started = Instant::now();
        for event in &events {
            invoke_ok(&mut f, event).await?;
        }
        let wall = started.elapsed();
        let cpu = proc_cpu(pid)?.saturating_sub(cpu0);
        let after = faulty.dynamodb_proxy().stats();
        let n = batches_per_run as f64;
        figures.push(RunFigures {
            cpu_us_per_record: cpu.as_secs_f64() * 1e6 / (n * size as f64),
            wall_ms_per_batch: wall.as_secs_f64() * 1e3 / n,
            writes_per_batch: (ddb_requests(&after, WRITE_OPS) - ddb_requests(&before, WRITE_OPS))
                as f64
                / n,
            reads_per_batch: (ddb_requests(&after, READ_OPS) - ddb_requests(&before, READ_OPS))
                as f64
                / n,
        });
    }
    let rss = proc_peak_rss_kb(pid)? as f64 / 1024.0;
    f.kill().await;
    Ok((figures, rss))
}

fn record(ctx: &mut Ctx, subject: &str, figures: &[RunFigures], rss: f64) {
    record_cpu(ctx, subject, figures, rss);
    let size = ctx.args.batch_size as u64;
    let r = &mut ctx.results;
    r.add(
        IDEMPOTENCY,
        subject,
        size,
        "control-table writes per batch",
        "writes",
        figures.iter().map(|f| f.writes_per_batch).collect(),
    );
    r.add(
        IDEMPOTENCY,
        subject,
        size,
        "control-table reads per batch",
        "reads",
        figures.iter().map(|f| f.reads_per_batch).collect(),
    );
}

/// Records a subject's CPU, wall time and peak RSS (benchmark 2 only).
fn record_cpu(ctx: &mut Ctx, subject: &str, figures: &[RunFigures], rss: f64) {
    let size = ctx.args.batch_size as u64;
    let r = &mut ctx.results;
    r.add(
        BENCH,
        subject,
        size,
        "CPU per record",
        "µs",
        figures.iter().map(|f| f.cpu_us_per_record).collect(),
    );
    r.add(
        BENCH,
        subject,
        size,
        "wall time per batch",
        "ms",
        figures.iter().map(|f| f.wall_ms_per_batch).collect(),
    );
    r.add(BENCH, subject, size, "peak RSS", "MiB", vec![rss]);
}

/// Runs `dynabridge-bench sdk-floor` (its own process, so nothing else shares its CPU
/// counters) `runs` times; returns the CPU µs per entry of each run.
fn sdk_floor(runs: usize, calls: usize) -> Result<Vec<f64>> {
    let exe = std::env::current_exe().context("the benchmark's own path")?;
    (0..runs)
        .map(|_| {
            let out = std::process::Command::new(&exe)
                .args([
                    "sdk-floor",
                    "--calls",
                    &calls.to_string(),
                    "--entries",
                    "10",
                ])
                .output()
                .context("running sdk-floor")?;
            if !out.status.success() {
                bail!(
                    "sdk-floor failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            let line: serde_json::Value =
                serde_json::from_slice(&out.stdout).context("sdk-floor printed no JSON line")?;
            line["cpu_us_per_entry"]
                .as_f64()
                .context("sdk-floor: no cpu_us_per_entry")
        })
        .collect()
}

/// Runs benchmarks 2 and 4.
pub async fn run(ctx: &mut Ctx) -> Result<()> {
    let stack = LocalStack::start(StackOptions {
        eventbridge: true,
        data_dir: Some(ctx.fresh_dir("stream-stack")?),
        persistent_dynamodb: false,
    })?;
    let resources = provision::provision(&stack, ResourceNames::default()).await?;
    create_idempotency_table(&stack.dynamodb()).await?;
    let faulty = FaultyEndpoints::start(&stack, FaultPlan::none())?;
    // DynamoDB and EventBridge through the counting proxies; S3 direct (nothing to count,
    // and boto3's streamed PutObject bodies are beyond the proxy's buffering).
    let mut env: Vec<(String, String)> = faulty
        .aws_env()
        .into_iter()
        .map(|(k, v)| {
            if k == "AWS_ENDPOINT_URL_S3" {
                (k, stack.s3_endpoint())
            } else {
                (k, v)
            }
        })
        .collect();
    env.extend(resources.function_env());
    // A bus without rules: moto fans rule deliveries out to SQS slowly and a growing queue
    // would make later batches slower than earlier ones, on both sides alike.
    stack
        .eventbridge()?
        .create_event_bus()
        .name(BENCH_BUS)
        .send()
        .await
        .context("CreateEventBus")?;
    env.push(("DYNABRIDGE_EVENT_BUS".into(), BENCH_BUS.into()));
    env.push((
        "BENCH_IDEMPOTENCY_TABLE".into(),
        IDEMPOTENCY_TABLE.to_string(),
    ));
    let arn = resources.stream_arn.clone();
    let per_run = ctx
        .args
        .batches
        .unwrap_or(if ctx.args.smoke { 1 } else { 5 });
    let seed = crate::data::SEED;

    let rust_env: Vec<(String, String)> = ctx
        .args
        .rust_env
        .iter()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let rust_spec = FunctionSpec::workspace("stream-fanout")?
        .with_env(env.clone())
        .with_env(rust_env.clone())
        .with_timeout(Duration::from_secs(300));
    let mut b = StreamBatches::new(seed, &arn, "shardId-bench-rust");
    let (rust, rust_rss) = measure_subject(ctx, &faulty, rust_spec, &mut b, per_run).await?;
    eprintln!(
        "stream-fanout rust: CPU µs/record per run {:?}, wall ms/batch {:?}, peak RSS {rust_rss:.1} MiB",
        rust.iter()
            .map(|f| f.cpu_us_per_record.round())
            .collect::<Vec<_>>(),
        rust.iter()
            .map(|f| f.wall_ms_per_batch.round())
            .collect::<Vec<_>>(),
    );
    record(ctx, RUST, &rust, rust_rss);

    let cdc_spec = FunctionSpec::workspace("stream-fanout")?
        .with_env(env.clone())
        .with_env(rust_env)
        .with_env([("DYNABRIDGE_PUBLISH_ENTITIES", "none")])
        .with_timeout(Duration::from_secs(300));
    let mut b = StreamBatches::new(seed, &arn, "shardId-bench-rust-cdc");
    let (cdc, cdc_rss) = measure_subject(ctx, &faulty, cdc_spec, &mut b, per_run).await?;
    record_cpu(ctx, RUST_CDC, &cdc, cdc_rss);
    let floor = sdk_floor(ctx.runs(), if ctx.args.smoke { 50 } else { 1000 })?;
    let size = ctx.args.batch_size as u64;
    ctx.results
        .add(BENCH, SDK_FLOOR, size, "CPU per record", "µs", floor);
    if ctx.args.rust_only {
        return Ok(());
    }

    let mut py_env = env.clone();
    py_env.push(("BENCH_IDEMPOTENCY".into(), "0".into()));
    let spec = python_spec(ctx, "fanout-python", "fanout_handler.handler", &py_env);
    let mut b = StreamBatches::new(seed, &arn, "shardId-bench-python");
    let (py, py_rss) = measure_subject(ctx, &faulty, spec, &mut b, per_run).await?;
    record(ctx, PY, &py, py_rss);

    let mut idem_env = env.clone();
    idem_env.push(("BENCH_IDEMPOTENCY".into(), "1".into()));
    let spec = python_spec(
        ctx,
        "fanout-python-idem",
        "fanout_handler.handler",
        &idem_env,
    );
    let mut b = StreamBatches::new(seed, &arn, "shardId-bench-python-idem");
    // Two DynamoDB round trips per record make this peer ~10 s per batch: one batch per run.
    let (idem, idem_rss) = measure_subject(ctx, &faulty, spec, &mut b, 1).await?;
    record(ctx, PY_IDEM, &idem, idem_rss);

    drop(faulty);
    drop(stack);

    let n = crate::report::fmt_int(size);
    let r = &mut ctx.results;
    let get = |r: &crate::report::Results, b: &str, s: &str, m: &str| {
        r.get(b, s, size, m).unwrap_or(f64::NAN)
    };
    let (rc, pc, ic) = (
        get(r, BENCH, RUST, "CPU per record"),
        get(r, BENCH, PY, "CPU per record"),
        get(r, BENCH, PY_IDEM, "CPU per record"),
    );
    r.compare(
        BENCH,
        &format!(
            "CPU per record, {n}-record batches, vs Powertools BatchProcessor + boto3 + pyarrow"
        ),
        rc,
        pc,
        "µs",
        pc / rc,
        "≥ 20× less",
        Some(pc / rc >= 20.0),
    );
    let floor = get(r, BENCH, SDK_FLOOR, "CPU per record");
    r.compare(
        BENCH,
        "the SDK floor alone (CPU per event of PutEvents calls of 10 through the Rust SDK, \
         instant loopback server) vs the Powertools peer: the best ratio any Rust function \
         publishing one event per record can reach",
        floor,
        pc,
        "µs",
        pc / floor,
        "—",
        None,
    );
    let cdc = get(r, BENCH, RUST_CDC, "CPU per record");
    r.compare(
        BENCH,
        "CPU per record with the event sink off (CDC Parquet + checkpoints only) vs the \
         Powertools peer doing both",
        cdc,
        pc,
        "µs",
        pc / cdc,
        "—",
        None,
    );
    r.compare(
        BENCH,
        &format!(
            "CPU per record, {n}-record batches, vs the same + Powertools idempotency per record"
        ),
        rc,
        ic,
        "µs",
        ic / rc,
        "—",
        None,
    );
    let (rr, pr) = (
        get(r, BENCH, RUST, "peak RSS"),
        get(r, BENCH, PY, "peak RSS"),
    );
    r.compare(
        BENCH,
        "function peak RSS after the batches (peer ÷ Rust)",
        rr,
        pr,
        "MiB",
        pr / rr,
        "—",
        None,
    );
    let (rw, iw) = (
        get(r, IDEMPOTENCY, RUST, "control-table writes per batch"),
        get(r, IDEMPOTENCY, PY_IDEM, "control-table writes per batch"),
    );
    r.compare(
        IDEMPOTENCY,
        &format!("control-table writes per {n}-record batch vs Powertools idempotency (measured)"),
        rw,
        iw,
        "writes",
        iw / rw,
        "O(1) per batch",
        Some(rw <= 6.0),
    );
    r.note(
        BENCH,
        "CPU is the function process's own user + system time (`/proc/<pid>/stat`, 10 ms \
         ticks, summed over the run's batches); the local stack's servers are not counted for \
         either side. Both sides write the CDC Parquet to the same s3s-fs and put the events \
         to the same moto EventBridge, through request-counting proxies.",
    );
    r.note(
        IDEMPOTENCY,
        "Counted by the DynamoDB proxy in front of the local DynamoDB (dynoxide) while the \
         real binaries ran. Rust: the ordered checkpoints of stream-fanout's two sinks (CDC \
         and events) — a read and an open + a commit per sink per batch, whatever the batch \
         size. Python: Powertools `@idempotent_function` per record (`DynamoDBPersistenceLayer`: \
         a conditional PutItem to claim, an UpdateItem to complete).",
    );
    Ok(())
}
