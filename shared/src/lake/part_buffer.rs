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
//! example aged-export's pending post-export actions) use the same buffer.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use bytes::Bytes;

use super::LakeError;

/// The bytes of the part being filled.
#[derive(Debug)]
pub enum PartBuffer {
    /// In memory; `capacity` is reserved at the first write of each part (a part plus one
    /// flushed row group), so the vector never doubles its way past it.
    Memory {
        /// The bytes.
        bytes: Vec<u8>,
        /// What to reserve when a part starts.
        capacity: usize,
    },
    /// In an anonymous temporary file.
    Spill {
        /// The file (no name).
        file: File,
        /// Bytes written since the last [`PartBuffer::take`].
        len: usize,
    },
}

fn spill_error(operation: &'static str, error: std::io::Error) -> LakeError {
    LakeError::Spill { operation, error }
}

impl PartBuffer {
    /// An in-memory buffer reserving `capacity` bytes when a part starts.
    pub fn memory(capacity: usize) -> Self {
        PartBuffer::Memory {
            bytes: Vec::new(),
            capacity,
        }
    }

    /// A buffer in an anonymous temporary file created in `dir`.
    pub fn spill(dir: &Path) -> Result<Self, LakeError> {
        let file = tempfile::tempfile_in(dir).map_err(|e| spill_error("create", e))?;
        Ok(PartBuffer::Spill { file, len: 0 })
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        match self {
            PartBuffer::Memory { bytes, .. } => bytes.len(),
            PartBuffer::Spill { len, .. } => *len,
        }
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `data`.
    pub fn push(&mut self, data: &[u8]) -> Result<(), LakeError> {
        match self {
            PartBuffer::Memory { bytes, capacity } => {
                if bytes.capacity() == 0 {
                    bytes.reserve_exact((*capacity).max(data.len()));
                }
                bytes.extend_from_slice(data);
            }
            PartBuffer::Spill { file, len } => {
                file.write_all(data).map_err(|e| spill_error("write", e))?;
                *len += data.len();
            }
        }
        Ok(())
    }

    /// Everything held, as one buffer; the buffer is empty afterwards.
    pub fn take(&mut self) -> Result<Bytes, LakeError> {
        match self {
            PartBuffer::Memory { bytes, .. } => Ok(Bytes::from(std::mem::take(bytes))),
            PartBuffer::Spill { file, len } => {
                let mut out = vec![0u8; *len];
                file.seek(SeekFrom::Start(0))
                    .and_then(|_| file.read_exact(&mut out))
                    .map_err(|e| spill_error("read back", e))?;
                Self::reset(file, len)?;
                Ok(Bytes::from(out))
            }
        }
    }

    /// Drops what is held.
    pub fn clear(&mut self) -> Result<(), LakeError> {
        match self {
            PartBuffer::Memory { bytes, .. } => {
                *bytes = Vec::new();
                Ok(())
            }
            PartBuffer::Spill { file, len } => Self::reset(file, len),
        }
    }

    fn reset(file: &mut File, len: &mut usize) -> Result<(), LakeError> {
        file.set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
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
