//! Stream checkpoints over the wire: batches replayed, shifted, halved and extended as
//! Lambda's retries and bisection do, with a fake sink that records every write.

mod common;

use std::collections::{BTreeMap, HashMap};

use dynabridge_shared::checkpoint::{Batch, CheckpointError, Checkpoints, RangeInfo, Scope};

use common::{CONTROL, create_control_table, stack};

/// A sink with S3 semantics: a put overwrites the object at its key.
#[derive(Debug, Default)]
struct FakeSink {
    objects: BTreeMap<String, Vec<u64>>,
    puts: usize,
    deletes: usize,
}

impl FakeSink {
    /// How often each record appears across the objects.
    fn occurrences(&self) -> HashMap<u64, usize> {
        let mut seen = HashMap::new();
        for records in self.objects.values() {
            for r in records {
                *seen.entry(*r).or_insert(0) += 1;
            }
        }
        seen
    }

    fn assert_exactly_once(&self, expected: impl IntoIterator<Item = u64>) {
        let seen = self.occurrences();
        let expected: Vec<u64> = expected.into_iter().collect();
        for r in &expected {
            assert_eq!(
                seen.get(r),
                Some(&1),
                "record {r} in {:?}",
                self.objects.keys()
            );
        }
        assert_eq!(seen.len(), expected.len(), "no other records");
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Crash {
    No,
    AfterOpen,
    AfterWrite,
}

/// One key per range, named by its first sequence number: deterministic.
fn key_by_first(r: &RangeInfo<'_>) -> Vec<String> {
    vec![format!("cdc/shard-0/{}.jsonl", r.first_seq)]
}

/// What stream-fanout does for one sink: plan, write outputs, delete obsolete, commit.
async fn process(
    ckpt: &Checkpoints,
    scope: &Scope,
    seqs: &[u64],
    sink: &mut FakeSink,
    crash: Crash,
    outputs_for: fn(&RangeInfo<'_>) -> Vec<String>,
    key_of: fn(&str, u64) -> &'static str,
) -> Result<Batch, CheckpointError> {
    let strings: Vec<String> = seqs.iter().map(u64::to_string).collect();
    let batch = ckpt.begin(scope, &strings, outputs_for).await?;
    if crash == Crash::AfterOpen {
        return Ok(batch);
    }
    if let Some(range) = &batch.range {
        let records = &seqs[range.indices.clone()];
        for key in &range.outputs {
            let content: Vec<u64> = records
                .iter()
                .copied()
                .filter(|r| key_of(key, *r) == "match")
                .collect();
            sink.objects.insert(key.clone(), content);
            sink.puts += 1;
        }
        for key in &range.obsolete_outputs {
            sink.objects.remove(key);
            sink.deletes += 1;
        }
    }
    if crash == Crash::AfterWrite {
        return Ok(batch);
    }
    ckpt.commit(batch.clone()).await?;
    Ok(batch)
}

fn every_record(_key: &str, _seq: u64) -> &'static str {
    "match"
}

/// Sequence numbers crossing a digit-length boundary, so string order would be wrong.
fn seqs(from: u64, to: u64) -> Vec<u64> {
    (from..=to).map(|i| 9_950 + i).collect()
}

async fn setup() -> (dynabridge_devstack::LocalStack, Checkpoints, Scope) {
    let (stack, client) = stack();
    create_control_table(&client).await;
    let ckpt = Checkpoints::new(client, CONTROL);
    (
        stack,
        ckpt,
        Scope::new("stream-fanout", "shardId-0001", "cdc"),
    )
}

#[tokio::test]
async fn replays_of_a_committed_batch_write_nothing_and_cost_no_writes() {
    let (_stack, ckpt, scope) = setup().await;
    let mut sink = FakeSink::default();
    let batch = seqs(1, 100);
    process(
        &ckpt,
        &scope,
        &batch,
        &mut sink,
        Crash::No,
        key_by_first,
        every_record,
    )
    .await
    .unwrap();
    assert_eq!(sink.puts, 1);
    let after_first = ckpt.stats();
    assert_eq!(after_first.writes, 2, "open + commit");
    for replay in 1..=3 {
        let b = process(
            &ckpt,
            &scope,
            &batch,
            &mut sink,
            Crash::No,
            key_by_first,
            every_record,
        )
        .await
        .unwrap();
        assert_eq!(b.durable, 100, "replay {replay}");
        assert!(b.range.is_none());
    }
    assert_eq!(sink.puts, 1);
    assert_eq!(ckpt.stats().writes, 2, "replays write nothing");
    assert_eq!(ckpt.stats().reads, 4);
    sink.assert_exactly_once(batch);
}

#[tokio::test]
async fn shifted_starts_skip_the_committed_part() {
    let (_stack, ckpt, scope) = setup().await;
    let mut sink = FakeSink::default();
    process(
        &ckpt,
        &scope,
        &seqs(1, 100),
        &mut sink,
        Crash::No,
        key_by_first,
        every_record,
    )
    .await
    .unwrap();
    // A retry that begins in the middle of the committed batch and runs past it.
    let b = process(
        &ckpt,
        &scope,
        &seqs(51, 150),
        &mut sink,
        Crash::No,
        key_by_first,
        every_record,
    )
    .await
    .unwrap();
    assert_eq!(b.durable, 50);
    assert_eq!(b.range.as_ref().unwrap().indices, 50..100);
    // A suffix and a prefix of committed batches: nothing to do.
    for (from, to) in [(120, 150), (1, 10), (90, 110)] {
        let b = process(
            &ckpt,
            &scope,
            &seqs(from, to),
            &mut sink,
            Crash::No,
            key_by_first,
            every_record,
        )
        .await
        .unwrap();
        assert!(b.range.is_none(), "{from}..{to}");
    }
    assert_eq!(sink.puts, 2);
    sink.assert_exactly_once(seqs(1, 150));
}

#[tokio::test]
async fn crash_after_open_or_write_then_replays_rewrite_the_same_object() {
    for crash in [Crash::AfterOpen, Crash::AfterWrite] {
        for crashes in 1..=3 {
            let (_stack, ckpt, scope) = setup().await;
            let mut sink = FakeSink::default();
            let batch = seqs(1, 100);
            for _ in 0..crashes {
                process(
                    &ckpt,
                    &scope,
                    &batch,
                    &mut sink,
                    crash,
                    key_by_first,
                    every_record,
                )
                .await
                .unwrap();
            }
            let b = process(
                &ckpt,
                &scope,
                &batch,
                &mut sink,
                Crash::No,
                key_by_first,
                every_record,
            )
            .await
            .unwrap();
            let range = b.range.unwrap();
            assert!(range.resumed, "{crash:?} x{crashes}");
            assert_eq!(
                sink.objects.len(),
                1,
                "{crash:?} x{crashes}: one object, rewritten"
            );
            sink.assert_exactly_once(batch.clone());
            // One open for the first attempt; exact replays reuse it; one commit.
            assert_eq!(ckpt.stats().writes, 2, "{crash:?} x{crashes}");
            let (hwm, pending) = ckpt.get(&scope).await.unwrap();
            assert!(pending.is_none());
            assert_eq!(hwm.unwrap(), format!("{:0>40}", batch[99]));
        }
    }
}

#[tokio::test]
async fn bisection_after_a_crash_rewrites_the_first_half_then_continues() {
    let (_stack, ckpt, scope) = setup().await;
    let mut sink = FakeSink::default();
    let all = seqs(1, 100);
    process(
        &ckpt,
        &scope,
        &all,
        &mut sink,
        Crash::AfterWrite,
        key_by_first,
        every_record,
    )
    .await
    .unwrap();
    // Lambda halves the failed batch: first half, crashing once more, then succeeding.
    process(
        &ckpt,
        &scope,
        &all[..50],
        &mut sink,
        Crash::AfterWrite,
        key_by_first,
        every_record,
    )
    .await
    .unwrap();
    let b = process(
        &ckpt,
        &scope,
        &all[..50],
        &mut sink,
        Crash::No,
        key_by_first,
        every_record,
    )
    .await
    .unwrap();
    assert!(b.range.unwrap().resumed);
    process(
        &ckpt,
        &scope,
        &all[50..],
        &mut sink,
        Crash::No,
        key_by_first,
        every_record,
    )
    .await
    .unwrap();
    // And the whole batch once more, as a late duplicate delivery.
    let b = process(
        &ckpt,
        &scope,
        &all,
        &mut sink,
        Crash::No,
        key_by_first,
        every_record,
    )
    .await
    .unwrap();
    assert!(b.range.is_none());
    assert_eq!(sink.objects.len(), 2);
    sink.assert_exactly_once(all);
}

#[tokio::test]
async fn an_extended_retry_grows_the_pending_range_in_place() {
    let (_stack, ckpt, scope) = setup().await;
    let mut sink = FakeSink::default();
    let all = seqs(1, 100);
    process(
        &ckpt,
        &scope,
        &all[..40],
        &mut sink,
        Crash::AfterWrite,
        key_by_first,
        every_record,
    )
    .await
    .unwrap();
    let b = process(
        &ckpt,
        &scope,
        &all,
        &mut sink,
        Crash::No,
        key_by_first,
        every_record,
    )
    .await
    .unwrap();
    assert!(b.range.unwrap().resumed);
    assert_eq!(sink.objects.len(), 1);
    sink.assert_exactly_once(all);
}

/// Keys per "entity" (odd/even sequence numbers) so a shorter retry produces fewer keys.
fn key_by_parity(r: &RangeInfo<'_>) -> Vec<String> {
    // Consecutive integers: a range of two or more holds both parities.
    let first: u64 = r.first_seq.parse().unwrap_or(0);
    let mut keys = Vec::new();
    if r.indices.len() > 1 || first % 2 == 1 {
        keys.push(format!("cdc/{}/odd", r.first_seq));
    }
    if r.indices.len() > 1 || first.is_multiple_of(2) {
        keys.push(format!("cdc/{}/even", r.first_seq));
    }
    keys
}

fn parity_filter(key: &str, seq: u64) -> &'static str {
    if key.ends_with("/odd") == (seq % 2 == 1) {
        "match"
    } else {
        "no"
    }
}

#[tokio::test]
async fn a_shorter_retry_deletes_outputs_it_no_longer_produces() {
    let (_stack, ckpt, scope) = setup().await;
    let mut sink = FakeSink::default();
    let all: Vec<u64> = (1..=10).collect();
    process(
        &ckpt,
        &scope,
        &all,
        &mut sink,
        Crash::AfterWrite,
        key_by_parity,
        parity_filter,
    )
    .await
    .unwrap();
    assert_eq!(sink.objects.len(), 2);
    // The retry holds only record 1 (odd): the even object must go.
    let b = process(
        &ckpt,
        &scope,
        &all[..1],
        &mut sink,
        Crash::No,
        key_by_parity,
        parity_filter,
    )
    .await
    .unwrap();
    let range = b.range.unwrap();
    assert_eq!(range.obsolete_outputs.len(), 1);
    assert!(range.obsolete_outputs[0].ends_with("/even"));
    process(
        &ckpt,
        &scope,
        &all[1..],
        &mut sink,
        Crash::No,
        key_by_parity,
        parity_filter,
    )
    .await
    .unwrap();
    sink.assert_exactly_once(all);
}

#[tokio::test]
async fn a_retry_past_the_pending_start_orphans_it_and_loses_nothing() {
    let (_stack, ckpt, scope) = setup().await;
    let mut sink = FakeSink::default();
    let all = seqs(1, 100);
    process(
        &ckpt,
        &scope,
        &all,
        &mut sink,
        Crash::AfterWrite,
        key_by_first,
        every_record,
    )
    .await
    .unwrap();
    // The event source moved on to record 51 without a commit (e.g. retries exhausted).
    let b = process(
        &ckpt,
        &scope,
        &all[50..],
        &mut sink,
        Crash::No,
        key_by_first,
        every_record,
    )
    .await
    .unwrap();
    let orphan = b.orphaned.expect("the crashed attempt's range is reported");
    assert_eq!(orphan.first_seq, format!("{:0>40}", all[0]));
    // Nothing lost; the overlap is at least once (documented), nothing else duplicated.
    let seen = sink.occurrences();
    assert!(all.iter().all(|r| seen.contains_key(r)));
    assert!(all[..50].iter().all(|r| seen[r] == 1));
}

#[tokio::test]
async fn control_writes_per_1000_record_batch_are_constant() {
    let (_stack, ckpt, scope) = setup().await;
    let mut sink = FakeSink::default();
    let batch = seqs(1, 1000);
    process(
        &ckpt,
        &scope,
        &batch,
        &mut sink,
        Crash::No,
        key_by_first,
        every_record,
    )
    .await
    .unwrap();
    let stats = ckpt.stats();
    println!(
        "control-table requests for one 1,000-record batch: {} writes, {} reads",
        stats.writes, stats.reads
    );
    assert_eq!(stats.writes, 2);
    assert_eq!(stats.reads, 1);
    // Two sinks, ten batches: 2 writes per batch per sink, independent of batch size.
    let events = Scope::new("stream-fanout", "shardId-0001", "events");
    for i in 1..10u64 {
        let b = seqs(i * 1000 + 1, (i + 1) * 1000);
        process(
            &ckpt,
            &scope,
            &b,
            &mut sink,
            Crash::No,
            key_by_first,
            every_record,
        )
        .await
        .unwrap();
        process(
            &ckpt,
            &events,
            &b,
            &mut sink,
            Crash::No,
            |_| Vec::new(),
            every_record,
        )
        .await
        .unwrap();
    }
    assert_eq!(ckpt.stats().writes, 2 + 9 * 2 * 2);
}

#[tokio::test]
async fn partial_commit_and_bad_input() {
    let (_stack, ckpt, scope) = setup().await;
    let batch: Vec<String> = seqs(1, 10).iter().map(u64::to_string).collect();
    let b = ckpt.begin(&scope, &batch, key_by_first).await.unwrap();
    ckpt.commit_through(b, 3).await.unwrap();
    let (hwm, pending) = ckpt.get(&scope).await.unwrap();
    assert_eq!(hwm.unwrap(), format!("{:0>40}", batch[3]));
    assert!(pending.is_none());
    let b = ckpt.begin(&scope, &batch, key_by_first).await.unwrap();
    assert_eq!(b.durable, 4);

    let err = ckpt
        .begin(&scope, &["5", "4"], key_by_first)
        .await
        .unwrap_err();
    assert!(matches!(err, CheckpointError::NotOrdered { .. }), "{err}");
    let err = ckpt
        .begin(&scope, &["12x"], key_by_first)
        .await
        .unwrap_err();
    assert!(matches!(err, CheckpointError::InvalidSequence(_)), "{err}");

    // A stale plan cannot commit over a newer one (two consumers on one shard).
    let other: Vec<String> = seqs(11, 20).iter().map(u64::to_string).collect();
    let stale = ckpt.begin(&scope, &other, key_by_first).await.unwrap();
    let fresh = ckpt.begin(&scope, &other, key_by_first).await.unwrap();
    ckpt.commit(fresh).await.unwrap();
    let err = ckpt.commit(stale).await.unwrap_err();
    assert!(matches!(err, CheckpointError::Conflict { .. }), "{err}");
}
