//! One trigger in (an S3 "Object Created" event, the catch-up schedule or a continuation),
//! one sync report out.
//!
//! The response lists what happened to each file. When the deadline came before the work was
//! done, the rest was handed to a continuation: in AWS an asynchronous self-invoke
//! (`"continued_by": "invoked"`); with `DYNABRIDGE_CONTINUATION_MODE=return` (local harness)
//! the continuation event is in `"continuation"` for the driver to invoke.

use std::collections::BTreeMap;

use dynabridge_shared::DynabridgeError;
use dynabridge_shared::continuation::{Continuation, Dispatch};
use dynabridge_shared::metrics::{self, Unit};
use lambda_runtime::LambdaEvent;
use serde_json::{Value, json};

use crate::sync::{App, FUNCTION, FileReport, FileResult, Invocation, now_ms, sync_file};
use crate::trigger::{self, ContinuationState, ObjectRef, Refusal, Trigger};

/// Handles one invocation.
pub async fn handle(app: &App, event: LambdaEvent<Value>) -> Result<Value, DynabridgeError> {
    let (payload, ctx) = event.into_parts();
    let mut inv = Invocation {
        deadline_ms: ctx.deadline,
        invoked_arn: ctx.invoked_function_arn,
        hop: 0,
    };
    match trigger::parse(&payload)? {
        Trigger::ObjectCreated(object) => {
            tracing::info!(bucket = %object.bucket, key = %object.key, etag = %object.etag, size = object.size, "object created");
            if let Err(refusal) = trigger::check_object(&app.config, &object) {
                refuse(&object, refusal, true);
                return Ok(json!({
                    "trigger": "object_created",
                    "files": [refused_report(&object, refusal)],
                    "continuation": null,
                }));
            }
            let mut out = Outcome::new("object_created");
            match sync_file(app, &inv, &object, None).await? {
                FileResult::Done(r) => out.files.push(r),
                FileResult::Continue(r, file) => {
                    out.files.push(r);
                    let state = ContinuationState {
                        file: Some(file),
                        catch_up_after: None,
                        catch_up: false,
                    };
                    out.continue_with(app, &inv, state).await?;
                }
            }
            Ok(out.into_json())
        }
        Trigger::CatchUp => {
            let mut out = Outcome::new("catch_up");
            catch_up(app, &inv, None, &mut out).await?;
            Ok(out.into_json())
        }
        Trigger::Continue(c) => {
            if c.function != FUNCTION {
                return Err(DynabridgeError::InvalidEvent(format!(
                    "continuation for {:?}, this is {FUNCTION}",
                    c.function
                )));
            }
            if c.hop > app.config.max_hops {
                return Err(DynabridgeError::Other(format!(
                    "continuation hop {} exceeds DYNABRIDGE_SYNC_MAX_HOPS ({}); the file stays \
                     claimed until its lease expires, then the catch-up schedule resumes it",
                    c.hop, app.config.max_hops
                )));
            }
            inv.hop = c.hop;
            let mut out = Outcome::new("continuation");
            let state = c.state;
            if let Some(file) = state.file {
                match sync_file(app, &inv, &file.object, Some(file.lease)).await? {
                    FileResult::Done(r) => out.files.push(r),
                    FileResult::Continue(r, file) => {
                        out.files.push(r);
                        let next = ContinuationState {
                            file: Some(file),
                            catch_up_after: state.catch_up_after,
                            catch_up: state.catch_up,
                        };
                        out.continue_with(app, &inv, next).await?;
                        return Ok(out.into_json());
                    }
                }
            }
            if state.catch_up {
                catch_up(app, &inv, state.catch_up_after, &mut out).await?;
            }
            Ok(out.into_json())
        }
    }
}

/// What the invocation did, as returned to the caller.
struct Outcome {
    trigger: &'static str,
    files: Vec<FileReport>,
    refused: BTreeMap<&'static str, u64>,
    skipped: BTreeMap<&'static str, u64>,
    continuation: Option<Value>,
    continued_by: Option<&'static str>,
}

impl Outcome {
    fn new(trigger: &'static str) -> Self {
        Outcome {
            trigger,
            files: Vec::new(),
            refused: BTreeMap::new(),
            skipped: BTreeMap::new(),
            continuation: None,
            continued_by: None,
        }
    }

    async fn continue_with(
        &mut self,
        app: &App,
        inv: &Invocation,
        state: ContinuationState,
    ) -> Result<(), DynabridgeError> {
        let lease = state.file.as_ref().map(|f| f.lease.clone());
        let event = Continuation {
            function: FUNCTION.to_string(),
            hop: inv.hop + 1,
            state,
        }
        .to_event()?;
        let dispatched = app.dispatcher.dispatch(&inv.invoked_arn, event).await;
        if dispatched.is_ok() {
            // Test hook: the continuation is out (or about to be returned) and this
            // invocation dies: the caller sees a crash, the next hop may or may not run.
            dynabridge_shared::crashpoint::hit("sync-after-dispatch");
        }
        match dispatched {
            Ok(Dispatch::Invoked { target }) => {
                tracing::info!(%target, hop = inv.hop + 1, "continuation invoked");
                self.continued_by = Some("invoked");
            }
            Ok(Dispatch::Returned(event)) => {
                tracing::info!(hop = inv.hop + 1, "continuation returned to the caller");
                self.continuation = Some(event);
                self.continued_by = Some("returned");
            }
            Err(e) => {
                // Free the claim so the retry of this invocation resumes at once from the
                // saved position instead of waiting for the hand-off lease to expire.
                if let Some(lease) = lease
                    && let Err(rel) = app.idempotency.release(&lease).await
                {
                    tracing::warn!(error = %rel, "could not release the claim");
                }
                return Err(e);
            }
        }
        Ok(())
    }

    fn into_json(self) -> Value {
        json!({
            "trigger": self.trigger,
            "files": self.files,
            "refused": self.refused,
            "skipped": self.skipped,
            "continuation": self.continuation,
            "continued_by": self.continued_by,
        })
    }
}

fn refused_report(object: &ObjectRef, refusal: Refusal) -> Value {
    json!({
        "bucket": object.bucket,
        "key": object.key,
        "etag": object.etag,
        "status": "refused",
        "reason": refusal.as_str(),
    })
}

/// Logs and counts a refused object. Events name one object on purpose, so a refusal is
/// a warning; the catch-up listing meets Spark's marker files on every run, so those are
/// debug lines (and counted once per run).
fn refuse(object: &ObjectRef, refusal: Refusal, from_event: bool) {
    if from_event {
        tracing::warn!(
            bucket = %object.bucket, key = %object.key, etag = %object.etag,
            size = object.size, reason = refusal.as_str(),
            "object refused: not synced"
        );
        metrics::emit(
            metrics::NAMESPACE,
            &[("function", FUNCTION), ("Reason", refusal.as_str())],
            &[("ObjectsRefused", 1.0, Unit::Count)],
        );
    } else {
        tracing::debug!(key = %object.key, reason = refusal.as_str(), "object skipped by the catch-up");
    }
}

/// Lists the inbound folder (after `after`) and syncs every file not synced yet, until the
/// deadline; the rest goes to a continuation.
async fn catch_up(
    app: &App,
    inv: &Invocation,
    after: Option<String>,
    out: &mut Outcome,
) -> Result<(), DynabridgeError> {
    let config = &app.config;
    let cutoff_s = (now_ms() / 1000).saturating_sub(config.catch_up_lookback.as_secs());
    let mut after = after;
    let mut token: Option<String> = None;
    loop {
        let page = app
            .clients
            .s3
            .list_objects_v2()
            .bucket(&config.common.lake_bucket)
            .prefix(&config.inbound_prefix)
            .set_start_after(if token.is_none() { after.clone() } else { None })
            .set_continuation_token(token.clone())
            .send()
            .await
            .map_err(|e| DynabridgeError::aws("S3", "ListObjectsV2", e))?;
        for obj in page.contents() {
            if inv.near_deadline(config.deadline_margin) {
                let state = ContinuationState {
                    file: None,
                    catch_up_after: after.clone(),
                    catch_up: true,
                };
                return out.continue_with(app, inv, state).await;
            }
            let mut object = ObjectRef {
                bucket: config.common.lake_bucket.clone(),
                key: obj.key().unwrap_or_default().to_string(),
                etag: obj
                    .e_tag()
                    .unwrap_or_default()
                    .trim_matches('"')
                    .to_string(),
                size: obj.size().unwrap_or_default().max(0) as u64,
            };
            after = Some(object.key.clone());
            if let Err(refusal) = trigger::check_object(config, &object) {
                refuse(&object, refusal, false);
                *out.refused.entry(refusal.as_str()).or_default() += 1;
                continue;
            }
            let modified_s = obj
                .last_modified()
                .map(|t| t.secs().max(0) as u64)
                .unwrap_or(u64::MAX);
            if modified_s < cutoff_s {
                *out.skipped.entry("older_than_lookback").or_default() += 1;
                continue;
            }
            if object.etag.is_empty() {
                // Some S3-compatible stores list without ETags; the key needs the real one.
                let head = app
                    .clients
                    .s3
                    .head_object()
                    .bucket(&object.bucket)
                    .key(&object.key)
                    .send()
                    .await
                    .map_err(|e| DynabridgeError::aws("S3", "HeadObject", e))?;
                object.etag = head
                    .e_tag()
                    .unwrap_or_default()
                    .trim_matches('"')
                    .to_string();
                object.size = head.content_length().unwrap_or_default().max(0) as u64;
            }
            let key = object.idempotency_key();
            if let Some(rec) = app.idempotency.get(&key).await?
                && rec.status == dynabridge_shared::idempotency::STATUS_COMPLETED
                && rec.expires_at_ms > now_ms()
            {
                *out.skipped.entry("already_synced").or_default() += 1;
                continue;
            }
            tracing::info!(key = %object.key, etag = %object.etag, "catch-up: file not synced yet");
            match sync_file(app, inv, &object, None).await? {
                FileResult::Done(r) => out.files.push(r),
                FileResult::Continue(r, file) => {
                    out.files.push(r);
                    let state = ContinuationState {
                        file: Some(file),
                        catch_up_after: after.clone(),
                        catch_up: true,
                    };
                    return out.continue_with(app, inv, state).await;
                }
            }
        }
        match page.next_continuation_token() {
            Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
            _ => break,
        }
    }
    if !out.refused.is_empty() {
        let total: u64 = out.refused.values().sum();
        tracing::info!(refused = ?out.refused, "catch-up: objects under the inbound prefix that are not synced");
        metrics::emit(
            metrics::NAMESPACE,
            &[("function", FUNCTION), ("Reason", "CatchUpListing")],
            &[("ObjectsRefused", total as f64, Unit::Count)],
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_reports_name_the_reason() {
        let o = ObjectRef {
            bucket: "b".into(),
            key: "k".into(),
            etag: "e".into(),
            size: 1,
        };
        let r = refused_report(&o, Refusal::Traversal);
        assert_eq!(r["status"], "refused");
        assert_eq!(r["reason"], "Traversal");
    }
}
