//! Which items are aged: reading an age attribute (ISO-8601 or epoch s/ms) and the
//! conservative server-side filter that narrows what each page returns.
//!
//! The filter only saves transfer and CPU; the decision is always made here, exactly, per
//! entity. The filter is widened so it never drops an aged item: ISO strings are compared
//! as text against a cutoff one day later (an offset such as `+14:00` cannot move an instant
//! by more), epoch numbers against a cutoff rounded up.

use std::collections::{BTreeSet, HashMap};

use aws_sdk_dynamodb::types::AttributeValue as SdkValue;
use chrono::{DateTime, SecondsFormat};
use dynabridge_shared::scan::Filter;
use serde_dynamo::AttributeValue;

use crate::config::{AgeFormat, AgeRule, Config};

/// Epoch milliseconds at or above which `auto` reads a number as milliseconds (1973 in ms,
/// year 5138 in seconds).
const AUTO_MILLIS_FROM: f64 = 1e11;

/// The instant an age attribute holds, in µs since the epoch; `None` when it has no usable
/// value (the item is then not aged).
pub fn age_micros(value: &AttributeValue, format: AgeFormat) -> Option<i64> {
    match (value, format) {
        (AttributeValue::S(s), AgeFormat::Iso8601 | AgeFormat::Auto) => {
            DateTime::parse_from_rfc3339(s.trim())
                .ok()
                .map(|t| t.timestamp_micros())
        }
        (AttributeValue::N(n), AgeFormat::EpochSeconds) => scaled(n, 1e6),
        (AttributeValue::N(n), AgeFormat::EpochMillis) => scaled(n, 1e3),
        (AttributeValue::N(n), AgeFormat::Auto) => {
            let v: f64 = n.trim().parse().ok()?;
            if v.abs() >= AUTO_MILLIS_FROM {
                scaled(n, 1e3)
            } else {
                scaled(n, 1e6)
            }
        }
        _ => None,
    }
}

fn scaled(n: &str, factor: f64) -> Option<i64> {
    let v: f64 = n.trim().parse().ok()?;
    let micros = (v * factor).floor();
    (micros.is_finite() && micros.abs() < 9.2e18).then_some(micros as i64)
}

/// The server-side filter for a run with `cutoff_micros`: an item passes when any configured
/// age attribute (per its encoding) may be older than the cutoff.
pub fn page_filter(config: &Config, cutoff_micros: i64) -> Option<Filter> {
    let rules: BTreeSet<(String, FormatKey)> = config
        .entity_age
        .values()
        .chain(std::iter::once(&config.default_age))
        .map(|r: &AgeRule| (r.attribute.clone(), FormatKey::from(r.format)))
        .collect();
    let day = 86_400_000_000i64;
    let iso = DateTime::from_timestamp_micros(cutoff_micros.saturating_add(day))?
        .to_rfc3339_opts(SecondsFormat::Secs, true)
        .trim_end_matches('Z')
        .to_string();
    let secs = cutoff_micros.div_euclid(1_000_000) + 1;
    let millis = cutoff_micros.div_euclid(1_000) + 1;
    let mut names = HashMap::new();
    let mut values = HashMap::new();
    values.insert(":dyn_t_s".to_string(), SdkValue::S("S".into()));
    values.insert(":dyn_t_n".to_string(), SdkValue::S("N".into()));
    values.insert(":dyn_iso".to_string(), SdkValue::S(iso));
    values.insert(":dyn_secs".to_string(), SdkValue::N(secs.to_string()));
    values.insert(":dyn_millis".to_string(), SdkValue::N(millis.to_string()));
    let mut clauses = Vec::new();
    for (i, (attribute, format)) in rules.iter().enumerate() {
        let n = format!("#dyn_age{i}");
        names.insert(n.clone(), attribute.clone());
        let iso = format!("(attribute_type({n}, :dyn_t_s) AND {n} < :dyn_iso)");
        let num = |bound: &str| format!("(attribute_type({n}, :dyn_t_n) AND {n} < {bound})");
        match format {
            FormatKey::Iso => clauses.push(iso),
            FormatKey::Seconds => clauses.push(num(":dyn_secs")),
            FormatKey::Millis => clauses.push(num(":dyn_millis")),
            // Seconds are always below the millisecond bound: one comparison covers both.
            FormatKey::Auto => {
                clauses.push(iso);
                clauses.push(num(":dyn_millis"));
            }
        }
    }
    // Drop placeholders no clause uses (DynamoDB refuses unused values).
    let expression = clauses.join(" OR ");
    values.retain(|k, _| expression.contains(k.as_str()));
    Some(Filter {
        expression,
        names,
        values,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum FormatKey {
    Iso,
    Seconds,
    Millis,
    Auto,
}

impl From<AgeFormat> for FormatKey {
    fn from(f: AgeFormat) -> Self {
        match f {
            AgeFormat::Iso8601 => FormatKey::Iso,
            AgeFormat::EpochSeconds => FormatKey::Seconds,
            AgeFormat::EpochMillis => FormatKey::Millis,
            AgeFormat::Auto => FormatKey::Auto,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_encoding() {
        let s = |v: &str| AttributeValue::S(v.into());
        let n = |v: &str| AttributeValue::N(v.into());
        let t = 1_700_000_000_000_000i64;
        assert_eq!(
            age_micros(&s("2023-11-14T22:13:20Z"), AgeFormat::Iso8601),
            Some(t)
        );
        assert_eq!(
            age_micros(&s("2023-11-15T00:13:20+02:00"), AgeFormat::Auto),
            Some(t)
        );
        assert_eq!(
            age_micros(&n("1700000000"), AgeFormat::EpochSeconds),
            Some(t)
        );
        assert_eq!(
            age_micros(&n("1700000000000"), AgeFormat::EpochMillis),
            Some(t)
        );
        assert_eq!(age_micros(&n("1700000000"), AgeFormat::Auto), Some(t));
        assert_eq!(age_micros(&n("1700000000000"), AgeFormat::Auto), Some(t));
        assert_eq!(age_micros(&s("yesterday"), AgeFormat::Auto), None);
        assert_eq!(age_micros(&n("1"), AgeFormat::Iso8601), None);
        assert_eq!(
            age_micros(&AttributeValue::Bool(true), AgeFormat::Auto),
            None
        );
    }
}
