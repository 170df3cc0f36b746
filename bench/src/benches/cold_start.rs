//! Benchmark 3: cold start — exec → first Runtime API `GET /next`, through the devstack
//! harness ([`FunctionProcess::start`]).
//!
//! Each function binary (release build) is started, timed and killed `runs × 2` times with a
//! valid configuration (schema registry loaded, AWS clients built, no request sent). The
//! Python peer is the stream-fanout peer (`fanout_handler.py`: boto3, pyarrow, Powertools
//! imported and clients built at import, as Lambda best practice has it) under
//! `awslambdaric`, against the same Runtime API server. The machine's page cache is warm
//! after the first start on both sides; the median therefore reflects a warm host, the
//! common case on Lambda too (the first start of a new execution environment also pays for
//! downloading the code, which is not modelled here).

use std::time::Duration;

use anyhow::Result;
use dynabridge_devstack::provision::example_registry_path;
use dynabridge_devstack::{FunctionProcess, FunctionSpec};

use super::Ctx;
use super::stream_fanout::python_spec;

const BENCH: &str = "cold-start";
/// The function binaries measured.
pub const FUNCTIONS: &[&str] = &[
    "stream-fanout",
    "incremental-sync",
    "aged-export",
    "ttl-cleanup",
];
/// The Python peer's subject name.
pub const PY: &str = "python awslambdaric (boto3 + pyarrow + powertools)";

fn env() -> Vec<(String, String)> {
    // Valid settings; the endpoints are never called during a cold start.
    let dead = "http://127.0.0.1:9".to_string();
    [
        ("AWS_REGION", "us-east-1".to_string()),
        ("AWS_DEFAULT_REGION", "us-east-1".to_string()),
        ("AWS_ACCESS_KEY_ID", "bench".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "bench".to_string()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
        ("AWS_ENDPOINT_URL_DYNAMODB", dead.clone()),
        ("AWS_ENDPOINT_URL_S3", dead.clone()),
        ("AWS_ENDPOINT_URL_EVENTBRIDGE", dead.clone()),
        ("AWS_ENDPOINT_URL_SQS", dead.clone()),
        ("AWS_ENDPOINT_URL_LAMBDA", dead),
        ("DYNABRIDGE_S3_FORCE_PATH_STYLE", "true".to_string()),
        ("DYNABRIDGE_TABLE_NAME", "dynabridge-app".to_string()),
        ("DYNABRIDGE_CONTROL_TABLE", "dynabridge-control".to_string()),
        ("DYNABRIDGE_LAKE_BUCKET", "dynabridge-lake".to_string()),
        ("DYNABRIDGE_EVENT_BUS", "dynabridge-bus".to_string()),
        ("DYNABRIDGE_SCHEMA_PATH", example_registry_path()),
        ("BENCH_IDEMPOTENCY", "0".to_string()),
        (
            "BENCH_IDEMPOTENCY_TABLE",
            super::stream_fanout::IDEMPOTENCY_TABLE.to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

async fn starts(spec: FunctionSpec, n: usize) -> Result<Vec<f64>> {
    let mut f = FunctionProcess::new(spec).await?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let d: Duration = f.start().await?;
        out.push(d.as_secs_f64() * 1e3);
        f.kill().await;
    }
    Ok(out)
}

/// Runs the benchmark.
pub async fn run(ctx: &mut Ctx) -> Result<()> {
    let n = ctx.runs() * 2;
    let env = env();
    let mut rust_medians = Vec::new();
    for name in FUNCTIONS {
        let spec = FunctionSpec::workspace(name)?.with_env(env.clone());
        let runs = starts(spec, n).await?;
        let m = ctx
            .results
            .add(BENCH, name, 0, "exec → first GET /next", "ms", runs);
        rust_medians.push((name, m));
    }
    let spec = python_spec(ctx, "cold-start-python", "fanout_handler.handler", &env);
    let py_runs = starts(spec, n).await?;
    let py = ctx
        .results
        .add(BENCH, PY, 0, "exec → first GET /next", "ms", py_runs);
    for (name, m) in rust_medians {
        ctx.results.compare(
            BENCH,
            &format!("{name} cold start vs the Python peer under awslambdaric"),
            m,
            py,
            "ms",
            py / m,
            "≥ 50× faster",
            Some(py / m >= 50.0),
        );
    }
    ctx.results.note(
        BENCH,
        format!(
            "{n} starts per subject. Rust: the release binaries, each loading the schema \
             registry and building its AWS clients before asking for work. Python: the \
             stream-fanout peer under awslambdaric 4.x (module import = Lambda's init phase)."
        ),
    );
    Ok(())
}
