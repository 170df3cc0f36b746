//! The proxy server: accept, read the request, decide, then answer with a fault or forward.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, HeaderName, HeaderValue};
use hyper::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;

use super::classify::classify;
use super::partial;
use super::plan::HoldBack;
use super::plan::{Decider, Fault, FaultKind, FaultPlan, Operation, Service};
use super::shapes;

/// What a proxy saw and did since it started (or since [`FaultProxy::reset_stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Requests received, per operation.
    pub requests: BTreeMap<Operation, u64>,
    /// Requests forwarded upstream (whole or partial), per operation.
    pub forwarded: BTreeMap<Operation, u64>,
    /// Faults injected, per operation and kind.
    pub injected: BTreeMap<(Operation, FaultKind), u64>,
}

impl FaultStats {
    /// Requests received for `service`/`operation`.
    pub fn requests(&self, service: Service, operation: &str) -> u64 {
        self.requests
            .get(&Operation::new(service, operation))
            .copied()
            .unwrap_or(0)
    }

    /// Requests forwarded upstream for `service`/`operation`.
    pub fn forwarded(&self, service: Service, operation: &str) -> u64 {
        self.forwarded
            .get(&Operation::new(service, operation))
            .copied()
            .unwrap_or(0)
    }

    /// Faults of `kind` injected into `service`/`operation`.
    pub fn injected(&self, service: Service, operation: &str, kind: FaultKind) -> u64 {
        self.injected
            .get(&(Operation::new(service, operation), kind))
            .copied()
            .unwrap_or(0)
    }

    /// Faults of `kind` injected into any operation.
    pub fn injected_kind(&self, kind: FaultKind) -> u64 {
        self.injected
            .iter()
            .filter(|((_, k), _)| *k == kind)
            .map(|(_, n)| n)
            .sum()
    }

    /// All faults injected.
    pub fn total_injected(&self) -> u64 {
        self.injected.values().sum()
    }

    /// All requests forwarded upstream.
    pub fn total_forwarded(&self) -> u64 {
        self.forwarded.values().sum()
    }

    /// All requests received.
    pub fn total_requests(&self) -> u64 {
        self.requests.values().sum()
    }

    /// Adds another proxy's figures to these.
    pub fn merge(&mut self, other: &FaultStats) {
        for (k, v) in &other.requests {
            *self.requests.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.forwarded {
            *self.forwarded.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.injected {
            *self.injected.entry(k.clone()).or_default() += v;
        }
    }
}

/// One injected fault, in the order the proxy applied them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectedFault {
    /// The operation.
    pub operation: Operation,
    /// Position of the request among this operation's requests since the plan was set
    /// (0-based): the same seed gives the same faults at the same positions.
    pub request: u64,
    /// What was injected.
    pub kind: FaultKind,
}

/// The journal keeps at most this many entries (the statistics keep counting).
const JOURNAL_LIMIT: usize = 100_000;

struct Shared {
    service: Service,
    upstream: Uri,
    decider: Mutex<Decider>,
    ledger: Mutex<Ledger>,
}

#[derive(Default)]
struct Ledger {
    stats: FaultStats,
    journal: Vec<InjectedFault>,
    next_request_id: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks leaves plain counters behind: still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn received(&self, op: &Operation) -> String {
        let mut l = lock(&self.ledger);
        *l.stats.requests.entry(op.clone()).or_default() += 1;
        l.next_request_id += 1;
        format!("FAULTPROXY{:010}", l.next_request_id)
    }

    fn forwarded(&self, op: &Operation) {
        *lock(&self.ledger)
            .stats
            .forwarded
            .entry(op.clone())
            .or_default() += 1;
    }

    fn injected(&self, op: &Operation, request: u64, kind: FaultKind) {
        let mut l = lock(&self.ledger);
        *l.stats.injected.entry((op.clone(), kind)).or_default() += 1;
        if l.journal.len() < JOURNAL_LIMIT {
            l.journal.push(InjectedFault {
                operation: op.clone(),
                request,
                kind,
            });
        }
    }
}

/// A fault-injecting HTTP/1.1 proxy in front of one local-stack endpoint. See the
/// [module documentation](super) for what it does and guarantees.
///
/// It serves on its own thread and Tokio runtime, so it keeps working whatever runtime the
/// caller uses (or none, e.g. while a child process calls it). Dropping it stops the server and
/// every connection task.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("endpoint", &self.endpoint())
            .field("upstream", &self.shared.upstream)
            .field("service", &self.shared.service)
            .finish()
    }
}

impl FaultProxy {
    /// Starts a proxy on an ephemeral 127.0.0.1 port in front of `upstream`
    /// (`http://127.0.0.1:<port>`). `service` is what the upstream serves: requests carrying
    /// an `X-Amz-Target` are attributed to the service it names (the DynamoDB endpoint also
    /// serves Streams, moto serves EventBridge and SQS), the others to `service` (S3).
    pub fn start(upstream: String, service: Service, plan: FaultPlan) -> Result<FaultProxy> {
        plan.validate()?;
        let upstream: Uri = upstream
            .parse()
            .with_context(|| format!("upstream {upstream:?} is not a URI"))?;
        if upstream.scheme_str() != Some("http") || upstream.authority().is_none() {
            bail!("upstream {upstream} must be http://host:port");
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            service,
            upstream,
            decider: Mutex::new(Decider::new(plan)),
            ledger: Mutex::new(Ledger::default()),
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("fault proxy runtime")?;
        let (tx, rx) = oneshot::channel();
        let serve_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("fault-proxy-{}", addr.port()))
            .spawn(move || {
                // Dropping the runtime at the end cancels every connection task.
                rt.block_on(serve(listener, serve_shared, rx));
            })?;
        Ok(FaultProxy {
            addr,
            shared,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:<port>`: the endpoint to give clients instead of the upstream's.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The proxy's socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The upstream it forwards to.
    pub fn upstream(&self) -> String {
        self.shared
            .upstream
            .to_string()
            .trim_end_matches('/')
            .into()
    }

    /// Replaces the plan for the requests that arrive from now on (e.g. [`FaultPlan::none`]
    /// once a scenario is over). The random streams restart from the new plan's seed; the
    /// statistics keep counting.
    pub fn set_plan(&self, plan: FaultPlan) -> Result<()> {
        plan.validate()?;
        *lock(&self.shared.decider) = Decider::new(plan);
        Ok(())
    }

    /// A snapshot of the statistics.
    pub fn stats(&self) -> FaultStats {
        lock(&self.shared.ledger).stats.clone()
    }

    /// Every injected fault in order (up to 100,000).
    pub fn journal(&self) -> Vec<InjectedFault> {
        lock(&self.shared.ledger).journal.clone()
    }

    /// Clears the statistics and the journal.
    pub fn reset_stats(&self) {
        let mut l = lock(&self.shared.ledger);
        l.stats = FaultStats::default();
        l.journal.clear();
    }

    /// Stops the proxy now (also done on drop): open connections are closed.
    pub fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop();
    }
}

type UpstreamClient = Client<HttpConnector, Full<Bytes>>;

async fn serve(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    mut stop: oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => return tracing::error!("fault proxy listener: {e}"),
    };
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: UpstreamClient = Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(5))
        .build(connector);
    loop {
        let stream = tokio::select! {
            _ = &mut stop => break,
            res = listener.accept() => match res {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("fault proxy accept: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let reset = Arc::new(AtomicBool::new(false));
        let io = TokioIo::new(ResettableStream {
            stream,
            reset: reset.clone(),
        });
        let shared = shared.clone();
        let client = client.clone();
        let svc = hyper::service::service_fn(move |req| {
            handle(shared.clone(), client.clone(), reset.clone(), req)
        });
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .serve_connection(io, svc)
                .await;
        });
    }
}

/// Returned by the service to make hyper drop the connection without answering.
#[derive(Debug)]
struct ResetConnection;

impl std::fmt::Display for ResetConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset injected")
    }
}

impl std::error::Error for ResetConnection {}

async fn handle(
    shared: Arc<Shared>,
    client: UpstreamClient,
    reset: Arc<AtomicBool>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ResetConnection> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Err(ResetConnection),
    };
    let op = classify(
        shared.service,
        &parts.method,
        &parts.uri,
        &parts.headers,
        &body,
    );
    let request_id = shared.received(&op);
    let mut decision = lock(&shared.decider).decide(&op);
    let index = decision.index;
    let head = parts.method == Method::HEAD;

    if !decision.latency.is_zero() {
        shared.injected(&op, index, FaultKind::Latency);
        tokio::time::sleep(decision.latency).await;
    }
    match &decision.terminal {
        Some(Fault::ConnectionReset) => {
            shared.injected(&op, index, FaultKind::ConnectionReset);
            reset.store(true, Ordering::SeqCst);
            return Err(ResetConnection);
        }
        Some(Fault::ResetAfterForward) => {
            // Applied upstream, answer lost: the ambiguous outcome retries must survive.
            let _ = forward(&shared, &client, &op, &parts, body).await;
            shared.injected(&op, index, FaultKind::ResetAfterForward);
            reset.store(true, Ordering::SeqCst);
            return Err(ResetConnection);
        }
        Some(fault) => {
            shared.injected(&op, index, fault.kind());
            return Ok(shapes::error_response(&op, fault, &request_id, head));
        }
        None => {}
    }

    if decision.partial
        && let Some(resp) = partial_batch(&shared, &client, &op, &parts, &body, &mut decision).await
    {
        shared.injected(&op, index, FaultKind::PartialBatch);
        return Ok(resp);
    }

    Ok(match forward(&shared, &client, &op, &parts, body).await {
        Ok(up) => up.into_response(head),
        Err(e) => bad_gateway(&e),
    })
}

/// Applies a partial-batch fault; `None` when the body is not a batch it can split (then
/// the request is forwarded unchanged and nothing is counted).
async fn partial_batch(
    shared: &Shared,
    client: &UpstreamClient,
    op: &Operation,
    parts: &hyper::http::request::Parts,
    body: &Bytes,
    decision: &mut super::plan::Decision,
) -> Option<Response<Full<Bytes>>> {
    let marker = decision.marker.clone();
    let mut hold = match &marker {
        Some(m) => HoldBack::Containing(m),
        None => HoldBack::Random(&mut decision.selector),
    };
    let rng = &mut hold;
    match op.name.as_str() {
        "BatchWriteItem" => {
            let split = partial::split_batch_write(body, rng)?;
            tracing::debug!(held = split.held_count, "{op}: holding back write requests");
            let upstream = match split.forward {
                Some(fwd) => match forward(shared, client, op, parts, fwd).await {
                    Ok(up) if up.status.is_success() => Some(up),
                    // The whole call failed upstream: that is the answer.
                    Ok(up) => return Some(up.into_response(false)),
                    Err(e) => return Some(bad_gateway(&e)),
                },
                None => None,
            };
            let merged =
                partial::merge_batch_write(upstream.as_ref().map(|u| u.body.as_ref()), split.held)?;
            Some(rewritten(upstream, op.service, merged))
        }
        "PutEvents" => {
            let split = partial::split_put_events(body, rng)?;
            let upstream = match split.forward {
                Some(fwd) => match forward(shared, client, op, parts, fwd).await {
                    Ok(up) if up.status.is_success() => Some(up),
                    Ok(up) => return Some(up.into_response(false)),
                    Err(e) => return Some(bad_gateway(&e)),
                },
                None => None,
            };
            let merged =
                partial::merge_put_events(upstream.as_ref().map(|u| u.body.as_ref()), &split.held)?;
            Some(rewritten(upstream, op.service, merged))
        }
        _ => None,
    }
}

/// The upstream's response with a new body (or a fresh 200 when nothing was forwarded).
fn rewritten(upstream: Option<Upstream>, service: Service, body: Bytes) -> Response<Full<Bytes>> {
    let request_id = upstream
        .as_ref()
        .and_then(|u| u.headers.get("x-amzn-requestid"))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("FAULTPROXY-PARTIAL")
        .to_string();
    let mut resp = shapes::json_response(service, StatusCode::OK, body, &request_id, None);
    if let Some(up) = upstream {
        // Keep the upstream's other headers; the shaped ones (type, id, checksum) win.
        for (name, value) in &up.headers {
            if !resp.headers().contains_key(name) && !is_hop_by_hop(name) && name != CONTENT_LENGTH
            {
                resp.headers_mut().insert(name.clone(), value.clone());
            }
        }
    }
    resp
}

fn bad_gateway(e: &anyhow::Error) -> Response<Full<Bytes>> {
    tracing::warn!("fault proxy: upstream failed: {e:#}");
    let mut r = Response::new(Full::new(Bytes::from(format!(
        "fault proxy: upstream failed: {e:#}"
    ))));
    *r.status_mut() = StatusCode::BAD_GATEWAY;
    r
}

/// A buffered upstream response.
struct Upstream {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Upstream {
    fn into_response(self, head: bool) -> Response<Full<Bytes>> {
        let mut r = Response::new(Full::new(self.body));
        *r.status_mut() = self.status;
        for (name, value) in &self.headers {
            // The body is buffered, so hyper frames it with its own Content-Length — except
            // for HEAD, whose Content-Length describes the object and must be kept.
            if is_hop_by_hop(name) || (name == CONTENT_LENGTH && !head) {
                continue;
            }
            r.headers_mut().append(name.clone(), value.clone());
        }
        r
    }
}

/// Sends the request upstream unchanged except for its body (and the framing headers that
/// depend on it). `Host` and every signed header are kept as the client sent them.
async fn forward(
    shared: &Shared,
    client: &UpstreamClient,
    op: &Operation,
    parts: &hyper::http::request::Parts,
    body: Bytes,
) -> Result<Upstream> {
    let mut uri = hyper::http::uri::Parts::default();
    uri.scheme = shared.upstream.scheme().cloned();
    uri.authority = shared.upstream.authority().cloned();
    uri.path_and_query = Some(
        parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| hyper::http::uri::PathAndQuery::from_static("/")),
    );
    let uri = Uri::from_parts(uri).context("upstream URI")?;
    let mut req = Request::new(Full::new(body.clone()));
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = uri;
    for (name, value) in &parts.headers {
        if !is_hop_by_hop(name) && name != CONTENT_LENGTH {
            req.headers_mut().append(name.clone(), value.clone());
        }
    }
    if !body.is_empty() || parts.headers.contains_key(CONTENT_LENGTH) {
        req.headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    shared.forwarded(op);
    let resp = client
        .request(req)
        .await
        .map_err(|e| anyhow!("{} {}: {e:?}", op, shared.upstream))?;
    let (rparts, rbody) = resp.into_parts();
    let body = rbody
        .collect()
        .await
        .context("reading upstream body")?
        .to_bytes();
    Ok(Upstream {
        status: rparts.status,
        headers: rparts.headers,
        body,
    })
}

/// Connection-level headers a proxy must not pass on (RFC 9110 §7.6.1).
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// The accepted socket. When a reset is requested it refuses further I/O (so hyper gives up
/// on the connection without writing anything) and closes with `SO_LINGER` 0, which sends a
/// TCP RST instead of a FIN: the client sees "connection reset by peer".
struct ResettableStream {
    stream: tokio::net::TcpStream,
    reset: Arc<AtomicBool>,
}

impl ResettableStream {
    fn resetting(&self) -> bool {
        self.reset.load(Ordering::SeqCst)
    }
}

fn reset_error() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, "fault proxy reset")
}

impl AsyncRead for ResettableStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.resetting() {
            return Poll::Ready(Err(reset_error()));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResettableStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.resetting() {
            return Poll::Ready(Err(reset_error()));
        }
        Pin::new(&mut this.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.resetting() {
            return Poll::Ready(Err(reset_error()));
        }
        Pin::new(&mut this.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.resetting() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.resetting() {
            // No FIN: the RST on drop is the only thing the client gets.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }
}

impl Drop for ResettableStream {
    fn drop(&mut self) {
        if self.resetting() {
            let _ = self.stream.set_zero_linger();
        }
    }
}
