//! Locating the project's Python venv (`.venv`), which `scripts/bootstrap` creates with the
//! pinned tools (`moto[server]`, and later pyarrow/pyspark for the reference readers).

use std::path::{Path, PathBuf};

/// Variable that overrides where the venv is.
pub const VENV_VAR: &str = "DYNABRIDGE_VENV";

/// Finds the venv: `$DYNABRIDGE_VENV`, else the nearest `.venv` above the current directory or
/// above this crate's manifest directory.
pub fn find_venv() -> Option<PathBuf> {
    if let Ok(p) = std::env::var(VENV_VAR) {
        let p = PathBuf::from(p);
        if p.join("bin").is_dir() {
            return Some(p);
        }
    }
    let starts = [
        std::env::current_dir().ok(),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR"))),
    ];
    starts
        .into_iter()
        .flatten()
        .find_map(|start| nearest_venv(&start))
}

fn nearest_venv(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|dir| dir.join(".venv"))
        .find(|venv| venv.join("bin").is_dir())
}

/// The path of an executable inside the venv.
pub fn venv_bin(name: &str) -> Option<PathBuf> {
    find_venv()
        .map(|v| v.join("bin").join(name))
        .filter(|p| p.exists())
}
