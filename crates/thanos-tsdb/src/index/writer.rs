//! Streaming index writer.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use thanos_model::Labels;

use super::{ChunkMeta, FORMAT_V2, MAGIC_INDEX, SERIES_ALIGNMENT, SeriesRef, Toc};
use crate::encoding::{Encbuf, crc32c};
use crate::error::{Error, Result};

/// What an [`IndexWriter`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexWriterSummary {
    /// Size of the index file.
    pub size: u64,
    /// Number of series written.
    pub num_series: u64,
    /// Largest series entry (length field + body + CRC) in bytes.
    pub series_max_size: u64,
    /// The TOC written.
    pub toc: Toc,
}

/// Writes an index file. Symbols must be added first (sorted, unique), then series in
/// label order; [`IndexWriter::finish`] writes postings, tables and the TOC. Series entries
/// are streamed to disk; memory holds the symbol table and the postings lists.
pub struct IndexWriter {
    path: PathBuf,
    out: BufWriter<File>,
    pos: u64,
    legacy_label_indices: bool,
    symbols: HashMap<String, u32>,
    symbol_buf: Encbuf,
    last_symbol: Option<String>,
    symbols_written: bool,
    toc: Toc,
    last_series: Option<Labels>,
    all_postings: Vec<u32>,
    postings: HashMap<(u32, u32), Vec<u32>>,
    buf: Encbuf,
    series_max_size: u64,
}

impl IndexWriter {
    /// Creates the index file at `path` and writes its header.
    pub fn create(path: &Path) -> Result<Self> {
        let f = File::create(path).map_err(|e| Error::io(path.display().to_string(), e))?;
        let mut w = Self {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(1 << 20, f),
            pos: 0,
            legacy_label_indices: false,
            symbols: HashMap::new(),
            symbol_buf: Encbuf::new(),
            last_symbol: None,
            symbols_written: false,
            toc: Toc::default(),
            last_series: None,
            all_postings: Vec::new(),
            postings: HashMap::new(),
            buf: Encbuf::new(),
            series_max_size: 0,
        };
        let mut hdr = MAGIC_INDEX.to_be_bytes().to_vec();
        hdr.push(FORMAT_V2);
        w.write(&hdr)?;
        Ok(w)
    }

    /// Also writes the legacy label indices and label offset table, as Prometheus up to
    /// v3.6 (including Debian's 2.42) does. Off by default, like Prometheus ≥ 3.7. Either
    /// way the file is readable by every v2 reader.
    pub fn with_legacy_label_indices(mut self, on: bool) -> Self {
        self.legacy_label_indices = on;
        self
    }

    fn name(&self) -> String {
        self.path.display().to_string()
    }

    fn write(&mut self, b: &[u8]) -> Result<()> {
        self.out
            .write_all(b)
            .map_err(|e| Error::io(self.path.display().to_string(), e))?;
        self.pos += b.len() as u64;
        Ok(())
    }

    fn pad(&mut self, align: u64) -> Result<()> {
        let rem = self.pos % align;
        if rem != 0 {
            let zeros = [0u8; 16];
            self.write(&zeros[..(align - rem) as usize])?;
        }
        Ok(())
    }

    /// Adds a symbol. Symbols must be strictly increasing (byte order) and added before
    /// any series.
    pub fn add_symbol(&mut self, s: &str) -> Result<()> {
        if self.symbols_written {
            return Err(Error::invalid_input(
                self.name(),
                "symbol added after the first series",
            ));
        }
        if let Some(last) = &self.last_symbol
            && last.as_str() >= s
        {
            return Err(Error::invalid_input(
                self.name(),
                format!("symbol {s:?} not greater than previous {last:?}"),
            ));
        }
        let ord = u32::try_from(self.symbols.len())
            .map_err(|_| Error::invalid_input(self.name(), "more than 2^32 symbols"))?;
        self.symbol_buf.put_uvarint_str(s);
        self.symbols.insert(s.to_string(), ord);
        self.last_symbol = Some(s.to_string());
        Ok(())
    }

    fn write_symbols(&mut self) -> Result<()> {
        if self.symbols_written {
            return Ok(());
        }
        self.symbols_written = true;
        self.toc.symbols = self.pos;
        let body_len = 4 + self.symbol_buf.len();
        let len = u32::try_from(body_len)
            .map_err(|_| Error::invalid_input(self.name(), "symbol table larger than 4 GiB"))?;
        let mut e = Encbuf::new();
        e.put_be_u32(len);
        e.put_be_u32(self.symbols.len() as u32);
        let mut crc = crc32c::crc32c(&e.as_slice()[4..]);
        crc = crc32c::crc32c_append(crc, self.symbol_buf.as_slice());
        self.write(e.as_slice())?;
        let body = std::mem::take(&mut self.symbol_buf);
        self.write(body.as_slice())?;
        self.write(&crc.to_be_bytes())?;
        self.toc.series = self.pos;
        Ok(())
    }

    /// Adds a series; series must come in strictly increasing label order and use only
    /// added symbols. Returns its series reference.
    pub fn add_series(&mut self, labels: &Labels, chunks: &[ChunkMeta]) -> Result<SeriesRef> {
        self.write_symbols()?;
        if let Some(last) = &self.last_series
            && last >= labels
        {
            return Err(Error::invalid_input(
                self.name(),
                format!("series {labels} out of order (after {last})"),
            ));
        }
        self.pad(SERIES_ALIGNMENT)?;
        let sref = self.pos / SERIES_ALIGNMENT;
        let sref32 = u32::try_from(sref)
            .map_err(|_| Error::invalid_input(self.name(), "index exceeds 64 GiB of series"))?;
        self.buf.reset();
        self.buf.put_uvarint(labels.len() as u64);
        for l in labels {
            let n = self.symbol_ordinal(&l.name)?;
            let v = self.symbol_ordinal(&l.value)?;
            self.buf.put_uvarint(u64::from(n));
            self.buf.put_uvarint(u64::from(v));
            self.postings.entry((n, v)).or_default().push(sref32);
        }
        self.buf.put_uvarint(chunks.len() as u64);
        let mut prev: Option<&ChunkMeta> = None;
        for c in chunks {
            match prev {
                None => {
                    self.buf.put_varint(c.min_time);
                    self.buf
                        .put_uvarint(c.max_time.wrapping_sub(c.min_time) as u64);
                    self.buf.put_uvarint(c.chunk_ref);
                }
                Some(p) => {
                    self.buf
                        .put_uvarint(c.min_time.wrapping_sub(p.max_time) as u64);
                    self.buf
                        .put_uvarint(c.max_time.wrapping_sub(c.min_time) as u64);
                    self.buf
                        .put_varint(c.chunk_ref.wrapping_sub(p.chunk_ref) as i64);
                }
            }
            prev = Some(c);
        }
        let mut head = Encbuf::new();
        head.put_uvarint(self.buf.len() as u64);
        let crc = crc32c(self.buf.as_slice());
        let body = std::mem::take(&mut self.buf);
        self.write(head.as_slice())?;
        self.write(body.as_slice())?;
        self.write(&crc.to_be_bytes())?;
        self.series_max_size = self
            .series_max_size
            .max((head.len() + body.len() + 4) as u64);
        self.buf = body;
        self.all_postings.push(sref32);
        self.last_series = Some(labels.clone());
        Ok(sref)
    }

    fn symbol_ordinal(&self, s: &str) -> Result<u32> {
        self.symbols.get(s).copied().ok_or_else(|| {
            Error::invalid_input(self.name(), format!("label string {s:?} is not a symbol"))
        })
    }

    /// Writes a framed section `len | body | crc` from `body`.
    fn write_framed(&mut self, body: &[u8]) -> Result<()> {
        let len = u32::try_from(body.len())
            .map_err(|_| Error::invalid_input(self.name(), "section larger than 4 GiB"))?;
        self.write(&len.to_be_bytes())?;
        self.write(body)?;
        self.write(&crc32c(body).to_be_bytes())
    }

    /// Writes postings, the offset tables and the TOC, and fsyncs the file.
    pub fn finish(mut self) -> Result<IndexWriterSummary> {
        self.write_symbols()?;
        let mut keys: Vec<(u32, u32)> = self.postings.keys().copied().collect();
        keys.sort_unstable();
        let mut by_ord: Vec<&str> = vec![""; self.symbols.len()];
        for (s, &o) in &self.symbols {
            by_ord[o as usize] = s.as_str();
        }
        let by_ord: Vec<String> = by_ord.into_iter().map(str::to_string).collect();

        let mut label_index_offsets: Vec<(u32, u64)> = Vec::new();
        self.toc.label_indices = self.pos;
        if self.legacy_label_indices {
            let mut i = 0;
            while i < keys.len() {
                let name = keys[i].0;
                let mut body = Encbuf::new();
                body.put_be_u32(1);
                let n_values = keys[i..].iter().take_while(|k| k.0 == name).count();
                body.put_be_u32(n_values as u32);
                for k in &keys[i..i + n_values] {
                    body.put_be_u32(k.1);
                }
                self.pad(4)?;
                label_index_offsets.push((name, self.pos));
                self.write_framed(body.as_slice())?;
                i += n_values;
            }
        }

        self.toc.postings = self.pos;
        let mut table = Encbuf::new();
        let mut table_count = 0u32;
        let mut body = Encbuf::new();
        let all = std::mem::take(&mut self.all_postings);
        self.write_postings_list(&mut body, &all, &mut table, "", "", &mut table_count)?;
        let mut postings = std::mem::take(&mut self.postings);
        for k in &keys {
            let list = postings.remove(k).unwrap_or_default();
            let (n, v) = (&by_ord[k.0 as usize], &by_ord[k.1 as usize]);
            self.write_postings_list(&mut body, &list, &mut table, n, v, &mut table_count)?;
        }

        if self.legacy_label_indices {
            self.toc.label_offset_table = self.pos;
            let mut lot = Encbuf::new();
            lot.put_be_u32(label_index_offsets.len() as u32);
            for (name, off) in &label_index_offsets {
                lot.put_uvarint(1);
                lot.put_uvarint_str(&by_ord[*name as usize]);
                lot.put_uvarint(*off);
            }
            self.write_framed(lot.as_slice())?;
        }

        self.toc.postings_offset_table = self.pos;
        if !self.legacy_label_indices {
            self.toc.label_offset_table = self.pos;
        }
        let mut pot = Encbuf::new();
        pot.put_be_u32(table_count);
        pot.put_bytes(table.as_slice());
        self.write_framed(pot.as_slice())?;

        let toc = self.toc.encode();
        self.write(&toc)?;
        let name = self.name();
        let f = self
            .out
            .into_inner()
            .map_err(|e| Error::io(&name, e.into_error()))?;
        f.sync_all().map_err(|e| Error::io(&name, e))?;
        Ok(IndexWriterSummary {
            size: self.pos,
            num_series: all.len() as u64,
            series_max_size: self.series_max_size,
            toc: self.toc,
        })
    }

    fn write_postings_list(
        &mut self,
        body: &mut Encbuf,
        list: &[u32],
        table: &mut Encbuf,
        name: &str,
        value: &str,
        table_count: &mut u32,
    ) -> Result<()> {
        self.pad(4)?;
        table.put_uvarint(2);
        table.put_uvarint_str(name);
        table.put_uvarint_str(value);
        table.put_uvarint(self.pos);
        *table_count += 1;
        body.reset();
        body.put_be_u32(list.len() as u32);
        for &r in list {
            body.put_be_u32(r);
        }
        self.write_framed(body.as_slice())
    }
}
