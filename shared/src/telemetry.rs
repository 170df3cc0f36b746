//! Logging: JSON lines through `tracing`, one per event, with the request id.
//!
//! - Level: `AWS_LAMBDA_LOG_LEVEL` (Lambda's advanced logging controls) wins, then `RUST_LOG`
//!   (which may hold `target=level` directives such as `info,aws_smithy_runtime=warn`), then
//!   `INFO`. The filter is `tracing_subscriber`'s `Targets` (level per target prefix), not
//!   `EnvFilter`: span and field directives (`target[span{field=x}]=debug`) are ignored, like
//!   any other directive that does not parse. `EnvFilter` would link a regex engine into
//!   every artifact for that (docs/deploy.md, "Artifact size").
//! - Format: always JSON. `lambda_runtime` wraps each invocation in a span carrying
//!   `requestId`; the formatter writes the current span's fields on every line, so each line
//!   logged while handling an invocation carries the request id.
//! - Personal data: item attribute *values* are never logged at INFO or above. Log keys,
//!   counts and ids; put values behind `debug!`/`trace!` only when truly needed.
//!
//! The AWS SDK's own crates are capped at WARN unless `RUST_LOG` names them, so DEBUG logs of
//! a function do not fill up with wire-level noise.

use std::str::FromStr;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::Env;

/// Environment variable Lambda sets from the function's log-level setting.
pub const AWS_LAMBDA_LOG_LEVEL: &str = "AWS_LAMBDA_LOG_LEVEL";

/// Builds the filter from the environment (see the module docs for precedence).
pub fn env_filter(env: &Env) -> Targets {
    let directives = match env.optional(AWS_LAMBDA_LOG_LEVEL) {
        Some(level) => lambda_level_to_directive(&level),
        None => env.optional("RUST_LOG").unwrap_or_else(|| "info".into()),
    };
    let mut filter = parse_lossy(&directives);
    if max_level(&filter) <= LevelFilter::WARN {
        return filter;
    }
    for noisy in ["aws_smithy_runtime", "aws_config", "hyper", "h2", "rustls"] {
        if !directives.contains(noisy) {
            filter = filter.with_target(noisy, LevelFilter::WARN);
        }
    }
    filter
}

/// Parses comma-separated `level` / `target=level` directives, skipping the ones that do not
/// parse (as `EnvFilter::parse_lossy` does). No default directive means `ERROR`, as with
/// `EnvFilter`.
fn parse_lossy(directives: &str) -> Targets {
    let mut filter = Targets::new().with_default(LevelFilter::ERROR);
    for directive in directives
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
    {
        match directive.split_once('=') {
            None => {
                if let Ok(level) = LevelFilter::from_str(directive) {
                    filter = filter.with_default(level);
                }
            }
            Some((target, level)) => {
                let target = target.trim();
                let valid_target = !target.is_empty()
                    && target
                        .chars()
                        .all(|c| c.is_alphanumeric() || c == '_' || c == ':' || c == '-');
                if let (true, Ok(level)) = (valid_target, LevelFilter::from_str(level.trim())) {
                    filter = filter.with_target(target, level);
                }
            }
        }
    }
    filter
}

/// The most verbose level `filter` lets through for any target.
pub fn max_level(filter: &Targets) -> LevelFilter {
    filter
        .iter()
        .map(|(_, level)| level)
        .chain(filter.default_level())
        .max()
        .unwrap_or(LevelFilter::OFF)
}

/// Lambda's levels are `TRACE|DEBUG|INFO|WARN|ERROR|FATAL`; tracing has no FATAL.
fn lambda_level_to_directive(level: &str) -> String {
    match level.trim().to_ascii_uppercase().as_str() {
        "FATAL" => "error".into(),
        other => other.to_ascii_lowercase(),
    }
}

/// Initialises JSON logging to stdout (where Lambda collects it). Call once, first thing in
/// `main`. A second call is ignored.
pub fn init() {
    init_with_writer(&Env::process(), std::io::stdout);
}

/// Initialises JSON logging to `writer` with the level taken from `env`.
pub fn init_with_writer<W>(env: &Env, writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let _ = tracing_subscriber::registry()
        .with(json_layer(writer))
        .with(env_filter(env))
        .try_init();
}

/// The JSON-lines formatting layer (one object per event, the current span's fields inline).
fn json_layer<S, W>(writer: W) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_target(true)
        .with_writer(writer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lambda_level_wins_over_rust_log() {
        let env = Env::from_pairs([(AWS_LAMBDA_LOG_LEVEL, "WARN"), ("RUST_LOG", "trace")]);
        assert_eq!(max_level(&env_filter(&env)), LevelFilter::WARN);
        let env = Env::from_pairs([(AWS_LAMBDA_LOG_LEVEL, "FATAL")]);
        assert_eq!(max_level(&env_filter(&env)), LevelFilter::ERROR);
        let env = Env::from_pairs([("RUST_LOG", "debug")]);
        assert_eq!(max_level(&env_filter(&env)), LevelFilter::DEBUG);
        assert_eq!(
            max_level(&env_filter(&Env::from_pairs::<[(&str, &str); 0], _, _>([]))),
            LevelFilter::INFO
        );
    }

    #[test]
    fn directives_per_target_and_noisy_crates_capped() {
        let env = Env::from_pairs([("RUST_LOG", "info,stream_fanout=trace,bogus=loud,x[y]=debug")]);
        let filter = env_filter(&env);
        assert_eq!(filter.default_level(), Some(LevelFilter::INFO));
        assert!(filter.would_enable("stream_fanout::handler", &tracing::Level::TRACE));
        assert!(!filter.would_enable("bogus", &tracing::Level::DEBUG));
        assert!(!filter.would_enable("aws_smithy_runtime::client", &tracing::Level::INFO));
        assert!(filter.would_enable("aws_smithy_runtime::client", &tracing::Level::WARN));
        // Named explicitly: not capped.
        let env = Env::from_pairs([("RUST_LOG", "debug,hyper=debug")]);
        assert!(env_filter(&env).would_enable("hyper::proto", &tracing::Level::DEBUG));
        // WARN and below: nothing to cap.
        let env = Env::from_pairs([("RUST_LOG", "warn")]);
        assert_eq!(env_filter(&env).iter().count(), 0);
    }

    #[test]
    fn json_lines_carry_span_fields() {
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::registry()
            .with(json_layer(move || writer.clone()))
            .with(env_filter(&Env::from_pairs([("RUST_LOG", "info")])));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("Lambda runtime invoke", requestId = "req-1");
            let _g = span.enter();
            tracing::info!(records = 3, "batch done");
            tracing::debug!("hidden");
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1, "{out}");
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["span"]["requestId"], "req-1");
        assert_eq!(v["records"], 3);
        assert_eq!(v["level"], "INFO");
    }
}
