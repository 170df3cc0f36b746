//! One event in, one report out. Three kinds of event arrive:
//!
//! - a **schedule tick** (EventBridge "Scheduled Event", or the `start` event an EventBridge
//!   Scheduler input produces): creates the run — once per tick, by a conditional write on
//!   the deterministic run id — and dispatches one `segment` event per segment. A duplicate
//!   tick starts nothing; it only re-dispatches segments that have been idle longer than
//!   `DYNABRIDGE_EXPORT_REDISPATCH_AFTER_S` (their invocation was lost), so re-sending a tick
//!   is also how an operator resumes a stuck run.
//! - a **segment** event (sent by this function to itself): leases the segment, exports until
//!   it is finished or the deadline is near, then dispatches its continuation or, when it was
//!   the last segment, finalizes the run.
//! - a **finalize** event: writes the manifest, the marker and the event if every segment is
//!   done (idempotent).

use chrono::{DateTime, SecondsFormat, Utc};
use dynabridge_shared::DynabridgeError;
use dynabridge_shared::clients::AwsClients;
use dynabridge_shared::idempotency::IdempotencyError;
use lambda_runtime::LambdaEvent;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::age::page_filter;
use crate::config::Config;
use crate::control::{COMPLETED, Control, DONE, LeaseRefused, RUNNING, RunPlan};
use crate::dispatch::Dispatcher;
use crate::export::{Job, Progress, now_ms};
use crate::finalize::finalize;

/// `source` of the events this function sends itself.
pub const SELF_SOURCE: &str = "dynabridge.aged-export";

/// What the function keeps between invocations.
pub struct State {
    /// Configuration.
    pub config: Config,
    /// AWS clients.
    pub clients: AwsClients,
    /// Follow-up invocations.
    pub dispatcher: Dispatcher,
}

/// A parsed trigger.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// A schedule tick at `time` from `schedule`.
    Start {
        /// The tick.
        time: DateTime<Utc>,
        /// The rule ARN or schedule name.
        schedule: String,
    },
    /// Work on a segment.
    Segment {
        /// The run.
        run_id: String,
        /// The segment.
        segment: u32,
    },
    /// Finish a run.
    Finalize {
        /// The run.
        run_id: String,
    },
}

fn bad(msg: &str) -> DynabridgeError {
    DynabridgeError::InvalidEvent(msg.to_string())
}

/// Parses an invocation payload.
pub fn parse(event: &Value) -> Result<Trigger, DynabridgeError> {
    let time = |v: &Value| -> Result<DateTime<Utc>, DynabridgeError> {
        let t = v.as_str().ok_or_else(|| bad("missing time"))?;
        DateTime::parse_from_rfc3339(t)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| bad(&format!("time {t:?}: {e}")))
    };
    if let Some(action) = event.get("action").and_then(Value::as_str) {
        let run_id = || {
            event
                .get("run_id")
                .and_then(Value::as_str)
                .filter(|r| !r.is_empty())
                .map(str::to_string)
                .ok_or_else(|| bad("missing run_id"))
        };
        return match action {
            "start" => Ok(Trigger::Start {
                time: time(&event["time"])?,
                schedule: event
                    .get("schedule")
                    .and_then(Value::as_str)
                    .unwrap_or("manual")
                    .to_string(),
            }),
            "segment" => Ok(Trigger::Segment {
                run_id: run_id()?,
                segment: event
                    .get("segment")
                    .and_then(Value::as_u64)
                    .and_then(|s| u32::try_from(s).ok())
                    .ok_or_else(|| bad("missing segment"))?,
            }),
            "finalize" => Ok(Trigger::Finalize { run_id: run_id()? }),
            other => Err(bad(&format!("unknown action {other:?}"))),
        };
    }
    if event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event") {
        let schedule = event
            .get("resources")
            .and_then(|r| r.get(0))
            .and_then(Value::as_str)
            .unwrap_or("unknown-rule")
            .to_string();
        return Ok(Trigger::Start {
            time: time(&event["time"])?,
            schedule,
        });
    }
    Err(bad(
        "expected a Scheduled Event or an aged-export action event",
    ))
}

/// The run id of a tick: its time (UTC, seconds) and a hash of the schedule, so two schedules
/// firing at one instant never share a run.
pub fn run_id(time: DateTime<Utc>, schedule: &str) -> String {
    let digest = Sha256::digest(schedule.as_bytes());
    let hash: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("{}-{hash}", time.format("%Y%m%dT%H%M%SZ"))
}

/// The event that works on one segment.
pub fn segment_event(run_id: &str, segment: u32) -> Value {
    json!({"source": SELF_SOURCE, "action": "segment", "run_id": run_id, "segment": segment})
}

/// The event that finalizes a run.
pub fn finalize_event(run_id: &str) -> Value {
    json!({"source": SELF_SOURCE, "action": "finalize", "run_id": run_id})
}

fn plan(config: &Config, time: DateTime<Utc>, schedule: &str) -> RunPlan {
    let snapshot = time.timestamp_micros();
    let day_us = 86_400_000_000i64;
    let cutoff = snapshot - i64::from(config.age_days) * day_us;
    let grace = i64::from(config.grace_days) * day_us;
    RunPlan {
        run_id: run_id(time, schedule),
        schedule: schedule.to_string(),
        schedule_time: time.to_rfc3339_opts(SecondsFormat::Secs, true),
        snapshot_micros: snapshot,
        cutoff_micros: cutoff,
        delete_before_micros: cutoff - grace,
        day: time.format("%Y-%m-%d").to_string(),
        segments: config.read_mode.segments(),
        action: config.action.as_str().to_string(),
        ttl_epoch_seconds: time.timestamp() + grace / 1_000_000,
    }
}

/// Handles one invocation.
pub async fn handle(state: &State, event: LambdaEvent<Value>) -> Result<Value, DynabridgeError> {
    let trigger = parse(&event.payload)?;
    let config = &state.config;
    let control = Control::new(
        state.clients.dynamodb.clone(),
        &config.common.control_table,
        &config.common.table_name,
    );
    let function_arn = event.context.invoked_function_arn.clone();
    let deadline_ms = event.context.deadline;
    let mut dispatched = Vec::new();
    let mut report = match trigger {
        Trigger::Start { time, schedule } => {
            let plan = plan(config, time, &schedule);
            match control.create_run(&plan, now_ms()).await? {
                Ok(run) => {
                    tracing::info!(run_id = %plan.run_id, segments = plan.segments, action = %plan.action, "export run started");
                    let events = (0..run.plan.segments)
                        .map(|s| segment_event(&plan.run_id, s))
                        .collect();
                    state
                        .dispatcher
                        .dispatch(&function_arn, events, &mut dispatched)
                        .await?;
                    if state.dispatcher.is_durable() {
                        control.mark_dispatched(&plan.run_id).await?;
                    }
                    json!({"status": "started", "run_id": plan.run_id, "segments": plan.segments})
                }
                Err(existing) => {
                    let events = stale_segments(config, &control, &existing).await?;
                    tracing::info!(run_id = %plan.run_id, redispatched = events.len(), "duplicate schedule tick: no new run");
                    let n = events.len();
                    state
                        .dispatcher
                        .dispatch(&function_arn, events, &mut dispatched)
                        .await?;
                    if !existing.dispatched && state.dispatcher.is_durable() {
                        control.mark_dispatched(&plan.run_id).await?;
                    }
                    json!({"status": "duplicate", "run_id": plan.run_id, "run_status": existing.status, "redispatched": n})
                }
            }
        }
        Trigger::Segment { run_id, segment } => {
            let run = control
                .run(&run_id)
                .await?
                .ok_or_else(|| bad(&format!("unknown run {run_id}")))?;
            if segment >= run.plan.segments {
                return Err(bad(&format!(
                    "segment {segment} of a run with {} segments",
                    run.plan.segments
                )));
            }
            let token = uuid::Uuid::new_v4().to_string();
            match control
                .lease(&run_id, segment, &token, now_ms(), deadline_ms)
                .await?
            {
                Err(LeaseRefused::Held(until)) => {
                    return Err(IdempotencyError::AlreadyInProgress {
                        key: crate::control::segment_sk(&run_id, segment),
                        in_progress_expiry_ms: until,
                    }
                    .into());
                }
                Err(LeaseRefused::Done) => {
                    // A duplicate of a finished segment: make sure the run got finalized.
                    let run = control.mark_done(&run_id, segment).await?;
                    finish_if_complete(state, &control, run).await?
                }
                Ok(seg) => {
                    let filter = page_filter(config, run.plan.cutoff_micros);
                    let mut job = Job {
                        config,
                        clients: &state.clients,
                        control: &control,
                        plan: &run.plan,
                        segment,
                        state: seg,
                        deadline_ms,
                        filter,
                        pending_body: None,
                    };
                    match job.run().await? {
                        Progress::Continue => {
                            tracing::info!(%run_id, segment, "deadline near: segment continues in a new invocation");
                            state
                                .dispatcher
                                .dispatch(
                                    &function_arn,
                                    vec![segment_event(&run_id, segment)],
                                    &mut dispatched,
                                )
                                .await?;
                            json!({"status": "continued", "run_id": run_id, "segment": segment, "stats": job.state.stats})
                        }
                        Progress::Done => {
                            job.state.status = DONE.into();
                            job.state.lease_expiry_ms = 0;
                            control.save(&run_id, segment, &job.state, now_ms()).await?;
                            tracing::info!(%run_id, segment, exported = job.state.stats.exported, "segment done");
                            let stats = job.state.stats.clone();
                            let run = control.mark_done(&run_id, segment).await?;
                            let mut r = finish_if_complete(state, &control, run).await?;
                            r["segment"] = json!(segment);
                            r["segment_stats"] = json!(stats);
                            r
                        }
                    }
                }
            }
        }
        Trigger::Finalize { run_id } => {
            let run = control
                .run(&run_id)
                .await?
                .ok_or_else(|| bad(&format!("unknown run {run_id}")))?;
            finish_if_complete(state, &control, run).await?
        }
    };
    if !dispatched.is_empty() {
        report["dispatch"] = Value::Array(dispatched);
    }
    Ok(report)
}

async fn finish_if_complete(
    state: &State,
    control: &Control,
    run: crate::control::Run,
) -> Result<Value, DynabridgeError> {
    let total = run.plan.segments;
    if run.status != COMPLETED && (0..total).any(|s| !run.done.contains(&s)) {
        return Ok(json!({
            "status": "segment_done",
            "run_id": run.plan.run_id,
            "segments_done": run.done.len(),
            "segments": total,
        }));
    }
    finalize(&state.config, &state.clients, control, &run).await
}

/// Segments of an existing run whose invocation seems lost: not done, not leased, and idle
/// for longer than the re-dispatch delay. A run whose segments are all done but which is not
/// completed gets its finalize event.
async fn stale_segments(
    config: &Config,
    control: &Control,
    run: &crate::control::Run,
) -> Result<Vec<Value>, DynabridgeError> {
    if run.status == COMPLETED {
        return Ok(Vec::new());
    }
    let now = now_ms();
    let idle = u64::try_from(config.redispatch_after.as_millis()).unwrap_or(u64::MAX);
    let records = control.segments(&run.plan.run_id).await?;
    let mut events = Vec::new();
    for s in 0..run.plan.segments {
        if run.done.contains(&s) {
            continue;
        }
        let stale = match records.iter().find(|(n, _)| *n == s) {
            // Never started: its event was lost if the first dispatch did not finish.
            None => !run.dispatched || now.saturating_sub(run.created_at_ms) >= idle,
            Some((_, seg)) => {
                seg.status == RUNNING
                    && seg.lease_expiry_ms < now
                    && now.saturating_sub(seg.updated_at_ms) >= idle
            }
        };
        if stale {
            events.push(segment_event(&run.plan.run_id, s));
        }
    }
    if events.is_empty() && (0..run.plan.segments).all(|s| run.done.contains(&s)) {
        events.push(finalize_event(&run.plan.run_id));
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_trigger() {
        let tick: Value =
            serde_json::from_str(include_str!("../../../events/aged-export/schedule.json"))
                .unwrap();
        let Trigger::Start { time, schedule } = parse(&tick).unwrap() else {
            panic!("not a start");
        };
        assert!(schedule.ends_with("rule/dynabridge-aged-export"));
        let id = run_id(time, &schedule);
        assert!(id.starts_with("20261121T030000Z-"), "{id}");
        assert_eq!(id, run_id(time, &schedule), "deterministic");
        assert_ne!(id, run_id(time, "another-rule"));

        let scheduler: Value = serde_json::from_str(include_str!(
            "../../../events/aged-export/scheduler-start.json"
        ))
        .unwrap();
        assert!(matches!(parse(&scheduler).unwrap(), Trigger::Start { .. }));

        let seg: Value =
            serde_json::from_str(include_str!("../../../events/aged-export/segment.json")).unwrap();
        assert_eq!(
            parse(&seg).unwrap(),
            Trigger::Segment {
                run_id: "20261121T030000Z-5b1c1a3e".into(),
                segment: 2
            }
        );
        let fin: Value =
            serde_json::from_str(include_str!("../../../events/aged-export/finalize.json"))
                .unwrap();
        assert!(matches!(parse(&fin).unwrap(), Trigger::Finalize { .. }));

        assert!(parse(&json!({"action": "segment"})).is_err());
        assert!(parse(&json!({"hello": 1})).is_err());
    }
}
