//! Domain events on EventBridge: the contract in `design.md`, and a publisher that respects
//! PutEvents' limits and never drops an event silently.
//!
//! - **Limits**: at most 10 entries and 256 KB per `PutEvents` call; an entry is measured the
//!   way EventBridge measures it (source + detail-type + detail + resources, UTF-8 bytes).
//! - **Claim check**: an event whose detail would push the entry over 256 KB is sent with its
//!   `claim_check` detail instead (a pointer to the lake object holding the full record); with
//!   no claim check it is reported failed (`EntryTooLarge`), never truncated.
//! - **Per-entry failures**: PutEvents can accept a call and still fail single entries
//!   (`FailedEntryCount`). Only the failed entries are retried, each on its own call, with
//!   exponential backoff and full jitter, up to a bound. What still fails is reported by input
//!   index so a stream consumer can stop at the first failed record and keep order.
//! - **Concurrency**: up to [`DEFAULT_CONCURRENCY`] calls are in flight at once (a
//!   1,000-record stream batch is 100 calls). Results are per entry, so which entries failed
//!   is known by index whatever order the calls complete in.
//! - **Duplicates**: a retried entry may have been delivered before the failure was seen
//!   (at-least-once); consumers dedupe on the stream event id carried in the detail.
//!
//! Event details are JSON text; stream images in them are written by
//! [`crate::codec::ItemRef::write_plain_json`] (numbers stay JSON numbers only when that is
//! exact, otherwise they are strings with the original digits).

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use futures::stream::{self, StreamExt};

use crate::retry::{Jitter, RandomJitter, full_jitter};
use serde_json::Value;

/// EventBridge's per-call entry limit.
pub const MAX_ENTRIES_PER_CALL: usize = 10;
/// EventBridge's per-call (and so per-entry) size limit in bytes.
pub const MAX_CALL_BYTES: usize = 256 * 1024;

/// One event to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainEvent {
    /// `DetailType`, e.g. `Order Inserted`.
    pub detail_type: String,
    /// The full detail (JSON text).
    pub detail: String,
    /// The detail to send instead when the full one is too large (JSON text of a pointer to
    /// the lake).
    pub claim_check: Option<String>,
    /// `Resources` (ARNs), usually empty.
    pub resources: Vec<String>,
}

impl DomainEvent {
    /// An event with a JSON detail and no claim check.
    pub fn new(detail_type: impl Into<String>, detail: &Value) -> Self {
        DomainEvent {
            detail_type: detail_type.into(),
            detail: detail.to_string(),
            claim_check: None,
            resources: Vec::new(),
        }
    }
}

/// Why an event was not published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedEvent {
    /// Index of the event in the input.
    pub index: usize,
    /// EventBridge error code, `EntryTooLarge`, or `CallFailed` for a failed call.
    pub code: String,
    /// Detail of the last failure.
    pub message: String,
}

/// What a [`EventPublisher::publish`] call did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishReport {
    /// Events accepted by EventBridge.
    pub published: usize,
    /// Of those, events sent with their claim-check detail.
    pub claim_checks: usize,
    /// Entry retries made.
    pub retries: usize,
    /// PutEvents calls made.
    pub calls: usize,
    /// Events that could not be published, ordered by index.
    pub failed: Vec<FailedEvent>,
}

impl PublishReport {
    /// The lowest input index that failed, if any.
    pub fn first_failed(&self) -> Option<usize> {
        self.failed.iter().map(|f| f.index).min()
    }
}

/// Retry policy for failed entries.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per entry, including the first.
    pub max_attempts: u32,
    /// Backoff base (doubles per attempt).
    pub base_delay: Duration,
    /// Backoff cap.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
        }
    }
}

/// Publishes [`DomainEvent`]s to one bus with one `Source`.
#[derive(Clone)]
pub struct EventPublisher {
    client: aws_sdk_eventbridge::Client,
    bus: String,
    source: String,
    retry: RetryPolicy,
    jitter: Arc<dyn Jitter>,
    concurrency: usize,
}

/// `PutEvents` calls in flight at once by default (a 1,000-record batch is 100 calls; one at a
/// time they cost 100 round trips of latency). EventBridge's PutEvents quota is thousands of
/// requests per second per Region, far above what a few concurrent batches send.
pub const DEFAULT_CONCURRENCY: usize = 8;

impl std::fmt::Debug for EventPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventPublisher")
            .field("bus", &self.bus)
            .field("source", &self.source)
            .field("retry", &self.retry)
            .finish()
    }
}

impl EventPublisher {
    /// A publisher to `bus` with `source`.
    pub fn new(client: aws_sdk_eventbridge::Client, bus: &str, source: &str) -> Self {
        EventPublisher {
            client,
            bus: bus.to_string(),
            source: source.to_string(),
            retry: RetryPolicy::default(),
            jitter: Arc::new(RandomJitter::default()),
            concurrency: DEFAULT_CONCURRENCY,
        }
    }

    /// Sets how many `PutEvents` calls are in flight at once (at least 1).
    pub fn with_concurrency(mut self, calls: usize) -> Self {
        self.concurrency = calls.max(1);
        self
    }

    /// Replaces the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Replaces the jitter source.
    pub fn with_jitter(mut self, jitter: Arc<dyn Jitter>) -> Self {
        self.jitter = jitter;
        self
    }

    /// The size EventBridge counts for an entry with this detail.
    pub fn entry_size(&self, detail_type: &str, detail: &str, resources: &[String]) -> usize {
        self.source.len()
            + detail_type.len()
            + detail.len()
            + resources.iter().map(String::len).sum::<usize>()
    }

    /// The request entry of a pending event (its detail is copied once, into the request).
    fn entry(&self, event: &DomainEvent, p: &Pending) -> PutEventsRequestEntry {
        let detail = if p.claim_check {
            event.claim_check.clone().unwrap_or_default()
        } else {
            event.detail.clone()
        };
        PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(&self.source)
            .detail_type(&event.detail_type)
            .detail(detail)
            .set_resources((!event.resources.is_empty()).then(|| event.resources.clone()))
            .build()
    }

    /// Publishes `events`; see the module docs for limits, claim checks and retries.
    pub async fn publish(&self, events: &[DomainEvent]) -> PublishReport {
        let mut report = PublishReport::default();
        let mut pending: Vec<Pending> = Vec::with_capacity(events.len());
        for (index, event) in events.iter().enumerate() {
            let size = self.entry_size(&event.detail_type, &event.detail, &event.resources);
            if size <= MAX_CALL_BYTES {
                pending.push(Pending {
                    index,
                    size,
                    claim_check: false,
                });
                continue;
            }
            let checked = event.claim_check.as_deref().and_then(|d| {
                let size = self.entry_size(&event.detail_type, d, &event.resources);
                (size <= MAX_CALL_BYTES).then_some(size)
            });
            match checked {
                Some(size) => {
                    report.claim_checks += 1;
                    pending.push(Pending {
                        index,
                        size,
                        claim_check: true,
                    });
                }
                None => report.failed.push(FailedEvent {
                    index,
                    code: "EntryTooLarge".into(),
                    message: format!(
                        "entry of {size} bytes exceeds {MAX_CALL_BYTES} and has no claim check"
                    ),
                }),
            }
        }

        // First attempt: packed calls, several in flight. Retries: each failed entry on its
        // own call.
        let mut attempt = 1u32;
        let mut retry: Vec<(Pending, FailedEvent)> = Vec::new();
        let calls = pack(pending);
        report.calls += calls.len();
        let mut sent = stream::iter(calls.iter().map(|call| self.send(events, call)))
            .buffer_unordered(self.concurrency);
        while let Some((published, failed)) = sent.next().await {
            report.published += published;
            retry.extend(failed);
        }
        drop(sent);
        while !retry.is_empty() {
            if attempt >= self.retry.max_attempts {
                report.failed.extend(retry.drain(..).map(|(_, f)| f));
                break;
            }
            tokio::time::sleep(self.backoff(attempt)).await;
            attempt += 1;
            let this_round: Vec<_> = std::mem::take(&mut retry);
            report.retries += this_round.len();
            report.calls += this_round.len();
            let mut sent = stream::iter(
                this_round
                    .iter()
                    .map(|(p, _)| self.send(events, std::slice::from_ref(p))),
            )
            .buffer_unordered(self.concurrency);
            while let Some((published, failed)) = sent.next().await {
                report.published += published;
                retry.extend(failed);
            }
        }
        report.failed.sort_by_key(|f| f.index);
        if report.published > 0 || !report.failed.is_empty() {
            tracing::debug!(
                published = report.published,
                failed = report.failed.len(),
                retries = report.retries,
                calls = report.calls,
                "PutEvents done"
            );
        }
        report
    }

    /// One `PutEvents` call: how many entries were accepted, and the failed ones.
    async fn send(
        &self,
        events: &[DomainEvent],
        call: &[Pending],
    ) -> (usize, Vec<(Pending, FailedEvent)>) {
        let entries: Vec<PutEventsRequestEntry> = call
            .iter()
            .map(|p| self.entry(&events[p.index], p))
            .collect();
        let failed = |p: &Pending, code: &str, message: String| {
            (
                *p,
                FailedEvent {
                    index: p.index,
                    code: code.to_string(),
                    message,
                },
            )
        };
        let mut published = 0;
        let mut failures = Vec::new();
        match self
            .client
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) => {
                let results = out.entries();
                for (i, p) in call.iter().enumerate() {
                    match results.get(i) {
                        Some(r) if r.error_code().is_none() && r.event_id().is_some() => {
                            published += 1
                        }
                        Some(r) => failures.push(failed(
                            p,
                            r.error_code().unwrap_or("Unknown"),
                            r.error_message().unwrap_or_default().to_string(),
                        )),
                        None => failures.push(failed(p, "MissingResult", "no result entry".into())),
                    }
                }
            }
            Err(err) => {
                let message =
                    crate::error::DynabridgeError::aws("EventBridge", "PutEvents", err).to_string();
                for p in call {
                    failures.push(failed(p, "CallFailed", message.clone()));
                }
            }
        }
        (published, failures)
    }

    fn backoff(&self, attempt: u32) -> Duration {
        full_jitter(
            attempt,
            self.retry.base_delay,
            self.retry.max_delay,
            self.jitter.as_ref(),
        )
    }
}

/// An event waiting to be sent: its index, entry size and which detail it carries.
#[derive(Debug, Clone, Copy)]
struct Pending {
    index: usize,
    size: usize,
    claim_check: bool,
}

/// Packs entries into calls of at most 10 entries and 256 KB, keeping input order.
fn pack(entries: Vec<Pending>) -> Vec<Vec<Pending>> {
    let mut calls = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0;
    for e in entries {
        if !current.is_empty()
            && (current.len() == MAX_ENTRIES_PER_CALL || bytes + e.size > MAX_CALL_BYTES)
        {
            calls.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += e.size;
        current.push(e);
    }
    if !current.is_empty() {
        calls.push(current);
    }
    calls
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: usize) -> Pending {
        Pending {
            index: n,
            size: 0,
            claim_check: false,
        }
    }

    #[test]
    fn packing_respects_entry_and_byte_limits() {
        let calls = pack((0..23).map(entry).collect());
        let sizes: Vec<usize> = calls.iter().map(Vec::len).collect();
        assert_eq!(sizes, [10, 10, 3]);
        let big: Vec<_> = (0..5)
            .map(|i| Pending {
                index: i,
                size: 100 * 1024,
                claim_check: false,
            })
            .collect();
        let sizes: Vec<usize> = pack(big).iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 2, 1]);
        let order: Vec<usize> = pack((0..23).map(entry).collect())
            .into_iter()
            .flatten()
            .map(|e| e.index)
            .collect();
        assert_eq!(order, (0..23).collect::<Vec<_>>());
    }
}
