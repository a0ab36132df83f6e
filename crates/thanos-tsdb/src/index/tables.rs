//! The symbol table and the postings offset table, sampled in memory. Shared by the index
//! reader and the index-header reader (which holds verbatim copies of both sections).

use crate::encoding::{Decbuf, DecodeError, DecodeResult, framed_section};
use crate::fsutil::FileBytes;

/// Symbol table over the bytes of a file holding it. The position of every symbol is
/// decoded once at load, so a lookup by ordinal is one varint read and allocates nothing.
#[derive(Debug, Clone)]
pub(crate) struct SymbolTable {
    data: FileBytes,
    /// Absolute offset of the section's first symbol entry.
    base: u64,
    /// Offset of every symbol entry (its `uvarint` length) relative to `base`. The
    /// section length is a 32-bit field, so relative offsets fit in 32 bits.
    entries: Vec<u32>,
    end: u64,
}

impl SymbolTable {
    /// Loads (and CRC-checks) the symbol table section at `off` of `data`.
    pub(crate) fn load(data: FileBytes, off: u64) -> DecodeResult<Self> {
        let mut d = framed_section(&data, off)?;
        let count = d.be_u32()?;
        let base = d.offset();
        let mut entries = Vec::with_capacity(count as usize);
        let mut prev: Option<&str> = None;
        for _ in 0..count {
            let at = d.offset();
            let rel = u32::try_from(at - base)
                .map_err(|_| DecodeError::invalid(at, "symbol table larger than 4 GiB"))?;
            entries.push(rel);
            let symbol = d.uvarint_str()?;
            // Lookups by value bisect, and label sets are ordered by ordinal: both rely on
            // strictly increasing symbols.
            if prev.is_some_and(|p| p >= symbol) {
                return Err(DecodeError::invalid(at, "symbol table not sorted"));
            }
            prev = Some(symbol);
        }
        let end = d.offset();
        Ok(Self {
            data,
            base,
            entries,
            end,
        })
    }

    pub(crate) fn count(&self) -> u32 {
        // At most `u32::MAX` entries: the count is a 32-bit field.
        self.entries.len() as u32
    }

    fn entry(&self, i: usize) -> DecodeResult<&str> {
        let start = self.base + u64::from(self.entries[i]);
        Decbuf::with_base(&self.data[start as usize..self.end as usize], start).uvarint_str()
    }

    /// The symbol with ordinal `r`.
    pub(crate) fn lookup(&self, r: u32) -> DecodeResult<&str> {
        if r as usize >= self.entries.len() {
            return Err(DecodeError::invalid(
                self.base,
                format!(
                    "symbol reference {r} out of range ({} symbols)",
                    self.entries.len()
                ),
            ));
        }
        self.entry(r as usize)
    }

    /// All symbols in order.
    pub(crate) fn all(&self) -> DecodeResult<Vec<&str>> {
        (0..self.entries.len()).map(|i| self.entry(i)).collect()
    }

    /// The ordinal of `s`, if present.
    pub(crate) fn reverse(&self, s: &str) -> DecodeResult<Option<u32>> {
        let mut lo = 0usize;
        let mut hi = self.entries.len();
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.entry(mid)?.cmp(s) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(Some(mid as u32)),
            }
        }
        Ok(None)
    }
}

/// One label name of the postings offset table with sampled entry positions.
#[derive(Debug, Clone)]
struct NameEntry {
    name: String,
    /// (value, absolute position of its table entry) for every n-th value and the last.
    samples: Vec<(String, u64)>,
    count: usize,
    /// Position of the first entry after this name's entries.
    end: u64,
}

/// Sampled postings offset table over the bytes of a file holding it.
#[derive(Debug, Clone)]
pub(crate) struct PostingsTable {
    data: FileBytes,
    names: Vec<NameEntry>,
    all_postings: Option<u64>,
    /// Offset of the first list after the all-postings list (its end).
    all_postings_end: Option<u64>,
    table_end: u64,
    sample_every: usize,
}

/// An entry of the postings offset table.
pub(crate) struct TableEntry<'a> {
    pub(crate) name: &'a str,
    pub(crate) value: &'a str,
    pub(crate) offset: u64,
}

fn read_entry<'a>(d: &mut Decbuf<'a>) -> DecodeResult<TableEntry<'a>> {
    let pos = d.offset();
    let n = d.uvarint()?;
    if n != 2 {
        return Err(DecodeError::invalid(
            pos,
            format!("postings offset table entry has {n} strings, want 2"),
        ));
    }
    let name = d.uvarint_str()?;
    let value = d.uvarint_str()?;
    let offset = d.uvarint()?;
    Ok(TableEntry {
        name,
        value,
        offset,
    })
}

impl PostingsTable {
    /// Loads (and CRC-checks) the postings offset table at `off` of `data`, keeping every
    /// `sample_every`-th value per name (and the last) in memory.
    pub(crate) fn load(data: FileBytes, off: u64, sample_every: usize) -> DecodeResult<Self> {
        let sample_every = sample_every.max(1);
        let mut names: Vec<NameEntry> = Vec::new();
        let mut all_postings = None;
        let mut all_postings_end = None;
        let table_end;
        {
            let mut d = framed_section(&data, off)?;
            let count = d.be_u32()?;
            table_end = d.offset() + d.remaining() as u64;
            let mut last: Option<(String, u64)> = None;
            let mut prev_key: Option<(String, String)> = None;
            for i in 0..count {
                let pos = d.offset();
                let e = read_entry(&mut d)?;
                if i == 1 && all_postings.is_some() {
                    all_postings_end = Some(e.offset);
                }
                if let Some((pn, pv)) = &prev_key
                    && (pn.as_str(), pv.as_str()) >= (e.name, e.value)
                {
                    return Err(DecodeError::invalid(
                        pos,
                        "postings offset table not sorted",
                    ));
                }
                prev_key = Some((e.name.to_string(), e.value.to_string()));
                if e.name.is_empty() && e.value.is_empty() {
                    all_postings = Some(e.offset);
                    continue;
                }
                if names.last().is_none_or(|n| n.name != e.name) {
                    if let Some(prev) = names.last_mut() {
                        close_name(prev, last.take(), pos);
                    }
                    names.push(NameEntry {
                        name: e.name.to_string(),
                        samples: Vec::new(),
                        count: 0,
                        end: 0,
                    });
                }
                if let Some(n) = names.last_mut() {
                    if n.count % sample_every == 0 {
                        n.samples.push((e.value.to_string(), pos));
                    }
                    n.count += 1;
                }
                last = Some((e.value.to_string(), pos));
            }
            if let Some(prev) = names.last_mut() {
                close_name(prev, last, table_end);
            }
        }
        Ok(Self {
            data,
            names,
            all_postings,
            all_postings_end,
            table_end,
            sample_every,
        })
    }

    fn name_entry(&self, name: &str) -> Option<&NameEntry> {
        self.names
            .binary_search_by(|e| e.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.names[i])
    }

    fn cursor(&self, pos: u64) -> Decbuf<'_> {
        Decbuf::with_base(&self.data[pos as usize..self.table_end as usize], pos)
    }

    /// Label names, sorted.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(|e| e.name.as_str())
    }

    /// Values of `name` with their postings offsets, sorted.
    pub(crate) fn values(&self, name: &str) -> DecodeResult<Vec<(&str, u64)>> {
        let Some(e) = self.name_entry(name) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(e.count);
        let mut d = self.cursor(e.samples[0].1);
        for _ in 0..e.count {
            let t = read_entry(&mut d)?;
            out.push((t.value, t.offset));
        }
        Ok(out)
    }

    /// Postings offset of `name=value`, and the offset of the following list (`None` for
    /// the last list of the table).
    pub(crate) fn offset(
        &self,
        name: &str,
        value: &str,
    ) -> DecodeResult<Option<(u64, Option<u64>)>> {
        if name.is_empty() && value.is_empty() {
            return Ok(self.all_postings.map(|o| (o, self.all_postings_end)));
        }
        let Some(e) = self.name_entry(name) else {
            return Ok(None);
        };
        let i = e.samples.partition_point(|(v, _)| v.as_str() <= value);
        if i == 0 {
            return Ok(None);
        }
        let mut d = self.cursor(e.samples[i - 1].1);
        for _ in 0..=self.sample_every {
            if d.offset() >= e.end {
                break;
            }
            let t = read_entry(&mut d)?;
            if t.value > value {
                break;
            }
            if t.value == value {
                let next = if d.is_empty() {
                    None
                } else {
                    Some(read_entry(&mut d)?.offset)
                };
                return Ok(Some((t.offset, next)));
            }
        }
        Ok(None)
    }
}

fn close_name(e: &mut NameEntry, last: Option<(String, u64)>, end: u64) {
    if let Some(l) = last
        && e.samples.last().map(|s| s.1) != Some(l.1)
    {
        e.samples.push(l);
    }
    e.end = end;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::Encbuf;

    /// A symbol table section (length, count, symbols, CRC) at offset 0.
    fn section(symbols: &[&str]) -> FileBytes {
        let mut e = Encbuf::new();
        e.put_be_u32(0);
        e.put_be_u32(symbols.len() as u32);
        for s in symbols {
            e.put_uvarint_str(s);
        }
        let mut bytes = e.clone().into_vec();
        let len = (bytes.len() - 4) as u32;
        bytes[..4].copy_from_slice(&len.to_be_bytes());
        let mut e = Encbuf::new();
        e.put_bytes(&bytes);
        e.put_crc32c_from(4);
        FileBytes::from_vec(e.into_vec())
    }

    #[test]
    fn loads_sorted_symbols_and_rejects_unsorted_ones() {
        let t = SymbolTable::load(section(&["", "a", "job", "up"]), 0).unwrap();
        assert_eq!(t.lookup(2).unwrap(), "job");
        assert_eq!(t.reverse("up").unwrap(), Some(3));
        for bad in [&["a", "job", "b"][..], &["a", "a"][..]] {
            let err = SymbolTable::load(section(bad), 0).err().unwrap();
            assert!(err.to_string().contains("not sorted"), "{bad:?}: {err}");
        }
    }
}
