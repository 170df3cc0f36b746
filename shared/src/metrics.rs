//! CloudWatch metrics through the Embedded Metric Format (EMF): one JSON line on stdout per
//! emission, which Lambda's log pipeline turns into metrics with no API call and no extra
//! latency.
//!
//! EMF needs an `_aws` object at the top level of the line, which `tracing`'s JSON layer
//! cannot produce (its fields are flat scalars), so lines are written to stdout directly,
//! whole, under stdout's lock. Dimension values and metric names are chosen by the caller
//! and must never carry item attribute values (keys and counts only, as for logs).

use std::io::Write;

use serde_json::{Map, Value, json};

/// Default namespace of dynabridge's metrics.
pub const NAMESPACE: &str = "dynabridge";

/// The unit of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A count.
    Count,
    /// Milliseconds.
    Milliseconds,
    /// Bytes.
    Bytes,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::Bytes => "Bytes",
        }
    }
}

/// The EMF document for `metrics` with `dimensions` (one dimension set) at `timestamp_ms`.
pub fn emf_document(
    namespace: &str,
    dimensions: &[(&str, &str)],
    metrics: &[(&str, f64, Unit)],
    timestamp_ms: i64,
) -> Value {
    let mut doc = Map::new();
    doc.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [dimensions.iter().map(|(k, _)| *k).collect::<Vec<_>>()],
                "Metrics": metrics
                    .iter()
                    .map(|(name, _, unit)| json!({"Name": name, "Unit": unit.as_str()}))
                    .collect::<Vec<_>>(),
            }],
        }),
    );
    for (k, v) in dimensions {
        doc.insert((*k).to_string(), Value::String((*v).to_string()));
    }
    for (name, value, _) in metrics {
        doc.insert((*name).to_string(), json!(value));
    }
    Value::Object(doc)
}

/// Writes one EMF line to stdout.
pub fn emit(namespace: &str, dimensions: &[(&str, &str)], metrics: &[(&str, f64, Unit)]) {
    let doc = emf_document(
        namespace,
        dimensions,
        metrics,
        chrono::Utc::now().timestamp_millis(),
    );
    let mut out = std::io::stdout().lock();
    // A failed write to stdout cannot be reported anywhere better; losing a metric line
    // must not fail the invocation.
    let _ = writeln!(out, "{doc}");
}

/// A set of metrics of one function, accumulated during an invocation and flushed together
/// as one EMF line with the `function` dimension.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    function: String,
    values: std::collections::BTreeMap<&'static str, (f64, Unit)>,
}

impl Metrics {
    /// Metrics of `function` (the `function` dimension).
    pub fn new(function: &str) -> Self {
        Metrics {
            function: function.to_string(),
            values: Default::default(),
        }
    }

    /// Adds `value` to the metric `name`.
    pub fn add(&mut self, name: &'static str, value: f64, unit: Unit) {
        let entry = self.values.entry(name).or_insert((0.0, unit));
        entry.0 += value;
    }

    /// Adds a count.
    pub fn count(&mut self, name: &'static str, value: usize) {
        self.add(name, value as f64, Unit::Count);
    }

    /// The current value of `name` (0 when never set).
    pub fn get(&self, name: &str) -> f64 {
        self.values.get(name).map_or(0.0, |v| v.0)
    }

    fn entries(&self) -> Vec<(&str, f64, Unit)> {
        self.values.iter().map(|(n, (v, u))| (*n, *v, *u)).collect()
    }

    /// The EMF document for the current values.
    pub fn to_emf(&self, timestamp_ms: i64) -> Value {
        emf_document(
            NAMESPACE,
            &[("function", &self.function)],
            &self.entries(),
            timestamp_ms,
        )
    }

    /// Writes the EMF line to stdout (Lambda's log stream); nothing when empty.
    pub fn flush(&self) {
        if !self.values.is_empty() {
            emit(NAMESPACE, &[("function", &self.function)], &self.entries());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_has_the_emf_shape() {
        let doc = emf_document(
            NAMESPACE,
            &[
                ("function", "incremental-sync"),
                ("Reason", "ForeignBucket"),
            ],
            &[("ObjectsRejected", 1.0, Unit::Count)],
            1_700_000_000_000,
        );
        let cw = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(cw["Namespace"], "dynabridge");
        assert_eq!(cw["Dimensions"][0], json!(["function", "Reason"]));
        assert_eq!(cw["Metrics"][0]["Name"], "ObjectsRejected");
        assert_eq!(cw["Metrics"][0]["Unit"], "Count");
        assert_eq!(doc["Reason"], "ForeignBucket");
        assert_eq!(doc["ObjectsRejected"], 1.0);
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000i64);
    }

    #[test]
    fn accumulated_metrics_declare_every_metric() {
        let mut m = Metrics::new("stream-fanout");
        m.count("RecordsIn", 3);
        m.count("RecordsIn", 2);
        m.add("DurationMs", 12.5, Unit::Milliseconds);
        let doc = m.to_emf(1_700_000_000_000);
        assert_eq!(doc["RecordsIn"], 5.0);
        assert_eq!(doc["function"], "stream-fanout");
        let defs = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(defs["Dimensions"], json!([["function"]]));
        assert_eq!(defs["Metrics"].as_array().unwrap().len(), 2);
        assert_eq!(m.get("DurationMs"), 12.5);
    }
}
