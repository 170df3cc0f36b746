//! Every sample event parses into the event type its function declares: the shared ones at
//! the top of `events/`, and every `events/<function>/*.json` (classified by shape, so files
//! other functions' issues add are covered too). `tests/tests/sample_events.rs` also runs the
//! stream-fanout samples through the real handler on the local stack.

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use serde_json::Value;

fn read(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_sample_event_is_covered_and_parses() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "s3-object-created.json",
            "schedule.json",
            "stream-batch.json"
        ]
    );

    let stream: StreamEvent = serde_json::from_str(&read("stream-batch.json")).unwrap();
    assert_eq!(stream.records.len(), 2);
    assert_eq!(
        stream.records[1].user_identity.as_ref().unwrap().type_,
        "Service"
    );
    assert_eq!(
        stream.records[0].change.sequence_number.as_deref(),
        Some("100000000000000000001")
    );

    let schedule: EventBridgeEvent<Value> = serde_json::from_str(&read("schedule.json")).unwrap();
    assert_eq!(schedule.detail_type, "Scheduled Event");

    let s3: EventBridgeEvent<Value> =
        serde_json::from_str(&read("s3-object-created.json")).unwrap();
    assert_eq!(s3.detail_type, "Object Created");
    assert_eq!(
        s3.detail["object"]["key"],
        "inbound/Order/part-00000.parquet"
    );
}

/// What a per-function sample event is, judged by its shape.
#[derive(Debug, PartialEq)]
enum Kind {
    /// A DynamoDB Streams batch in the tumbling-window envelope.
    StreamBatch,
    /// An EventBridge event (S3 Object Created, or a schedule in the classic envelope).
    EventBridge,
    /// `{"dynabridgeContinuation": {...}}` (shared::continuation).
    Continuation,
    /// An aged-export action event (`start` from the scheduler, `segment`, `finalize`).
    ExportAction,
}

fn classify(function: &str, name: &str, v: &Value) -> Kind {
    if v.get("Records").is_some() {
        Kind::StreamBatch
    } else if v.get("detail-type").is_some() {
        Kind::EventBridge
    } else if v.get("dynabridgeContinuation").is_some() {
        Kind::Continuation
    } else if function == "aged-export" && v.get("action").is_some() {
        Kind::ExportAction
    } else {
        panic!("events/{function}/{name}: not a trigger event any function declares")
    }
}

/// Every `events/<function>/*.json` parses into the event type of its trigger, and every
/// function folder names a function of the workspace. Stream batches must use the
/// tumbling-window envelope the template configures (shard id, window, state), and the ops in
/// a file named after an op are that op (`insert`, `modify`, `remove`, `ttl-expire`).
#[test]
fn every_function_event_parses_into_its_trigger_type() {
    use aws_lambda_events::event::eventbridge::EventBridgeEvent;
    use dynabridge_shared::codec::Op;
    use dynabridge_shared::stream::StreamBatch;

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
    let functions = [
        "stream-fanout",
        "incremental-sync",
        "aged-export",
        "ttl-cleanup",
    ];
    let mut checked = 0;
    for dir in std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()) {
        if !dir.is_dir() {
            continue;
        }
        let function = dir.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            functions.contains(&function.as_str()),
            "events/{function}/ does not name a function"
        );
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for path in files {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                name.ends_with(".json"),
                "events/{function}/{name}: not JSON"
            );
            let text = std::fs::read_to_string(&path).unwrap();
            let v: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("events/{function}/{name}: {e}"));
            match classify(&function, &name, &v) {
                Kind::StreamBatch => {
                    assert!(
                        ["stream-fanout", "ttl-cleanup"].contains(&function.as_str()),
                        "events/{function}/{name}: a stream batch for a function without a stream trigger"
                    );
                    let typed: StreamEvent = serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("events/{function}/{name}: {e}"));
                    assert!(!typed.records.is_empty(), "events/{function}/{name}");
                    let batch = StreamBatch::parse(&text)
                        .unwrap_or_else(|e| panic!("events/{function}/{name}: {e}"));
                    assert!(batch.windowed, "events/{function}/{name}: not windowed");
                    assert!(
                        batch.shard_id.is_some(),
                        "events/{function}/{name}: no shardId"
                    );
                    let ops: Vec<Op> = batch
                        .records
                        .iter()
                        .map(|r| {
                            r.change.as_ref().unwrap_or_else(|p| {
                                panic!("events/{function}/{name}: poison record {p:?}")
                            })
                        })
                        .map(|c| c.op)
                        .collect();
                    let want = match name.trim_end_matches(".json") {
                        "insert" => Some(Op::Insert),
                        "modify" => Some(Op::Modify),
                        "remove" => Some(Op::Remove),
                        n if n.starts_with("ttl-expire") => Some(Op::Expire),
                        _ => None,
                    };
                    if let Some(want) = want {
                        assert!(
                            ops.iter().all(|o| *o == want),
                            "events/{function}/{name}: {ops:?}"
                        );
                    }
                    if function == "ttl-cleanup" {
                        // The mapping's filter only lets TTL deletions through.
                        assert!(
                            ops.iter().all(|o| *o == Op::Expire),
                            "events/{function}/{name}"
                        );
                    }
                }
                Kind::EventBridge => {
                    let e: EventBridgeEvent<Value> = serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("events/{function}/{name}: {e}"));
                    match e.detail_type.as_str() {
                        "Scheduled Event" => assert!(
                            ["aws.events", "aws.scheduler"].contains(&e.source.as_str()),
                            "events/{function}/{name}"
                        ),
                        "Object Created" => {
                            assert_eq!(function, "incremental-sync", "events/{function}/{name}");
                            let key = e.detail["object"]["key"].as_str().unwrap_or_default();
                            assert!(key.starts_with("inbound/"), "events/{function}/{name}");
                        }
                        other => panic!("events/{function}/{name}: unexpected detail-type {other}"),
                    }
                }
                Kind::Continuation => {
                    let c = &v["dynabridgeContinuation"];
                    assert_eq!(c["function"], function.as_str(), "events/{function}/{name}");
                    assert!(
                        c["hop"].as_u64().is_some_and(|h| h >= 1),
                        "events/{function}/{name}"
                    );
                    assert!(c["state"].is_object(), "events/{function}/{name}");
                }
                Kind::ExportAction => {
                    let action = v["action"].as_str().unwrap_or_default();
                    assert!(
                        ["start", "segment", "finalize"].contains(&action),
                        "events/{function}/{name}: unknown action {action:?}"
                    );
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 6, "only {checked} per-function events found");
}
