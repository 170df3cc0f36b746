//! `schema-check OLD.json NEW.json`: refuses a registry change that would stop readers from
//! reading items written under the previous registry (see
//! `dynabridge_shared::schema::compat`). Exit status: 0 compatible, 1 incompatible,
//! 2 a registry cannot be loaded.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use dynabridge_shared::schema::{Registry, compat};

/// Checks that NEW is a BACKWARD-compatible evolution of OLD.
#[derive(Debug, Parser)]
#[command(name = "schema-check", version)]
struct Args {
    /// The registry currently deployed.
    old: PathBuf,
    /// The registry about to be deployed.
    new: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let load = |p: &PathBuf| Registry::from_path(p);
    let (old, new) = match (load(&args.old), load(&args.new)) {
        (Ok(old), Ok(new)) => (old, new),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("schema-check: {e}");
            return ExitCode::from(2);
        }
    };
    let problems = compat::check_backward(&old, &new);
    if problems.is_empty() {
        println!(
            "schema-check: {} is compatible with {} (fingerprint {})",
            args.new.display(),
            args.old.display(),
            new.fingerprint()
        );
        return ExitCode::SUCCESS;
    }
    for p in &problems {
        eprintln!("schema-check: incompatible: {p}");
    }
    ExitCode::from(1)
}
