//! Lambda's asynchronous invocation queue, for functions that fan out by invoking themselves
//! (`InvocationType=Event`), run offline.
//!
//! A function started in "response" dispatch mode returns the events it would have sent to
//! itself in its response's `dispatch` list; [`AsyncInvoker::drain`] queues them and invokes
//! each on one of several execution environments, concurrently, the way Lambda's async queue
//! does: an invocation that fails (error, crash, timeout) is retried after a delay, up to
//! `max_retries` times (Lambda's default is 2), and an `IdempotencyAlreadyInProgress` error
//! (another invocation holds the work) is retried once the holder's lease has expired.
//!
//! For crash tests a `chaos` hook may kill an invocation's process after a delay it chooses
//! (SIGKILL, as a Lambda environment dies on a crash or OOM).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::Value;

use crate::harness::{FunctionProcess, InvokeOutcome};

/// One invocation made by the driver.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The event.
    pub event: Value,
    /// How it ended.
    pub outcome: InvokeOutcome,
    /// Attempt number for this event (1 = first).
    pub attempt: u32,
    /// Whether the chaos hook killed it.
    pub killed: bool,
}

/// Decides, per invocation, whether (and after how long) to kill it.
pub type Chaos = Box<dyn FnMut(&Value) -> Option<Duration> + Send>;

/// The asynchronous invocation queue.
pub struct AsyncInvoker {
    /// Retries after a failed invocation.
    pub max_retries: u32,
    /// Delay before a retry.
    pub retry_delay: Duration,
    /// Most invocations in total (a guard against a function that dispatches forever).
    pub max_invocations: usize,
    /// Optional kill hook.
    pub chaos: Option<Chaos>,
}

impl Default for AsyncInvoker {
    fn default() -> Self {
        AsyncInvoker {
            max_retries: 2,
            retry_delay: Duration::from_millis(200),
            max_invocations: 10_000,
            chaos: None,
        }
    }
}

struct Queued {
    event: Value,
    attempt: u32,
    not_before: Instant,
}

/// Lease expiry (epoch ms) from an `IdempotencyAlreadyInProgress` message.
fn held_until(message: &str) -> Option<u64> {
    let start = message.find("(until ")? + "(until ".len();
    let rest = &message[start..];
    rest.split_whitespace().next()?.parse().ok()
}

fn now_ms() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
}

impl AsyncInvoker {
    /// Invokes `initial` and everything the invocations dispatch, until the queue is empty.
    /// `functions` are the execution environments (one invocation each at a time).
    pub async fn drain(
        &mut self,
        functions: &mut [FunctionProcess],
        initial: Vec<Value>,
    ) -> Result<Vec<Delivery>> {
        let mut queue: VecDeque<Queued> = initial
            .into_iter()
            .map(|event| Queued {
                event,
                attempt: 1,
                not_before: Instant::now(),
            })
            .collect();
        let mut deliveries = Vec::new();
        while !queue.is_empty() {
            anyhow::ensure!(
                deliveries.len() < self.max_invocations,
                "more than {} invocations: the function keeps dispatching",
                self.max_invocations
            );
            // Take ready events, one per environment.
            let now = Instant::now();
            let mut batch = Vec::new();
            let mut rest = VecDeque::new();
            while let Some(q) = queue.pop_front() {
                if q.not_before <= now && batch.len() < functions.len() {
                    batch.push(q);
                } else {
                    rest.push_back(q);
                }
            }
            queue = rest;
            if batch.is_empty() {
                let wake = queue.iter().map(|q| q.not_before).min().unwrap_or(now);
                tokio::time::sleep(wake.saturating_duration_since(now)).await;
                continue;
            }
            let kills: Vec<Option<Duration>> = batch
                .iter()
                .map(|q| self.chaos.as_mut().and_then(|c| c(&q.event)))
                .collect();
            let futures = functions.iter_mut().zip(batch.iter()).zip(kills).map(
                |((f, q), kill)| async move {
                    match kill {
                        Some(after) => {
                            match tokio::time::timeout(after, f.invoke(&q.event)).await {
                                Ok(r) => r.map(|i| (i.outcome, false)),
                                Err(_) => {
                                    f.kill().await;
                                    Ok((
                                        InvokeOutcome::Crashed {
                                            code: None,
                                            signal: Some(9),
                                        },
                                        true,
                                    ))
                                }
                            }
                        }
                        None => f.invoke(&q.event).await.map(|i| (i.outcome, false)),
                    }
                },
            );
            let results = futures::future::join_all(futures).await;
            for (q, result) in batch.into_iter().zip(results) {
                let (outcome, killed) = result?;
                match &outcome {
                    InvokeOutcome::Response(v) => {
                        if let Some(events) = v.get("dispatch").and_then(Value::as_array) {
                            queue.extend(events.iter().map(|e| Queued {
                                event: e.clone(),
                                attempt: 1,
                                not_before: Instant::now(),
                            }));
                        }
                    }
                    InvokeOutcome::Error {
                        error_type,
                        error_message,
                    } if error_type == "IdempotencyAlreadyInProgress" => {
                        let wait = held_until(error_message)
                            .map(|until| until.saturating_sub(now_ms()) + 50)
                            .unwrap_or(500);
                        queue.push_back(Queued {
                            event: q.event.clone(),
                            attempt: q.attempt,
                            not_before: Instant::now() + Duration::from_millis(wait),
                        });
                    }
                    _ if q.attempt <= self.max_retries => {
                        queue.push_back(Queued {
                            event: q.event.clone(),
                            attempt: q.attempt + 1,
                            not_before: Instant::now() + self.retry_delay,
                        });
                    }
                    _ => {}
                }
                deliveries.push(Delivery {
                    event: q.event,
                    outcome,
                    attempt: q.attempt,
                    killed,
                });
            }
        }
        Ok(deliveries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_lease_expiry() {
        assert_eq!(
            held_until("idempotency key \"x\" is already in progress (until 1234 ms)"),
            Some(1234)
        );
        assert_eq!(held_until("other"), None);
    }
}
