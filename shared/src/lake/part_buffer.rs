//! Where a streaming S3 upload ([`super::LakeFileWriter`]) keeps the bytes of the part it is
//! filling until the part reaches S3's 5 MiB minimum.
//!
//! - [`PartBuffer::memory`]: in a `Vec` (the default). Every open file holds up to one part
//!   plus one flushed row group in memory, so a writer with several files open at once
//!   (aged-export: one per entity) holds several parts.
//! - [`PartBuffer::spill`]: in an anonymous temporary file (`tempfile::tempfile_in`: no name,
//!   removed by the kernel when it is closed or the process dies, so a crash leaves nothing
//!   behind in a warm Lambda's `/tmp`). A part is read back into memory only while it is
//!   being uploaded, and the uploads of one task run one at a time, so the process holds at
//!   most one part whatever the number of open files. The bytes are written to the page cache
//!   (a row group at a time), which the kernel can drop once written back; Lambda's `/tmp`
//!   (512 MB by default) needs one part plus one row group per open file.
//!
//! The upload body is always an in-memory buffer, so the SDK can retry a part and compute its
//! checksum the same way in both modes.
//!
//! Other per-part byte streams that only need to be read back once the part is durable (for
//! example aged-export's pending post-export actions, one small JSON line per item) use the
//! same buffer; writes to the spill file are buffered, so small pushes are not one system
//! call each.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use bytes::Bytes;

use super::LakeError;

/// Writes to a spill file go through a buffer of this size: pushes smaller than it (one JSON
/// line per item) are gathered into one write; larger ones (row groups) go straight through.
const SPILL_WRITE_BUFFER: usize = 256 * 1024;

/// The bytes of the part being filled.
#[derive(Debug)]
pub struct PartBuffer {
    storage: Storage,
}

#[derive(Debug)]
enum Storage {
    /// In memory; `capacity` is reserved at the first write of each part (a part plus one
    /// flushed row group), so the vector never doubles its way past it.
    Memory { bytes: Vec<u8>, capacity: usize },
    /// In an anonymous temporary file; `len` counts the bytes pushed since the last take or
    /// clear, buffered ones included.
    Spill { file: BufWriter<File>, len: usize },
}

fn spill_error(operation: &'static str, error: std::io::Error) -> LakeError {
    LakeError::Spill { operation, error }
}

impl PartBuffer {
    /// An in-memory buffer reserving `capacity` bytes when a part starts.
    pub fn memory(capacity: usize) -> Self {
        PartBuffer {
            storage: Storage::Memory {
                bytes: Vec::new(),
                capacity,
            },
        }
    }

    /// A buffer in an anonymous temporary file created in `dir`.
    pub fn spill(dir: &Path) -> Result<Self, LakeError> {
        let file = tempfile::tempfile_in(dir).map_err(|e| spill_error("create", e))?;
        Ok(PartBuffer {
            storage: Storage::Spill {
                file: BufWriter::with_capacity(SPILL_WRITE_BUFFER, file),
                len: 0,
            },
        })
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        match &self.storage {
            Storage::Memory { bytes, .. } => bytes.len(),
            Storage::Spill { len, .. } => *len,
        }
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `data`.
    pub fn push(&mut self, data: &[u8]) -> Result<(), LakeError> {
        match &mut self.storage {
            Storage::Memory { bytes, capacity } => {
                if bytes.capacity() == 0 {
                    bytes.reserve_exact((*capacity).max(data.len()));
                }
                bytes.extend_from_slice(data);
            }
            Storage::Spill { file, len } => {
                file.write_all(data).map_err(|e| spill_error("write", e))?;
                *len += data.len();
            }
        }
        Ok(())
    }

    /// Everything held, as one buffer; the buffer is empty afterwards.
    pub fn take(&mut self) -> Result<Bytes, LakeError> {
        match &mut self.storage {
            Storage::Memory { bytes, .. } => Ok(Bytes::from(std::mem::take(bytes))),
            Storage::Spill { file, len } => {
                file.flush().map_err(|e| spill_error("write", e))?;
                let mut out = vec![0u8; *len];
                let inner = file.get_mut();
                inner
                    .seek(SeekFrom::Start(0))
                    .and_then(|_| inner.read_exact(&mut out))
                    .map_err(|e| spill_error("read back", e))?;
                Self::reset(file, len)?;
                Ok(Bytes::from(out))
            }
        }
    }

    /// Drops what is held.
    pub fn clear(&mut self) -> Result<(), LakeError> {
        match &mut self.storage {
            Storage::Memory { bytes, .. } => {
                *bytes = Vec::new();
                Ok(())
            }
            Storage::Spill { file, len } => Self::reset(file, len),
        }
    }

    /// Empties the spill file; buffered bytes are written first (then truncated), so the
    /// buffer never holds bytes that belong before the new start of the file.
    fn reset(file: &mut BufWriter<File>, len: &mut usize) -> Result<(), LakeError> {
        file.flush().map_err(|e| spill_error("write", e))?;
        let inner = file.get_mut();
        inner
            .set_len(0)
            .and_then(|_| inner.seek(SeekFrom::Start(0)))
            .map_err(|e| spill_error("truncate", e))?;
        *len = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(mut buffer: PartBuffer) {
        assert!(buffer.is_empty());
        buffer.push(b"hello ").unwrap();
        buffer.push(b"world").unwrap();
        assert_eq!(buffer.len(), 11);
        assert_eq!(&buffer.take().unwrap()[..], b"hello world");
        assert!(buffer.is_empty());
        // The next part starts from nothing, not after the previous one's bytes.
        buffer.push(b"second").unwrap();
        assert_eq!(&buffer.take().unwrap()[..], b"second");
        buffer.push(b"dropped").unwrap();
        buffer.clear().unwrap();
        assert!(buffer.is_empty());
        assert_eq!(&buffer.take().unwrap()[..], b"");
    }

    #[test]
    fn memory_and_spill_hold_the_same_bytes() {
        round_trip(PartBuffer::memory(16));
        let dir = tempfile::tempdir().unwrap();
        round_trip(PartBuffer::spill(dir.path()).unwrap());
        // Anonymous: nothing is left in the folder.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn many_small_pushes_read_back_the_same_in_both_modes() {
        // Lines smaller than the write buffer, enough of them to fill it several times, and
        // one push larger than it (written straight through) in the middle.
        let mut lines: Vec<Vec<u8>> = (0..4000)
            .map(|i| {
                format!(
                    "{{\"pk\":\"ORDER#{i:06}\",\"pad\":\"{}\"}}\n",
                    "x".repeat(i % 300)
                )
                .into_bytes()
            })
            .collect();
        lines.insert(2000, vec![b'y'; SPILL_WRITE_BUFFER + 1]);
        let fill = |mut buffer: PartBuffer| {
            let mut expected = 0;
            for line in &lines {
                buffer.push(line).unwrap();
                expected += line.len();
                assert_eq!(buffer.len(), expected);
            }
            let bytes = buffer.take().unwrap();
            assert!(buffer.is_empty());
            // A second part after the first starts from nothing.
            buffer.push(b"next").unwrap();
            assert_eq!(&buffer.take().unwrap()[..], b"next");
            bytes
        };
        let dir = tempfile::tempdir().unwrap();
        let spilled = fill(PartBuffer::spill(dir.path()).unwrap());
        let in_memory = fill(PartBuffer::memory(0));
        assert_eq!(spilled, in_memory);
        assert_eq!(&spilled[..], &lines.concat()[..]);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_missing_spill_folder_is_a_typed_error() {
        let err = PartBuffer::spill(Path::new("/nonexistent/dynabridge-spill")).unwrap_err();
        assert!(
            matches!(
                err,
                LakeError::Spill {
                    operation: "create",
                    ..
                }
            ),
            "{err}"
        );
    }
}
