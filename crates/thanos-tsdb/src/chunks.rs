//! Chunk segment files of a block (`chunks/000001`, `chunks/000002`, ...).
//!
//! Mirrors Prometheus's `tsdb/chunks` package (block part). A segment is an 8-byte header
//! (`0x85BD40DD`, version 1, 3 zero bytes) followed by records
//! `len <uvarint> | encoding <1b> | data | CRC32C(encoding, data) <4b>`. A chunk reference
//! is `segment_index << 32 | offset`, where the segment index is the 0-based position of
//! the file among the numerically named files (file `000001` is index 0).

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::encoding::{Decbuf, DecodeError, DecodeErrorKind, Encbuf, crc32c, verify_crc};
use crate::error::{Error, Result};
use crate::fsutil::{FileBytes, sync_dir};

/// Magic number at the start of every block chunk segment.
pub const MAGIC_CHUNKS: u32 = 0x85BD_40DD;
/// Segment format version.
pub const CHUNKS_FORMAT_V1: u8 = 1;
/// Size of the segment header.
pub const SEGMENT_HEADER_SIZE: u64 = 8;
/// Default maximum segment size (512 MiB), as Prometheus.
pub const DEFAULT_MAX_SEGMENT_SIZE: u64 = 512 * 1024 * 1024;
/// Name of the chunks directory inside a block.
pub const CHUNKS_DIR: &str = "chunks";
/// Longest possible `len` field (a uvarint of a 32-bit length).
const MAX_LEN_FIELD: u64 = 5;

/// Builds a chunk reference from a 0-based segment index and a byte offset.
pub fn chunk_ref(segment_index: u32, offset: u32) -> u64 {
    (u64::from(segment_index) << 32) | u64::from(offset)
}

/// Splits a chunk reference into (0-based segment index, byte offset).
pub fn split_chunk_ref(r: u64) -> (u32, u32) {
    ((r >> 32) as u32, r as u32)
}

/// File name (6 digits, 1-based) of the segment with 0-based index `index`.
pub fn segment_name(index: u32) -> String {
    format!("{:06}", u64::from(index) + 1)
}

/// A chunk read from a segment: its encoding byte and data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawChunk<'a> {
    /// Encoding byte (1 = XOR, 2 = histogram, 3 = float histogram).
    pub encoding: u8,
    /// Encoded chunk bytes.
    pub data: &'a [u8],
}

/// Writes chunk segment files into a directory.
pub struct ChunkWriter {
    dir: PathBuf,
    max_segment_size: u64,
    /// Open segment and its 0-based index.
    current: Option<(BufWriter<File>, u32)>,
    next_index: u32,
    /// Bytes written to the open segment.
    pos: u64,
    buf: Encbuf,
    segment_files: Vec<(String, u64)>,
    max_record_size: u64,
}

impl ChunkWriter {
    /// Creates `dir` (if missing) and prepares to write segments into it.
    pub fn create(dir: &Path) -> Result<Self> {
        fs::create_dir_all(dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            max_segment_size: DEFAULT_MAX_SEGMENT_SIZE,
            current: None,
            next_index: 0,
            pos: 0,
            buf: Encbuf::new(),
            segment_files: Vec::new(),
            max_record_size: 0,
        })
    }

    /// Sets the maximum segment size (default 512 MiB).
    pub fn with_max_segment_size(mut self, bytes: u64) -> Self {
        self.max_segment_size = bytes.max(SEGMENT_HEADER_SIZE + 1);
        self
    }

    fn cut(&mut self) -> Result<()> {
        self.finish_segment()?;
        let index = self.next_index;
        let name = segment_name(index);
        let path = self.dir.join(&name);
        let f = File::create(&path).map_err(|e| Error::io(path.display().to_string(), e))?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        let mut hdr = [0u8; SEGMENT_HEADER_SIZE as usize];
        hdr[..4].copy_from_slice(&MAGIC_CHUNKS.to_be_bytes());
        hdr[4] = CHUNKS_FORMAT_V1;
        w.write_all(&hdr)
            .map_err(|e| Error::io(path.display().to_string(), e))?;
        self.current = Some((w, index));
        self.next_index += 1;
        self.pos = SEGMENT_HEADER_SIZE;
        self.segment_files.push((name, 0));
        Ok(())
    }

    fn finish_segment(&mut self) -> Result<()> {
        if let Some((w, index)) = self.current.take() {
            let path = self.dir.join(segment_name(index));
            let f = w
                .into_inner()
                .map_err(|e| Error::io(path.display().to_string(), e.into_error()))?;
            f.sync_all()
                .map_err(|e| Error::io(path.display().to_string(), e))?;
            if let Some(last) = self.segment_files.last_mut() {
                last.1 = self.pos;
            }
        }
        Ok(())
    }

    /// Writes the chunks of one series and returns their references.
    ///
    /// Segments are cut as Prometheus does: before a run of chunks whose estimated size
    /// (5-byte length field + encoding + data + CRC) would push the segment over the
    /// limit; a chunk larger than the limit still gets a segment of its own.
    pub fn write_series_chunks(&mut self, chunks: &[(u8, &[u8])]) -> Result<Vec<u64>> {
        if self.current.is_none() {
            self.cut()?;
        }
        let start_pos = self.pos;
        let mut batch = 0u64;
        let mut first_batch = true;
        let mut refs = Vec::with_capacity(chunks.len());
        for (i, &(encoding, data)) in chunks.iter().enumerate() {
            let est = MAX_LEN_FIELD + 1 + data.len() as u64 + 4;
            batch += est;
            let mut cut = i != 0 && batch + SEGMENT_HEADER_SIZE > self.max_segment_size;
            if first_batch && start_pos > SEGMENT_HEADER_SIZE {
                cut = batch + start_pos > self.max_segment_size;
                if cut {
                    first_batch = false;
                }
            }
            if cut {
                self.cut()?;
                batch = est;
            }
            refs.push(self.write_record(encoding, data)?);
        }
        Ok(refs)
    }

    fn write_record(&mut self, encoding: u8, data: &[u8]) -> Result<u64> {
        let Some((w, index)) = self.current.as_mut() else {
            return Err(Error::invalid_input(CHUNKS_DIR, "no open segment"));
        };
        let offset = u32::try_from(self.pos).map_err(|_| {
            Error::invalid_input(
                segment_name(*index),
                "chunk offset exceeds 4 GiB; lower the segment size",
            )
        })?;
        let len = u32::try_from(data.len())
            .map_err(|_| Error::invalid_input(segment_name(*index), "chunk larger than 4 GiB"))?;
        self.buf.reset();
        self.buf.put_uvarint(u64::from(len));
        let enc_start = self.buf.len();
        self.buf.put_byte(encoding);
        self.buf.put_bytes(data);
        let crc = crc32c(&self.buf.as_slice()[enc_start..]);
        self.buf.put_be_u32(crc);
        w.write_all(self.buf.as_slice())
            .map_err(|e| Error::io(self.dir.join(segment_name(*index)).display().to_string(), e))?;
        let r = chunk_ref(*index, offset);
        self.pos += self.buf.len() as u64;
        self.max_record_size = self.max_record_size.max(self.buf.len() as u64);
        Ok(r)
    }

    /// Flushes and fsyncs all segments and the directory; returns the written segment
    /// file names with their sizes.
    pub fn finish(mut self) -> Result<ChunkWriterSummary> {
        self.finish_segment()?;
        sync_dir(&self.dir)?;
        Ok(ChunkWriterSummary {
            segments: std::mem::take(&mut self.segment_files),
            max_record_size: self.max_record_size,
        })
    }
}

/// What a [`ChunkWriter`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkWriterSummary {
    /// Segment file names and sizes, in order.
    pub segments: Vec<(String, u64)>,
    /// Largest chunk record (length field + encoding + data + CRC) in bytes.
    pub max_record_size: u64,
}

/// Reads chunks by reference from a block's segment files.
#[derive(Debug, Clone)]
pub struct ChunkReader {
    segments: Vec<(String, FileBytes)>,
}

impl ChunkReader {
    /// Opens (memory-maps) all numerically named files in `dir`, in numeric order.
    pub fn open_dir(dir: &Path) -> Result<Self> {
        let rd = fs::read_dir(dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
        let mut files = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| Error::io(dir.display().to_string(), e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Ok(n) = name.parse::<u64>()
                && !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_digit())
            {
                files.push((n, name));
            }
        }
        files.sort();
        let mut segments = Vec::with_capacity(files.len());
        for (_, name) in files {
            let bytes = FileBytes::open(&dir.join(&name))?;
            segments.push((format!("{CHUNKS_DIR}/{name}"), bytes));
        }
        Self::from_segments(segments)
    }

    /// Builds a reader over already loaded segments `(name, bytes)` in segment order; the
    /// names are used in errors. Checks every segment header.
    pub fn from_segments(segments: Vec<(String, FileBytes)>) -> Result<Self> {
        for (name, bytes) in &segments {
            check_segment_header(bytes).map_err(|e| Error::corrupt(name, e))?;
        }
        Ok(Self { segments })
    }

    /// Number of segments.
    pub fn num_segments(&self) -> usize {
        self.segments.len()
    }

    /// The chunk at `chunk_ref`, CRC verified.
    pub fn chunk(&self, chunk_ref: u64) -> Result<RawChunk<'_>> {
        let (seg, off) = split_chunk_ref(chunk_ref);
        let Some((name, bytes)) = self.segments.get(seg as usize) else {
            return Err(Error::invalid(
                CHUNKS_DIR,
                format!(
                    "chunk ref {chunk_ref:#x} points to segment index {seg} but only {} segments exist",
                    self.segments.len()
                ),
            ));
        };
        decode_chunk_at(bytes, u64::from(off)).map_err(|e| Error::corrupt(name, e))
    }
}

/// Checks the 8-byte segment header.
pub fn check_segment_header(data: &[u8]) -> Result<(), DecodeError> {
    let mut d = Decbuf::new(data);
    let magic = d.be_u32()?;
    if magic != MAGIC_CHUNKS {
        return Err(DecodeError::new(
            0,
            DecodeErrorKind::BadMagic {
                expected: MAGIC_CHUNKS,
                found: magic,
            },
        ));
    }
    let version = d.byte()?;
    if version != CHUNKS_FORMAT_V1 {
        return Err(DecodeError::new(
            4,
            DecodeErrorKind::UnsupportedVersion(u64::from(version)),
        ));
    }
    d.skip(3)?;
    Ok(())
}

/// Decodes and CRC-checks the chunk record at `offset` of a segment's bytes.
pub fn decode_chunk_at(segment: &[u8], offset: u64) -> Result<RawChunk<'_>, DecodeError> {
    if offset < SEGMENT_HEADER_SIZE {
        return Err(DecodeError::invalid(
            offset,
            "chunk offset points into the segment header",
        ));
    }
    let start = usize::try_from(offset)
        .ok()
        .filter(|&s| s <= segment.len())
        .ok_or_else(|| {
            DecodeError::new(
                offset,
                DecodeErrorKind::UnexpectedEof {
                    needed: 1,
                    available: 0,
                },
            )
        })?;
    decode_chunk(&segment[start..], offset)
}

/// Decodes and CRC-checks one chunk record at the start of `record`; `offset` is its
/// absolute position, for errors. Usable on a byte range fetched from object storage.
pub fn decode_chunk(record: &[u8], offset: u64) -> Result<RawChunk<'_>, DecodeError> {
    let mut d = Decbuf::with_base(record, offset);
    let len = d.uvarint32()? as usize;
    let body_off = d.offset();
    let body = d.bytes(len + 1)?;
    let stored = d.be_u32()?;
    verify_crc(body, stored, body_off)?;
    Ok(RawChunk {
        encoding: body[0],
        data: &body[1..],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read_matches_promtool_layout() {
        let dir = tempfile::tempdir().unwrap();
        let cdir = dir.path().join("chunks");
        let mut w = ChunkWriter::create(&cdir).unwrap();
        let refs = w
            .write_series_chunks(&[(1, b"abc".as_slice()), (1, b"defg".as_slice())])
            .unwrap();
        // First record right after the 8-byte header; the next after 1+1+3+4 bytes.
        assert_eq!(refs, vec![8, 17]);
        let summary = w.finish().unwrap();
        assert_eq!(summary.segments, vec![("000001".to_string(), 8 + 9 + 10)]);
        let raw = fs::read(cdir.join("000001")).unwrap();
        assert_eq!(&raw[..8], &[0x85, 0xbd, 0x40, 0xdd, 1, 0, 0, 0]);
        assert_eq!(raw[8], 3);
        assert_eq!(
            u32::from_be_bytes(raw[13..17].try_into().unwrap()),
            crc32c(&[1, b'a', b'b', b'c'])
        );
        let r = ChunkReader::open_dir(&cdir).unwrap();
        assert_eq!(
            r.chunk(17).unwrap(),
            RawChunk {
                encoding: 1,
                data: b"defg"
            }
        );
    }

    #[test]
    fn segments_are_cut_at_the_size_limit() {
        let dir = tempfile::tempdir().unwrap();
        let data = vec![7u8; 100];
        // Each record estimate is 5+1+100+4 = 110 bytes.
        let mut w = ChunkWriter::create(dir.path())
            .unwrap()
            .with_max_segment_size(8 + 250);
        let mut all = Vec::new();
        for _ in 0..5 {
            all.extend(
                w.write_series_chunks(&[(1, data.as_slice()), (1, data.as_slice())])
                    .unwrap(),
            );
        }
        let s = w.finish().unwrap();
        let (segs, offs): (Vec<u32>, Vec<u32>) = all.iter().map(|&r| split_chunk_ref(r)).unzip();
        assert_eq!(segs, vec![0, 0, 1, 1, 2, 2, 3, 3, 4, 4]);
        assert_eq!(offs, vec![8, 114, 8, 114, 8, 114, 8, 114, 8, 114]);
        assert_eq!(s.segments.len(), 5);
        let r = ChunkReader::open_dir(dir.path()).unwrap();
        for &c in &all {
            assert_eq!(r.chunk(c).unwrap().data, data.as_slice());
        }
        // A single chunk above the limit gets its own segment.
        let dir2 = tempfile::tempdir().unwrap();
        let big = vec![1u8; 400];
        let mut w = ChunkWriter::create(dir2.path())
            .unwrap()
            .with_max_segment_size(8 + 250);
        let refs = w
            .write_series_chunks(&[(1, big.as_slice()), (1, data.as_slice())])
            .unwrap();
        assert_eq!(
            refs.iter().map(|&r| r >> 32).collect::<Vec<_>>(),
            vec![0, 1]
        );
        w.finish().unwrap();
    }

    #[test]
    fn corrupt_chunks_give_typed_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = ChunkWriter::create(dir.path()).unwrap();
        let r = w.write_series_chunks(&[(1, b"xyz".as_slice())]).unwrap()[0];
        w.finish().unwrap();
        let path = dir.path().join("000001");
        let mut raw = fs::read(&path).unwrap();
        raw[10] ^= 0xff;
        let reader =
            ChunkReader::from_segments(vec![("chunks/000001".into(), raw.clone().into())]).unwrap();
        let err = reader.chunk(r).unwrap_err();
        assert!(
            matches!(&err, Error::Corrupt { file, offset: 9, kind: DecodeErrorKind::CrcMismatch { .. } } if file == "chunks/000001"),
            "{err}"
        );
        assert!(matches!(
            reader.chunk(chunk_ref(3, 8)),
            Err(Error::Invalid { .. })
        ));
        assert!(matches!(reader.chunk(4), Err(Error::Corrupt { .. })));
        assert!(matches!(reader.chunk(1 << 20), Err(Error::Corrupt { .. })));
        let truncated = raw[..raw.len() - 2].to_vec();
        let reader =
            ChunkReader::from_segments(vec![("chunks/000001".into(), truncated.into())]).unwrap();
        assert!(matches!(
            reader.chunk(r),
            Err(Error::Corrupt {
                kind: DecodeErrorKind::UnexpectedEof { .. },
                ..
            })
        ));
        raw[0] = 0;
        let err =
            ChunkReader::from_segments(vec![("chunks/000001".into(), raw.into())]).unwrap_err();
        assert!(matches!(
            err,
            Error::Corrupt {
                kind: DecodeErrorKind::BadMagic { .. },
                ..
            }
        ));
    }

    proptest::proptest! {
        #[test]
        fn decode_garbage_never_panics(raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64), off in 0u64..80) {
            let _ = decode_chunk_at(&raw, off);
            let _ = check_segment_header(&raw);
        }
    }
}
