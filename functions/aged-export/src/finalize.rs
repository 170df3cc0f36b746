//! Finishing a run once every segment is done: the manifest, the completion marker and the
//! "Export Completed" event.
//!
//! Finalizing is idempotent (deterministic keys, a run already `COMPLETED` is left alone), so
//! whichever invocation sees the last segment finish does it, and a retry after a crash does
//! it again. The event is published before the run is marked completed: at least once,
//! consumers dedupe on `run_id`.

use dynabridge_shared::DynabridgeError;
use dynabridge_shared::clients::AwsClients;
use dynabridge_shared::events::{DomainEvent, EventPublisher};
use dynabridge_shared::lake::LakeLayout;
use serde_json::{Value, json};

use crate::config::Config;
use crate::control::{COMPLETED, Control, FileEntry, Run, Stats};
use crate::export::{now_ms, put_json};

/// `DetailType` of the completion event.
pub const EXPORT_COMPLETED: &str = "Export Completed";

/// Writes the manifest and marker and publishes the event; returns the manifest key.
pub async fn finalize(
    config: &Config,
    clients: &AwsClients,
    control: &Control,
    run: &Run,
) -> Result<Value, DynabridgeError> {
    let plan = &run.plan;
    let layout = LakeLayout::new(&config.common.lake_prefix);
    let prefix = layout.archive_run_prefix(&plan.run_id);
    let manifest_key = format!("{prefix}manifest.json");
    let marker_key = format!("{prefix}_SUCCESS");
    if run.status == COMPLETED {
        return Ok(json!({"status": "completed", "run_id": plan.run_id, "manifest": manifest_key}));
    }
    let segments = control.segments(&plan.run_id).await?;
    let mut stats = Stats::default();
    let mut files: Vec<FileEntry> = Vec::new();
    for (_, seg) in &segments {
        stats.add(&seg.stats);
        files.extend(seg.files.iter().cloned());
    }
    files.sort_by(|a, b| a.key.cmp(&b.key));
    let (data, quarantine): (Vec<FileEntry>, Vec<FileEntry>) =
        files.into_iter().partition(|f| f.entity != "quarantine");
    let mut entities = serde_json::Map::new();
    for e in config.registry.entities() {
        let rows: u64 = data
            .iter()
            .filter(|f| f.entity == e.name())
            .map(|f| f.rows)
            .sum();
        if rows > 0 {
            entities.insert(
                e.name().to_string(),
                json!({
                    "rows": rows,
                    "schema_version": e.latest().version(),
                    "schema_fingerprint": e.latest().fingerprint(),
                }),
            );
        }
    }
    let rows: u64 = data.iter().map(|f| f.rows).sum();
    let manifest = json!({
        "format": "dynabridge.aged-export.manifest/1",
        "run_id": plan.run_id,
        "table": config.common.table_name,
        "schedule": plan.schedule,
        "schedule_time": plan.schedule_time,
        "snapshot_micros": plan.snapshot_micros,
        "cutoff_micros": plan.cutoff_micros,
        "action": plan.action,
        "segments": plan.segments,
        "registry_fingerprint": config.registry.fingerprint(),
        "entities": entities,
        "rows": rows,
        "files": data,
        "quarantine_files": quarantine,
        "stats": stats,
    });
    let bucket = &config.common.lake_bucket;
    put_json(clients, bucket, &manifest_key, &manifest).await?;
    put_json(
        clients,
        bucket,
        &marker_key,
        &json!({"run_id": plan.run_id, "manifest": manifest_key, "rows": rows}),
    )
    .await?;

    let publisher = EventPublisher::new(
        clients.eventbridge.clone(),
        &config.common.event_bus,
        &config.common.event_source,
    );
    let detail = json!({
        "run_id": plan.run_id,
        "table": config.common.table_name,
        "manifest": format!("s3://{bucket}/{manifest_key}"),
        "rows": rows,
        "files": data.len(),
        "quarantined": stats.quarantined,
        "cutoff_micros": plan.cutoff_micros,
        "action": plan.action,
        "stats": stats,
    });
    let report = publisher
        .publish(&[DomainEvent::new(EXPORT_COMPLETED, &detail)])
        .await;
    if let Some(f) = report.failed.first() {
        return Err(DynabridgeError::Other(format!(
            "publishing {EXPORT_COMPLETED} failed: {}: {}",
            f.code, f.message
        )));
    }
    control
        .complete_run(&plan.run_id, &manifest_key, now_ms())
        .await?;
    tracing::info!(run_id = %plan.run_id, rows, files = data.len(), "export run completed");
    Ok(json!({
        "status": "completed",
        "run_id": plan.run_id,
        "manifest": manifest_key,
        "rows": rows,
        "stats": stats,
    }))
}
