//! The README's run command (`dynabridge-local`) works end to end and leaves the lake as a
//! plain folder.

use dynabridge_devstack::harness::workspace_binary;

#[test]
fn local_runner_runs_every_function_and_leaves_a_lake_folder() {
    let runner =
        workspace_binary("dynabridge-local").expect("cargo build --workspace --bins first");
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("run");
    let out = std::process::Command::new(runner)
        .args(["--customers", "5", "--sessions", "3", "--data-dir"])
        .arg(&data_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("sample data loaded:"), "{stdout}");
    for f in [
        "stream-fanout",
        "ttl-cleanup",
        "aged-export",
        "incremental-sync",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.trim_start().starts_with(f) && l.contains("cold start")),
            "{f} was not driven:\n{stdout}"
        );
    }
    assert!(stdout.contains("TTL sweep (embedded)"), "{stdout}");
    // incremental-sync: the Spark-written fixtures dropped into inbound/ arrive in DynamoDB.
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("item ORDER#1/ORDER in DynamoDB:") && l.contains("total=12345.67")),
        "{stdout}"
    );
    assert!(stdout.contains("_SUCCESS: refused Hidden"), "{stdout}");
    assert!(data_dir.join("s3").join("dynabridge-lake").is_dir());
    assert!(data_dir.join("logs").join("stream-fanout.log").is_file());

    // The lake is a plain folder any Parquet reader opens: pyarrow reads every file.
    let lake = data_dir.join("s3").join("dynabridge-lake");
    let python =
        dynabridge_devstack::venv::venv_bin("python").expect("project venv (scripts/bootstrap)");
    let script = r#"
import sys, pathlib, pyarrow.parquet as pq
files = sorted(pathlib.Path(sys.argv[1]).rglob("*.parquet"))
rows = {}
for f in files:
    t = pq.read_table(f)
    area = f.relative_to(sys.argv[1]).parts[0]
    rows[area] = rows.get(area, 0) + t.num_rows
    if area in ("cdc", "expired", "archive"):
        assert "_seq" in t.column_names and "_op" in t.column_names, f
print(len(files), rows.get("cdc", 0), rows.get("expired", 0))
"#;
    let out = std::process::Command::new(python)
        .args(["-c", script])
        .arg(&lake)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let counts: Vec<usize> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(counts[0] >= 4, "cdc + expired files: {counts:?}");
    assert!(counts[1] > 0 && counts[2] > 0, "{counts:?}");
}
