//! A bounded-work check of a Parquet footer before the `parquet` crate decodes it.
//!
//! The footer (`FileMetaData`) is Thrift compact protocol. The `parquet` crate skips fields
//! it does not know, and its skip treats each element of a `list<bool>` as zero bytes long,
//! so a 7 KB footer declaring a `list<bool>` of 2³¹ elements (nested a few times) keeps one
//! core busy for minutes before any error (found by the `parquet_read` fuzz target: 25 s of
//! CPU for one 7 KB input). An inbound file is untrusted, so every footer is walked here
//! first, in time linear in its length:
//!
//! - every list, set and map declares at most as many elements as bytes remain (each
//!   element of every other type takes at least one byte);
//! - no list, set or map holds booleans: `FileMetaData` has none, and they are the only
//!   elements the crate's skip reads as zero bytes;
//! - nesting stays within 64 levels (the crate's own skip limit);
//! - every field and element type is a valid compact-protocol type and nothing runs past
//!   the end.
//!
//! A footer that passes is decoded by the crate with the same element counts, each element
//! consuming at least one byte, so its work is bounded by the footer's length too.

use parquet::errors::ParquetError;

/// The deepest struct/list nesting accepted (the `parquet` crate's own skip limit).
const MAX_DEPTH: usize = 64;

/// Checks the Thrift footer of the Parquet file whose **last** bytes are `tail` (the whole
/// file, or at least its footer, metadata length and magic). Returns the metadata length.
pub fn check_footer_tail(tail: &[u8]) -> Result<usize, ParquetError> {
    let n = tail.len();
    if n < 8 {
        return Err(corrupt(format!(
            "{n} bytes: too small to hold a Parquet footer"
        )));
    }
    if &tail[n - 4..] != b"PAR1" {
        return Err(corrupt(
            "the file does not end with the Parquet magic PAR1 (or is encrypted)".into(),
        ));
    }
    let mut len = [0u8; 4];
    len.copy_from_slice(&tail[n - 8..n - 4]);
    let metadata_len = u32::from_le_bytes(len) as usize;
    if metadata_len > n - 8 {
        return Err(corrupt(format!(
            "the footer claims {metadata_len} bytes of metadata but only {} precede it",
            n - 8
        )));
    }
    check_metadata(&tail[n - 8 - metadata_len..n - 8])?;
    Ok(metadata_len)
}

/// Checks serialized `FileMetaData` (the Thrift bytes without length and magic).
pub fn check_metadata(metadata: &[u8]) -> Result<(), ParquetError> {
    let mut walker = Walker {
        buf: metadata,
        pos: 0,
    };
    walker.value(TYPE_STRUCT, 0)
}

const TYPE_STOP: u8 = 0;
const TYPE_BOOL_TRUE: u8 = 1;
const TYPE_BOOL_FALSE: u8 = 2;
const TYPE_BYTE: u8 = 3;
const TYPE_I16: u8 = 4;
const TYPE_I32: u8 = 5;
const TYPE_I64: u8 = 6;
const TYPE_DOUBLE: u8 = 7;
const TYPE_BINARY: u8 = 8;
const TYPE_LIST: u8 = 9;
const TYPE_SET: u8 = 10;
const TYPE_MAP: u8 = 11;
const TYPE_STRUCT: u8 = 12;
const TYPE_UUID: u8 = 13;

struct Walker<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Walker<'_> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn byte(&mut self) -> Result<u8, ParquetError> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| self.error("the metadata ends inside a value"))?;
        self.pos += 1;
        Ok(b)
    }

    fn skip(&mut self, n: usize) -> Result<(), ParquetError> {
        if n > self.remaining() {
            return Err(self.error(&format!(
                "a value of {n} bytes runs past the end of the metadata"
            )));
        }
        self.pos += n;
        Ok(())
    }

    fn varint(&mut self) -> Result<u64, ParquetError> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            if shift == 63 && b > 1 {
                break;
            }
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.error("a variable-length integer is longer than 64 bits"))
    }

    /// A declared element count, refused when more elements than bytes remain.
    fn count(&mut self, declared: u64, what: &str) -> Result<usize, ParquetError> {
        match usize::try_from(declared) {
            Ok(n) if n <= self.remaining() => Ok(n),
            _ => Err(self.error(&format!(
                "a {what} declares {declared} elements but only {} bytes remain",
                self.remaining()
            ))),
        }
    }

    fn element_type(&self, t: u8, what: &str) -> Result<u8, ParquetError> {
        match t {
            TYPE_BOOL_TRUE | TYPE_BOOL_FALSE => Err(self.error(&format!(
                "a {what} of booleans (Parquet metadata has none; the decoder cannot bound it)"
            ))),
            TYPE_BYTE..=TYPE_UUID => Ok(t),
            _ => Err(self.error(&format!("a {what} has the invalid element type {t}"))),
        }
    }

    fn value(&mut self, t: u8, depth: usize) -> Result<(), ParquetError> {
        if depth > MAX_DEPTH {
            return Err(self.error(&format!("values are nested more than {MAX_DEPTH} deep")));
        }
        match t {
            TYPE_BOOL_TRUE | TYPE_BOOL_FALSE => Ok(()),
            TYPE_BYTE => self.skip(1),
            TYPE_I16 | TYPE_I32 | TYPE_I64 => self.varint().map(|_| ()),
            TYPE_DOUBLE => self.skip(8),
            TYPE_UUID => self.skip(16),
            TYPE_BINARY => {
                let len = self.varint()?;
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                self.skip(len)
            }
            TYPE_LIST | TYPE_SET => {
                let header = self.byte()?;
                let short = u64::from(header >> 4);
                let declared = if short == 15 { self.varint()? } else { short };
                let element = self.element_type(header & 0x0f, "list")?;
                let n = self.count(declared, "list")?;
                for _ in 0..n {
                    self.value(element, depth + 1)?;
                }
                Ok(())
            }
            TYPE_MAP => {
                let declared = self.varint()?;
                if declared == 0 {
                    return Ok(());
                }
                let n = self.count(declared, "map")?;
                let kinds = self.byte()?;
                let key = self.element_type(kinds >> 4, "map")?;
                let value = self.element_type(kinds & 0x0f, "map")?;
                for _ in 0..n {
                    self.value(key, depth + 1)?;
                    self.value(value, depth + 1)?;
                }
                Ok(())
            }
            TYPE_STRUCT => loop {
                let header = self.byte()?;
                let field_type = header & 0x0f;
                if field_type == TYPE_STOP {
                    return Ok(());
                }
                if header >> 4 == 0 {
                    // A long-form field id (zigzag i16) follows.
                    self.varint()?;
                }
                if field_type > TYPE_UUID {
                    return Err(self.error(&format!("a field has the invalid type {field_type}")));
                }
                self.value(field_type, depth + 1)?;
            },
            _ => Err(self.error(&format!("the invalid type {t}"))),
        }
    }

    fn error(&self, what: &str) -> ParquetError {
        corrupt(format!(
            "Parquet metadata at byte {} of {}: {what}",
            self.pos,
            self.buf.len()
        ))
    }
}

fn corrupt(message: String) -> ParquetError {
    ParquetError::General(format!("corrupt footer: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_footer_passes() {
        use arrow::array::{Int64Array, StringArray};
        use arrow::datatypes::{DataType, Field, Schema};
        use std::sync::Arc;
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("v", DataType::Int64, true),
        ]));
        let batch = arrow::array::RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec!["a", "b"])),
                Arc::new(Int64Array::from(vec![Some(1), None])),
            ],
        )
        .unwrap();
        let mut out = Vec::new();
        let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let len = check_footer_tail(&out).unwrap();
        assert!(len > 20 && len < out.len());
    }

    #[test]
    fn a_list_of_booleans_is_refused() {
        // struct { 1: list<bool> of 2^31 elements } with no bytes behind the header.
        let metadata = [0x19, 0xf1, 0x80, 0x80, 0x80, 0x80, 0x08, 0x00];
        let err = check_metadata(&metadata).unwrap_err().to_string();
        assert!(err.contains("booleans"), "{err}");
    }

    #[test]
    fn a_count_beyond_the_bytes_is_refused() {
        // struct { 1: list<i32> of 1,000 elements } followed by three bytes.
        let metadata = [0x19, 0xf5, 0xe8, 0x07, 0x02, 0x04, 0x00];
        let err = check_metadata(&metadata).unwrap_err().to_string();
        assert!(err.contains("declares 1000 elements"), "{err}");
    }

    #[test]
    fn deep_nesting_and_truncation_are_refused() {
        let mut metadata = vec![0x1c; 100];
        metadata.push(0x00);
        let err = check_metadata(&metadata).unwrap_err().to_string();
        assert!(err.contains("nested"), "{err}");
        let err = check_metadata(&[0x18, 0x05, b'a']).unwrap_err().to_string();
        assert!(err.contains("runs past the end"), "{err}");
        let err = check_footer_tail(b"xxxxPAR1").unwrap_err().to_string();
        assert!(err.contains("claims"), "{err}");
    }
}
