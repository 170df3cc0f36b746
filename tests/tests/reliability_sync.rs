//! Reliability scenarios for `incremental-sync`: the real binary killed at seeded points
//! (named crash points at a seeded pass, SIGKILLs at seeded times), redelivered the way
//! EventBridge's retry policy, Lambda's asynchronous retries and the catch-up schedule do;
//! and the same file synced through injected S3, DynamoDB and EventBridge faults. Afterwards
//! the invariants hold: every inbound row is in the table exactly as in the file (or the newer
//! item guarded mode must keep is untouched), deleted, or in the rejects exactly once; every
//! file is marked synced once and has its "Sync Completed" event. The figures are printed
//! (`--nocapture`) for RELIABILITY.md.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dynabridge_devstack::FunctionProcess;
use dynabridge_devstack::faults::{Fault, FaultPlan, FaultRule, FaultyEndpoints, Service};
use dynabridge_devstack::sample::Rng;
use dynabridge_devstack::sources::schedule::scheduled_event;
use dynabridge_e2e::invariants::{SyncExpect, sync_applied};
use dynabridge_e2e::sync::{
    Redelivered, completed_records, example_registry, file_reports, order, orders_file_with_ops,
    rejected_key_ids, run_chain_redelivered, start, upload,
};
use dynabridge_e2e::{Env, env, events_of, key_id, table_items};
use dynabridge_shared::codec::to_sdk_item;
use dynabridge_shared::schema::Attributes;
use serde_json::Value;

/// Rows per file.
const ROWS: usize = 90;

/// The `_op` of row `i`: every 17th refused (not a sync verb), the last 6 delete items that
/// exist before the sync, the rest upserts.
fn op_of(i: usize) -> &'static str {
    if i % 17 == 5 {
        "BOGUS"
    } else if i >= ROWS - 6 {
        "DELETE"
    } else {
        "UPSERT"
    }
}

/// Rows whose key already holds an item before the sync (guarded mode: a newer one).
fn pre_existing(i: usize) -> bool {
    op_of(i) == "UPSERT" && i % 7 == 3
}

/// One inbound file of a scenario: its rows, the items in the table before, what must be
/// there afterwards.
struct FileCase {
    key: String,
    guarded: bool,
    expected: BTreeMap<String, SyncExpect>,
}

/// Writes the table's prior items and uploads the file; returns the case and its S3 event.
async fn prepare(e: &Env, n: usize, guarded: bool) -> (FileCase, Value) {
    let registry = example_registry().unwrap();
    let ddb = e.stack.dynamodb();
    let mode = if guarded { "guarded" } else { "upsert" };
    let key = format!("inbound/{mode}/Order/file-{n:03}.parquet");
    let mut items = Vec::new();
    let mut ops = Vec::new();
    let mut expected = BTreeMap::new();
    for i in 0..ROWS {
        let id = n * 1000 + i;
        let row: Attributes = order(id, 1_000 + i as u64, "7.25");
        let op = op_of(i);
        let mut before: Option<Attributes> = None;
        if op == "DELETE" {
            before = Some(order(id, 1, "1.5"));
        } else if pre_existing(i) {
            let mut it = order(id, if guarded { 5_000 } else { 1 }, "2.5");
            it.insert(
                "status".into(),
                serde_dynamo::AttributeValue::S("before".into()),
            );
            before = Some(it);
        }
        if let Some(b) = &before {
            ddb.put_item()
                .table_name(&e.resources.names.table)
                .set_item(Some(to_sdk_item(b.clone())))
                .send()
                .await
                .unwrap();
        }
        let want = match (op, &before) {
            ("BOGUS", _) => SyncExpect::Rejected,
            ("DELETE", _) => SyncExpect::Absent,
            (_, Some(b)) if guarded => SyncExpect::Item(b.clone()),
            _ => SyncExpect::Item(row.clone()),
        };
        expected.insert(key_id(&row), want);
        items.push(row);
        ops.push(op);
    }
    let body = orders_file_with_ops(&registry, &items, 30, &ops).unwrap();
    let event = upload(e, &key, body).await.unwrap();
    (
        FileCase {
            key,
            guarded,
            expected,
        },
        event,
    )
}

/// The function's settings for a scenario: small batches and checkpoints, a slow table so
/// that every file takes a few hops, short hand-off leases.
fn settings(guarded: bool) -> Vec<(&'static str, &'static str)> {
    let mut s = vec![
        ("DYNABRIDGE_SYNC_BATCH_ROWS", "10"),
        ("DYNABRIDGE_SYNC_CHECKPOINT_ROWS", "20"),
        ("DYNABRIDGE_SYNC_DEADLINE_MARGIN_MS", "2600"),
        ("DYNABRIDGE_SYNC_MAX_WRITE_UNITS_PER_SECOND", "150"),
        ("DYNABRIDGE_SYNC_HANDOFF_LEASE_SECONDS", "3"),
    ];
    if guarded {
        s.extend([
            ("DYNABRIDGE_SYNC_INBOUND_PREFIX", "inbound/guarded/"),
            ("DYNABRIDGE_SYNC_MODE", "guarded"),
            ("DYNABRIDGE_SYNC_GUARD_ATTRIBUTE", "placed_at"),
        ]);
    } else {
        s.push(("DYNABRIDGE_SYNC_INBOUND_PREFIX", "inbound/upsert/"));
    }
    s
}

/// Function timeout of the scenarios (the margin above leaves ~0.4 s of work per hop).
const TIMEOUT: Duration = Duration::from_secs(3);

/// Runs the catch-up schedule (both modes) until every file is marked synced; the claims of
/// crashed invocations block it until they expire (30 s floor). Returns the crashes and
/// errors the catch-up chains met.
async fn catch_up_until_synced(
    e: &Env,
    aws_env: &[(String, String)],
    cases: &[FileCase],
    timeout: Duration,
    limit: Duration,
) -> Redelivered {
    let mut total = Redelivered::default();
    let deadline = Instant::now() + limit;
    let mut fns = Vec::new();
    for guarded in [false, true] {
        fns.push(
            start(e, aws_env.to_vec(), &settings(guarded), timeout)
                .await
                .unwrap(),
        );
    }
    loop {
        let mut pending = 0;
        for c in cases {
            if completed_records(e, &c.key).await.unwrap() == 0 {
                pending += 1;
            }
        }
        if pending == 0 {
            return total;
        }
        assert!(
            Instant::now() < deadline,
            "{pending} files still not synced after {limit:?}"
        );
        for f in fns.iter_mut() {
            let tick = scheduled_event("dynabridge-sync-catch-up", chrono::Utc::now(), None);
            let r = run_chain_redelivered(f, &tick, 20).await.unwrap();
            total.crashes += r.crashes;
            total.timeouts += r.timeouts;
            total.errors += r.errors;
            total.responses.extend(r.responses);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Checks every invariant after a scenario; returns (rows checked, duplicate events).
async fn check_invariants(e: &Env, cases: &[FileCase], crashes: usize) -> (usize, usize) {
    let table = table_items(&e.stack.dynamodb(), &e.resources.names.table)
        .await
        .unwrap();
    let rejected = rejected_key_ids(e).unwrap();
    let mut expected = BTreeMap::new();
    for c in cases {
        expected.extend(c.expected.clone());
    }
    let v = sync_applied(&expected, &table, &rejected);
    assert!(v.is_clean(), "{v:?}");

    // Marked synced once; a redelivered event is a duplicate.
    let mut f = start(e, e.stack.aws_env(), &settings(false), TIMEOUT)
        .await
        .unwrap();
    for c in cases {
        assert_eq!(completed_records(e, &c.key).await.unwrap(), 1, "{}", c.key);
        if !c.guarded {
            let again = upload_event_again(e, &c.key).await;
            let r = run_chain_redelivered(&mut f, &again, 0).await.unwrap();
            assert_eq!(file_reports(&r.responses)[0]["status"], "duplicate");
        }
    }

    // One "Sync Completed" per file with the file's counts; a second one only from a crash
    // between PutEvents and the completion (the documented at-least-once window).
    let events = events_of(
        &e.stack.sqs().unwrap(),
        e.resources.events_queue_url.as_ref().unwrap(),
        "Sync Completed",
        Duration::from_secs(3),
    )
    .await;
    let mut per_file: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for ev in &events {
        per_file
            .entry(ev["detail"]["key"].as_str().unwrap_or_default().to_string())
            .or_default()
            .push(ev);
    }
    let mut duplicates = 0;
    for c in cases {
        let evs = per_file.get(&c.key).cloned().unwrap_or_default();
        assert!(!evs.is_empty(), "{}: no Sync Completed event", c.key);
        duplicates += evs.len() - 1;
        for ev in evs {
            let d = &ev["detail"];
            assert_eq!(d["rows_read"], ROWS, "{}: {d}", c.key);
            let sum: u64 = [
                "written",
                "skipped_stale",
                "deleted",
                "rejected",
                "failed",
                "superseded",
            ]
            .iter()
            .map(|k| d[*k].as_u64().unwrap())
            .sum();
            assert_eq!(sum, ROWS as u64, "{}: {d}", c.key);
            assert_eq!(d["failed"], 0, "{}: {d}", c.key);
        }
    }
    assert!(
        duplicates <= crashes,
        "{duplicates} duplicate events for {crashes} crashes"
    );
    assert_eq!(
        per_file.len(),
        cases.len(),
        "events only for the files synced"
    );
    (expected.len(), duplicates)
}

/// The "Object Created" event of an object already in the lake (as EventBridge would send
/// it again).
async fn upload_event_again(e: &Env, key: &str) -> Value {
    let s3 = e.stack.s3();
    let info = dynabridge_devstack::sources::s3_events::object_info(
        &s3,
        &e.resources.names.lake_bucket,
        key,
    )
    .await
    .unwrap();
    dynabridge_devstack::sources::s3_events::object_created_event(&info, "PutObject")
}

/// Where a seed crashes the first invocation chain of its file.
#[derive(Debug, Clone, Copy)]
enum CrashAt {
    /// A named crash point, at its n-th pass.
    Point(&'static str, u64),
    /// A SIGKILL this long into the first invocation.
    Kill(Duration),
}

fn crash_for(seed: u64) -> CrashAt {
    let mut rng = Rng::new(seed);
    match seed % 5 {
        // Rows written, position not saved: the takeover applies them again.
        0 => CrashAt::Point("sync-after-write", rng.below(9)),
        // Position saved, before the next batch / hand-off / completion.
        1 => CrashAt::Point("sync-after-checkpoint", rng.below(5)),
        // The continuation is lost with the invocation.
        2 => CrashAt::Point("sync-after-dispatch", 0),
        // The event is out, the file not marked synced.
        3 => CrashAt::Point("sync-after-publish", 0),
        _ => CrashAt::Kill(Duration::from_millis(100 + rng.below(400))),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_sync_survives_seeded_crashes_and_redelivery() {
    let e = env(true).await.unwrap();
    let seeds = 24u64;
    let markers = tempfile::tempdir().unwrap();
    let mut cases = Vec::new();
    let mut crashes = 0;
    let mut timeouts = 0;
    let mut by_point: BTreeMap<String, usize> = BTreeMap::new();
    for seed in 0..seeds {
        let guarded = seed % 2 == 1;
        let (case, event) = prepare(&e, seed as usize, guarded).await;
        let crash = crash_for(seed);
        let marker = markers.path().join(format!("seed-{seed}"));
        let marker = marker.to_string_lossy().to_string();
        let skip;
        let mut extra = settings(guarded);
        if let CrashAt::Point(point, n) = crash {
            skip = n.to_string();
            extra.extend([
                ("DYNABRIDGE_CRASH_AT", point),
                ("DYNABRIDGE_CRASH_SKIP", skip.as_str()),
                ("DYNABRIDGE_CRASH_ONCE_FILE", marker.as_str()),
            ]);
        }
        let mut f: FunctionProcess = start(&e, e.stack.aws_env(), &extra, TIMEOUT).await.unwrap();
        if let CrashAt::Kill(after) = crash {
            f.kill_after([after]);
        }
        // EventBridge redelivers the S3 event after a failure, Lambda a continuation.
        let r = run_chain_redelivered(&mut f, &event, 3).await.unwrap();
        timeouts += r.timeouts;
        if r.crashes > 0 {
            let name = match crash {
                CrashAt::Point(p, _) => p.to_string(),
                CrashAt::Kill(_) => "sigkill".to_string(),
            };
            *by_point.entry(name).or_default() += r.crashes;
        }
        crashes += r.crashes;
        cases.push(case);
    }
    // The claims of killed invocations expire; the catch-up schedule finishes every file.
    let catch_up = catch_up_until_synced(
        &e,
        &e.stack.aws_env(),
        &cases,
        TIMEOUT,
        Duration::from_secs(90),
    )
    .await;
    assert_eq!(catch_up.crashes, 0);
    let (rows, duplicate_events) = check_invariants(&e, &cases, crashes).await;
    println!(
        "RELIABILITY incremental-sync crashes: seeds={seeds} crashes={crashes} timeouts={timeouts} by_point={by_point:?} files={} rows={rows} items_lost=0 stale_overwrites=0 rejects_duplicated=0 event_duplicates={duplicate_events} (crash after PutEvents)",
        cases.len()
    );
    assert!(crashes >= 20, "the crashes must land: {crashes}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_sync_under_injected_faults_applies_every_row_once() {
    let e = env(true).await.unwrap();
    let mut cases = Vec::new();
    let mut events = Vec::new();
    for n in 0..4 {
        let (case, event) = prepare(&e, 100 + n, n % 2 == 1).await;
        cases.push(case);
        events.push(event);
    }
    // ≥ 20 % of the calls fail: S3 reads, the table's writes, the control table, PutEvents.
    let plan = FaultPlan::new(11)
        .rule(FaultRule::on(
            Service::S3,
            "GetObject",
            Fault::InternalError,
            0.10,
        ))
        .rule(FaultRule::on(
            Service::S3,
            "GetObject",
            Fault::ServiceUnavailable,
            0.05,
        ))
        .rule(FaultRule::on(
            Service::S3,
            "GetObject",
            Fault::Throttle,
            0.05,
        ))
        .rule(FaultRule::new(Fault::ConnectionReset, 0.05).service(Service::S3))
        .rule(FaultRule::on(
            Service::S3,
            "ListObjectsV2",
            Fault::InternalError,
            0.25,
        ))
        .rule(FaultRule::on(
            Service::DynamoDb,
            "BatchWriteItem",
            Fault::Throttle,
            0.20,
        ))
        .rule(FaultRule::on(
            Service::DynamoDb,
            "BatchWriteItem",
            Fault::PartialBatch,
            0.3,
        ))
        .rule(FaultRule::on(
            Service::DynamoDb,
            "UpdateItem",
            Fault::Throttle,
            0.15,
        ))
        .rule(FaultRule::on(
            Service::DynamoDb,
            "UpdateItem",
            Fault::InternalError,
            0.10,
        ))
        .rule(FaultRule::on(
            Service::DynamoDb,
            "PutItem",
            Fault::Throttle,
            0.20,
        ))
        .rule(FaultRule::on(
            Service::DynamoDb,
            "GetItem",
            Fault::InternalError,
            0.35,
        ))
        .rule(FaultRule::on(
            Service::EventBridge,
            "PutEvents",
            Fault::ThrottlingException,
            0.20,
        ))
        .rule(FaultRule::on(
            Service::EventBridge,
            "PutEvents",
            Fault::PartialBatch,
            0.20,
        ));
    let faulty = FaultyEndpoints::start(&e.stack, plan).unwrap();
    let aws_env = faulty.aws_env();
    // Retries with backoff take time: a longer timeout than the crash scenario's.
    let timeout = Duration::from_secs(15);
    let (mut errors, mut timeouts) = (0, 0);
    for (c, ev) in cases.iter().zip(&events) {
        let mut f = start(&e, aws_env.clone(), &settings(c.guarded), timeout)
            .await
            .unwrap();
        let r = run_chain_redelivered(&mut f, ev, 30).await.unwrap();
        assert_eq!(r.crashes, 0, "a fault crashed the function: {:?}", f.logs());
        errors += r.errors;
        timeouts += r.timeouts;
    }
    let catch_up =
        catch_up_until_synced(&e, &aws_env, &cases, timeout, Duration::from_secs(90)).await;
    assert_eq!(catch_up.crashes, 0, "a fault crashed the function");
    errors += catch_up.errors;
    timeouts += catch_up.timeouts;
    let stats = faulty.stats();
    faulty.set_plan(FaultPlan::none()).unwrap();
    let (rows, duplicate_events) = check_invariants(&e, &cases, 0).await;
    let requests = stats.total_requests();
    let injected = stats.total_injected();
    println!(
        "RELIABILITY incremental-sync faults: files={} rows={rows} requests={requests} faults_injected={injected} ({:.0}%) function_errors_redelivered={errors} timeouts={timeouts} items_lost=0 stale_overwrites=0 event_duplicates={duplicate_events}",
        cases.len(),
        100.0 * injected as f64 / requests.max(1) as f64
    );
    assert!(
        injected as f64 >= 0.2 * requests as f64,
        "at least 20 % of the requests must fail: {injected} of {requests}"
    );
}
