//! How things are measured.
//!
//! - **Child programs** ([`run_child`]): started, waited for with `wait4`, which returns the
//!   child's own `rusage`: peak RSS (`ru_maxrss`) and user + system CPU time. Only that
//!   process is counted (not the orchestrator, not the local stack).
//! - **Long-lived function processes** ([`proc_cpu`], [`proc_peak_rss_kb`]): user + system
//!   time from `/proc/<pid>/stat` (all threads, including exited ones), read before and after
//!   the invocations measured; peak RSS from `VmHWM` in `/proc/<pid>/status`.
//! - **Medians** over the runs ([`median`]); every run's value is kept in the results.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// What one child process used.
#[derive(Debug, Clone)]
pub struct ChildUsage {
    /// Peak resident set size, KiB.
    pub max_rss_kb: u64,
    /// User + system CPU time.
    pub cpu: Duration,
    /// Everything it printed on stdout.
    pub stdout: String,
}

impl ChildUsage {
    /// The last stdout line that parses as JSON (the programs' report line).
    pub fn report(&self) -> Result<serde_json::Value> {
        self.stdout
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str(l.trim()).ok())
            .with_context(|| format!("no JSON report line in output: {:?}", self.stdout))
    }
}

fn timeval(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
}

/// Runs `cmd` to completion (stderr inherited) and returns its resource usage; a non-zero
/// exit is an error carrying its output.
pub fn run_child(cmd: &mut Command) -> Result<ChildUsage> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    let mut stdout = child.stdout.take().context("child stdout")?;
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is plain old data; zeroed is a valid value that wait4 overwrites.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own unreaped child; the pointers are valid for the call. `child`
    // is not waited on afterwards, so std never sees the reaped pid.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if rc != pid {
        bail!("wait4({pid}) failed: {}", std::io::Error::last_os_error());
    }
    let stdout = reader.join().unwrap_or_default();
    let exited_ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    if !exited_ok {
        bail!("{cmd:?} failed (wait status {status}); stdout: {stdout}");
    }
    Ok(ChildUsage {
        max_rss_kb: usage.ru_maxrss.max(0) as u64,
        cpu: timeval(usage.ru_utime) + timeval(usage.ru_stime),
        stdout,
    })
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// User + system CPU time of process `pid` so far (all its threads).
pub fn proc_cpu(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("stat field {i}"))
    };
    let total = ticks(11)? + ticks(12)?;
    Ok(Duration::from_secs_f64(total as f64 / clock_ticks()))
}

/// Peak RSS (`VmHWM`) of process `pid`, KiB.
pub fn proc_peak_rss_kb(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmHWM")
}

/// The median (mean of the middle two for an even count); `NaN` for no values.
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn child_usage_and_proc_counters() {
        let usage = run_child(Command::new("sh").args(["-c", "echo '{\"ok\": 1}'"])).unwrap();
        assert_eq!(usage.report().unwrap()["ok"], 1);
        assert!(usage.max_rss_kb > 0);
        assert!(run_child(&mut Command::new("false")).is_err());
        let me = std::process::id();
        assert!(proc_peak_rss_kb(me).unwrap() > 0);
        let before = proc_cpu(me).unwrap();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(proc_cpu(me).unwrap() >= before);
    }
}
