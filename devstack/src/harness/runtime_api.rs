//! The Lambda Runtime API (`2018-06-01`), served on 127.0.0.1 for one execution environment.
//!
//! Routes: `GET /2018-06-01/runtime/invocation/next` (long poll),
//! `POST /2018-06-01/runtime/invocation/{id}/response`,
//! `POST /2018-06-01/runtime/invocation/{id}/error`,
//! `POST /2018-06-01/runtime/init/error`. Everything the function posts is forwarded to the
//! harness as an [`ApiEvent`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Result;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::{Mutex, Notify, mpsc};

/// What the function did on the Runtime API.
#[derive(Debug, Clone)]
pub enum ApiEvent {
    /// It asked for the next invocation.
    NextRequested,
    /// It answered an invocation.
    Response {
        /// The invocation.
        request_id: String,
        /// The response body.
        body: Bytes,
    },
    /// It reported an invocation error.
    Error {
        /// The invocation.
        request_id: String,
        /// `errorType`.
        error_type: String,
        /// `errorMessage`.
        error_message: String,
    },
    /// It reported an initialisation error.
    InitError {
        /// `errorType`.
        error_type: String,
        /// `errorMessage`.
        error_message: String,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct PendingInvocation {
    pub request_id: String,
    pub body: Vec<u8>,
    pub deadline_ms: i64,
    pub function_arn: String,
}

#[derive(Default)]
struct Queue {
    pending: std::sync::Mutex<std::collections::VecDeque<PendingInvocation>>,
    notify: Notify,
}

pub(crate) struct RuntimeApi {
    addr: SocketAddr,
    queue: Arc<Queue>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RuntimeApi {
    pub async fn start(events: mpsc::UnboundedSender<ApiEvent>) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let queue = Arc::new(Queue::default());
        let state = Arc::new(State {
            queue: queue.clone(),
            events,
            next_lock: Mutex::new(()),
        });
        let task = tokio::spawn(async move {
            let http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let state = state.clone();
                let svc = hyper::service::service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(route(state, req).await) }
                });
                let conn = http
                    .serve_connection(TokioIo::new(socket), svc)
                    .into_owned();
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
        });
        Ok(RuntimeApi { addr, queue, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn push(&self, inv: PendingInvocation) {
        if let Ok(mut q) = self.queue.pending.lock() {
            q.push_back(inv);
        }
        self.queue.notify.notify_one();
    }

    /// Drops invocations nobody fetched (before a new process starts after a crash).
    pub fn clear_pending(&self) {
        if let Ok(mut q) = self.queue.pending.lock() {
            q.clear();
        }
    }
}

struct State {
    queue: Arc<Queue>,
    events: mpsc::UnboundedSender<ApiEvent>,
    next_lock: Mutex<()>,
}

type Body = Full<Bytes>;

fn reply(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r
}

async fn route(state: Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, parts.as_slice()) {
        (Method::GET, ["2018-06-01", "runtime", "invocation", "next"]) => next(state).await,
        (Method::POST, ["2018-06-01", "runtime", "invocation", id, "response"]) => {
            let id = id.to_string();
            let body = read_body(req).await;
            let _ = state.events.send(ApiEvent::Response {
                request_id: id,
                body,
            });
            reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
        }
        (Method::POST, ["2018-06-01", "runtime", "invocation", id, "error"]) => {
            let id = id.to_string();
            let header_type = header(&req, "lambda-runtime-function-error-type");
            let body = read_body(req).await;
            let (error_type, error_message) = parse_diagnostic(&body, header_type);
            let _ = state.events.send(ApiEvent::Error {
                request_id: id,
                error_type,
                error_message,
            });
            reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
        }
        (Method::POST, ["2018-06-01", "runtime", "init", "error"]) => {
            let header_type = header(&req, "lambda-runtime-function-error-type");
            let body = read_body(req).await;
            let (error_type, error_message) = parse_diagnostic(&body, header_type);
            let _ = state.events.send(ApiEvent::InitError {
                error_type,
                error_message,
            });
            reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
        }
        _ => reply(StatusCode::NOT_FOUND, r#"{"errorMessage":"unknown route"}"#),
    }
}

async fn next(state: Arc<State>) -> Response<Body> {
    // One execution environment fetches one invocation at a time.
    let _guard = state.next_lock.lock().await;
    let _ = state.events.send(ApiEvent::NextRequested);
    loop {
        let notified = state.queue.notify.notified();
        let inv = state
            .queue
            .pending
            .lock()
            .ok()
            .and_then(|mut q| q.pop_front());
        if let Some(inv) = inv {
            let trace = format!(
                "Root=1-{:08x}-{};Parent={};Sampled=0",
                chrono::Utc::now().timestamp(),
                &inv.request_id.replace('-', "")[..24],
                &inv.request_id.replace('-', "")[..16]
            );
            let mut resp = Response::new(Full::new(Bytes::from(inv.body)));
            let h = resp.headers_mut();
            let pairs = [
                ("lambda-runtime-aws-request-id", inv.request_id),
                ("lambda-runtime-deadline-ms", inv.deadline_ms.to_string()),
                ("lambda-runtime-invoked-function-arn", inv.function_arn),
                ("lambda-runtime-trace-id", trace),
                ("content-type", "application/json".to_string()),
            ];
            for (k, v) in pairs {
                if let Ok(v) = hyper::header::HeaderValue::from_str(&v) {
                    h.insert(k, v);
                }
            }
            return resp;
        }
        notified.await;
    }
}

fn header(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

async fn read_body(req: Request<Incoming>) -> Bytes {
    match req.into_body().collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => Bytes::new(),
    }
}

fn parse_diagnostic(body: &[u8], header_type: Option<String>) -> (String, String) {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let error_type = v["errorType"]
        .as_str()
        .map(str::to_string)
        .or(header_type)
        .unwrap_or_else(|| "Unknown".to_string());
    let error_message = v["errorMessage"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    (error_type, error_message)
}
