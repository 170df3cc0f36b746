//! Logging: JSON lines through `tracing`, one per event, with the request id.
//!
//! - Level: `AWS_LAMBDA_LOG_LEVEL` (Lambda's advanced logging controls) wins, then `RUST_LOG`
//!   (which may hold full directives such as `info,aws_smithy_runtime=warn`), then `INFO`.
//! - Format: always JSON. `lambda_runtime` wraps each invocation in a span carrying
//!   `requestId`; the formatter writes the current span's fields on every line, so each line
//!   logged while handling an invocation carries the request id.
//! - Personal data: item attribute *values* are never logged at INFO or above. Log keys,
//!   counts and ids; put values behind `debug!`/`trace!` only when truly needed.
//!
//! The AWS SDK's own crates are capped at WARN unless `RUST_LOG` names them, so DEBUG logs of
//! a function do not fill up with wire-level noise.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::Env;

/// Environment variable Lambda sets from the function's log-level setting.
pub const AWS_LAMBDA_LOG_LEVEL: &str = "AWS_LAMBDA_LOG_LEVEL";

/// Builds the filter from the environment (see the module docs for precedence).
pub fn env_filter(env: &Env) -> EnvFilter {
    let directives = match env.optional(AWS_LAMBDA_LOG_LEVEL) {
        Some(level) => lambda_level_to_directive(&level),
        None => env.optional("RUST_LOG").unwrap_or_else(|| "info".into()),
    };
    let mut filter = EnvFilter::builder().parse_lossy(&directives);
    let verbose = filter
        .max_level_hint()
        .is_some_and(|l| l > tracing::level_filters::LevelFilter::WARN);
    if !verbose {
        return filter;
    }
    for noisy in ["aws_smithy_runtime", "aws_config", "hyper", "h2", "rustls"] {
        if !directives.contains(noisy)
            && let Ok(d) = format!("{noisy}=warn").parse()
        {
            filter = filter.add_directive(d);
        }
    }
    filter
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
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(env_filter(env))
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_target(true)
        .with_writer(writer)
        .try_init();
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
        use tracing::level_filters::LevelFilter;
        assert_eq!(env_filter(&env).max_level_hint(), Some(LevelFilter::WARN));
        let env = Env::from_pairs([(AWS_LAMBDA_LOG_LEVEL, "FATAL")]);
        assert_eq!(env_filter(&env).max_level_hint(), Some(LevelFilter::ERROR));
        let env = Env::from_pairs([("RUST_LOG", "debug")]);
        assert_eq!(env_filter(&env).max_level_hint(), Some(LevelFilter::DEBUG));
        assert_eq!(
            env_filter(&Env::from_pairs::<[(&str, &str); 0], _, _>([])).max_level_hint(),
            Some(LevelFilter::INFO)
        );
    }

    #[test]
    fn json_lines_carry_span_fields() {
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_env_filter(env_filter(&Env::from_pairs([("RUST_LOG", "info")])))
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(true)
            .with_writer(move || writer.clone())
            .finish();
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
