//! The post-export actions a part collects while it is written (one JSON line per item: key
//! and guard), held until the part is durable and the work object is uploaded.
//!
//! With a full-item guard a line is about the size of the item, so a part's actions reach
//! `DYNABRIDGE_EXPORT_PART_MAX_BYTES` (16 MiB by default) while its Parquet files are still
//! open. Kept in memory they came on top of the export's own working set (peak RSS 77.0 MiB
//! for 100,000 items with action `ttl`, 52.7 MiB with action `none`; 65.2 MiB spilled, the
//! rest being the work object read back at the commit); in the spill folder (the same as the
//! Parquet parts', [`PartBuffer::spill`]) they are read back only at the commit, when the
//! part's files are closed. Lines are staged in a small buffer and written to the file in
//! blocks, not one write per item.

use std::path::Path;

use bytes::Bytes;
use dynabridge_shared::lake::{LakeError, PartBuffer};

/// Bytes staged before they are appended to the buffer (one write per block when spilled).
const STAGE_BYTES: usize = 256 * 1024;

/// The pending actions of the part being written.
#[derive(Debug)]
pub struct PendingActions {
    buffer: PartBuffer,
    staged: Vec<u8>,
}

impl PendingActions {
    /// Actions kept in an anonymous temporary file in `spill_dir`, or in memory when `None`.
    pub fn new(spill_dir: Option<&Path>) -> Result<Self, LakeError> {
        let buffer = match spill_dir {
            Some(dir) => PartBuffer::spill(dir)?,
            None => PartBuffer::memory(0),
        };
        Ok(PendingActions {
            buffer,
            staged: Vec::new(),
        })
    }

    /// Appends one action line (a newline is added).
    pub fn push_line(&mut self, line: &str) -> Result<(), LakeError> {
        self.staged.extend_from_slice(line.as_bytes());
        self.staged.push(b'\n');
        if self.staged.len() >= STAGE_BYTES {
            self.buffer.push(&self.staged)?;
            self.staged.clear();
        }
        Ok(())
    }

    /// Bytes collected so far.
    pub fn len(&self) -> usize {
        self.buffer.len() + self.staged.len()
    }

    /// Every line collected, as one buffer; empty afterwards.
    pub fn take(&mut self) -> Result<Bytes, LakeError> {
        if !self.staged.is_empty() {
            self.buffer.push(&self.staged)?;
            self.staged = Vec::new();
        }
        self.buffer.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(mut pending: PendingActions, lines: &[String]) -> Bytes {
        assert_eq!(pending.len(), 0);
        let mut expected = 0;
        for line in lines {
            pending.push_line(line).unwrap();
            expected += line.len() + 1;
            assert_eq!(pending.len(), expected);
        }
        let body = pending.take().unwrap();
        assert_eq!(pending.len(), 0);
        assert_eq!(&pending.take().unwrap()[..], b"");
        body
    }

    #[test]
    fn spilled_and_in_memory_actions_read_back_the_same_lines() {
        // Enough lines to cross the staging block several times.
        let lines: Vec<String> = (0..4000)
            .map(|i| {
                format!(
                    r#"{{"key":{{"pk":{{"S":"ORDER#{i:06}"}}}},"pad":"{}"}}"#,
                    "x".repeat(i % 300)
                )
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let spilled = collect(PendingActions::new(Some(dir.path())).unwrap(), &lines);
        let in_memory = collect(PendingActions::new(None).unwrap(), &lines);
        assert_eq!(spilled, in_memory);
        let read: Vec<&str> = std::str::from_utf8(&spilled).unwrap().lines().collect();
        assert_eq!(read, lines.iter().map(String::as_str).collect::<Vec<_>>());
        // The temporary file has no name: nothing is left in the folder.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_missing_spill_folder_is_a_typed_error() {
        let err =
            PendingActions::new(Some(Path::new("/nonexistent/dynabridge-spill"))).unwrap_err();
        assert!(matches!(err, LakeError::Spill { .. }), "{err}");
    }
}
