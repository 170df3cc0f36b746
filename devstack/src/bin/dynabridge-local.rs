//! `dynabridge-local`: the local runner (README's "run" command).
//!
//! Starts the local stack, provisions what `template.yaml` declares, loads the sample
//! dataset, drives every function binary that exists through the Lambda harness with its real
//! triggers, and prints what went in, what came out and where the lake folder is. With
//! `--keep-running` it then stays up as a development environment and prints the endpoints to
//! point an application at, streaming new changes to the functions until Ctrl-C.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use dynabridge_devstack::harness::{
    FunctionProcess, FunctionSpec, InvokeOutcome, workspace_binary,
};
use dynabridge_devstack::provision::{self, ResourceNames, Resources};
use dynabridge_devstack::sample::{self, SampleSpec};
use dynabridge_devstack::sources::async_invoke::AsyncInvoker;
use dynabridge_devstack::sources::{schedule, streams};
use dynabridge_devstack::{LocalStack, StackOptions};
use serde_json::json;

#[derive(Debug, Parser)]
#[command(about = "Run dynabridge locally: stack, sample data, every function, summary.")]
struct Args {
    /// Folder for the lake (S3 root) and logs; emptied at start.
    #[arg(long, default_value = ".local/run")]
    data_dir: PathBuf,
    /// Customers to generate (each with 0–4 orders).
    #[arg(long, default_value_t = 40)]
    customers: usize,
    /// Sessions to generate (a third with an expired TTL).
    #[arg(long, default_value_t = 20)]
    sessions: usize,
    /// Stay up as a local development environment after the run (Ctrl-C to stop).
    #[arg(long)]
    keep_running: bool,
    /// Start without EventBridge/SQS (no venv needed).
    #[arg(long)]
    no_eventbridge: bool,
}

const FUNCTIONS: [&str; 4] = [
    "stream-fanout",
    "ttl-cleanup",
    "aged-export",
    "incremental-sync",
];

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.data_dir.exists() {
        std::fs::remove_dir_all(&args.data_dir)
            .with_context(|| format!("clearing {}", args.data_dir.display()))?;
    }
    std::fs::create_dir_all(&args.data_dir)?;
    let data_dir = std::fs::canonicalize(&args.data_dir)?;

    println!("dynabridge local run");
    println!("====================");
    let stack = LocalStack::start(StackOptions {
        eventbridge: !args.no_eventbridge,
        data_dir: Some(data_dir.clone()),
        persistent_dynamodb: true,
    })?;
    println!("local stack");
    println!("  DynamoDB + Streams  {}", stack.dynamodb_endpoint());
    println!("  S3 (file-backed)    {}", stack.s3_endpoint());
    match stack.eventbridge_endpoint() {
        Some(ep) => println!("  EventBridge + SQS   {ep}"),
        None => println!("  EventBridge + SQS   (not started)"),
    }

    let resources = provision::provision(&stack, ResourceNames::default()).await?;
    println!("resources (as template.yaml declares them)");
    println!(
        "  table          {}  (stream NEW_AND_OLD_IMAGES, TTL on `ttl`)",
        resources.names.table
    );
    println!("  control table  {}", resources.names.control_table);
    println!("  lake bucket    {}", resources.names.lake_bucket);
    if resources.events_queue_url.is_some() {
        println!(
            "  event bus      {}  → rule dynabridge-domain-events → queue {}",
            resources.names.event_bus, resources.names.events_queue
        );
    }

    let items = sample::generate(&SampleSpec {
        customers: args.customers,
        sessions: args.sessions,
        ..Default::default()
    });
    sample::load(&stack.dynamodb(), &resources.names.table, &items).await?;
    let mut by_entity: BTreeMap<String, (usize, BTreeMap<String, usize>)> = BTreeMap::new();
    for item in &items {
        let entity = sample::entity_of(item).to_string();
        let version = attr_string(item, "schema_version");
        let e = by_entity.entry(entity).or_default();
        e.0 += 1;
        *e.1.entry(version).or_default() += 1;
    }
    println!("sample data loaded: {} items", items.len());
    for (entity, (count, versions)) in &by_entity {
        let v: Vec<String> = versions.iter().map(|(v, n)| format!("v{v}: {n}")).collect();
        println!("  {entity:<9} {count:>4}  ({})", v.join(", "));
    }

    // DynamoDB's TTL process, run now: the expired sessions become service REMOVEs in the
    // stream (EXPIRE rows for stream-fanout, archive input for ttl-cleanup).
    let swept = stack.sweep_ttl().await?;
    println!("DynamoDB TTL sweep (embedded): {swept} expired items deleted by the service");

    println!("functions");
    let logs_dir = data_dir.join("logs");
    std::fs::create_dir_all(&logs_dir)?;
    for name in FUNCTIONS {
        match workspace_binary(name) {
            Ok(binary) => drive(name, &binary, &stack, &resources, &logs_dir).await?,
            Err(_) => println!("  {name:<17} binary not built (cargo build --workspace --bins)"),
        }
    }

    if let (Ok(sqs), Some(url)) = (stack.sqs(), &resources.events_queue_url) {
        let events = provision::drain_queue(&sqs, url, Duration::from_millis(500)).await?;
        print_events(&resources.names.events_queue, &events);
    }

    println!(
        "lake folder (any Parquet reader can open it): {}",
        stack
            .lake_root()
            .join(&resources.names.lake_bucket)
            .display()
    );
    print_tree(&stack.lake_root().join(&resources.names.lake_bucket), 2)?;
    println!("function logs: {}", logs_dir.display());

    if args.keep_running {
        println!();
        println!("local development environment is up; point an application at it with:");
        for (k, v) in stack.aws_env() {
            println!("  export {k}={v}");
        }
        for (k, v) in resources.function_env() {
            println!("  export {k}={v}");
        }
        println!("changes written to the table now flow to stream-fanout live (Ctrl-C to stop):");
        live(&stack, &resources, &logs_dir).await?;
    }
    Ok(())
}

/// Streams new table changes to stream-fanout until Ctrl-C, printing each batch, the CDC
/// files it wrote and the events delivered.
async fn live(stack: &LocalStack, resources: &Resources, logs_dir: &Path) -> Result<()> {
    let Ok(binary) = workspace_binary("stream-fanout") else {
        tokio::signal::ctrl_c().await?;
        return Ok(());
    };
    let spec = FunctionSpec {
        name: "stream-fanout".into(),
        binary,
        env: Vec::new(),
        memory_mb: 512,
        timeout: Duration::from_secs(120),
        log_file: Some(logs_dir.join("stream-fanout.log")),
    }
    .with_env(stack.aws_env())
    .with_env(resources.function_env());
    let mut function = FunctionProcess::new(spec).await?;
    let mut poller = streams::StreamPoller::new(
        stack.dynamodb_streams(),
        stack.sqs().ok(),
        &resources.stream_arn,
        streams::MappingConfig {
            starting_position: streams::StartingPosition::Latest,
            tumbling_window: Some(Duration::from_secs(60)),
            on_failure_queue_url: resources.stream_failure_queue_url.clone(),
            ..Default::default()
        },
    )
    .await?;
    let cdc_root = stack
        .lake_root()
        .join(&resources.names.lake_bucket)
        .join("cdc");
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        tokio::select! {
            _ = ctrl_c.as_mut() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let deliveries = poller.drain(&mut function).await?;
        for d in &deliveries {
            println!(
                "  batch of {} records → {}",
                d.sequence_numbers.len(),
                describe(&d.outcome)
            );
        }
        if !deliveries.is_empty() {
            print_tree(&cdc_root, 1)?;
            if let (Ok(sqs), Some(url)) = (stack.sqs(), &resources.events_queue_url) {
                let events = provision::drain_queue(&sqs, url, Duration::from_millis(300)).await?;
                print_events(&resources.names.events_queue, &events);
            }
        }
    }
}

fn print_events(queue: &str, bodies: &[String]) {
    let mut by_type: BTreeMap<String, usize> = BTreeMap::new();
    for b in bodies {
        let t = serde_json::from_str::<serde_json::Value>(b)
            .ok()
            .and_then(|v| v["detail-type"].as_str().map(str::to_string))
            .unwrap_or_else(|| "?".into());
        *by_type.entry(t).or_default() += 1;
    }
    println!("domain events delivered to queue {queue}: {}", bodies.len());
    for (t, n) in by_type {
        println!("  {t:<24} {n:>4}");
    }
}

fn attr_string(item: &sample::Item, name: &str) -> String {
    match item.get(name) {
        Some(aws_sdk_dynamodb::types::AttributeValue::S(s)) => s.clone(),
        Some(aws_sdk_dynamodb::types::AttributeValue::N(n)) => n.clone(),
        _ => "?".into(),
    }
}

async fn drive(
    name: &str,
    binary: &Path,
    stack: &LocalStack,
    resources: &Resources,
    logs_dir: &Path,
) -> Result<()> {
    let spec = FunctionSpec {
        name: name.to_string(),
        binary: binary.to_path_buf(),
        env: Vec::new(),
        memory_mb: 512,
        timeout: Duration::from_secs(120),
        log_file: Some(logs_dir.join(format!("{name}.log"))),
    }
    .with_env(stack.aws_env())
    .with_env(resources.function_env())
    .with_env(if name == "aged-export" {
        AGED_EXPORT_ENV.to_vec()
    } else {
        Vec::new()
    })
    // No Lambda service locally: continuations come back in the response and are invoked
    // here (see docs/functions/incremental-sync.md).
    .with_env([("DYNABRIDGE_CONTINUATION_MODE", "return")]);
    let mut function = FunctionProcess::new(spec).await?;
    let init = function.start().await;
    let init = match init {
        Ok(d) => format!("cold start {:.1} ms", d.as_secs_f64() * 1e3),
        Err(e) => {
            println!("  {name:<17} failed to start: {e}");
            return Ok(());
        }
    };
    let outcomes: Vec<(String, InvokeOutcome)> = match name {
        "stream-fanout" => stream_outcomes(&mut function, stack, resources, vec![]).await?,
        "ttl-cleanup" => {
            let filter = json!({
                "eventName": ["REMOVE"],
                "userIdentity": {"type": ["Service"], "principalId": ["dynamodb.amazonaws.com"]}
            });
            let mut out = Vec::new();
            out.extend(stream_outcomes(&mut function, stack, resources, vec![filter]).await?);
            let tick = schedule::scheduled_event("dynabridge-ttl-sweep", chrono::Utc::now(), None);
            out.push((
                "sweep schedule".into(),
                function.invoke(&tick).await?.outcome,
            ));
            out
        }
        "aged-export" => aged_export_outcomes(function).await?,
        "incremental-sync" => sync_outcomes(&mut function, stack, resources).await?,
        _ => vec![],
    };
    println!("  {name:<17} {init}");
    for (what, outcome) in outcomes {
        println!("    {what}: {}", describe(&outcome));
    }
    Ok(())
}

/// The local run exports what is older than a year (customers by `created_at`, orders by
/// `placed_at`), in two segments on two execution environments, and sets the exported items'
/// TTL 30 days out. Segment and continuation events go through the async-invocation driver.
const AGED_EXPORT_ENV: [(&str, &str); 7] = [
    ("DYNABRIDGE_EXPORT_DISPATCH", "response"),
    ("DYNABRIDGE_EXPORT_AGE_DAYS", "365"),
    ("DYNABRIDGE_EXPORT_AGE_ATTRIBUTES", "Order=placed_at"),
    ("DYNABRIDGE_EXPORT_SEGMENTS", "2"),
    ("DYNABRIDGE_EXPORT_ACTION", "ttl"),
    ("DYNABRIDGE_EXPORT_GRACE_DAYS", "30"),
    ("DYNABRIDGE_EXPORT_DEADLINE_RESERVE_MS", "10000"),
];

async fn aged_export_outcomes(function: FunctionProcess) -> Result<Vec<(String, InvokeOutcome)>> {
    let second = FunctionProcess::new(function.spec().clone()).await?;
    let mut envs = vec![function, second];
    let tick = schedule::scheduled_event("dynabridge-aged-export", chrono::Utc::now(), None);
    let deliveries = AsyncInvoker::default().drain(&mut envs, vec![tick]).await?;
    let mut out = Vec::new();
    let segments = deliveries
        .iter()
        .filter(|d| d.event.get("action").is_some())
        .count();
    out.push((
        format!(
            "export schedule: {} invocation(s) ({segments} segment/finalize events) on {} environments",
            deliveries.len(),
            envs.len()
        ),
        InvokeOutcome::Response(json!(null)),
    ));
    for d in &deliveries {
        match &d.outcome {
            InvokeOutcome::Response(r) if r["status"] == "completed" => {
                let s = &r["stats"];
                out.push((
                    format!("run {} completed", r["run_id"].as_str().unwrap_or("?")),
                    InvokeOutcome::Response(json!(format!(
                        "{} rows in archive/, {} quarantined, {} TTLs set, {} kept (changed); manifest {}",
                        r["rows"], s["quarantined"], s["expired"], s["kept_changed"],
                        r["manifest"].as_str().unwrap_or("?")
                    ))),
                ));
            }
            outcome if outcome.is_function_error() => {
                out.push(("invocation failed".into(), outcome.clone()));
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Drops Spark-written Parquet files (committed fixtures, written by
/// `tests/python/spark_inbound.py`) into `inbound/<Entity>/`, as a Databricks job would, with
/// Spark's `_SUCCESS` marker; sends their S3 "Object Created" events, follows continuations,
/// runs the catch-up schedule and shows the items that arrived in DynamoDB.
async fn sync_outcomes(
    function: &mut FunctionProcess,
    stack: &LocalStack,
    resources: &Resources,
) -> Result<Vec<(String, InvokeOutcome)>> {
    use dynabridge_devstack::sources::s3_events::{object_created_event, object_info};
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/incremental-sync");
    let s3 = stack.s3();
    let bucket = &resources.names.lake_bucket;
    let mut out = Vec::new();
    let mut keys = Vec::new();
    for (file, entity) in [
        ("Customer-part-00000.snappy.parquet", "Customer"),
        ("Order-part-00000.snappy.parquet", "Order"),
    ] {
        let body = std::fs::read(fixtures.join(file)).with_context(|| format!("fixture {file}"))?;
        for (key, body) in [
            (format!("inbound/{entity}/part-00000.snappy.parquet"), body),
            (format!("inbound/{entity}/_SUCCESS"), Vec::new()),
        ] {
            s3.put_object()
                .bucket(bucket)
                .key(&key)
                .body(body.into())
                .send()
                .await
                .with_context(|| format!("PutObject {key}"))?;
            keys.push(key);
        }
    }
    for key in &keys {
        let info = object_info(&s3, bucket, key).await?;
        let mut event = Some(object_created_event(&info, "PutObject"));
        let mut hops = 0;
        while let Some(ev) = event.take() {
            let outcome = function.invoke(&ev).await?.outcome;
            let summary = match &outcome {
                InvokeOutcome::Response(v) => {
                    event = v.get("continuation").filter(|c| !c.is_null()).cloned();
                    let f = &v["files"][0];
                    let counts = &f["counts"];
                    if counts.is_null() {
                        json!(format!(
                            "{} {}",
                            f["status"].as_str().unwrap_or("?"),
                            f["reason"].as_str().unwrap_or("")
                        ))
                    } else {
                        json!(format!(
                            "{} (written {}, deleted {}, rejected {})",
                            f["status"].as_str().unwrap_or("?"),
                            counts["written"],
                            counts["deleted"],
                            counts["rejected"],
                        ))
                    }
                }
                _ => json!(null),
            };
            let label = if hops == 0 {
                format!("S3 event s3://{bucket}/{key}")
            } else {
                format!("  continuation {hops}")
            };
            hops += 1;
            out.push((
                label,
                match summary {
                    serde_json::Value::Null => outcome,
                    s => InvokeOutcome::Response(s),
                },
            ));
        }
    }
    let tick = schedule::scheduled_event("dynabridge-sync-catch-up", chrono::Utc::now(), None);
    out.push((
        "catch-up schedule".into(),
        function.invoke(&tick).await?.outcome,
    ));
    let ddb = stack.dynamodb();
    for (pk, sk) in [
        ("CUSTOMER#1", "PROFILE"),
        ("CUSTOMER#2", "PROFILE"),
        ("ORDER#1", "ORDER"),
        ("ORDER#2", "ORDER"),
    ] {
        let item = ddb
            .get_item()
            .table_name(&resources.names.table)
            .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(pk.into()))
            .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(sk.into()))
            .consistent_read(true)
            .send()
            .await?
            .item;
        let shown = match item {
            Some(item) => {
                let mut names: Vec<&String> = item.keys().collect();
                names.sort();
                let fields: Vec<String> = names
                    .iter()
                    .filter(|k| !matches!(k.as_str(), "pk" | "sk"))
                    .map(|k| format!("{k}={}", show_value(&item[*k])))
                    .collect();
                fields.join(" ")
            }
            None => "(absent)".into(),
        };
        out.push((
            format!("item {pk}/{sk} in DynamoDB"),
            InvokeOutcome::Response(json!(shown)),
        ));
    }
    Ok(out)
}

fn show_value(v: &aws_sdk_dynamodb::types::AttributeValue) -> String {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    match v {
        A::S(s) => s.clone(),
        A::N(n) => n.clone(),
        A::Bool(b) => b.to_string(),
        A::Ss(s) | A::Ns(s) => format!("[{}]", s.join(",")),
        A::M(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys
                .iter()
                .map(|k| format!("{k}:{}", show_value(&m[*k])))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        A::B(b) => format!("<{} bytes>", b.as_ref().len()),
        other => format!("{other:?}"),
    }
}

async fn stream_outcomes(
    function: &mut FunctionProcess,
    stack: &LocalStack,
    resources: &Resources,
    filter_criteria: Vec<serde_json::Value>,
) -> Result<Vec<(String, InvokeOutcome)>> {
    let config = streams::MappingConfig {
        batch_size: 100,
        maximum_retry_attempts: 2,
        tumbling_window: Some(Duration::from_secs(60)),
        on_failure_queue_url: resources.stream_failure_queue_url.clone(),
        filter_criteria,
        ..Default::default()
    };
    let mut poller = streams::StreamPoller::new(
        stack.dynamodb_streams(),
        stack.sqs().ok(),
        &resources.stream_arn,
        config,
    )
    .await?;
    let deliveries = poller.drain(function).await?;
    // One line per distinct outcome: a long retry/bisection sequence stays readable.
    let mut grouped: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for d in &deliveries {
        let e = grouped.entry(describe(&d.outcome)).or_default();
        e.0 += 1;
        e.1 += d.sequence_numbers.len();
    }
    let mut out: Vec<(String, InvokeOutcome)> = grouped
        .into_iter()
        .map(|(outcome, (invocations, records))| {
            (
                format!("{invocations} stream invocation(s), {records} records delivered"),
                InvokeOutcome::Response(json!(outcome)),
            )
        })
        .collect();
    let discarded: usize = poller.discarded().iter().map(|d| d.batch_size).sum();
    if discarded > 0 {
        out.push((
            format!("{discarded} records sent to the on-failure queue"),
            InvokeOutcome::Response(json!(null)),
        ));
    }
    Ok(out)
}

fn describe(outcome: &InvokeOutcome) -> String {
    match outcome {
        InvokeOutcome::Response(v) if v.is_null() => "done".into(),
        InvokeOutcome::Response(serde_json::Value::String(s)) => s.clone(),
        InvokeOutcome::Response(v) => format!("ok {v}"),
        InvokeOutcome::Error {
            error_type,
            error_message,
        } => format!("error {error_type}: {error_message}"),
        InvokeOutcome::InitError {
            error_type,
            error_message,
        } => format!("init error {error_type}: {error_message}"),
        InvokeOutcome::Crashed { code, signal } => {
            format!("crashed (code {code:?}, signal {signal:?})")
        }
        InvokeOutcome::TimedOut => "timed out".into(),
    }
}

fn print_tree(root: &Path, depth: usize) -> Result<()> {
    fn walk(
        dir: &Path,
        root: &Path,
        depth: usize,
        counts: &mut BTreeMap<String, (usize, u64)>,
    ) -> Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            if path.is_dir() {
                walk(&path, root, depth, counts)?;
            } else {
                let rel = path.strip_prefix(root).unwrap_or(&path);
                let group: Vec<String> = rel
                    .parent()
                    .map(|p| {
                        p.components()
                            .take(depth)
                            .map(|c| c.as_os_str().to_string_lossy().into_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                let e = counts.entry(group.join("/")).or_default();
                e.0 += 1;
                e.1 += entry.metadata()?.len();
            }
        }
        Ok(())
    }
    let mut counts = BTreeMap::new();
    if root.is_dir() {
        walk(root, root, depth, &mut counts)?;
    }
    if counts.is_empty() {
        println!("  (no objects yet)");
    }
    for (group, (files, bytes)) in counts {
        println!(
            "  {:<40} {files:>4} files {bytes:>10} bytes",
            if group.is_empty() { "." } else { &group }
        );
    }
    Ok(())
}
