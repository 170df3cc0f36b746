//! Every shared sample event at the top of `events/` parses into the event type its function
//! declares. Function-specific events live in `events/<function>/` and are exercised by that
//! function's end-to-end tests.

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
