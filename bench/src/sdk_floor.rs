//! The SDK floor of stream-fanout's event sink: the CPU one `PutEvents` call of 10 entries
//! costs the calling process with the AWS SDK for Rust, configured as the functions configure
//! it (`shared::clients`), against a loopback server that answers at once with a canned
//! success — so nothing but the client's own work (serialising, signing, HTTP, parsing the
//! response) is measured. EventBridge accepts at most 10 entries per call, so a 1,000-record
//! batch costs at least 100 of these whatever the function does around them; the figure
//! bounds what stream-fanout's CPU per record can reach (bench/README.md, benchmark 2).
//!
//! Runs in its own process; prints one JSON line: calls, entries, CPU µs per call (user +
//! system time of the client thread only) and per entry.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

/// One canned answer per request (keep-alive), on its own thread.
fn serve(listener: TcpListener, entries: usize) -> Result<()> {
    let body = serde_json::json!({
        "FailedEntryCount": 0,
        "Entries": (0..entries).map(|i| serde_json::json!({"EventId": format!("id-{i}")})).collect::<Vec<_>>(),
    })
    .to_string();
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\nx-amzn-RequestId: 1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    for stream in listener.incoming() {
        let stream = stream?;
        let response = response.clone();
        std::thread::spawn(move || -> Result<()> {
            let mut reader = BufReader::new(stream.try_clone()?);
            let mut writer = stream;
            loop {
                let mut length = 0usize;
                let mut line = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line)? == 0 {
                        return Ok(());
                    }
                    let l = line.trim_end();
                    if l.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = l.split_once(':')
                        && k.eq_ignore_ascii_case("content-length")
                    {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; length];
                reader.read_exact(&mut body)?;
                writer.write_all(response.as_bytes())?;
            }
        });
    }
    Ok(())
}

/// CPU time of the calling thread: the client's (the current-thread runtime runs the
/// request, the connection and the response on it); the server thread is not counted.
fn thread_cpu() -> Duration {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// A detail like stream-fanout's (keys, two ~500-byte images as plain JSON).
fn detail(i: usize, bytes: usize) -> String {
    let image = |tag: &str| {
        serde_json::json!({
            "pk": format!("ORDER#{i:08}"), "sk": "ORDER", "status": tag, "total": 129.9,
            "lines": [{"sku": "SKU-FIG", "qty": 1, "unit_price": 180.44}],
            "note": "x".repeat(bytes.saturating_sub(400) / 2),
        })
    };
    serde_json::json!({
        "eventId": format!("e{i}"), "sequenceNumber": format!("{}", 100_000 + i),
        "table": "app", "entity": "Order", "schemaVersion": 2, "op": "MODIFY",
        "eventTime": "2026-11-21T00:00:00.000000Z",
        "keys": {"pk": format!("ORDER#{i:08}"), "sk": "ORDER"},
        "newImage": image("SHIPPED"), "oldImage": image("PAID"),
    })
    .to_string()
}

/// Runs `calls` PutEvents calls of `entries` entries and prints the CPU per call.
pub fn run(calls: usize, entries: usize, detail_bytes: usize) -> Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    std::thread::spawn(move || serve(listener, entries));
    // SAFETY: single-threaded at this point but for the server thread, which reads no
    // environment.
    unsafe {
        std::env::set_var("AWS_ENDPOINT_URL_EVENTBRIDGE", &endpoint);
        std::env::set_var("AWS_REGION", "us-east-1");
        std::env::set_var("AWS_ACCESS_KEY_ID", "bench");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "bench");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let details: Vec<String> = (0..entries).map(|i| detail(i, detail_bytes)).collect();
    let result = rt.block_on(async {
        let clients = dynabridge_shared::clients::AwsClients::from_env(true).await;
        let client = clients.eventbridge;
        let call = || {
            let entries: Vec<PutEventsRequestEntry> = details
                .iter()
                .map(|d| {
                    PutEventsRequestEntry::builder()
                        .event_bus_name("bench-bus")
                        .source("dynabridge.app")
                        .detail_type("Order Modified")
                        .detail(d.clone())
                        .build()
                })
                .collect();
            client.put_events().set_entries(Some(entries)).send()
        };
        for _ in 0..20 {
            call().await.context("warm-up PutEvents")?;
        }
        let cpu0 = thread_cpu();
        let started = Instant::now();
        for _ in 0..calls {
            let out = call().await.context("PutEvents")?;
            anyhow::ensure!(out.failed_entry_count() == 0, "failed entries");
        }
        Ok::<_, anyhow::Error>((thread_cpu() - cpu0, started.elapsed()))
    })?;
    let (cpu, wall) = result;
    let per_call = cpu.as_secs_f64() * 1e6 / calls as f64;
    println!(
        "{}",
        serde_json::json!({
            "calls": calls, "entries": entries, "detail_bytes": details[0].len(),
            "cpu_us_per_call": per_call, "cpu_us_per_entry": per_call / entries as f64,
            "wall_us_per_call": wall.as_secs_f64() * 1e6 / calls as f64,
        })
    );
    Ok(())
}
