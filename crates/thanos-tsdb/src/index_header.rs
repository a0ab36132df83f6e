//! Thanos's binary index-header: the symbol table and postings offset table of a block
//! index, copied verbatim into a small local file so that a store gateway never holds a
//! whole index in memory.
//!
//! Mirrors Thanos's `pkg/block/indexheader` (binary format v1). Layout:
//! magic `0xBAAAD792` (4B) | version 1 (1B) | index version (1B) | offset of the
//! postings offset table in the original index (8B) | symbol table | postings offset
//! table | TOC: symbols offset (8B), postings offset table offset (8B), CRC32C (4B).
//!
//! The header is built from three range reads of the index (TOC, symbols, postings offset
//! table), memory-mapped when opened, and only a sample of the postings offset table (every
//! 32nd value per name by default) is decoded into memory.

use std::path::Path;

use thanos_model::{Label, Labels};

use crate::encoding::{Decbuf, DecodeError, DecodeErrorKind, DecodeResult, Encbuf, verify_crc};
use crate::error::{Error, Result};
use crate::fsutil::{FileBytes, write_file_synced};
use crate::index::tables::{PostingsTable, SymbolTable};
use crate::index::{FORMAT_V2, MAGIC_INDEX, SeriesEntry, TOC_LEN, Toc};

/// Magic number of an index-header file.
pub const MAGIC_INDEX_HEADER: u32 = 0xBAAA_D792;
/// Index-header format version.
pub const INDEX_HEADER_V1: u8 = 1;
/// File name inside the store gateway's per-block directory.
pub const INDEX_HEADER_FILENAME: &str = "index-header";
/// Size of the fixed header.
const HEADER_LEN: u64 = 4 + 1 + 1 + 8;
/// Size of the index-header TOC.
const HEADER_TOC_LEN: usize = 2 * 8 + 4;

/// Reads the framed section (`len | body | crc`) at `offset` of the index with two range
/// reads, verifying its CRC; returns the whole section.
fn fetch_section<F>(offset: u64, index_size: u64, read_range: &mut F) -> Result<Vec<u8>>
where
    F: FnMut(u64, u64) -> Result<Vec<u8>>,
{
    let corrupt = |e| Error::corrupt("index", e);
    if offset.saturating_add(4) > index_size {
        return Err(corrupt(DecodeError::invalid(
            offset,
            "section outside the index",
        )));
    }
    let len_bytes = read_range(offset, offset + 4)?;
    let len = u64::from(
        Decbuf::with_base(&len_bytes, offset)
            .be_u32()
            .map_err(corrupt)?,
    );
    let end = offset + 4 + len + 4;
    if end > index_size {
        return Err(corrupt(DecodeError::new(
            offset,
            DecodeErrorKind::UnexpectedEof {
                needed: len + 8,
                available: index_size - offset,
            },
        )));
    }
    let section = read_range(offset, end)?;
    if section.len() as u64 != end - offset {
        return Err(corrupt(DecodeError::invalid(offset, "short range read")));
    }
    crate::encoding::framed_section(&section, 0)
        .map_err(|e| corrupt(DecodeError::new(e.offset + offset, e.kind)))?;
    Ok(section)
}

/// Builds index-header bytes from range reads of an index of `index_size` bytes.
/// `read_range(start, end)` must return the bytes `[start, end)` of the index (a local
/// file, or ranged GETs against object storage). Six reads are made: the 5-byte index
/// header, the TOC, and two per section (its length, then the whole section).
pub fn build_index_header<F>(index_size: u64, mut read_range: F) -> Result<Vec<u8>>
where
    F: FnMut(u64, u64) -> Result<Vec<u8>>,
{
    let corrupt = |e| Error::corrupt("index", e);
    if index_size < (TOC_LEN as u64) + 5 {
        return Err(corrupt(DecodeError::new(
            0,
            DecodeErrorKind::UnexpectedEof {
                needed: TOC_LEN as u64 + 5,
                available: index_size,
            },
        )));
    }
    let head = read_range(0, 5)?;
    let mut d = Decbuf::new(&head);
    let magic = d.be_u32().map_err(corrupt)?;
    if magic != MAGIC_INDEX {
        return Err(corrupt(DecodeError::new(
            0,
            DecodeErrorKind::BadMagic {
                expected: MAGIC_INDEX,
                found: magic,
            },
        )));
    }
    let version = d.byte().map_err(corrupt)?;
    if !(FORMAT_V2..=3).contains(&version) {
        return Err(corrupt(DecodeError::new(
            4,
            DecodeErrorKind::UnsupportedVersion(u64::from(version)),
        )));
    }
    let toc_off = index_size - TOC_LEN as u64;
    let toc_bytes = read_range(toc_off, index_size)?;
    let toc = Toc::decode_at(&toc_bytes, toc_off).map_err(corrupt)?;
    let symbols = fetch_section(toc.symbols, toc_off, &mut read_range)?;
    let table = fetch_section(toc.postings_offset_table, toc_off, &mut read_range)?;

    let mut e = Encbuf::new();
    e.put_be_u32(MAGIC_INDEX_HEADER);
    e.put_byte(INDEX_HEADER_V1);
    e.put_byte(version);
    e.put_be_u64(toc.postings_offset_table);
    let sym_off = e.len() as u64;
    e.put_bytes(&symbols);
    let table_off = e.len() as u64;
    e.put_bytes(&table);
    let toc_start = e.len();
    e.put_be_u64(sym_off);
    e.put_be_u64(table_off);
    e.put_crc32c_from(toc_start);
    Ok(e.into_vec())
}

/// Builds the index-header of the local index file `index_path` and writes it to `out`.
pub fn write_index_header_from_file(index_path: &Path, out: &Path) -> Result<()> {
    let index = FileBytes::open(index_path)?;
    let name = index_path.display().to_string();
    let bytes = build_index_header(index.len() as u64, |a, b| {
        index
            .get(a as usize..b as usize)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| Error::invalid(&name, format!("range {a}..{b} outside the file")))
    })?;
    write_file_synced(out, &bytes)
}

/// A loaded index-header: sampled symbols and postings offset table over a mmapped file.
#[derive(Debug, Clone)]
pub struct IndexHeader {
    file: String,
    index_version: u8,
    last_posting_end: u64,
    symbols: SymbolTable,
    table: PostingsTable,
}

impl IndexHeader {
    /// Memory-maps and opens an index-header file, keeping every `sampling`-th postings
    /// offset entry per label name in memory (Thanos's default is 32; 1 keeps all).
    pub fn open(path: &Path, sampling: usize) -> Result<Self> {
        Self::from_bytes(FileBytes::open(path)?, path.display().to_string(), sampling)
    }

    /// Opens an index-header from its bytes; `file` names it in errors.
    pub fn from_bytes(data: FileBytes, file: impl Into<String>, sampling: usize) -> Result<Self> {
        let file = file.into();
        Self::parse(data, file.clone(), sampling).map_err(|e| Error::corrupt(file, e))
    }

    fn parse(data: FileBytes, file: String, sampling: usize) -> DecodeResult<Self> {
        let mut d = Decbuf::new(&data);
        let magic = d.be_u32()?;
        if magic != MAGIC_INDEX_HEADER {
            return Err(DecodeError::new(
                0,
                DecodeErrorKind::BadMagic {
                    expected: MAGIC_INDEX_HEADER,
                    found: magic,
                },
            ));
        }
        let v = d.byte()?;
        if v != INDEX_HEADER_V1 {
            return Err(DecodeError::new(
                4,
                DecodeErrorKind::UnsupportedVersion(u64::from(v)),
            ));
        }
        let index_version = d.byte()?;
        if !(FORMAT_V2..=3).contains(&index_version) {
            return Err(DecodeError::new(
                5,
                DecodeErrorKind::UnsupportedVersion(u64::from(index_version)),
            ));
        }
        let last_posting_end = d.be_u64()?;
        if (data.len() as u64) < HEADER_LEN + HEADER_TOC_LEN as u64 {
            return Err(DecodeError::new(
                HEADER_LEN,
                DecodeErrorKind::UnexpectedEof {
                    needed: HEADER_TOC_LEN as u64,
                    available: data.len() as u64 - HEADER_LEN.min(data.len() as u64),
                },
            ));
        }
        let toc_off = data.len() - HEADER_TOC_LEN;
        let mut t = Decbuf::with_base(&data[toc_off..], toc_off as u64);
        let sym_off = t.be_u64()?;
        let table_off = t.be_u64()?;
        verify_crc(&data[toc_off..toc_off + 16], t.be_u32()?, toc_off as u64)?;
        for off in [sym_off, table_off] {
            if off < HEADER_LEN || off >= toc_off as u64 {
                return Err(DecodeError::invalid(
                    toc_off as u64,
                    format!("toc offset {off} outside the file"),
                ));
            }
        }
        let symbols = SymbolTable::load(data.clone(), sym_off)?;
        let table = PostingsTable::load(data, table_off, sampling)?;
        Ok(Self {
            file,
            index_version,
            last_posting_end,
            symbols,
            table,
        })
    }

    fn corrupt(&self, e: DecodeError) -> Error {
        Error::corrupt(&self.file, e)
    }

    /// Version of the index this header was built from.
    pub fn index_version(&self) -> u8 {
        self.index_version
    }

    /// Offset of the postings offset table in the original index (end of the last list).
    pub fn last_posting_end(&self) -> u64 {
        self.last_posting_end
    }

    /// The symbol with ordinal `r` (as referenced by series entries of the index).
    pub fn symbol(&self, r: u32) -> Result<&str> {
        self.symbols.lookup(r).map_err(|e| self.corrupt(e))
    }

    /// Resolves the symbol references of a series entry (fetched by range read and decoded
    /// with [`crate::index::decode_series_entry`]) into a label set.
    pub fn resolve_labels(&self, entry: &SeriesEntry) -> Result<Labels> {
        // Symbol ordinals follow the sorted symbol table, so names are sorted and unique
        // exactly when their ordinals strictly increase.
        if entry.label_refs.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(Error::invalid(
                &self.file,
                "series labels not sorted by name",
            ));
        }
        // Collected from an iterator of known length: one allocation, the set's own.
        let mut failed = None;
        let labels: std::sync::Arc<[Label]> = entry
            .label_refs
            .iter()
            .map(|&(n, v)| match (self.symbol(n), self.symbol(v)) {
                (Ok(n), Ok(v)) => Label::new(n, v),
                (Err(e), _) | (_, Err(e)) => {
                    failed.get_or_insert(e);
                    Label::default()
                }
            })
            .collect();
        match failed {
            Some(e) => Err(e),
            None => Ok(Labels::from_sorted_unchecked(labels)),
        }
    }

    /// Label names, sorted.
    pub fn label_names(&self) -> Vec<&str> {
        self.table.names().collect()
    }

    /// Values of label `name`, sorted.
    pub fn label_values(&self, name: &str) -> Result<Vec<&str>> {
        Ok(self
            .table
            .values(name)
            .map_err(|e| self.corrupt(e))?
            .into_iter()
            .map(|(v, _)| v)
            .collect())
    }

    /// Byte range `[start, end)` of the original index holding the postings list of
    /// `name=value` (the end may include alignment padding), or `None` when the pair does
    /// not exist. Fetch it and decode with [`crate::index::decode_postings_list`].
    pub fn postings_range(&self, name: &str, value: &str) -> Result<Option<(u64, u64)>> {
        Ok(self
            .table
            .offset(name, value)
            .map_err(|e| self.corrupt(e))?
            .map(|(start, next)| (start, next.unwrap_or(self.last_posting_end))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{ChunkMeta, IndexReader, IndexWriter, decode_postings_list};
    use thanos_model::Labels;

    fn write_index(dir: &Path, legacy: bool) -> std::path::PathBuf {
        let path = dir.join("index");
        let mut w = IndexWriter::create(&path)
            .unwrap()
            .with_legacy_label_indices(legacy);
        let mut series = Vec::new();
        for i in 0..300 {
            series.push(Labels::from_pairs([
                ("__name__", format!("m{}", i % 7)),
                ("id", format!("{i:05}")),
                ("mod", format!("{}", i % 3)),
            ]));
        }
        series.sort();
        let mut syms: Vec<String> = series
            .iter()
            .flat_map(|l| {
                l.iter()
                    .flat_map(|x| [x.name.to_string(), x.value.to_string()])
            })
            .collect();
        syms.sort();
        syms.dedup();
        for s in &syms {
            w.add_symbol(s).unwrap();
        }
        for (i, l) in series.iter().enumerate() {
            let c = ChunkMeta {
                min_time: i as i64,
                max_time: i as i64 + 10,
                chunk_ref: 8 + 20 * i as u64,
            };
            w.add_series(l, &[c]).unwrap();
        }
        w.finish().unwrap();
        path
    }

    #[test]
    fn header_answers_like_the_index() {
        for legacy in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let index_path = write_index(dir.path(), legacy);
            let index = IndexReader::open(&index_path).unwrap();
            let raw = std::fs::read(&index_path).unwrap();
            let mut reads = 0;
            let bytes = build_index_header(raw.len() as u64, |a, b| {
                reads += 1;
                Ok(raw[a as usize..b as usize].to_vec())
            })
            .unwrap();
            assert_eq!(reads, 6);
            assert_eq!(&bytes[..6], &[0xba, 0xaa, 0xd7, 0x92, 1, 2]);
            let out = dir.path().join(INDEX_HEADER_FILENAME);
            write_index_header_from_file(&index_path, &out).unwrap();
            assert_eq!(std::fs::read(&out).unwrap(), bytes);
            for sampling in [1, 32, 5] {
                let h = IndexHeader::open(&out, sampling).unwrap();
                assert_eq!(h.last_posting_end(), index.toc().postings_offset_table);
                assert_eq!(h.label_names(), index.label_names());
                for name in index.label_names() {
                    let values = h.label_values(name).unwrap();
                    assert_eq!(values, index.label_values(name).unwrap());
                    for v in values {
                        let (a, b) = h.postings_range(name, v).unwrap().unwrap();
                        let list = decode_postings_list(&raw[a as usize..b as usize], a).unwrap();
                        assert_eq!(list, index.postings(name, v).unwrap());
                    }
                    assert_eq!(h.postings_range(name, "zzzz").unwrap(), None);
                }
                let (a, b) = h.postings_range("", "").unwrap().unwrap();
                let all = decode_postings_list(&raw[a as usize..b as usize], a).unwrap();
                assert_eq!(all.len(), 300);
                // Series by range read: entry bytes from the index, symbols from the header.
                for &r in all.iter().step_by(17) {
                    let off = r * 16;
                    let entry =
                        crate::index::decode_series_entry(&raw[off as usize..], off).unwrap();
                    let (labels, chunks) = index.series(r).unwrap();
                    assert_eq!(h.resolve_labels(&entry).unwrap(), labels);
                    assert_eq!(entry.chunks, chunks);
                }
                for r in 0..index.num_symbols() {
                    assert_eq!(h.symbol(r).unwrap(), index.symbol(r).unwrap());
                }
            }
        }
    }

    #[test]
    fn corrupt_headers_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let index_path = write_index(dir.path(), false);
        let raw = std::fs::read(&index_path).unwrap();
        let bytes = build_index_header(raw.len() as u64, |a, b| {
            Ok(raw[a as usize..b as usize].to_vec())
        })
        .unwrap();
        // Bytes 6..14 (the original postings-table offset) are not covered by any checksum.
        for i in (0..bytes.len()).filter(|i| !(6..14).contains(i)) {
            let mut bad = bytes.clone();
            bad[i] ^= 0x41;
            let r = IndexHeader::from_bytes(bad.into(), "index-header", 32);
            assert!(r.is_err(), "flip at {i} not detected");
        }
        for len in 0..bytes.len() {
            assert!(IndexHeader::from_bytes(bytes[..len].to_vec().into(), "h", 32).is_err());
        }
        let mut bad_index = raw.clone();
        let n = bad_index.len();
        bad_index[n - 60] ^= 1;
        let err = build_index_header(n as u64, |a, b| {
            Ok(bad_index[a as usize..b as usize].to_vec())
        })
        .unwrap_err();
        assert!(err.to_string().starts_with("index:"), "{err}");
    }
}
