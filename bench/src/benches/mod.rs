//! The benchmarks and the orchestrator that runs them.
//!
//! Every benchmark is a module with `async fn run(ctx: &mut Ctx) -> Result<()>` that records
//! its measurements, comparisons and notes in [`Ctx::results`]. [`ALL`] lists them in report
//! order; [`run`] runs the ones selected (all by default), keeps going when one crashes (the
//! crash is reported and makes the command fail, so the smoke run in CI catches rot), and
//! writes the results. A benchmark never fails on a missed target: targets are reported.
//!
//! Adding a benchmark (aged-export, incremental-sync): fill in its module's `run` — the
//! hooks below already appear in the report as pending until they record something.

pub mod aged_export;
pub mod cold_start;
pub mod conversion;
pub mod incremental_sync;
pub mod stream_fanout;
pub mod writer;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use clap::Args;

use crate::report::{Pending, Results};

/// Benchmark ids, in report order.
pub const ALL: &[&str] = &[
    "conversion",
    "stream-fanout",
    "cold-start",
    "writer",
    "aged-export",
    "incremental-sync",
];

/// Options of `dynabridge-bench run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Tiny inputs and one run each: checks that every benchmark still runs (CI).
    #[arg(long)]
    pub smoke: bool,
    /// Where results.json / results.md go.
    #[arg(long, default_value = "bench/results")]
    pub out: PathBuf,
    /// Scratch folder for generated data and outputs (deleted at the end unless --keep-data).
    #[arg(long, default_value = "bench/.data")]
    pub data_dir: PathBuf,
    /// Keep the generated data.
    #[arg(long)]
    pub keep_data: bool,
    /// Runs per measurement (medians are reported); default 5, smoke 1.
    #[arg(long)]
    pub runs: Option<usize>,
    /// Conversion input sizes for Rust (items); default 10000,100000,1000000, smoke 2000.
    #[arg(long, value_delimiter = ',')]
    pub sizes: Option<Vec<u64>>,
    /// Largest conversion input given to the Python peers (they are 1–2 orders of magnitude
    /// slower); default 100000, smoke 2000.
    #[arg(long)]
    pub python_max: Option<u64>,
    /// Stream batches (of `--batch-size` records) measured per run; default 5, smoke 1.
    #[arg(long)]
    pub batches: Option<usize>,
    /// Records per stream batch.
    #[arg(long, default_value_t = 1000)]
    pub batch_size: usize,
    /// Items written by the writer benchmark; default 10000, smoke 1000.
    #[arg(long)]
    pub writer_items: Option<usize>,
    /// incremental-sync input sizes (rows of the inbound file); default 10000,100000, smoke
    /// 1000.
    #[arg(long, value_delimiter = ',')]
    pub sync_sizes: Option<Vec<u64>>,
    /// aged-export table sizes (items); default 100000,1000000, smoke 2000. The table is
    /// loaded once, growing from one size to the next.
    #[arg(long, value_delimiter = ',')]
    pub export_sizes: Option<Vec<u64>>,
    /// Largest aged-export table the awswrangler peer exports more than once (it takes minutes
    /// and gigabytes at 1M items); default 100000.
    #[arg(long)]
    pub export_python_repeat_max: Option<u64>,
    /// Rust runs of the aged-export tables larger than `--export-python-repeat-max` (default
    /// `--runs`). At 1M items a run takes ~6 min on 2 cores, nearly all of it dynoxide's
    /// Scan (whose cost grows with the table); the bare scan is timed in the first run only.
    #[arg(long)]
    pub export_large_runs: Option<usize>,
    /// Skip the Python peers (quick iterations on the Rust side; comparisons are then not
    /// recorded). Never used for published figures.
    #[arg(long)]
    pub rust_only: bool,
    /// Extra environment of the Rust functions under test (`KEY=VALUE`, repeatable), for
    /// A/B runs of a setting.
    #[arg(long = "rust-env", value_name = "KEY=VALUE")]
    pub rust_env: Vec<String>,
    /// Only these benchmarks (comma-separated ids of `ALL`).
    #[arg(long, value_delimiter = ',')]
    pub only: Option<Vec<String>>,
    /// With `--only`: keep the other benchmarks' results already in `--out/results.json`
    /// (re-running one benchmark after a change); the selected ones are replaced, and the
    /// report says which benchmarks were re-run when.
    #[arg(long, requires = "only")]
    pub merge: bool,
}

/// What every benchmark gets.
pub struct Ctx {
    /// The options.
    pub args: RunArgs,
    /// Runs per measurement.
    pub runs: usize,
    /// The workspace root.
    pub root: PathBuf,
    /// Scratch folder (absolute).
    pub data_dir: PathBuf,
    /// The project venv's python.
    pub python: PathBuf,
    /// `schemas/example.json`.
    pub registry: PathBuf,
    /// Everything recorded so far.
    pub results: Results,
}

impl Ctx {
    /// `bench/python/<script>`.
    pub fn script(&self, name: &str) -> PathBuf {
        self.root.join("bench").join("python").join(name)
    }

    /// A scratch path under the data dir.
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.data_dir.join(name)
    }

    /// An empty scratch folder (whatever a previous run left there is removed).
    pub fn fresh_dir(&self, name: &str) -> Result<PathBuf> {
        let dir = self.scratch(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// The generated items file of `n` items (created once per run of the orchestrator).
    pub fn items_file(&self, n: u64) -> Result<PathBuf> {
        let path = self.scratch(&format!("items-{n}.jsonl"));
        if !path.exists() {
            crate::data::write_items(&path, n as usize, crate::data::SEED)?;
        }
        Ok(path)
    }

    /// Runs per measurement, never fewer than one.
    pub fn runs(&self) -> usize {
        self.runs.max(1)
    }
}

fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| manifest.to_path_buf())
}

fn absolute(root: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        root.join(p)
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0 / 1024.0)
        .unwrap_or(0.0);
    format!("{cpu}, {mem_gib:.0} GiB RAM")
}

/// Runs the selected benchmarks and writes the results.
pub async fn run(args: RunArgs) -> Result<()> {
    let root = workspace_root();
    let python = dynabridge_devstack::venv::find_venv()
        .map(|v| v.join("bin").join("python"))
        .filter(|p| p.exists())
        .context(
            "the project venv (.venv) is missing: run scripts/bootstrap (scripts/bench does)",
        )?;
    let data_dir = absolute(&root, &args.data_dir);
    std::fs::create_dir_all(&data_dir)?;
    let runs = args.runs.unwrap_or(if args.smoke { 1 } else { 5 });
    let mut ctx = Ctx {
        runs,
        registry: root.join("schemas").join("example.json"),
        root: root.clone(),
        data_dir: data_dir.clone(),
        python,
        results: Results::default(),
        args: args.clone(),
    };
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let meta = &mut ctx.results.meta;
    meta.insert(
        "mode".into(),
        (if args.smoke { "smoke" } else { "full" }).into(),
    );
    meta.insert("machine".into(), machine().into());
    meta.insert("cpus".into(), format!("{cpus} cores").into());
    meta.insert(
        "date".into(),
        chrono::Utc::now().format("%Y-%m-%d").to_string().into(),
    );
    meta.insert("runs".into(), runs.into());
    meta.insert("seed".into(), crate::data::SEED.into());

    let selected: Vec<&str> = ALL
        .iter()
        .copied()
        .filter(|id| {
            args.only
                .as_ref()
                .is_none_or(|only| only.iter().any(|o| o == id))
        })
        .collect();
    let selected_ids: Vec<&str> = selected.clone();
    let mut crashed = Vec::new();
    for id in selected {
        eprintln!("==> benchmark {id}");
        let started = std::time::Instant::now();
        let outcome = match id {
            "conversion" => conversion::run(&mut ctx).await,
            "stream-fanout" => stream_fanout::run(&mut ctx).await,
            "cold-start" => cold_start::run(&mut ctx).await,
            "writer" => writer::run(&mut ctx).await,
            "aged-export" => aged_export::run(&mut ctx).await,
            "incremental-sync" => incremental_sync::run(&mut ctx).await,
            other => Err(anyhow!("unknown benchmark {other}")),
        };
        eprintln!("    {id}: {:.1} s", started.elapsed().as_secs_f64());
        if let Err(e) = outcome {
            eprintln!("    {id} CRASHED: {e:#}");
            ctx.results.pending.push(Pending {
                bench: id.into(),
                reason: format!("crashed: {e:#}"),
            });
            crashed.push(id);
        }
    }
    let out = absolute(&root, &args.out);
    if args.merge {
        let previous: Results = serde_json::from_slice(
            &std::fs::read(out.join("results.json"))
                .with_context(|| format!("--merge: reading {}", out.display()))?,
        )
        .context("--merge: parsing results.json")?;
        // The stream-fanout benchmark also records the idempotency figures.
        let with_sub = |ids: &[&'static str]| -> Vec<&'static str> {
            ids.iter()
                .flat_map(|id| match *id {
                    "stream-fanout" => vec!["stream-fanout", "idempotency"],
                    other => vec![other],
                })
                .collect()
        };
        ctx.results = previous.merged(
            std::mem::take(&mut ctx.results),
            &with_sub(&selected_ids),
            &with_sub(ALL),
        );
    }
    ctx.results.write(&out)?;
    eprintln!("{}", ctx.results.markdown());
    eprintln!("results: {}", out.join("results.md").display());
    if !args.keep_data {
        // Everything generated goes, except the results when they were written in there.
        for entry in std::fs::read_dir(&data_dir)?.flatten() {
            let path = entry.path();
            if out.starts_with(&path) {
                continue;
            }
            let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
        }
        let _ = std::fs::remove_dir(&data_dir);
    }
    if crashed.is_empty() {
        Ok(())
    } else {
        Err(anyhow!("benchmarks crashed: {}", crashed.join(", ")))
    }
}
