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
    assert!(stdout.contains("TTL sweep deleted"), "{stdout}");
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
}
