//! EventBridge "Scheduled Event" payloads, shaped exactly as EventBridge Scheduler / rules
//! deliver them to a Lambda target.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::stack::{ACCOUNT_ID, REGION};

/// A scheduled event from the rule `rule_name`, fired at `time`, with an optional `detail`
/// (rules with an input transformer can pass one; plain schedules send `{}`).
pub fn scheduled_event(rule_name: &str, time: DateTime<Utc>, detail: Option<Value>) -> Value {
    json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": time.to_rfc3339_opts(SecondsFormat::Secs, true),
        "region": REGION,
        "resources": [format!("arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{rule_name}")],
        "detail": detail.unwrap_or_else(|| json!({})),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_scheduled_event_shape() {
        let t = DateTime::parse_from_rfc3339("2026-11-21T06:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let e = scheduled_event("nightly", t, None);
        assert_eq!(e["detail-type"], "Scheduled Event");
        assert_eq!(e["source"], "aws.events");
        assert_eq!(e["time"], "2026-11-21T06:00:00Z");
        assert!(
            e["resources"][0]
                .as_str()
                .unwrap()
                .ends_with(":rule/nightly")
        );
        assert_eq!(e["detail"], json!({}));
    }
}
