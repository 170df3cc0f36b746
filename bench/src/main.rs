//! `dynabridge-bench`: side-by-side benchmarks of dynabridge's Rust code and the Python tools
//! users would pick instead, in one run on one machine with the same data.
//!
//! `run` is the orchestrator (what `scripts/bench` calls): it generates the data, runs every
//! benchmark of [`benches::ALL`], and writes `results.json` + `results.md` (the plot is drawn
//! from the JSON by `bench/python/plot.py`). The other subcommands are the measured programs
//! themselves, run as child processes so each has its own peak RSS and CPU time:
//! `gen` (the shared data generator), `convert` (DynamoDB-JSON → Parquet) and `floor` (the
//! serde_json-only parse of the same bytes). Methodology: `bench/README.md`.

mod benches;
mod convert;
mod data;
mod measure;
mod report;
mod sdk_floor;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "dynabridge-bench",
    about = "dynabridge side-by-side benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs every benchmark and writes the results (JSON + markdown).
    Run(Box<benches::RunArgs>),
    /// Writes `--items` generated items as DynamoDB-JSON lines (`{"Item": {...}}`).
    Gen {
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// Number of items.
        #[arg(long)]
        items: usize,
        /// Seed of the generator.
        #[arg(long, default_value_t = data::SEED)]
        seed: u64,
    },
    /// Converts a DynamoDB-JSON lines file to Parquet (one file per entity) with the codec.
    Convert {
        /// Input file (`gen` output).
        #[arg(long)]
        input: PathBuf,
        /// Output folder (`entity=<name>/part-00000.parquet`).
        #[arg(long)]
        out: PathBuf,
        /// Schema registry.
        #[arg(long)]
        registry: PathBuf,
    },
    /// Parses the same file with serde_json alone (the floor of any conversion).
    Floor {
        /// Input file (`gen` output).
        #[arg(long)]
        input: PathBuf,
    },
    /// CPU of one PutEvents call through the AWS SDK against an instant loopback server (the
    /// floor of stream-fanout's event sink).
    SdkFloor {
        /// Calls measured.
        #[arg(long, default_value_t = 1000)]
        calls: usize,
        /// Entries per call (EventBridge allows 10).
        #[arg(long, default_value_t = 10)]
        entries: usize,
        /// Approximate detail size of each entry.
        #[arg(long, default_value_t = 1200)]
        detail_bytes: usize,
    },
}

// The functions' allocator (shared::boot), so `convert` measures what a function does; the
// serde_json floor runs with it too.
#[global_allocator]
static GLOBAL_ALLOCATOR: dynabridge_shared::boot::Allocator = dynabridge_shared::boot::ALLOCATOR;

fn main() -> Result<()> {
    dynabridge_shared::boot::tune_allocator();
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            rt.block_on(benches::run(*args))
        }
        Command::Gen { out, items, seed } => {
            let written = data::write_items(&out, items, seed)?;
            println!("{}", serde_json::json!({"items": items, "bytes": written}));
            Ok(())
        }
        Command::Convert {
            input,
            out,
            registry,
        } => convert::convert(&input, &out, &registry),
        Command::Floor { input } => convert::floor(&input),
        Command::SdkFloor {
            calls,
            entries,
            detail_bytes,
        } => sdk_floor::run(calls, entries, detail_bytes),
    }
}
