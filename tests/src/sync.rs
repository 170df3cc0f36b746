//! Helpers for driving `incremental-sync` end to end (tests and the benchmark): start the real
//! binary under the harness, write inbound Parquet files, send their S3 events and follow the
//! continuation chain the function returns (`DYNABRIDGE_CONTINUATION_MODE=return`).

use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use arrow::array::{ArrayRef, RecordBatch, StringArray};
use bytes::Bytes;
use dynabridge_devstack::harness::{FunctionProcess, FunctionSpec, InvokeOutcome};
use dynabridge_devstack::sources::s3_events::{object_created_event, object_info};
use dynabridge_shared::codec::{BatchEncoder, Op, RowMeta, stream_seq};
use dynabridge_shared::lake::{FileMeta, ParquetOptions, write_parquet, writer_properties};
use dynabridge_shared::schema::{Attributes, Registry};
use serde_dynamo::AttributeValue as V;
use serde_json::Value;

use crate::Env;

/// The example registry (what the sample data and the runner use).
pub fn example_registry() -> Result<Registry> {
    Ok(Registry::from_path(
        dynabridge_devstack::provision::example_registry_path(),
    )?)
}

/// Starts `incremental-sync` with the stack's resources, continuations returned, plus `extra`.
pub async fn start(
    e: &Env,
    aws_env: Vec<(String, String)>,
    extra: &[(&str, &str)],
    timeout: Duration,
) -> Result<FunctionProcess> {
    let spec = FunctionSpec::workspace("incremental-sync")?
        .with_env(aws_env)
        .with_env(e.resources.function_env())
        .with_env([
            ("DYNABRIDGE_CONTINUATION_MODE", "return"),
            ("RUST_LOG", "info"),
        ])
        .with_env(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())))
        .with_timeout(timeout);
    FunctionProcess::new(spec).await
}

/// Invokes with `event`, then with every continuation the function returns, until none is
/// left. Returns each invocation's response.
pub async fn run_chain(f: &mut FunctionProcess, event: &Value) -> Result<Vec<Value>> {
    let mut responses = Vec::new();
    let mut next = Some(event.clone());
    while let Some(ev) = next.take() {
        if responses.len() > 500 {
            return Err(anyhow!("more than 500 continuations"));
        }
        let inv = f.invoke(&ev).await?;
        let resp = match inv.outcome {
            InvokeOutcome::Response(v) => v,
            other => {
                let logs = f.logs();
                let tail = logs[logs.len().saturating_sub(15)..].join("\n");
                return Err(anyhow!(
                    "invocation {} failed: {other:?}\nlast log lines:\n{tail}",
                    responses.len()
                ));
            }
        };
        next = resp.get("continuation").filter(|c| !c.is_null()).cloned();
        responses.push(resp);
    }
    Ok(responses)
}

/// Uploads `body` to the lake and returns its "Object Created" event.
pub async fn upload(e: &Env, key: &str, body: Bytes) -> Result<Value> {
    let s3 = e.stack.s3();
    let bucket = &e.resources.names.lake_bucket;
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(body.into())
        .send()
        .await
        .with_context(|| format!("PutObject {key}"))?;
    let info = object_info(&s3, bucket, key).await?;
    Ok(object_created_event(&info, "PutObject"))
}

/// An Order item (example registry, version 2) with only the required fields.
pub fn order(i: usize, placed_at_ms: u64, total: &str) -> Attributes {
    Attributes::from([
        ("pk".to_string(), V::S(format!("ORDER#{i:06}"))),
        ("sk".to_string(), V::S("ORDER".into())),
        ("schema_version".to_string(), V::N("2".into())),
        (
            "customer_id".to_string(),
            V::S(format!("CUSTOMER#{}", i % 97)),
        ),
        ("total".to_string(), V::N(total.into())),
        ("placed_at".to_string(), V::N(placed_at_ms.to_string())),
        ("currency".to_string(), V::S("EUR".into())),
        ("status".to_string(), V::S(format!("status-{}", i % 5))),
    ])
}

/// A lake-format Parquet file of Order items (row groups of `rows_per_group`), with `_op`
/// set to `DELETE` on the rows whose index is in `deletes`.
pub fn orders_file(
    registry: &Registry,
    items: &[Attributes],
    rows_per_group: usize,
    deletes: &[usize],
) -> Result<Bytes> {
    let ops: Vec<&str> = if deletes.is_empty() {
        Vec::new()
    } else {
        (0..items.len())
            .map(|i| {
                if deletes.contains(&i) {
                    "DELETE"
                } else {
                    "UPSERT"
                }
            })
            .collect()
    };
    orders_file_with_ops(registry, items, rows_per_group, &ops)
}

/// A lake-format Parquet file of Order items with `_op` set row by row from `ops` (any text,
/// so a test can plant refused verbs); an empty `ops` keeps the encoder's `SNAPSHOT`.
pub fn orders_file_with_ops(
    registry: &Registry,
    items: &[Attributes],
    rows_per_group: usize,
    ops: &[&str],
) -> Result<Bytes> {
    let entity = registry.entity("Order")?;
    let mut enc = BatchEncoder::new(entity);
    for (i, it) in items.iter().enumerate() {
        let seq = stream_seq(&(i + 1).to_string());
        enc.append(
            it,
            &RowMeta {
                op: Op::Snapshot,
                seq: &seq,
                event_time_micros: 1_763_712_000_000_000,
            },
        )
        .map_err(|e| anyhow!("row {i}: {e}"))?;
    }
    let mut batch = enc.finish()?;
    if !ops.is_empty() {
        let idx = batch.schema().index_of("_op")?;
        let mut cols: Vec<ArrayRef> = batch.columns().to_vec();
        cols[idx] = std::sync::Arc::new(StringArray::from(ops.to_vec()));
        batch = RecordBatch::try_new(batch.schema(), cols)?;
    }
    let meta = FileMeta::for_entity(registry, entity);
    let opts = ParquetOptions {
        max_row_group_rows: rows_per_group,
        ..ParquetOptions::default()
    };
    Ok(write_parquet(
        enc.schema(),
        &[batch],
        writer_properties(&opts, &meta)?,
    )?)
}

/// Every file report of a chain of responses.
pub fn file_reports(responses: &[Value]) -> Vec<Value> {
    responses
        .iter()
        .flat_map(|r| r["files"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// The final report of the file `key` (the last one in the chain).
pub fn final_report(responses: &[Value], key: &str) -> Option<Value> {
    file_reports(responses)
        .into_iter()
        .rev()
        .find(|f| f["key"] == key)
}

/// What [`run_chain_redelivered`] saw.
#[derive(Debug, Default, Clone)]
pub struct Redelivered {
    /// Every response, in order.
    pub responses: Vec<Value>,
    /// Invocations whose process died (and were delivered again).
    pub crashes: usize,
    /// Invocations that timed out (and were delivered again).
    pub timeouts: usize,
    /// Invocations that returned an error (and were delivered again).
    pub errors: usize,
}

/// Invokes `event`, then every continuation, the way Lambda's asynchronous invocation and
/// EventBridge's retry policy deliver them: an invocation that crashes, times out or fails is
/// delivered again with the same event (at most `max_redeliveries` times in all). A chain whose
/// redeliveries are used up stops there; the file is then left to the catch-up schedule.
pub async fn run_chain_redelivered(
    f: &mut FunctionProcess,
    event: &Value,
    max_redeliveries: usize,
) -> Result<Redelivered> {
    let mut out = Redelivered::default();
    let mut next = Some(event.clone());
    while let Some(ev) = next.take() {
        if out.responses.len() > 500 {
            return Err(anyhow!("more than 500 continuations"));
        }
        let inv = f.invoke(&ev).await?;
        match inv.outcome {
            InvokeOutcome::Response(v) => {
                next = v.get("continuation").filter(|c| !c.is_null()).cloned();
                out.responses.push(v);
            }
            InvokeOutcome::InitError { error_type, .. } => {
                return Err(anyhow!("init error {error_type}"));
            }
            other => {
                match other {
                    InvokeOutcome::Error { .. } => out.errors += 1,
                    InvokeOutcome::TimedOut => out.timeouts += 1,
                    _ => out.crashes += 1,
                }
                if out.crashes + out.timeouts + out.errors > max_redeliveries {
                    return Ok(out);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                next = Some(ev);
            }
        }
    }
    Ok(out)
}

/// The key ids (`pk|sk`) of every row in incremental-sync's rejects files, one entry per row.
pub fn rejected_key_ids(e: &Env) -> Result<Vec<String>> {
    let bucket = &e.resources.names.lake_bucket;
    let mut out = Vec::new();
    for key in crate::lake_keys(&e.stack, bucket, "quarantine/source=incremental-sync/") {
        if !key.ends_with(".parquet") {
            continue;
        }
        let bytes = std::fs::read(e.stack.lake_root().join(bucket).join(&key))?;
        for batch in dynabridge_shared::lake::read_parquet(Bytes::from(bytes))? {
            let text = |name: &str| -> Result<StringArray> {
                let col = batch
                    .column_by_name(name)
                    .ok_or_else(|| anyhow!("{key}: no {name} column"))?;
                let col = arrow::compute::cast(col, &arrow::datatypes::DataType::Utf8)?;
                Ok(col
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .ok_or_else(|| anyhow!("{key}: {name} is not text"))?
                    .clone())
            };
            let (pk, sk) = (text("pk")?, text("sk")?);
            for i in 0..batch.num_rows() {
                out.push(format!("{}|{}", pk.value(i), sk.value(i)));
            }
        }
    }
    Ok(out)
}

/// The idempotency records marked completed for `key` (an inbound object key) in the
/// control table.
pub async fn completed_records(e: &Env, key: &str) -> Result<usize> {
    let ddb = e.stack.dynamodb();
    let mut n = 0;
    let mut start = None;
    loop {
        let page = ddb
            .scan()
            .table_name(&e.resources.names.control_table)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await?;
        n += page
            .items()
            .iter()
            .filter(|i| {
                let pk = i.get("pk").and_then(|v| v.as_s().ok());
                let status = i.get("status").and_then(|v| v.as_s().ok());
                pk.is_some_and(|p| p.starts_with("idem#") && p.contains(&format!("/{key}#")))
                    && status.is_some_and(|s| s == dynabridge_shared::idempotency::STATUS_COMPLETED)
            })
            .count();
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            return Ok(n);
        }
    }
}
