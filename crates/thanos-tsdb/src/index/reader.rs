//! Index reader over the whole index file (memory-mapped or owned bytes).

use std::collections::BTreeSet;
use std::path::Path;

use thanos_model::{Label, Labels, MatchType, Matcher};

use super::postings::{intersect, merge, without};
use super::tables::{PostingsTable, SymbolTable};
use super::{
    ChunkMeta, FORMAT_V2, HEADER_LEN, MAGIC_INDEX, SERIES_ALIGNMENT, SeriesRef, TOC_LEN, Toc,
};
use crate::encoding::{Decbuf, DecodeError, DecodeErrorKind, DecodeResult, framed_section};
use crate::error::{Error, Result};
use crate::fsutil::FileBytes;

/// Default sampling of the postings offset table kept in memory.
pub const DEFAULT_POSTINGS_SAMPLING: usize = 32;

/// A decoded series entry: label pairs as symbol ordinals, and chunk metas.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeriesEntry {
    /// `(name, value)` symbol references, sorted by name.
    pub label_refs: Vec<(u32, u32)>,
    /// Chunk metas in time order.
    pub chunks: Vec<ChunkMeta>,
}

/// Decodes the series entry starting at the start of `entry` (the `len` uvarint), CRC
/// checked; `offset` is its absolute position, for errors. Usable on a byte range fetched
/// from object storage.
pub fn decode_series_entry(entry: &[u8], offset: u64) -> DecodeResult<SeriesEntry> {
    let mut out = SeriesEntry::default();
    decode_series_entry_into(entry, offset, &mut out)?;
    Ok(out)
}

/// [`decode_series_entry`] into `out`, whose vectors are cleared and refilled: decoding
/// many entries into one keeps their allocations (readers that move the chunk metas out
/// per series still reuse the label references).
pub fn decode_series_entry_into(
    entry: &[u8],
    offset: u64,
    out: &mut SeriesEntry,
) -> DecodeResult<()> {
    let mut d = Decbuf::with_base(entry, offset);
    let len = d.uvarint()?;
    let body_off = d.offset();
    let len = usize::try_from(len).map_err(|_| DecodeError::invalid(offset, "series too long"))?;
    let body = d.bytes(len)?;
    let stored = d.be_u32()?;
    crate::encoding::verify_crc(body, stored, body_off)?;
    let mut d = Decbuf::with_base(body, body_off);
    let nlabels = d.uvarint()?;
    let label_refs = &mut out.label_refs;
    label_refs.clear();
    label_refs.reserve(nlabels.min(256) as usize);
    for _ in 0..nlabels {
        let n = d.uvarint32()?;
        let v = d.uvarint32()?;
        label_refs.push((n, v));
    }
    let nchunks = d.uvarint()?;
    let chunks = &mut out.chunks;
    chunks.clear();
    chunks.reserve(nchunks.min(4096) as usize);
    let mut prev: Option<ChunkMeta> = None;
    for _ in 0..nchunks {
        let c = match prev {
            None => {
                let min_time = d.varint()?;
                let max_time = min_time.wrapping_add(d.uvarint()? as i64);
                let chunk_ref = d.uvarint()?;
                ChunkMeta {
                    min_time,
                    max_time,
                    chunk_ref,
                }
            }
            Some(p) => {
                let min_time = p.max_time.wrapping_add(d.uvarint()? as i64);
                let max_time = min_time.wrapping_add(d.uvarint()? as i64);
                let chunk_ref = p.chunk_ref.wrapping_add(d.varint()? as u64);
                ChunkMeta {
                    min_time,
                    max_time,
                    chunk_ref,
                }
            }
        };
        chunks.push(c);
        prev = Some(c);
    }
    if !d.is_empty() {
        return Err(DecodeError::invalid(
            d.offset(),
            format!("{} trailing bytes in series entry", d.remaining()),
        ));
    }
    Ok(())
}

/// Decodes the postings list whose `len` field is at the start of `list`; `offset` is its
/// absolute position. Usable on a byte range fetched from object storage.
pub fn decode_postings_list(list: &[u8], offset: u64) -> DecodeResult<Vec<SeriesRef>> {
    let mut d = framed_section(list, 0).map_err(|e| DecodeError::new(e.offset + offset, e.kind))?;
    let count = d.be_u32()? as usize;
    if d.remaining() != count * 4 {
        return Err(DecodeError::invalid(
            offset,
            format!(
                "postings list of {count} entries has {} bytes",
                d.remaining()
            ),
        ));
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        out.push(u64::from(d.be_u32()?));
    }
    Ok(out)
}

/// Reads a v2 index. Keeps only sampled symbols and postings-table entries in memory.
#[derive(Debug, Clone)]
pub struct IndexReader {
    file: String,
    data: FileBytes,
    version: u8,
    toc: Toc,
    symbols: SymbolTable,
    table: PostingsTable,
}

impl IndexReader {
    /// Memory-maps and opens the index at `path`; errors name `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let data = FileBytes::open(path)?;
        Self::from_bytes(data, path.display().to_string())
    }

    /// Opens an index from its bytes; `file` names it in errors.
    pub fn from_bytes(data: FileBytes, file: impl Into<String>) -> Result<Self> {
        let file = file.into();
        Self::parse(data, &file).map_err(|e| Error::corrupt(file, e))
    }

    fn parse(data: FileBytes, file: &str) -> DecodeResult<Self> {
        let mut d = Decbuf::new(&data);
        let magic = d.be_u32()?;
        if magic != MAGIC_INDEX {
            return Err(DecodeError::new(
                0,
                DecodeErrorKind::BadMagic {
                    expected: MAGIC_INDEX,
                    found: magic,
                },
            ));
        }
        let version = d.byte()?;
        // Version 3 is reserved and read like 2; version 1 uses byte offsets as
        // references and is not supported.
        if !(FORMAT_V2..=3).contains(&version) {
            return Err(DecodeError::new(
                4,
                DecodeErrorKind::UnsupportedVersion(u64::from(version)),
            ));
        }
        let toc = Toc::decode(&data)?;
        let toc_start = (data.len() - TOC_LEN) as u64;
        for (what, off) in [
            ("symbol table", toc.symbols),
            ("postings offset table", toc.postings_offset_table),
        ] {
            if off < HEADER_LEN || off >= toc_start {
                return Err(DecodeError::invalid(
                    toc_start,
                    format!("toc {what} offset {off} outside the file"),
                ));
            }
        }
        let symbols = SymbolTable::load(data.clone(), toc.symbols)?;
        let table = PostingsTable::load(
            data.clone(),
            toc.postings_offset_table,
            DEFAULT_POSTINGS_SAMPLING,
        )?;
        Ok(Self {
            file: file.to_string(),
            data,
            version,
            toc,
            symbols,
            table,
        })
    }

    /// Name of the index file used in errors.
    pub fn file_name(&self) -> &str {
        &self.file
    }

    /// Index format version (2, or the reserved 3).
    pub fn version(&self) -> u8 {
        self.version
    }

    /// The table of contents.
    pub fn toc(&self) -> &Toc {
        &self.toc
    }

    /// Size of the index file in bytes.
    pub fn size(&self) -> u64 {
        self.data.len() as u64
    }

    /// The whole index file.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    fn corrupt(&self, e: DecodeError) -> Error {
        Error::corrupt(&self.file, e)
    }

    /// Number of symbols.
    pub fn num_symbols(&self) -> u32 {
        self.symbols.count()
    }

    /// The symbol with ordinal `r`.
    pub fn symbol(&self, r: u32) -> Result<&str> {
        self.symbols.lookup(r).map_err(|e| self.corrupt(e))
    }

    /// All symbols in order.
    pub fn symbols(&self) -> Result<Vec<&str>> {
        self.symbols.all().map_err(|e| self.corrupt(e))
    }

    /// The ordinal of symbol `s`, if present.
    pub fn symbol_ref(&self, s: &str) -> Result<Option<u32>> {
        self.symbols.reverse(s).map_err(|e| self.corrupt(e))
    }

    /// Label names present in the index, sorted.
    pub fn label_names(&self) -> Vec<&str> {
        self.table.names().collect()
    }

    /// Label names of the series selected by `matchers` (all names when empty), sorted.
    pub fn label_names_for(&self, matchers: &[Matcher]) -> Result<Vec<String>> {
        if matchers.is_empty() {
            return Ok(self.table.names().map(str::to_string).collect());
        }
        let mut names = BTreeSet::new();
        for r in self.postings_for_matchers(matchers)? {
            let e = self.series_entry(r)?;
            for (n, _) in e.label_refs {
                names.insert(n);
            }
        }
        names
            .into_iter()
            .map(|n| self.symbol(n).map(str::to_string))
            .collect()
    }

    /// Values of label `name`, sorted (empty when the name does not exist).
    pub fn label_values(&self, name: &str) -> Result<Vec<&str>> {
        Ok(self
            .label_value_offsets(name)?
            .into_iter()
            .map(|(v, _)| v)
            .collect())
    }

    /// Values of `name` with the offsets of their postings lists.
    fn label_value_offsets(&self, name: &str) -> Result<Vec<(&str, u64)>> {
        self.table.values(name).map_err(|e| self.corrupt(e))
    }

    /// Values of `name` among the series selected by `matchers` (all values when empty).
    pub fn label_values_for(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>> {
        if matchers.is_empty() {
            return Ok(self
                .label_values(name)?
                .into_iter()
                .map(str::to_string)
                .collect());
        }
        let selected = self.postings_for_matchers(matchers)?;
        let mut out = Vec::new();
        for (v, off) in self.label_value_offsets(name)? {
            let p = self.read_postings(off)?;
            if !intersect(&[&p, &selected]).is_empty() {
                out.push(v.to_string());
            }
        }
        Ok(out)
    }

    /// Offset of the postings list for `name=value`, if the pair exists.
    pub fn postings_offset(&self, name: &str, value: &str) -> Result<Option<u64>> {
        Ok(self
            .table
            .offset(name, value)
            .map_err(|e| self.corrupt(e))?
            .map(|(o, _)| o))
    }

    /// Reads the postings list at `offset`.
    pub fn read_postings(&self, offset: u64) -> Result<Vec<SeriesRef>> {
        let start = usize::try_from(offset)
            .ok()
            .filter(|&s| s < self.data.len())
            .ok_or_else(|| {
                self.corrupt(DecodeError::invalid(
                    offset,
                    "postings offset outside the file",
                ))
            })?;
        decode_postings_list(&self.data[start..], offset).map_err(|e| self.corrupt(e))
    }

    /// Series references for `name=value` (empty when the pair does not exist). The pair
    /// `("", "")` gives all series.
    pub fn postings(&self, name: &str, value: &str) -> Result<Vec<SeriesRef>> {
        match self.postings_offset(name, value)? {
            Some(off) => self.read_postings(off),
            None => Ok(Vec::new()),
        }
    }

    /// All series references.
    pub fn all_postings(&self) -> Result<Vec<SeriesRef>> {
        self.postings("", "")
    }

    /// Union of the postings of every value of `name` accepted by `keep`.
    fn postings_for_values(
        &self,
        name: &str,
        keep: impl Fn(&str) -> bool,
    ) -> Result<Vec<SeriesRef>> {
        let mut lists = Vec::new();
        for (v, off) in self.label_value_offsets(name)? {
            if keep(v) {
                lists.push(self.read_postings(off)?);
            }
        }
        let refs: Vec<&[SeriesRef]> = lists.iter().map(Vec::as_slice).collect();
        Ok(merge(&refs))
    }

    /// Series selected by all `matchers`, with Prometheus semantics: a matcher that
    /// matches the empty string also selects series without the label.
    pub fn postings_for_matchers(&self, matchers: &[Matcher]) -> Result<Vec<SeriesRef>> {
        let mut include: Vec<Vec<SeriesRef>> = Vec::new();
        let mut exclude: Vec<Vec<SeriesRef>> = Vec::new();
        for m in matchers {
            if m.matches("") {
                // Selected = series without the label or whose value matches; so drop the
                // series whose (non-empty) value does not match.
                if m.match_type() == MatchType::RegexMatch && m.value() == ".*" {
                    continue;
                }
                exclude.push(self.postings_for_values(m.name(), |v| !m.matches(v))?);
            } else if m.match_type() == MatchType::Equal {
                include.push(self.postings(m.name(), m.value())?);
            } else {
                include.push(self.postings_for_values(m.name(), |v| m.matches(v))?);
            }
        }
        let mut out = if include.is_empty() {
            self.all_postings()?
        } else {
            let refs: Vec<&[SeriesRef]> = include.iter().map(Vec::as_slice).collect();
            intersect(&refs)
        };
        for ex in &exclude {
            if out.is_empty() {
                break;
            }
            out = without(&out, ex);
        }
        Ok(out)
    }

    /// The raw series entry for `series_ref`.
    pub fn series_entry(&self, series_ref: SeriesRef) -> Result<SeriesEntry> {
        let off = series_ref.saturating_mul(SERIES_ALIGNMENT);
        let limit = self.toc.label_indices.max(self.toc.postings);
        if off < self.toc.series || off >= limit || off as usize >= self.data.len() {
            return Err(self.corrupt(DecodeError::invalid(
                off,
                format!("series reference {series_ref} outside the series section"),
            )));
        }
        decode_series_entry(&self.data[off as usize..], off).map_err(|e| self.corrupt(e))
    }

    /// Labels and chunk metas of the series `series_ref`.
    pub fn series(&self, series_ref: SeriesRef) -> Result<(Labels, Vec<ChunkMeta>)> {
        let e = self.series_entry(series_ref)?;
        let mut labels = Vec::with_capacity(e.label_refs.len());
        for &(n, v) in &e.label_refs {
            labels.push(Label::new(self.symbol(n)?, self.symbol(v)?));
        }
        if labels.windows(2).any(|w| w[0].name >= w[1].name) {
            return Err(self.corrupt(DecodeError::invalid(
                series_ref * SERIES_ALIGNMENT,
                "series labels not sorted by name",
            )));
        }
        Ok((Labels::from_sorted_unchecked(labels), e.chunks))
    }
}
