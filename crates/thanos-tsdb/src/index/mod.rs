//! The block `index` file, format version 2.
//!
//! Mirrors Prometheus's `tsdb/index` package. Layout: magic `0xBAAAD700`, version byte,
//! symbol table, 16-byte aligned series entries (series ref = offset / 16), optional legacy
//! label indices, 4-byte aligned postings lists (starting with the all-postings list under
//! `("", "")`), optional legacy label offset table, postings offset table and a 52-byte TOC.

mod postings;
mod reader;
pub(crate) mod tables;
mod writer;

pub use postings::{intersect, merge, without};
pub use reader::{
    DEFAULT_POSTINGS_SAMPLING, IndexReader, SeriesEntry, decode_postings_list, decode_series_entry,
    decode_series_entry_into,
};
pub use writer::{IndexWriter, IndexWriterSummary};

use crate::encoding::{Decbuf, DecodeError, DecodeErrorKind, DecodeResult, Encbuf, verify_crc};

/// Magic number at the start of an index file.
pub const MAGIC_INDEX: u32 = 0xBAAA_D700;
/// Index format version 1 (symbol and series references are byte offsets).
pub const FORMAT_V1: u8 = 1;
/// Index format version 2 (the one written by Prometheus since 2.x).
pub const FORMAT_V2: u8 = 2;
/// Size of the header (magic + version).
pub const HEADER_LEN: u64 = 5;
/// Size of the TOC at the end of the file.
pub const TOC_LEN: usize = 6 * 8 + 4;
/// Name of the index file inside a block.
pub const INDEX_FILENAME: &str = "index";
/// Series entries are aligned to this many bytes; a series ref is its offset divided by it.
pub const SERIES_ALIGNMENT: u64 = 16;

/// A series reference: the series entry's offset in the index divided by 16.
pub type SeriesRef = u64;

/// Reference of a chunk and the time range it covers (inclusive on both ends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkMeta {
    /// First sample timestamp (ms).
    pub min_time: i64,
    /// Last sample timestamp (ms).
    pub max_time: i64,
    /// Chunk reference into the chunk segment files.
    pub chunk_ref: u64,
}

/// The index table of contents: absolute offsets of the sections (0 = absent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Toc {
    /// Symbol table.
    pub symbols: u64,
    /// End of the symbol table (the series entries start at the next multiple of 16).
    pub series: u64,
    /// Legacy label indices; for writers without them the postings start.
    pub label_indices: u64,
    /// Legacy label offset table; for writers without it equal to `postings_offset_table`.
    pub label_offset_table: u64,
    /// Start of the postings lists (before alignment padding).
    pub postings: u64,
    /// Postings offset table.
    pub postings_offset_table: u64,
}

impl Toc {
    /// Reads and CRC-checks the TOC from the last 52 bytes of `index`.
    pub fn decode(index: &[u8]) -> DecodeResult<Self> {
        if index.len() < TOC_LEN + HEADER_LEN as usize {
            return Err(DecodeError::new(
                0,
                DecodeErrorKind::UnexpectedEof {
                    needed: (TOC_LEN as u64) + HEADER_LEN,
                    available: index.len() as u64,
                },
            ));
        }
        let start = index.len() - TOC_LEN;
        Self::decode_at(&index[start..], start as u64)
    }

    /// Decodes and CRC-checks a TOC from exactly its 52 bytes, found at absolute `offset`
    /// (for range reads of the index tail).
    pub fn decode_at(toc: &[u8], offset: u64) -> DecodeResult<Self> {
        let mut d = Decbuf::with_base(toc, offset);
        let parsed = Self {
            symbols: d.be_u64()?,
            series: d.be_u64()?,
            label_indices: d.be_u64()?,
            label_offset_table: d.be_u64()?,
            postings: d.be_u64()?,
            postings_offset_table: d.be_u64()?,
        };
        let stored = d.be_u32()?;
        verify_crc(&toc[..TOC_LEN - 4], stored, offset)?;
        Ok(parsed)
    }

    /// Encodes the TOC with its CRC.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encbuf::new();
        for v in [
            self.symbols,
            self.series,
            self.label_indices,
            self.label_offset_table,
            self.postings,
            self.postings_offset_table,
        ] {
            e.put_be_u64(v);
        }
        e.put_crc32c_from(0);
        e.into_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use thanos_model::Labels;

    fn sample_series() -> Vec<Labels> {
        let mut v: Vec<Labels> = (0..1000)
            .map(|i| {
                Labels::from_pairs([
                    ("__name__", format!("m{}", i % 13)),
                    ("id", format!("{i}")),
                    (
                        "odd",
                        if i % 2 == 1 {
                            "yes".to_string()
                        } else {
                            String::new()
                        },
                    ),
                ])
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn writer_reader_roundtrip_with_sampling_boundaries() {
        let series = sample_series();
        let mut syms: Vec<String> = series
            .iter()
            .flat_map(|l| {
                l.iter()
                    .flat_map(|x| [x.name.to_string(), x.value.to_string()])
            })
            .collect();
        syms.push(String::new());
        syms.sort();
        syms.dedup();
        for legacy in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("index");
            let mut w = IndexWriter::create(&path)
                .unwrap()
                .with_legacy_label_indices(legacy);
            for s in &syms {
                w.add_symbol(s).unwrap();
            }
            assert!(w.add_symbol("a").is_err());
            let mut expected: BTreeMap<(String, String), Vec<u64>> = BTreeMap::new();
            let mut refs = Vec::new();
            for (i, l) in series.iter().enumerate() {
                let chunks: Vec<ChunkMeta> = (0..(i % 4) as i64)
                    .map(|k| ChunkMeta {
                        min_time: -50 + k * 100,
                        max_time: -50 + k * 100 + 99,
                        chunk_ref: (k as u64) << 32 | (8 + i as u64 * 3),
                    })
                    .collect();
                let r = w.add_series(l, &chunks).unwrap();
                refs.push((r, l.clone(), chunks));
                for x in l {
                    expected
                        .entry((x.name.to_string(), x.value.to_string()))
                        .or_default()
                        .push(r);
                }
            }
            assert!(
                w.add_series(&series[0], &[]).is_err(),
                "out of order accepted"
            );
            let summary = w.finish().unwrap();
            let r = IndexReader::open(&path).unwrap();
            assert_eq!(r.toc(), &summary.toc);
            if legacy {
                assert!(r.toc().label_indices < r.toc().postings);
                assert!(r.toc().label_offset_table < r.toc().postings_offset_table);
            } else {
                assert_eq!(r.toc().label_indices, r.toc().postings);
                assert_eq!(r.toc().label_offset_table, r.toc().postings_offset_table);
            }
            assert_eq!(
                r.symbols().unwrap(),
                syms.iter().map(String::as_str).collect::<Vec<_>>()
            );
            for (i, s) in syms.iter().enumerate() {
                assert_eq!(r.symbol_ref(s).unwrap(), Some(i as u32));
            }
            assert_eq!(r.symbol_ref("zz").unwrap(), None);
            assert!(r.symbol(syms.len() as u32).is_err());
            for ((n, v), want) in &expected {
                assert_eq!(&r.postings(n, v).unwrap(), want, "{n}={v}");
            }
            assert!(r.postings("id", "99999").unwrap().is_empty());
            assert!(r.postings("id", "").unwrap().is_empty());
            assert_eq!(r.label_values("id").unwrap().len(), 1000);
            assert_eq!(r.all_postings().unwrap().len(), 1000);
            for (sref, l, chunks) in &refs {
                let (gl, gc) = r.series(*sref).unwrap();
                assert_eq!(&gl, l);
                assert_eq!(&gc, chunks);
            }
            assert!(r.series(1).is_err());
            assert!(r.series(u64::MAX).is_err());
        }
    }

    #[test]
    fn toc_roundtrip_and_crc() {
        let toc = Toc {
            symbols: 5,
            series: 62,
            label_indices: 150,
            label_offset_table: 352,
            postings: 224,
            postings_offset_table: 395,
        };
        let mut file = vec![0u8; 5];
        file.extend(toc.encode());
        assert_eq!(file.len(), 5 + TOC_LEN);
        // CRC bytes of this exact TOC in a promtool 2.42 index.
        assert_eq!(&file[file.len() - 4..], &[0x01, 0x75, 0x49, 0xdc]);
        assert_eq!(Toc::decode(&file).unwrap(), toc);
        let n = file.len();
        file[n - 10] ^= 1;
        assert!(matches!(
            Toc::decode(&file).unwrap_err().kind,
            DecodeErrorKind::CrcMismatch { .. }
        ));
        assert!(Toc::decode(&file[..20]).is_err());
    }
}
