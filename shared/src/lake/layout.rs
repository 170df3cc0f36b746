//! Deterministic object keys of the lake.
//!
//! Keys are a pure function of what a file contains (entity, day, shard and sequence range,
//! or export run and part), never of the wall clock or a random id: when a Lambda retries a
//! batch it rewrites the *same* key, so a retry overwrites instead of duplicating rows.
//!
//! ```text
//! <prefix>/cdc/entity=Order/dt=2026-11-21/<shard>-<firstseq>-<lastseq>.parquet
//! <prefix>/expired/entity=Order/dt=2026-11-21/<shard>-<firstseq>-<lastseq>.parquet
//! <prefix>/archive/entity=Order/dt=2026-11-21/<run>-<part:05>.parquet
//! <prefix>/quarantine/source=<source>/dt=2026-11-21/<name>
//! ```
//!
//! Partitions are Hive-style (`name=value`) so Spark, Databricks Auto Loader and DuckDB
//! discover `entity` and `dt` as columns.

use chrono::{DateTime, NaiveDate};

/// The top-level areas of the lake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Area {
    /// Change rows from the stream (INSERT/MODIFY/REMOVE).
    Cdc,
    /// Rows exported by age (SNAPSHOT).
    Archive,
    /// Items removed by TTL (EXPIRE), with their last image.
    Expired,
    /// Records that could not be processed, with the reason.
    Quarantine,
}

impl Area {
    /// The area's folder name.
    pub fn as_str(self) -> &'static str {
        match self {
            Area::Cdc => "cdc",
            Area::Archive => "archive",
            Area::Expired => "expired",
            Area::Quarantine => "quarantine",
        }
    }
}

/// Builds object keys under an optional prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LakeLayout {
    prefix: String,
}

/// Makes a key segment safe: keeps `[A-Za-z0-9._-]`, replaces anything else with `_`.
/// Shard ids, sequence numbers and entity names are already in that alphabet.
pub fn safe_segment(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out == "." || out == ".." {
        "_".to_string()
    } else {
        out
    }
}

/// The UTC day of a time in µs since the epoch (the `dt` partition).
pub fn day_of_micros(micros: i64) -> Option<NaiveDate> {
    DateTime::from_timestamp_micros(micros).map(|t| t.date_naive())
}

impl LakeLayout {
    /// A layout under `prefix` (surrounding slashes ignored; empty for the bucket root).
    pub fn new(prefix: &str) -> Self {
        LakeLayout {
            prefix: prefix.trim_matches('/').to_string(),
        }
    }

    /// `<prefix>/<area>/entity=<entity>/dt=<day>/` (with the trailing slash).
    pub fn partition(&self, area: Area, entity: &str, day: NaiveDate) -> String {
        let mut key = String::new();
        if !self.prefix.is_empty() {
            key.push_str(&self.prefix);
            key.push('/');
        }
        key.push_str(&format!(
            "{}/entity={}/dt={}/",
            area.as_str(),
            safe_segment(entity),
            day.format("%Y-%m-%d")
        ));
        key
    }

    /// A CDC file of one shard's contiguous sequence range.
    pub fn cdc_key(
        &self,
        entity: &str,
        day: NaiveDate,
        shard: &str,
        first_seq: &str,
        last_seq: &str,
    ) -> String {
        self.range_key(Area::Cdc, entity, day, shard, first_seq, last_seq)
    }

    /// An expired-items file of one shard's contiguous sequence range.
    pub fn expired_key(
        &self,
        entity: &str,
        day: NaiveDate,
        shard: &str,
        first_seq: &str,
        last_seq: &str,
    ) -> String {
        self.range_key(Area::Expired, entity, day, shard, first_seq, last_seq)
    }

    /// Part `part` of the aged export run `run` (a deterministic run id, e.g. the cutoff).
    pub fn archive_key(&self, entity: &str, day: NaiveDate, run: &str, part: u32) -> String {
        format!(
            "{}{}-{part:05}.parquet",
            self.partition(Area::Archive, entity, day),
            safe_segment(run)
        )
    }

    /// The folder of one export run's bookkeeping objects (manifest, completion marker, work
    /// files): `<prefix>/archive/_runs/run=<run>/`. Spark and Auto Loader skip folders whose
    /// name starts with `_`, so nothing here is mistaken for data.
    pub fn archive_run_prefix(&self, run: &str) -> String {
        let mut key = String::new();
        if !self.prefix.is_empty() {
            key.push_str(&self.prefix);
            key.push('/');
        }
        key.push_str(&format!(
            "{}/_runs/run={}/",
            Area::Archive.as_str(),
            safe_segment(run)
        ));
        key
    }

    /// A quarantine object: `<prefix>/quarantine/source=<source>/dt=<day>/<name>`.
    pub fn quarantine_key(&self, source: &str, day: NaiveDate, name: &str) -> String {
        let mut key = String::new();
        if !self.prefix.is_empty() {
            key.push_str(&self.prefix);
            key.push('/');
        }
        key.push_str(&format!(
            "{}/source={}/dt={}/{}",
            Area::Quarantine.as_str(),
            safe_segment(source),
            day.format("%Y-%m-%d"),
            safe_segment(name)
        ));
        key
    }

    fn range_key(
        &self,
        area: Area,
        entity: &str,
        day: NaiveDate,
        shard: &str,
        first_seq: &str,
        last_seq: &str,
    ) -> String {
        format!(
            "{}{}-{}-{}.parquet",
            self.partition(area, entity, day),
            safe_segment(shard),
            safe_segment(first_seq),
            safe_segment(last_seq)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_deterministic_and_hive_style() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
        let l = LakeLayout::new("/team/lake/");
        assert_eq!(
            l.cdc_key(
                "Order",
                day,
                "shardId-0001",
                "0000000000000000000000000000000000000100",
                "200"
            ),
            "team/lake/cdc/entity=Order/dt=2026-11-21/shardId-0001-0000000000000000000000000000000000000100-200.parquet"
        );
        let root = LakeLayout::new("");
        assert_eq!(
            root.archive_key("Customer", day, "cutoff-2026-10-01", 7),
            "archive/entity=Customer/dt=2026-11-21/cutoff-2026-10-01-00007.parquet"
        );
        assert_eq!(
            root.expired_key("Order", day, "s", "1", "2"),
            "expired/entity=Order/dt=2026-11-21/s-1-2.parquet"
        );
        assert_eq!(
            root.quarantine_key("stream-fanout", day, "../x y.jsonl"),
            "quarantine/source=stream-fanout/dt=2026-11-21/.._x_y.jsonl"
        );
        assert_eq!(root.archive_run_prefix("r1"), "archive/_runs/run=r1/");
        assert_eq!(day_of_micros(0), NaiveDate::from_ymd_opt(1970, 1, 1));
    }
}
