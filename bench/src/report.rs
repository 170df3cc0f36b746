//! The results: `results.json` (everything measured, every run) and `results.md` (the
//! tables the README shows). `bench/python/plot.py` draws `results.png` from the JSON.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::measure::median;

/// One measured quantity of one subject at one input size.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measurement {
    /// Benchmark id (`conversion`, `stream-fanout`, ...).
    pub bench: String,
    /// What was measured (`rust codec`, `python boto3+pyarrow`, ...).
    pub subject: String,
    /// Input size (items or records), 0 when not applicable.
    pub size: u64,
    /// `items/s`, `peak RSS`, ...
    pub metric: String,
    /// Unit of the values.
    pub unit: String,
    /// Median of `runs`.
    pub median: f64,
    /// Every run's value.
    pub runs: Vec<f64>,
}

/// Rust beside its peer, with the target.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    /// Benchmark id.
    pub bench: String,
    /// What is compared (one line).
    pub what: String,
    /// Rust's median, in `unit`.
    pub rust: f64,
    /// The peer's median, in `unit`.
    pub peer: f64,
    /// Unit of both.
    pub unit: String,
    /// The advantage as "Rust is N× better" (≥ 1 means better).
    pub ratio: f64,
    /// The target, as text.
    pub target: String,
    /// Whether the target is met (`None`: no target).
    pub met: Option<bool>,
}

/// A benchmark that is not built yet (or could not run here), shown in the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    /// Benchmark id.
    pub bench: String,
    /// Why it has no figures.
    pub reason: String,
}

/// Everything one run produced.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Results {
    /// Machine, mode, versions.
    pub meta: serde_json::Map<String, serde_json::Value>,
    /// All measurements.
    pub measurements: Vec<Measurement>,
    /// Rust/peer ratios with targets.
    pub comparisons: Vec<Comparison>,
    /// Benchmarks without figures.
    pub pending: Vec<Pending>,
    /// Free-text notes per benchmark (methodology details, deviations).
    pub notes: Vec<(String, String)>,
}

impl Results {
    /// Records a measurement; returns its median.
    pub fn add(
        &mut self,
        bench: &str,
        subject: &str,
        size: u64,
        metric: &str,
        unit: &str,
        runs: Vec<f64>,
    ) -> f64 {
        let m = median(&runs);
        self.measurements.push(Measurement {
            bench: bench.into(),
            subject: subject.into(),
            size,
            metric: metric.into(),
            unit: unit.into(),
            median: m,
            runs,
        });
        m
    }

    /// The median of a recorded measurement.
    pub fn get(&self, bench: &str, subject: &str, size: u64, metric: &str) -> Option<f64> {
        self.measurements
            .iter()
            .find(|m| {
                m.bench == bench && m.subject == subject && m.size == size && m.metric == metric
            })
            .map(|m| m.median)
    }

    /// Records a comparison. `ratio` is computed by the caller so "better" is always ≥ 1.
    #[allow(clippy::too_many_arguments)]
    pub fn compare(
        &mut self,
        bench: &str,
        what: &str,
        rust: f64,
        peer: f64,
        unit: &str,
        ratio: f64,
        target: &str,
        met: Option<bool>,
    ) {
        self.comparisons.push(Comparison {
            bench: bench.into(),
            what: what.into(),
            rust,
            peer,
            unit: unit.into(),
            ratio,
            target: target.into(),
            met,
        });
    }

    /// Adds a note shown under the benchmark's section.
    pub fn note(&mut self, bench: &str, text: impl Into<String>) {
        self.notes.push((bench.into(), text.into()));
    }

    /// These results with the benchmarks `rerun` replaced by `new`'s (`--merge`), every list
    /// kept in the benchmarks' `order`; `meta.rerun` records which were re-run and when.
    pub fn merged(mut self, new: Results, rerun: &[&str], order: &[&str]) -> Results {
        let keep = |bench: &str| !rerun.contains(&bench);
        self.measurements.retain(|m| keep(&m.bench));
        self.comparisons.retain(|c| keep(&c.bench));
        self.pending.retain(|p| keep(&p.bench));
        self.notes.retain(|(b, _)| keep(b));
        self.measurements.extend(new.measurements);
        self.comparisons.extend(new.comparisons);
        self.pending.extend(new.pending);
        self.notes.extend(new.notes);
        let rank = |bench: &str| {
            order
                .iter()
                .position(|b| *b == bench)
                .unwrap_or(order.len())
        };
        self.measurements.sort_by_key(|m| rank(&m.bench));
        self.comparisons.sort_by_key(|c| rank(&c.bench));
        self.pending.sort_by_key(|p| rank(&p.bench));
        self.notes.sort_by_key(|(b, _)| rank(b));
        let date = new
            .meta
            .get("date")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("?")
            .to_string();
        let mut reruns = self
            .meta
            .get("rerun")
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
            .unwrap_or_default();
        for bench in rerun {
            if !reruns.is_empty() {
                reruns.push_str("; ");
            }
            reruns.push_str(&format!("{bench} re-run on {date}"));
        }
        self.meta.insert("rerun".into(), reruns.into());
        self
    }

    /// Writes `results.json` and `results.md` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(
            dir.join("results.json"),
            serde_json::to_string_pretty(self)? + "\n",
        )?;
        std::fs::write(dir.join("results.md"), self.markdown())?;
        Ok(())
    }

    /// The markdown report.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let meta = |k: &str| {
            self.meta
                .get(k)
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                .unwrap_or_default()
        };
        let _ = writeln!(md, "# dynabridge benchmarks\n");
        let _ = writeln!(
            md,
            "Generated by `scripts/bench{}` on {} ({}), {}. Medians over {} runs unless stated; \
             every run's value is in `results.json`. Methodology: `bench/README.md`.\n",
            if meta("mode") == "smoke" {
                " --smoke"
            } else {
                ""
            },
            meta("machine"),
            meta("cpus"),
            meta("date"),
            meta("runs"),
        );
        if !meta("rerun").is_empty() {
            let _ = writeln!(
                md,
                "Re-run since (`scripts/bench --only … --merge`, same machine): {}.\n",
                meta("rerun")
            );
        }
        if meta("mode") == "smoke" {
            let _ = writeln!(
                md,
                "**Smoke mode: tiny inputs, one run each; these figures are not benchmarks.**\n"
            );
        }
        let _ = writeln!(md, "## Summary: Rust beside the peers\n");
        let _ = writeln!(
            md,
            "| benchmark | comparison | Rust | peer | ratio | target | met |"
        );
        let _ = writeln!(md, "|---|---|---:|---:|---:|---|---|");
        for c in &self.comparisons {
            let met = match c.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "—",
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} {} | {} {} | {} | {} | {} |",
                c.bench,
                c.what,
                fmt_num(c.rust),
                c.unit,
                fmt_num(c.peer),
                c.unit,
                fmt_ratio(c.ratio),
                c.target,
                met
            );
        }
        for p in &self.pending {
            let _ = writeln!(
                md,
                "| {} | *not measured: {}* | | | | | |",
                p.bench, p.reason
            );
        }
        let mut benches: Vec<&str> = Vec::new();
        for m in &self.measurements {
            if !benches.contains(&m.bench.as_str()) {
                benches.push(&m.bench);
            }
        }
        for bench in benches {
            let _ = writeln!(md, "\n## {bench}\n");
            let _ = writeln!(md, "| subject | size | metric | median | runs |");
            let _ = writeln!(md, "|---|---:|---|---:|---|");
            for m in self.measurements.iter().filter(|m| m.bench == bench) {
                let runs: Vec<String> = m.runs.iter().map(|r| fmt_num(*r)).collect();
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} {} | {} |",
                    m.subject,
                    if m.size == 0 {
                        "—".into()
                    } else {
                        fmt_int(m.size)
                    },
                    m.metric,
                    fmt_num(m.median),
                    m.unit,
                    runs.join(", ")
                );
            }
            for (_, text) in self.notes.iter().filter(|(b, _)| b == bench) {
                let _ = writeln!(md, "\n- {text}");
            }
        }
        if self.notes.iter().any(|(b, _)| b == "general") {
            let _ = writeln!(md, "\n## Notes\n");
            for (_, text) in self.notes.iter().filter(|(b, _)| b == "general") {
                let _ = writeln!(md, "- {text}");
            }
        }
        md
    }
}

/// An integer with thousands separators.
pub fn fmt_int(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A number with about three significant digits.
pub fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".into();
    }
    let a = x.abs();
    if a >= 1000.0 {
        fmt_int(x.round().max(0.0) as u64)
    } else if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

/// A ratio like `23.4×`.
pub fn fmt_ratio(r: f64) -> String {
    if r.is_finite() {
        format!("{}×", fmt_num(r))
    } else {
        "n/a".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_markdown() {
        assert_eq!(fmt_int(1_234_567), "1,234,567");
        assert_eq!(fmt_num(0.01234), "0.012");
        assert_eq!(fmt_ratio(23.45), "23.4×");
        let mut r = Results::default();
        r.add(
            "conversion",
            "rust",
            1000,
            "items/s",
            "items/s",
            vec![1.0, 3.0, 2.0],
        );
        assert_eq!(r.get("conversion", "rust", 1000, "items/s"), Some(2.0));
        r.compare(
            "conversion",
            "throughput",
            2.0,
            1.0,
            "items/s",
            2.0,
            "≥ 15×",
            Some(false),
        );
        r.pending.push(Pending {
            bench: "aged-export".into(),
            reason: "not built yet".into(),
        });
        let md = r.markdown();
        assert!(md.contains(
            "| conversion | throughput | 2.00 items/s | 1.00 items/s | 2.00× | ≥ 15× | **no** |"
        ));
        assert!(md.contains("aged-export"));
    }
}
