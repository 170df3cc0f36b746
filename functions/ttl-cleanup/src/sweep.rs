//! Sweep mode: items whose TTL passed but that DynamoDB has not removed yet are archived to
//! `expired/` first, then deleted — each delete conditional on the TTL still being in the
//! past *and* the item being unchanged since it was archived, so an extended TTL or any
//! later write is respected and nothing is deleted that is not in the lake.
//!
//! ## How a pass runs
//! The table (or a sparse TTL index) is scanned in parallel segments, page by page, with a
//! filter `ttl < now`. Per page with expired items:
//! 1. the items are written to `expired/` (`_op = EXPIRE`, one file per entity; items that
//!    fail the schema go to a quarantine file — still durable in the lake);
//! 2. the control table records the page as *pending*: the keys and content fingerprints of
//!    the archived items, and where the scan continues;
//! 3. each item is deleted with the condition above, under an optional deletes/second
//!    ceiling;
//! 4. the page's checkpoint advances.
//!
//! A failure or crash before step 2 leaves the checkpoint at the page: the next tick scans
//! and archives it again (same object keys) before deleting anything. After step 2 a resume
//! goes to step 3 of the pending page: its archive is durable, and an item is deleted only if
//! its current content still has the archived fingerprint. Each schedule tick continues the
//! pass where the last one stopped (near the deadline it stops between pages), so a large
//! table does not need one long invocation; an idempotency lease keeps overlapping ticks
//! from sweeping twice.
//!
//! ## TTL values (documented behaviour)
//! - `N` epoch seconds in the past: swept.
//! - `N` that looks like milliseconds (> 10^11): DynamoDB reads it as seconds far in the
//!   future and never expires it; the sweeper does the same (counted `ttl_in_millis`).
//! - `S` (a string) or any other type: DynamoDB ignores it; so does the sweeper.
//! - absent: not expiring.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use dynabridge_shared::DynabridgeError;
use dynabridge_shared::clients::AwsClients;
use dynabridge_shared::codec::{Op, RowMeta, from_sdk_item, stream_seq};
use dynabridge_shared::condition::{item_fingerprint, number_below};

use crate::guarded_delete::{Outcome, delete_if_unchanged};
use dynabridge_shared::idempotency::{Claim, Idempotency, IdempotencyConfig, IdempotencyError};
use dynabridge_shared::lake::items::{ItemsTarget, write_items};
use dynabridge_shared::lake::layout::{Area, LakeLayout, day_of_micros, safe_segment};
use dynabridge_shared::metrics::Metrics;
use dynabridge_shared::retry::RateLimiter;
use serde_json::{Value, json};

use crate::config::Config;
use crate::handler::FUNCTION;

type Item = HashMap<String, AttributeValue>;

/// An epoch value above this is taken to be milliseconds (year 5138 in seconds).
const MILLIS_THRESHOLD: i64 = 100_000_000_000;

/// Counts of one sweep invocation.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    /// Items read by the scans.
    pub scanned: usize,
    /// Items found with a TTL in the past.
    pub expired_found: usize,
    /// Items written to `expired/` (or quarantine).
    pub archived: usize,
    /// Items deleted.
    pub deleted: usize,
    /// Items kept because they changed or their TTL moved since they were read.
    pub kept_changed: usize,
    /// Items whose TTL is in milliseconds (never expired, as DynamoDB does).
    pub ttl_in_millis: usize,
    /// Control-table records purged.
    pub purged_control: usize,
    /// Whether every segment finished its pass.
    pub complete: bool,
}

/// Runs (or continues) a sweep.
pub async fn sweep(
    config: &Config,
    clients: &AwsClients,
    deadline_ms: i64,
) -> Result<Value, DynabridgeError> {
    let now_ms = chrono::Utc::now().timestamp_millis();
    // The lease is held until the invocation's deadline: a crashed sweep is taken over by the
    // first tick after its deadline, a running one is never doubled.
    let mut lease_config = IdempotencyConfig::new(&config.common.control_table, "ttl-sweep");
    lease_config.in_progress_floor = std::time::Duration::from_secs(1);
    let idem = Idempotency::new(clients.control.clone(), lease_config);
    let lease = match idem
        .claim(
            &config.common.table_name,
            &json!({}),
            u64::try_from(deadline_ms).ok(),
        )
        .await
    {
        Ok(Claim::Acquired(lease)) => lease,
        Ok(Claim::Completed(_)) => return Ok(json!({"mode": "sweep", "skipped": "completed"})),
        Err(IdempotencyError::AlreadyInProgress { .. }) => {
            tracing::info!("another sweep holds the lease; nothing to do");
            return Ok(json!({"mode": "sweep", "skipped": "in progress"}));
        }
        Err(e) => return Err(e.into()),
    };
    let result = run(config, clients, now_ms, deadline_ms).await;
    // The lease is released either way: the next tick continues from the checkpoints.
    if let Err(e) = idem.release(&lease).await {
        tracing::warn!(error = %e, "releasing the sweep lease failed; it expires on its own");
    }
    let report = result?;
    tracing::info!(
        scanned = report.scanned,
        expired_found = report.expired_found,
        archived = report.archived,
        deleted = report.deleted,
        kept_changed = report.kept_changed,
        ttl_in_millis = report.ttl_in_millis,
        purged_control = report.purged_control,
        complete = report.complete,
        "TTL sweep done"
    );
    let mut m = Metrics::new(FUNCTION);
    m.count("SweepScanned", report.scanned);
    m.count("SweepArchived", report.archived);
    m.count("SweepDeleted", report.deleted);
    m.count("SweepKeptChanged", report.kept_changed);
    m.count("ControlPurged", report.purged_control);
    m.flush();
    Ok(json!({
        "mode": "sweep",
        "scanned": report.scanned,
        "expiredFound": report.expired_found,
        "archived": report.archived,
        "deleted": report.deleted,
        "keptChanged": report.kept_changed,
        "ttlInMillis": report.ttl_in_millis,
        "purgedControl": report.purged_control,
        "complete": report.complete,
    }))
}

async fn run(
    config: &Config,
    clients: &AwsClients,
    now_ms: i64,
    deadline_ms: i64,
) -> Result<SweepReport, DynabridgeError> {
    let limiter = config
        .sweep
        .max_deletes_per_second
        .map(|r| Arc::new(RateLimiter::new(r)));
    let segments = (0..config.sweep.segments).map(|segment| {
        let limiter = limiter.clone();
        async move {
            Segment {
                config,
                clients,
                segment,
                now_s: now_ms / 1000,
                deadline_ms,
                limiter,
            }
            .run()
            .await
        }
    });
    let mut total = SweepReport {
        complete: true,
        ..Default::default()
    };
    for r in futures::future::join_all(segments).await {
        let r = r?;
        total.scanned += r.scanned;
        total.expired_found += r.expired_found;
        total.archived += r.archived;
        total.deleted += r.deleted;
        total.kept_changed += r.kept_changed;
        total.ttl_in_millis += r.ttl_in_millis;
        total.complete &= r.complete;
    }
    if config.sweep.purge_control && total.complete {
        total.purged_control = purge_control(config, clients, now_ms / 1000).await?;
    }
    Ok(total)
}

struct Segment<'a> {
    config: &'a Config,
    clients: &'a AwsClients,
    segment: u32,
    now_s: i64,
    deadline_ms: i64,
    limiter: Option<Arc<RateLimiter>>,
}

/// The segment's checkpoint in the control table.
#[derive(Debug, Default, Clone)]
struct State {
    pass: i64,
    page: i64,
    start_key: Option<Item>,
    pending: Option<Pending>,
}

#[derive(Debug, Clone)]
struct Pending {
    /// Keys and content fingerprints of the archived items.
    items: Vec<(Item, String)>,
    /// Where the scan continues after this page.
    next: Option<Item>,
}

impl Segment<'_> {
    fn state_key(&self) -> Item {
        HashMap::from([
            (
                "pk".to_string(),
                AttributeValue::S(format!("sweep#{}", self.config.common.table_name)),
            ),
            (
                "sk".to_string(),
                AttributeValue::S(format!(
                    "segment#{}#of#{}",
                    self.segment, self.config.sweep.segments
                )),
            ),
        ])
    }

    async fn load(&self) -> Result<State, DynabridgeError> {
        let out = self
            .clients
            .control
            .get_item()
            .table_name(&self.config.common.control_table)
            .set_key(Some(self.state_key()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| DynabridgeError::aws("DynamoDB", "GetItem", e))?;
        let Some(item) = out.item() else {
            return Ok(State {
                pass: self.now_s,
                ..Default::default()
            });
        };
        let num = |k: &str| match item.get(k) {
            Some(AttributeValue::N(n)) => n.parse().unwrap_or(0),
            _ => 0,
        };
        let key_of = |k: &str| match item.get(k) {
            Some(AttributeValue::M(m)) => Some(m.clone()),
            _ => None,
        };
        let pending = match item.get("pending") {
            Some(AttributeValue::L(list)) => Some(Pending {
                items: list
                    .iter()
                    .filter_map(|v| match v {
                        AttributeValue::M(m) => match (m.get("key"), m.get("fp")) {
                            (Some(AttributeValue::M(k)), Some(AttributeValue::S(fp))) => {
                                Some((k.clone(), fp.clone()))
                            }
                            _ => None,
                        },
                        _ => None,
                    })
                    .collect(),
                next: key_of("pending_next"),
            }),
            _ => None,
        };
        Ok(State {
            pass: num("pass"),
            page: num("page"),
            start_key: key_of("start_key"),
            pending,
        })
    }

    async fn save(&self, state: &State) -> Result<(), DynabridgeError> {
        let mut item = self.state_key();
        item.insert("pass".into(), AttributeValue::N(state.pass.to_string()));
        item.insert("page".into(), AttributeValue::N(state.page.to_string()));
        item.insert(
            "updated_at_ms".into(),
            AttributeValue::N(chrono::Utc::now().timestamp_millis().to_string()),
        );
        if let Some(k) = &state.start_key {
            item.insert("start_key".into(), AttributeValue::M(k.clone()));
        }
        if let Some(p) = &state.pending {
            let list = p
                .items
                .iter()
                .map(|(k, fp)| {
                    AttributeValue::M(HashMap::from([
                        ("key".to_string(), AttributeValue::M(k.clone())),
                        ("fp".to_string(), AttributeValue::S(fp.clone())),
                    ]))
                })
                .collect();
            item.insert("pending".into(), AttributeValue::L(list));
            if let Some(n) = &p.next {
                item.insert("pending_next".into(), AttributeValue::M(n.clone()));
            }
        }
        self.clients
            .control
            .put_item()
            .table_name(&self.config.common.control_table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| DynabridgeError::aws("DynamoDB", "PutItem", e))?;
        Ok(())
    }

    async fn clear(&self) -> Result<(), DynabridgeError> {
        self.clients
            .control
            .delete_item()
            .table_name(&self.config.common.control_table)
            .set_key(Some(self.state_key()))
            .send()
            .await
            .map_err(|e| DynabridgeError::aws("DynamoDB", "DeleteItem", e))?;
        Ok(())
    }

    fn near_deadline(&self) -> bool {
        chrono::Utc::now().timestamp_millis() + self.config.sweep.deadline_margin_ms
            >= self.deadline_ms
    }

    async fn run(self) -> Result<SweepReport, DynabridgeError> {
        let mut report = SweepReport::default();
        let mut state = self.load().await?;
        if let Some(pending) = state.pending.take() {
            // Resume after a crash: a page is pending only once its archive is durable;
            // delete what is still unchanged.
            tracing::info!(
                segment = self.segment,
                page = state.page,
                items = pending.items.len(),
                "resuming a pending sweep page"
            );
            self.delete_unchanged(&pending.items, &mut report).await?;
            state.start_key = pending.next;
            state.page += 1;
            if state.start_key.is_none() {
                self.clear().await?;
                report.complete = true;
                return Ok(report);
            }
            self.save(&state).await?;
        }
        loop {
            if self.near_deadline() {
                tracing::info!(
                    segment = self.segment,
                    page = state.page,
                    "deadline near: the next tick continues this pass"
                );
                return Ok(report);
            }
            let page = self.scan_page(state.start_key.clone()).await?;
            report.scanned += page.scanned;
            report.ttl_in_millis += page.ttl_in_millis;
            let next = page.next;
            if !page.expired.is_empty() {
                report.expired_found += page.expired.len();
                let pending = Pending {
                    items: page
                        .expired
                        .iter()
                        .map(|i| (self.key_of(i), item_fingerprint(i)))
                        .collect(),
                    next: next.clone(),
                };
                // The archive first, then the pending record: a page is pending (and may be
                // deleted by a resume) only once its archive is durable. A failure or crash
                // in between leaves the checkpoint at this page, which is scanned and archived
                // again (same keys, overwritten) before anything is deleted.
                report.archived += self.archive(&state, &page.expired).await?;
                state.pending = Some(pending);
                self.save(&state).await?;
                dynabridge_shared::crashpoint::hit("sweep-after-archive");
                let pending = state.pending.take().map(|p| p.items).unwrap_or_default();
                self.delete_unchanged(&pending, &mut report).await?;
            }
            state.start_key = next;
            state.page += 1;
            if state.start_key.is_none() {
                self.clear().await?;
                report.complete = true;
                return Ok(report);
            }
            self.save(&state).await?;
        }
    }

    fn key_of(&self, item: &Item) -> Item {
        ["pk", "sk"]
            .iter()
            .filter_map(|k| item.get(*k).map(|v| (k.to_string(), v.clone())))
            .collect()
    }

    async fn scan_page(&self, start: Option<Item>) -> Result<ScanPage, DynabridgeError> {
        let mut req = self
            .clients
            .dynamodb
            .scan()
            .table_name(&self.config.common.table_name)
            .segment(self.segment as i32)
            .total_segments(self.config.sweep.segments as i32)
            .limit(self.config.sweep.page_size)
            // Milliseconds are returned too, only to be counted (never deleted).
            .filter_expression("#ttl < :now OR #ttl >= :millis")
            .expression_attribute_names("#ttl", &self.config.ttl_attribute)
            .expression_attribute_values(":now", AttributeValue::N(self.now_s.to_string()))
            .expression_attribute_values(":millis", AttributeValue::N(MILLIS_THRESHOLD.to_string()))
            .set_exclusive_start_key(start);
        match &self.config.sweep.index {
            Some(index) => req = req.index_name(index),
            None => req = req.consistent_read(true),
        }
        let out = req
            .send()
            .await
            .map_err(|e| DynabridgeError::aws("DynamoDB", "Scan", e))?;
        let mut page = ScanPage {
            scanned: out.scanned_count() as usize,
            next: out.last_evaluated_key().cloned(),
            ..Default::default()
        };
        for item in out.items() {
            let ttl = match item.get(&self.config.ttl_attribute) {
                Some(AttributeValue::N(n)) => n.parse::<f64>().ok(),
                _ => None,
            };
            match ttl {
                Some(t) if t >= MILLIS_THRESHOLD as f64 => page.ttl_in_millis += 1,
                Some(t) if t < self.now_s as f64 => page.expired.push(item.clone()),
                _ => {}
            }
        }
        // A sparse index holds projections: archive the full item.
        if self.config.sweep.index.is_some() {
            let mut full = Vec::with_capacity(page.expired.len());
            for i in &page.expired {
                let key = self.key_of(i);
                let out = self
                    .clients
                    .dynamodb
                    .get_item()
                    .table_name(&self.config.common.table_name)
                    .set_key(Some(key))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| DynabridgeError::aws("DynamoDB", "GetItem", e))?;
                if let Some(item) = out.item() {
                    full.push(item.clone());
                }
            }
            page.expired = full;
        }
        Ok(page)
    }

    /// Writes the page's items to `expired/` (quarantine for schema failures). Keys are a
    /// pure function of (pass, segment, page), so a re-run overwrites the same objects.
    async fn archive(&self, state: &State, items: &[Item]) -> Result<usize, DynabridgeError> {
        let layout = LakeLayout::new(&self.config.common.lake_prefix);
        let name = format!(
            "sweep-{}-{}-s{}-p{}",
            safe_segment(&self.config.common.table_name),
            state.pass,
            self.segment,
            state.page
        );
        // `_seq` / `_event_time`: the moment the item expired (its TTL).
        let seqs: Vec<(i64, String)> = items
            .iter()
            .map(|item| {
                let micros = match item.get(&self.config.ttl_attribute) {
                    Some(AttributeValue::N(n)) => n.parse::<i64>().unwrap_or(self.now_s),
                    _ => self.now_s,
                } * 1_000_000;
                (micros, stream_seq(&micros.to_string()))
            })
            .collect();
        let rows: Vec<_> = items
            .iter()
            .zip(&seqs)
            .map(|(item, (micros, seq))| {
                let meta = RowMeta {
                    op: Op::Expire,
                    seq,
                    event_time_micros: *micros,
                };
                (from_sdk_item(item.clone()), meta)
            })
            .collect();
        let target = ItemsTarget {
            s3: &self.clients.s3,
            bucket: &self.config.common.lake_bucket,
            layout: &layout,
            area: Area::Expired,
            source: FUNCTION,
            day: day_of_micros(state.pass * 1_000_000).unwrap_or_default(),
            name: &name,
        };
        let written = write_items(target, &self.config.registry, &rows).await?;
        Ok(written.rows + written.quarantined)
    }

    /// Deletes each item if its TTL is still past and its content still has the archived
    /// fingerprint; otherwise keeps it.
    async fn delete_unchanged(
        &self,
        items: &[(Item, String)],
        report: &mut SweepReport,
    ) -> Result<(), DynabridgeError> {
        for (key, fingerprint) in items {
            let ttl_past = number_below(&self.config.ttl_attribute, self.now_s + 1);
            match delete_if_unchanged(
                &self.clients.dynamodb,
                &self.config.common.table_name,
                key,
                fingerprint,
                Some(ttl_past),
                self.limiter.as_deref(),
            )
            .await?
            {
                Outcome::Deleted => report.deleted += 1,
                Outcome::Changed => report.kept_changed += 1,
                Outcome::Gone => {}
            }
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
struct ScanPage {
    scanned: usize,
    expired: Vec<Item>,
    ttl_in_millis: usize,
    next: Option<Item>,
}

/// Deletes control-table records whose TTL attribute (`ttl_epoch_s`) is in the past —
/// idempotency records DynamoDB's own TTL has not removed yet. Checkpoints have no TTL.
async fn purge_control(
    config: &Config,
    clients: &AwsClients,
    now_s: i64,
) -> Result<usize, DynabridgeError> {
    let mut purged = 0;
    let mut start = None;
    loop {
        let out = clients
            .control
            .scan()
            .table_name(&config.common.control_table)
            .filter_expression("#t < :now")
            .expression_attribute_names("#t", "ttl_epoch_s")
            .expression_attribute_values(":now", AttributeValue::N(now_s.to_string()))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| DynabridgeError::aws("DynamoDB", "Scan", e))?;
        for item in out.items() {
            let key: Item = ["pk", "sk"]
                .iter()
                .filter_map(|k| item.get(*k).map(|v| (k.to_string(), v.clone())))
                .collect();
            let r = clients
                .control
                .delete_item()
                .table_name(&config.common.control_table)
                .set_key(Some(key))
                .condition_expression("#t < :now")
                .expression_attribute_names("#t", "ttl_epoch_s")
                .expression_attribute_values(":now", AttributeValue::N(now_s.to_string()))
                .send()
                .await;
            match r {
                Ok(_) => purged += 1,
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_conditional_check_failed_exception()) => {}
                Err(e) => return Err(DynabridgeError::aws("DynamoDB", "DeleteItem", e)),
            }
        }
        start = out.last_evaluated_key().cloned();
        if start.is_none() {
            return Ok(purged);
        }
    }
}
