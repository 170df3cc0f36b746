//! CloudWatch metrics in the Embedded Metric Format (EMF): one JSON line on stdout per
//! flush, which Lambda's log pipeline turns into metrics without any API call (no latency, no
//! PutMetricData cost, nothing to fail).
//!
//! Metric names are stable (they are what alarms and dashboards use); the dimension is the
//! function name. Values are counts unless stated.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// The namespace every dynabridge metric is published under.
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

/// A set of metrics flushed together.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    function: String,
    values: BTreeMap<&'static str, (f64, Unit)>,
}

impl Metrics {
    /// Metrics of `function` (the `function` dimension).
    pub fn new(function: &str) -> Self {
        Metrics {
            function: function.to_string(),
            values: BTreeMap::new(),
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

    /// The EMF document for the current values.
    pub fn to_emf(&self, timestamp_ms: i64) -> Value {
        let definitions: Vec<Value> = self
            .values
            .iter()
            .map(|(name, (_, unit))| json!({ "Name": name, "Unit": unit.as_str() }))
            .collect();
        let mut doc = Map::new();
        doc.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [["function"]],
                    "Metrics": definitions,
                }]
            }),
        );
        doc.insert("function".into(), json!(self.function));
        for (name, (value, _)) in &self.values {
            doc.insert((*name).to_string(), json!(value));
        }
        Value::Object(doc)
    }

    /// Writes the EMF line to stdout (Lambda's log stream).
    pub fn flush(&self) {
        if self.values.is_empty() {
            return;
        }
        println!("{}", self.to_emf(chrono::Utc::now().timestamp_millis()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_document_declares_every_metric() {
        let mut m = Metrics::new("stream-fanout");
        m.count("RecordsIn", 3);
        m.count("RecordsIn", 2);
        m.add("DurationMs", 12.5, Unit::Milliseconds);
        let doc = m.to_emf(1_700_000_000_000);
        assert_eq!(doc["RecordsIn"], 5.0);
        assert_eq!(doc["function"], "stream-fanout");
        let defs = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(defs["Namespace"], NAMESPACE);
        assert_eq!(defs["Dimensions"], json!([["function"]]));
        assert_eq!(defs["Metrics"].as_array().unwrap().len(), 2);
        assert_eq!(m.get("DurationMs"), 12.5);
    }
}
