//! The local AWS stack.
//!
//! | service | implementation | where |
//! |---|---|---|
//! | DynamoDB + DynamoDB Streams | `dynoxide` embedded, HTTP on 127.0.0.1 | one endpoint serves both APIs |
//! | S3 | `s3s-fs` embedded, HTTP on 127.0.0.1 | objects are files at `<lake_root>/<bucket>/<key>` |
//! | EventBridge + SQS | `moto_server` child process from the project venv | one endpoint serves both |
//!
//! The embedded servers run on a dedicated thread with its own Tokio runtime, so they keep
//! serving whatever runtime (or none) the caller uses and while the caller blocks. Ports are
//! ephemeral. Dropping the [`LocalStack`] shuts the servers down, kills `moto_server` by PID
//! and waits for it, so nothing is left running after a test.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use tokio::sync::oneshot;

use crate::venv;

/// Dummy credentials the local servers accept (s3s verifies SigV4 against them).
pub const ACCESS_KEY: &str = "dynabridge";
/// See [`ACCESS_KEY`].
pub const SECRET_KEY: &str = "dynabridge-local-secret";
/// Region used throughout the local stack.
pub const REGION: &str = "us-east-1";
/// Account id moto uses in ARNs.
pub const ACCOUNT_ID: &str = "123456789012";

/// What to start.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Start `moto_server` for EventBridge + SQS (needs the venv; ~1–2 s to start).
    pub eventbridge: bool,
    /// Directory for the lake (S3 root) and the DynamoDB file; a fresh temp dir when `None`.
    pub data_dir: Option<PathBuf>,
    /// Keep DynamoDB in a SQLite file under `data_dir` instead of in memory.
    pub persistent_dynamodb: bool,
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            eventbridge: true,
            data_dir: None,
            persistent_dynamodb: false,
        }
    }
}

/// A running local stack. Drop it to stop everything.
pub struct LocalStack {
    dynamodb_addr: SocketAddr,
    s3_addr: SocketAddr,
    moto: Option<MotoServer>,
    lake_root: PathBuf,
    data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    db: dynoxide::Database,
    shutdown: Option<oneshot::Sender<()>>,
    server_thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for LocalStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStack")
            .field("dynamodb", &self.dynamodb_endpoint())
            .field("s3", &self.s3_endpoint())
            .field("eventbridge", &self.eventbridge_endpoint())
            .field("lake_root", &self.lake_root)
            .finish()
    }
}

impl LocalStack {
    /// Starts the stack.
    pub fn start(opts: StackOptions) -> Result<Self> {
        let (temp, data_dir) = match &opts.data_dir {
            Some(d) => {
                std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
                (None, d.clone())
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("dynabridge-stack-")
                    .tempdir()?;
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        let lake_root = data_dir.join("s3");
        std::fs::create_dir_all(&lake_root)?;

        let db = if opts.persistent_dynamodb {
            let path = data_dir.join("dynamodb.sqlite");
            dynoxide::Database::new(&path.to_string_lossy())
                .map_err(|e| anyhow!("opening dynoxide at {}: {e}", path.display()))?
        } else {
            dynoxide::Database::memory().map_err(|e| anyhow!("dynoxide in memory: {e}"))?
        };

        let ddb_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let s3_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        ddb_listener.set_nonblocking(true)?;
        s3_listener.set_nonblocking(true)?;
        let dynamodb_addr = ddb_listener.local_addr()?;
        let s3_addr = s3_listener.local_addr()?;

        let fs = s3s_fs::FileSystem::new(&lake_root)
            .map_err(|e| anyhow!("s3s-fs at {}: {e:?}", lake_root.display()))?;
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let server_db = db.clone();
        let server_thread = std::thread::Builder::new()
            .name("devstack-servers".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        eprintln!("devstack: cannot build runtime: {e}");
                        return;
                    }
                };
                rt.block_on(serve_all(
                    ddb_listener,
                    s3_listener,
                    server_db,
                    fs,
                    shutdown_rx,
                ));
            })?;

        let moto = if opts.eventbridge {
            Some(MotoServer::start(&data_dir)?)
        } else {
            None
        };

        let stack = LocalStack {
            dynamodb_addr,
            s3_addr,
            moto,
            lake_root,
            data_dir,
            _temp: temp,
            db,
            shutdown: Some(shutdown_tx),
            server_thread: Some(server_thread),
        };
        wait_for_port(stack.dynamodb_addr, Duration::from_secs(10))?;
        wait_for_port(stack.s3_addr, Duration::from_secs(10))?;
        Ok(stack)
    }

    /// `http://127.0.0.1:<port>` serving DynamoDB and DynamoDB Streams.
    pub fn dynamodb_endpoint(&self) -> String {
        format!("http://{}", self.dynamodb_addr)
    }

    /// `http://127.0.0.1:<port>` serving S3.
    pub fn s3_endpoint(&self) -> String {
        format!("http://{}", self.s3_addr)
    }

    /// `http://127.0.0.1:<port>` serving EventBridge and SQS (moto), if started.
    pub fn eventbridge_endpoint(&self) -> Option<String> {
        self.moto.as_ref().map(|m| format!("http://{}", m.addr))
    }

    /// The folder holding the S3 buckets: `<lake_root>/<bucket>/<key>`.
    pub fn lake_root(&self) -> &Path {
        &self.lake_root
    }

    /// The stack's working directory (temp dir unless one was given).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Runs DynamoDB's TTL deletion now, on every TTL-enabled table. Deleted items produce
    /// stream REMOVE records with the DynamoDB service's `userIdentity`, like real TTL
    /// deletions. Returns how many items were deleted.
    pub async fn sweep_ttl(&self) -> Result<usize> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.sweep_ttl())
            .await?
            .map_err(|e| anyhow!("TTL sweep: {e}"))
    }

    /// Bulk-loads items (DynamoDB-JSON maps, binaries base64) into `table` straight through
    /// dynoxide's import API: no HTTP, no stream records, existing keys overwritten. For
    /// benchmarks that need millions of items; tests write through the API. Returns how many
    /// items were imported.
    pub fn import_items(&self, table: &str, items: Vec<serde_json::Value>) -> Result<usize> {
        let items = items
            .into_iter()
            .map(serde_json::from_value::<dynoxide::types::Item>)
            .collect::<std::result::Result<Vec<_>, _>>()
            .context("item is not DynamoDB-JSON")?;
        let out = self
            .db
            .import_items(table, items, dynoxide::ImportOptions::default())
            .map_err(|e| anyhow!("importing into {table}: {e}"))?;
        Ok(out.items_imported)
    }

    /// Environment variables that point an AWS SDK (Rust, Python, CLI) at this stack.
    pub fn aws_env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("AWS_REGION".into(), REGION.into()),
            ("AWS_DEFAULT_REGION".into(), REGION.into()),
            ("AWS_ACCESS_KEY_ID".into(), ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY".into(), SECRET_KEY.into()),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
            ("AWS_ENDPOINT_URL_DYNAMODB".into(), self.dynamodb_endpoint()),
            (
                "AWS_ENDPOINT_URL_DYNAMODB_STREAMS".into(),
                self.dynamodb_endpoint(),
            ),
            ("AWS_ENDPOINT_URL_S3".into(), self.s3_endpoint()),
            ("DYNABRIDGE_S3_FORCE_PATH_STYLE".into(), "true".into()),
        ];
        if let Some(eb) = self.eventbridge_endpoint() {
            env.push(("AWS_ENDPOINT_URL_EVENTBRIDGE".into(), eb.clone()));
            env.push(("AWS_ENDPOINT_URL_SQS".into(), eb));
        }
        env
    }

    /// An SDK config with the stack's region and credentials (endpoints are set per client).
    pub fn sdk_config(&self) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
                aws_sdk_dynamodb::config::Credentials::new(
                    ACCESS_KEY, SECRET_KEY, None, None, "devstack",
                ),
            ))
            .build()
    }

    /// A DynamoDB client for this stack.
    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        let conf = aws_sdk_dynamodb::config::Builder::from(&self.sdk_config())
            .endpoint_url(self.dynamodb_endpoint())
            .build();
        aws_sdk_dynamodb::Client::from_conf(conf)
    }

    /// A DynamoDB Streams client for this stack.
    pub fn dynamodb_streams(&self) -> aws_sdk_dynamodbstreams::Client {
        let conf = aws_sdk_dynamodbstreams::config::Builder::from(&self.sdk_config())
            .endpoint_url(self.dynamodb_endpoint())
            .build();
        aws_sdk_dynamodbstreams::Client::from_conf(conf)
    }

    /// An S3 client for this stack (path-style).
    pub fn s3(&self) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::config::Builder::from(&self.sdk_config())
            .endpoint_url(self.s3_endpoint())
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// An EventBridge client for this stack.
    pub fn eventbridge(&self) -> Result<aws_sdk_eventbridge::Client> {
        let ep = self
            .eventbridge_endpoint()
            .ok_or_else(|| anyhow!("stack started without EventBridge"))?;
        let conf = aws_sdk_eventbridge::config::Builder::from(&self.sdk_config())
            .endpoint_url(ep)
            .build();
        Ok(aws_sdk_eventbridge::Client::from_conf(conf))
    }

    /// An SQS client for this stack.
    pub fn sqs(&self) -> Result<aws_sdk_sqs::Client> {
        let ep = self
            .eventbridge_endpoint()
            .ok_or_else(|| anyhow!("stack started without EventBridge/SQS"))?;
        let conf = aws_sdk_sqs::config::Builder::from(&self.sdk_config())
            .endpoint_url(ep)
            .build();
        Ok(aws_sdk_sqs::Client::from_conf(conf))
    }

    /// Stops everything now (also done on drop).
    pub fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.server_thread.take() {
            let _ = t.join();
        }
        if let Some(mut m) = self.moto.take() {
            m.stop();
        }
    }
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn serve_all(
    ddb_listener: std::net::TcpListener,
    s3_listener: std::net::TcpListener,
    db: dynoxide::Database,
    fs: s3s_fs::FileSystem,
    shutdown: oneshot::Receiver<()>,
) {
    let (ddb_stop_tx, ddb_stop_rx) = oneshot::channel::<()>();
    let (s3_stop_tx, s3_stop_rx) = oneshot::channel::<()>();
    let ddb = async move {
        let listener = match tokio::net::TcpListener::from_std(ddb_listener) {
            Ok(l) => l,
            Err(e) => return eprintln!("devstack: dynamodb listener: {e}"),
        };
        let signal = async move {
            let _ = ddb_stop_rx.await;
        };
        if let Err(e) = dynoxide::server::serve_with_shutdown(listener, db, signal).await {
            eprintln!("devstack: dynamodb server: {e}");
        }
    };
    let s3 = serve_s3(s3_listener, fs, s3_stop_rx);
    let servers = async move {
        tokio::join!(ddb, s3);
    };
    tokio::pin!(servers);
    tokio::select! {
        _ = &mut servers => return,
        _ = shutdown => {}
    }
    let _ = ddb_stop_tx.send(());
    let _ = s3_stop_tx.send(());
    // The DynamoDB server waits for in-flight requests; bound the shutdown so a hung client
    // cannot keep the stack alive.
    let _ = tokio::time::timeout(Duration::from_secs(10), servers).await;
}

async fn serve_s3(
    listener: std::net::TcpListener,
    fs: s3s_fs::FileSystem,
    stop: oneshot::Receiver<()>,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto::Builder as ConnBuilder;

    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => return eprintln!("devstack: s3 listener: {e}"),
    };
    let service = {
        let mut b = s3s::service::S3ServiceBuilder::new(fs);
        b.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        b.build()
    };
    let http = ConnBuilder::new(TokioExecutor::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let socket = tokio::select! {
            res = listener.accept() => match res {
                Ok((socket, _)) => socket,
                Err(_) => continue,
            },
            _ = stop.as_mut() => break,
        };
        let conn = http.serve_connection(TokioIo::new(socket), service.clone());
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
}

/// `moto_server` from the project venv, started on an ephemeral port and stopped by PID.
struct MotoServer {
    child: Child,
    addr: SocketAddr,
}

impl MotoServer {
    fn start(data_dir: &Path) -> Result<Self> {
        let bin = venv::venv_bin("moto_server").ok_or_else(|| {
            anyhow!(
                "moto_server not found in the project venv (.venv); run scripts/bootstrap first \
                 or set {}",
                venv::VENV_VAR
            )
        })?;
        let port = free_port()?;
        let log = std::fs::File::create(data_dir.join("moto_server.log"))?;
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut server = MotoServer {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = server.child.try_wait()? {
                bail!(
                    "moto_server exited at start ({status}); see {}",
                    data_dir.join("moto_server.log").display()
                );
            }
            if std::net::TcpStream::connect_timeout(&server.addr, Duration::from_millis(200))
                .is_ok()
            {
                return Ok(server);
            }
            if Instant::now() > deadline {
                server.stop();
                bail!("moto_server did not listen on {} within 30 s", server.addr);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A currently free port on 127.0.0.1 (for child processes that need a port number).
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn wait_for_port(addr: SocketAddr, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if Instant::now() > deadline {
            bail!("nothing listening on {addr} after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}
