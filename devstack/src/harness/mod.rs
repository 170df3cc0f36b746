//! Runs a real compiled function binary under a Lambda Runtime API server on 127.0.0.1.
//!
//! Lambda's execution model, reproduced:
//! - one process per execution environment, started on the first invocation (cold start) and
//!   reused for the next ones (warm);
//! - invocations are handed out one at a time through `GET /runtime/invocation/next`, with the
//!   request id, deadline (`Lambda-Runtime-Deadline-Ms`), function ARN and trace id headers;
//! - the function answers `POST .../{id}/response` or `POST .../{id}/error`;
//! - a process that exits mid-invocation is a crash, reported as soon as the exit is seen
//!   (not at the timeout); a process still running at the deadline is killed and the
//!   invocation times out. Either way the next invocation starts a fresh process.
//!
//! The child's environment is built from scratch (no inherited variables except `PATH`), the
//! way Lambda builds it, so a test can never pick up a developer's real AWS credentials.

mod runtime_api;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

pub use runtime_api::ApiEvent;
use runtime_api::{PendingInvocation, RuntimeApi};

/// How to run one function.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    /// `AWS_LAMBDA_FUNCTION_NAME`.
    pub name: String,
    /// Path of the compiled binary (`bootstrap`).
    pub binary: PathBuf,
    /// Function environment variables (on top of the Lambda-provided ones).
    pub env: Vec<(String, String)>,
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`.
    pub memory_mb: u32,
    /// Function timeout: each invocation's deadline is now + timeout.
    pub timeout: Duration,
    /// Where to append the child's stdout/stderr lines, besides the in-memory log.
    pub log_file: Option<PathBuf>,
}

impl FunctionSpec {
    /// A spec for the workspace binary `name` (see [`workspace_binary`]).
    pub fn workspace(name: &str) -> Result<Self> {
        Ok(FunctionSpec {
            name: name.to_string(),
            binary: workspace_binary(name)?,
            env: Vec::new(),
            memory_mb: 512,
            timeout: Duration::from_secs(60),
            log_file: None,
        })
    }

    /// Adds environment variables.
    pub fn with_env<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.env
            .extend(vars.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Sets the function timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// Locates a compiled workspace binary: `$DYNABRIDGE_BIN_DIR/<name>`, else
/// `<target>/{debug,release}/<name>` next to the running executable or the workspace root.
pub fn workspace_binary(name: &str) -> Result<PathBuf> {
    let mut candidates = Vec::new();
    if let Ok(dir) = std::env::var("DYNABRIDGE_BIN_DIR") {
        candidates.push(PathBuf::from(dir).join(name));
    }
    if let Ok(exe) = std::env::current_exe() {
        // target/debug/deps/test-binary or target/debug/dynabridge-local
        for dir in exe.ancestors().skip(1).take(2) {
            candidates.push(dir.join(name));
        }
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    candidates.push(target.join("debug").join(name));
    candidates.push(target.join("release").join(name));
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| {
            anyhow!(
                "binary {name:?} not found (looked in {candidates:?}); build it first with \
                 `cargo build --workspace --bins`"
            )
        })
}

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum InvokeOutcome {
    /// The function posted a response.
    Response(Value),
    /// The function posted to `/error` (a returned error or a caught panic).
    Error {
        /// `errorType` of the diagnostic.
        error_type: String,
        /// `errorMessage` of the diagnostic.
        error_message: String,
    },
    /// The function failed its initialisation (`/init/error`).
    InitError {
        /// `errorType` of the diagnostic.
        error_type: String,
        /// `errorMessage` of the diagnostic.
        error_message: String,
    },
    /// The process exited (or was killed) before answering.
    Crashed {
        /// Exit code, when it exited normally.
        code: Option<i32>,
        /// Signal number, when a signal ended it.
        signal: Option<i32>,
    },
    /// The deadline passed; the process was killed.
    TimedOut,
}

impl InvokeOutcome {
    /// The response payload, if the invocation succeeded.
    pub fn response(&self) -> Option<&Value> {
        match self {
            InvokeOutcome::Response(v) => Some(v),
            _ => None,
        }
    }

    /// Whether Lambda would count this invocation as a function error.
    pub fn is_function_error(&self) -> bool {
        !matches!(self, InvokeOutcome::Response(_))
    }
}

/// One invocation's record.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The request id handed to the function.
    pub request_id: String,
    /// How it ended.
    pub outcome: InvokeOutcome,
    /// Wall time from hand-off to outcome (includes the cold start when `cold`).
    pub duration: Duration,
    /// Whether this invocation started a new process.
    pub cold: bool,
}

/// A function's execution environment: the Runtime API server plus (at most) one process.
pub struct FunctionProcess {
    spec: FunctionSpec,
    api: RuntimeApi,
    events: mpsc::UnboundedReceiver<ApiEvent>,
    child: Option<Child>,
    logs: Arc<Mutex<Vec<String>>>,
    cold_starts: usize,
    last_spawn: Option<Instant>,
    first_next_after_spawn: Option<Duration>,
    kill_schedule: VecDeque<Duration>,
}

impl std::fmt::Debug for FunctionProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionProcess")
            .field("name", &self.spec.name)
            .field("runtime_api", &self.api.addr())
            .field("pid", &self.pid())
            .finish()
    }
}

impl FunctionProcess {
    /// Starts the Runtime API server. The process itself starts on the first invocation
    /// (or [`FunctionProcess::start`]).
    pub async fn new(spec: FunctionSpec) -> Result<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let api = RuntimeApi::start(tx).await?;
        Ok(FunctionProcess {
            spec,
            api,
            events: rx,
            child: None,
            logs: Arc::new(Mutex::new(Vec::new())),
            cold_starts: 0,
            last_spawn: None,
            first_next_after_spawn: None,
            kill_schedule: VecDeque::new(),
        })
    }

    /// The spec this process runs.
    pub fn spec(&self) -> &FunctionSpec {
        &self.spec
    }

    /// `host:port` of the Runtime API (`AWS_LAMBDA_RUNTIME_API`).
    pub fn runtime_api(&self) -> String {
        self.api.addr().to_string()
    }

    /// PID of the running process, if any.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    /// Number of processes started so far.
    pub fn cold_starts(&self) -> usize {
        self.cold_starts
    }

    /// Lines the function wrote to stdout/stderr so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Starts the process now (cold start) if it is not running, and waits until it asks for
    /// its first invocation. Returns the time from exec to the first `GET /next`.
    pub async fn start(&mut self) -> Result<Duration> {
        if self.child.is_none() {
            self.spawn()?;
        }
        if let Some(d) = self.first_next_after_spawn {
            return Ok(d);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let child = self.child.as_mut().ok_or_else(|| anyhow!("no process"))?;
            tokio::select! {
                ev = self.events.recv() => match ev {
                    Some(ApiEvent::NextRequested) => {
                        let d = self.last_spawn.map(|t| t.elapsed()).unwrap_or_default();
                        self.first_next_after_spawn = Some(d);
                        return Ok(d);
                    }
                    Some(ApiEvent::InitError { error_type, error_message }) => {
                        return Err(anyhow!("init error {error_type}: {error_message}"));
                    }
                    Some(_) => continue,
                    None => return Err(anyhow!("runtime API stopped")),
                },
                status = child.wait() => {
                    self.child = None;
                    return Err(anyhow!("{} exited during init: {:?}", self.spec.name, status));
                }
                _ = tokio::time::sleep(remaining) => {
                    return Err(anyhow!("{} did not call GET /next within 30 s", self.spec.name));
                }
            }
        }
    }

    fn spawn(&mut self) -> Result<()> {
        self.api.clear_pending();
        let mut cmd = Command::new(&self.spec.binary);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TZ", ":UTC")
            .env("LANG", "en_US.UTF-8")
            .env("AWS_LAMBDA_RUNTIME_API", self.runtime_api())
            .env("AWS_LAMBDA_FUNCTION_NAME", &self.spec.name)
            .env(
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                self.spec.memory_mb.to_string(),
            )
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", self.spec.name),
            )
            .env(
                "AWS_LAMBDA_LOG_STREAM_NAME",
                format!("local/{}", self.cold_starts + 1),
            )
            .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
            .env("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023")
            .env("_HANDLER", "bootstrap")
            .env(
                "LAMBDA_TASK_ROOT",
                self.spec.binary.parent().unwrap_or(Path::new("/")),
            )
            .envs(self.spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", self.spec.binary.display()))?;
        let log_file = self
            .spec
            .log_file
            .as_ref()
            .and_then(|p| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .ok()
            })
            .map(|f| Arc::new(Mutex::new(f)));
        if let Some(out) = child.stdout.take() {
            collect_lines(out, self.logs.clone(), log_file.clone());
        }
        if let Some(err) = child.stderr.take() {
            collect_lines(err, self.logs.clone(), log_file);
        }
        self.child = Some(child);
        self.cold_starts += 1;
        self.last_spawn = Some(Instant::now());
        self.first_next_after_spawn = None;
        Ok(())
    }

    /// Invokes the function with `payload` and waits for the outcome.
    pub async fn invoke(&mut self, payload: &Value) -> Result<Invocation> {
        let body = serde_json::to_vec(payload)?;
        self.invoke_raw(body).await
    }

    /// Invokes the function with raw payload bytes (for malformed-input tests).
    pub async fn invoke_raw(&mut self, body: Vec<u8>) -> Result<Invocation> {
        let cold = self.child.is_none();
        if cold {
            self.spawn()?;
        }
        let started = Instant::now();
        let request_id = uuid::Uuid::new_v4().to_string();
        let deadline = started + self.spec.timeout;
        let deadline_ms =
            chrono::Utc::now().timestamp_millis() + self.spec.timeout.as_millis() as i64;
        self.api.push(PendingInvocation {
            request_id: request_id.clone(),
            body,
            deadline_ms,
            function_arn: format!(
                "arn:aws:lambda:{}:{}:function:{}",
                crate::stack::REGION,
                crate::stack::ACCOUNT_ID,
                self.spec.name
            ),
        });
        let outcome = self.wait_for(&request_id, deadline).await?;
        Ok(Invocation {
            request_id,
            outcome,
            duration: started.elapsed(),
            cold,
        })
    }

    async fn wait_for(&mut self, request_id: &str, deadline: Instant) -> Result<InvokeOutcome> {
        let kill_at = self.kill_schedule.pop_front().map(|d| Instant::now() + d);
        loop {
            let child = self
                .child
                .as_mut()
                .ok_or_else(|| anyhow!("process not running"))?;
            let remaining = deadline.saturating_duration_since(Instant::now());
            tokio::select! {
                ev = self.events.recv() => match ev {
                    Some(ApiEvent::Response { request_id: id, body }) if id == request_id => {
                        let value = if body.is_empty() {
                            Value::Null
                        } else {
                            serde_json::from_slice(&body).unwrap_or_else(|_| {
                                Value::String(String::from_utf8_lossy(&body).into_owned())
                            })
                        };
                        return Ok(InvokeOutcome::Response(value));
                    }
                    Some(ApiEvent::Error { request_id: id, error_type, error_message }) if id == request_id => {
                        return Ok(InvokeOutcome::Error { error_type, error_message });
                    }
                    Some(ApiEvent::InitError { error_type, error_message }) => {
                        self.kill().await;
                        return Ok(InvokeOutcome::InitError { error_type, error_message });
                    }
                    Some(ApiEvent::NextRequested) => {
                        if self.first_next_after_spawn.is_none() {
                            self.first_next_after_spawn =
                                self.last_spawn.map(|t| t.elapsed());
                        }
                        continue;
                    }
                    Some(_) => continue,
                    None => return Err(anyhow!("runtime API stopped")),
                },
                status = child.wait() => {
                    let status = status?;
                    self.child = None;
                    // Give the log collectors a moment to drain the pipes.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    #[cfg(unix)]
                    let signal = std::os::unix::process::ExitStatusExt::signal(&status);
                    #[cfg(not(unix))]
                    let signal = None;
                    return Ok(InvokeOutcome::Crashed { code: status.code(), signal });
                }
                _ = tokio::time::sleep(remaining) => {
                    self.kill().await;
                    return Ok(InvokeOutcome::TimedOut);
                }
                _ = sleep_until_opt(kill_at) => {
                    self.kill().await;
                    return Ok(InvokeOutcome::Crashed { code: None, signal: Some(9) });
                }
            }
        }
    }

    /// Kills the process (SIGKILL) and waits for it; the next invocation is a cold start.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Crash injection: the next invocations are SIGKILLed after these delays (one per
    /// invocation, in order; an invocation that answers first is not killed). The event
    /// source then sees a crash, as with a Lambda killed mid-flight.
    pub fn kill_after(&mut self, delays: impl IntoIterator<Item = Duration>) {
        self.kill_schedule.extend(delays);
    }

    /// Kills scheduled but not used yet.
    pub fn pending_kills(&self) -> usize {
        self.kill_schedule.len()
    }

    /// Time from the last exec to its first `GET /next`, once seen.
    pub fn last_init_duration(&self) -> Option<Duration> {
        self.first_next_after_spawn
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

fn collect_lines<R>(
    reader: R,
    logs: Arc<Mutex<Vec<String>>>,
    file: Option<Arc<Mutex<std::fs::File>>>,
) where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut lines = BufReader::new(reader).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(f) = &file
                && let Ok(mut f) = f.lock()
            {
                use std::io::Write;
                let _ = writeln!(f, "{line}");
            }
            if let Ok(mut l) = logs.lock() {
                l.push(line);
            }
        }
    });
}

/// A small FIFO used by event sources to remember recent outcomes (for summaries and tests).
#[derive(Debug, Default, Clone)]
pub struct History<T> {
    items: VecDeque<T>,
}

impl<T: Clone> History<T> {
    /// Appends an entry.
    pub fn push(&mut self, item: T) {
        self.items.push_back(item);
    }

    /// All entries, oldest first.
    pub fn all(&self) -> Vec<T> {
        self.items.iter().cloned().collect()
    }
}
