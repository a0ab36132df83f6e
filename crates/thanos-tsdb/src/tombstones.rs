//! The block `tombstones` file: deleted time intervals per series.
//!
//! Mirrors Prometheus's `tsdb/tombstones` package. Layout: magic `0x0130BA30`, version 1,
//! then entries `series_ref <uvarint> | mint <varint> | maxt <varint>`, then the CRC-32C of
//! the entries. No padding and no trailer offset (the upstream docs are wrong there).

use std::collections::BTreeMap;
use std::path::Path;

use crate::encoding::{Decbuf, DecodeError, DecodeErrorKind, DecodeResult, Encbuf, verify_crc};
use crate::error::{Error, Result};
use crate::index::SeriesRef;

/// Magic number of a tombstones file.
pub const MAGIC_TOMBSTONES: u32 = 0x0130_BA30;
/// Tombstones format version.
pub const TOMBSTONES_FORMAT_V1: u8 = 1;
/// File name inside a block.
pub const TOMBSTONES_FILENAME: &str = "tombstones";

/// Deleted closed intervals `[mint, maxt]` per series, merged and sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tombstones {
    by_series: BTreeMap<SeriesRef, Vec<(i64, i64)>>,
}

impl Tombstones {
    /// No tombstones.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a deleted interval for a series, merging overlapping or adjacent intervals.
    pub fn add(&mut self, series: SeriesRef, mint: i64, maxt: i64) {
        let v = self.by_series.entry(series).or_default();
        v.push((mint, maxt));
        v.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::with_capacity(v.len());
        for &(a, b) in v.iter() {
            match merged.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        *v = merged;
    }

    /// Deleted intervals of `series`.
    pub fn intervals(&self, series: SeriesRef) -> &[(i64, i64)] {
        self.by_series
            .get(&series)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// True when `t` of `series` is deleted.
    pub fn is_deleted(&self, series: SeriesRef, t: i64) -> bool {
        self.intervals(series)
            .iter()
            .any(|&(a, b)| a <= t && t <= b)
    }

    /// Total number of intervals (`stats.numTombstones`).
    pub fn num_intervals(&self) -> u64 {
        self.by_series.values().map(|v| v.len() as u64).sum()
    }

    /// True when nothing is deleted.
    pub fn is_empty(&self) -> bool {
        self.by_series.is_empty()
    }

    /// Encodes the file (entries in series order).
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encbuf::new();
        e.put_be_u32(MAGIC_TOMBSTONES);
        e.put_byte(TOMBSTONES_FORMAT_V1);
        for (&s, ivs) in &self.by_series {
            for &(a, b) in ivs {
                e.put_uvarint(s);
                e.put_varint(a);
                e.put_varint(b);
            }
        }
        e.put_crc32c_from(5);
        e.into_vec()
    }

    /// Decodes a tombstones file.
    pub fn decode(data: &[u8]) -> DecodeResult<Self> {
        let mut d = Decbuf::new(data);
        let magic = d.be_u32()?;
        if magic != MAGIC_TOMBSTONES {
            return Err(DecodeError::new(
                0,
                DecodeErrorKind::BadMagic {
                    expected: MAGIC_TOMBSTONES,
                    found: magic,
                },
            ));
        }
        let v = d.byte()?;
        if v != TOMBSTONES_FORMAT_V1 {
            return Err(DecodeError::new(
                4,
                DecodeErrorKind::UnsupportedVersion(u64::from(v)),
            ));
        }
        if d.remaining() < 4 {
            return Err(DecodeError::new(
                5,
                DecodeErrorKind::UnexpectedEof {
                    needed: 4,
                    available: d.remaining() as u64,
                },
            ));
        }
        let entries = &data[5..data.len() - 4];
        let mut c = Decbuf::with_base(&data[data.len() - 4..], (data.len() - 4) as u64);
        verify_crc(entries, c.be_u32()?, 5)?;
        let mut d = Decbuf::with_base(entries, 5);
        let mut t = Self::new();
        while !d.is_empty() {
            let s = d.uvarint()?;
            let a = d.varint()?;
            let b = d.varint()?;
            t.add(s, a, b);
        }
        Ok(t)
    }

    /// Reads `<dir>/tombstones`; a missing file means no tombstones (Thanos never uploads
    /// it). `file` names the file in errors.
    pub fn read_from_dir(dir: &Path, file: &str) -> Result<Self> {
        let path = dir.join(TOMBSTONES_FILENAME);
        match std::fs::read(&path) {
            Ok(data) => Self::decode(&data).map_err(|e| Error::corrupt(file, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::new()),
            Err(e) => Err(Error::io(path.display().to_string(), e)),
        }
    }

    /// Writes `<dir>/tombstones` via a temporary file and rename.
    pub fn write_to_dir(&self, dir: &Path) -> Result<()> {
        let path = dir.join(TOMBSTONES_FILENAME);
        let tmp = dir.join(format!("{TOMBSTONES_FILENAME}.tmp"));
        crate::fsutil::write_file_synced(&tmp, &self.encode())?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(path.display().to_string(), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_nine_bytes() {
        let t = Tombstones::new();
        assert_eq!(t.encode(), vec![0x01, 0x30, 0xba, 0x30, 0x01, 0, 0, 0, 0]);
        assert_eq!(Tombstones::decode(&t.encode()).unwrap(), t);
    }

    #[test]
    fn roundtrip_and_merge() {
        let mut t = Tombstones::new();
        t.add(5, 10, 20);
        t.add(5, 15, 30);
        t.add(5, 40, 50);
        t.add(1, -5, -1);
        assert_eq!(t.intervals(5), &[(10, 30), (40, 50)]);
        assert_eq!(t.num_intervals(), 3);
        assert!(t.is_deleted(5, 30));
        assert!(!t.is_deleted(5, 35));
        let enc = t.encode();
        assert_eq!(Tombstones::decode(&enc).unwrap(), t);
        let mut bad = enc.clone();
        bad[6] ^= 1;
        assert!(matches!(
            Tombstones::decode(&bad).unwrap_err().kind,
            DecodeErrorKind::CrcMismatch { .. }
        ));
        assert!(Tombstones::decode(&enc[..7]).is_err());
        assert!(Tombstones::decode(&enc[..3]).is_err());
    }
}
