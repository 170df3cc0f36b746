//! The measured Rust programs of the conversion benchmark, each run as its own child process.
//!
//! - [`convert`]: DynamoDB-JSON lines → Parquet with the codec, the way the functions do it:
//!   every item parsed into the codec's item type, its entity selected and version upcast by
//!   the registry, validated and encoded into the lake schema (typed columns, exact decimals,
//!   µs timestamps, `_extra`), flushed every [`FLUSH_ROWS`] rows into one streaming
//!   Parquet writer per entity (ZSTD, the lake's writer properties). Parquet encoding runs on
//!   one thread per entity file (`shared::lake::ParquetPipeline`), overlapping with decoding.
//!   Memory is bounded by the flush size, the batches in flight and one open row group per
//!   entity, whatever the input size.
//! - [`floor`]: the same bytes parsed by `serde_json` into a `Value` and dropped: what any
//!   conversion pays at least.
//!
//! Both print one JSON line with the item count and their own elapsed seconds (reading
//! included, process start and registry load excluded), which the orchestrator turns into
//! items/s; the orchestrator measures peak RSS and CPU itself (`wait4`).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use dynabridge_shared::codec::{EntityEncoders, ItemRef, Op, RowMeta};
use dynabridge_shared::lake::{FileMeta, ParquetOptions, ParquetPipeline, writer_properties};
use dynabridge_shared::schema::Registry;
use serde::Deserialize;

/// Rows buffered across entities before they are encoded into the Parquet writers.
pub const FLUSH_ROWS: usize = 8192;

/// Record batches queued per entity file before decoding waits for Parquet encoding.
const PIPELINE_DEPTH: usize = 2;

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(rename = "Item", borrow)]
    item: ItemRef<'a>,
}

fn lines(input: &Path) -> Result<impl BufRead> {
    let file = File::open(input).with_context(|| format!("opening {}", input.display()))?;
    Ok(BufReader::with_capacity(1 << 20, file))
}

/// Converts `input` into `out/entity=<name>/part-00000.parquet`.
pub fn convert(input: &Path, out: &Path, registry: &Path) -> Result<()> {
    let registry = Registry::from_path(registry)?;
    let started = Instant::now();
    let event_time = chrono::Utc::now().timestamp_micros();
    let mut reader = lines(input)?;
    let mut encoders = EntityEncoders::new(&registry);
    let mut writers: BTreeMap<String, ParquetPipeline<std::io::BufWriter<File>>> = BTreeMap::new();
    let mut line = Vec::with_capacity(4096);
    let (mut items, mut errors, mut rows) = (0u64, 0u64, 0u64);
    let flush = |encoders: &mut EntityEncoders,
                 writers: &mut BTreeMap<String, ParquetPipeline<std::io::BufWriter<File>>>|
     -> Result<u64> {
        let mut n = 0;
        for (entity, batch) in encoders.finish()? {
            n += batch.num_rows() as u64;
            let writer = match writers.get_mut(&entity) {
                Some(w) => w,
                None => {
                    let dir = out.join(format!("entity={entity}"));
                    std::fs::create_dir_all(&dir)?;
                    let meta = FileMeta::for_entity(&registry, registry.entity(&entity)?);
                    let props = writer_properties(&ParquetOptions::streaming(), &meta)?;
                    let file = File::create(dir.join("part-00000.parquet"))?;
                    let sink = std::io::BufWriter::with_capacity(1 << 20, file);
                    let w = ParquetPipeline::spawn(sink, batch.schema(), props, PIPELINE_DEPTH)?;
                    writers.entry(entity.clone()).or_insert(w)
                }
            };
            writer.write(batch)?;
        }
        Ok(n)
    };
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        // One UTF-8 check of the whole line; parsing from `&str` then skips it per string.
        let text =
            std::str::from_utf8(&line).map_err(|e| anyhow!("line {}: {e}", items + errors + 1))?;
        let mut parsed: Line<'_> =
            serde_json::from_str(text).map_err(|e| anyhow!("line {}: {e}", items + errors + 1))?;
        let seq = format!("{items:020}");
        let meta = RowMeta {
            op: Op::Snapshot,
            seq: &seq,
            event_time_micros: event_time,
        };
        match encoders.append_view(&mut parsed.item, &meta) {
            Ok(_) => items += 1,
            Err(_) => errors += 1,
        }
        if encoders.len() >= FLUSH_ROWS {
            rows += flush(&mut encoders, &mut writers)?;
        }
    }
    rows += flush(&mut encoders, &mut writers)?;
    let files = writers.len();
    for (_, w) in writers {
        use std::io::Write;
        w.finish()?.flush()?;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "items": items, "rows": rows, "errors": errors, "files": files, "seconds": seconds
        })
    );
    Ok(())
}

/// Parses every line of `input` into a `serde_json::Value` and drops it.
pub fn floor(input: &Path) -> Result<()> {
    let started = Instant::now();
    let mut reader = lines(input)?;
    let mut line = Vec::with_capacity(4096);
    let mut items = 0u64;
    let mut fields = 0usize;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let v: serde_json::Value = serde_json::from_slice(&line)?;
        fields += v["Item"].as_object().map_or(0, serde_json::Map::len);
        items += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({"items": items, "fields": fields, "seconds": seconds})
    );
    Ok(())
}
