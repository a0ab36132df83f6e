//! Segmented write-ahead log: writer, reader and repair.
//!
//! Mirrors Prometheus's `tsdb/wlog` package. A WAL directory holds segment files named with
//! 8 decimal digits (`00000000`, `00000001`, …), each a sequence of 32 KiB pages. A record is
//! (optionally Snappy-compressed as a whole and then) split into fragments that never cross
//! a page boundary; each fragment has a 7-byte header: a type byte (low 3 bits: 0 = rest of
//! page is padding, 1 = full, 2 = first, 3 = middle, 4 = last; bit 3 = Snappy; bit 4 = zstd),
//! the big-endian 16-bit payload length and the big-endian CRC-32C of the payload. A record
//! never spans two segments. Closed segments are zero-padded to a whole number of pages.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use tracing::{debug, info, warn};

/// Size of a page: fragments never cross a page boundary.
pub const PAGE_SIZE: usize = 32 * 1024;
/// Size of a fragment header (type, length, CRC).
pub const FRAGMENT_HEADER_SIZE: usize = 7;
/// Default maximum segment size (Prometheus's default, 128 MiB).
pub const DEFAULT_SEGMENT_SIZE: usize = 128 * 1024 * 1024;

/// Largest decompressed record the reader accepts; larger declared sizes are corruption.
const MAX_RECORD_SIZE: usize = 1 << 30;

const FRAG_FULL: u8 = 1;
const FRAG_FIRST: u8 = 2;
const FRAG_MIDDLE: u8 = 3;
const FRAG_LAST: u8 = 4;
const FRAG_KIND_MASK: u8 = 0x07;
const FLAG_SNAPPY: u8 = 0x08;
const FLAG_ZSTD: u8 = 0x10;
const FLAG_RESERVED: u8 = 0xe0;

/// Prefix of checkpoint directory names (`checkpoint.00000012`).
pub const CHECKPOINT_PREFIX: &str = "checkpoint.";

/// How records are compressed before fragmentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Records are stored as is.
    None,
    /// Snappy block format, used only when it makes the record smaller (Prometheus's
    /// default).
    #[default]
    Snappy,
}

/// Writer settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalOptions {
    /// Maximum segment size in bytes: a positive multiple of [`PAGE_SIZE`]. A record that
    /// does not fit in the rest of the active segment starts a new one; a record larger than
    /// a whole segment gets an oversize segment of its own.
    pub segment_size: usize,
    /// Record compression.
    pub compression: Compression,
}

impl Default for WalOptions {
    fn default() -> Self {
        Self {
            segment_size: DEFAULT_SEGMENT_SIZE,
            compression: Compression::Snappy,
        }
    }
}

/// A position in a WAL directory: a segment number and a byte offset inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    /// Segment number.
    pub segment: u32,
    /// Byte offset inside the segment.
    pub offset: u64,
}

/// Where the reader found invalid data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corruption {
    /// The segment file.
    pub path: PathBuf,
    /// Segment number.
    pub segment: u32,
    /// Offset of the first byte that is not part of a valid record: the start of the
    /// record being assembled when the problem was found. Everything before it is valid.
    pub offset: u64,
    /// True when the segment belongs to a checkpoint directory (not repairable by
    /// truncation).
    pub in_checkpoint: bool,
    /// What is wrong, with the offset of the offending fragment.
    pub reason: String,
}

impl Corruption {
    /// The position [`repair`] should truncate at, or `None` for a corrupt checkpoint.
    pub fn repair_position(&self) -> Option<Position> {
        (!self.in_checkpoint).then_some(Position {
            segment: self.segment,
            offset: self.offset,
        })
    }
}

/// Errors of the WAL layer.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// A file-system operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done (`"open segment"`, `"fsync"`, …).
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Invalid data in a segment.
    #[error(
        "corrupt wal segment {} at offset {}: {}",
        .0.path.display(),
        .0.offset,
        .0.reason
    )]
    Corruption(Box<Corruption>),
    /// A record uses a compression this crate does not implement (zstd).
    #[error("unsupported compression flags {flags:#04x} in {} at offset {offset}", path.display())]
    UnsupportedCompression {
        /// The segment file.
        path: PathBuf,
        /// Offset of the record.
        offset: u64,
        /// The fragment flags.
        flags: u8,
    },
    /// Segment numbers in a directory are not consecutive.
    #[error("wal segments in {} are not sequential: {prev} is followed by {next}", dir.display())]
    SegmentGap {
        /// The WAL directory.
        dir: PathBuf,
        /// A segment number.
        prev: u32,
        /// The next segment number found.
        next: u32,
    },
    /// The segment size is not a positive multiple of the page size.
    #[error("invalid wal segment size {0}: must be a positive multiple of {PAGE_SIZE}")]
    InvalidSegmentSize(usize),
    /// A previous write failed, so the on-disk state is unknown; reopen the WAL (replay and
    /// repair) before writing again.
    #[error("wal writer for {} is unusable after an earlier write error", dir.display())]
    Poisoned {
        /// The WAL directory.
        dir: PathBuf,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> WalError + 'a {
    move |source| WalError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Path of segment `n` in `dir`.
pub fn segment_path(dir: &Path, n: u32) -> PathBuf {
    dir.join(format!("{n:08}"))
}

/// Sorted segment numbers in `dir` (files whose names are all digits).
pub fn list_segments(dir: &Path) -> Result<Vec<u32>, WalError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err("list wal dir", dir))? {
        let entry = entry.map_err(io_err("list wal dir", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(n) = name.parse::<u32>() {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Checkpoint directories in `dir` as `(number, path)`, sorted by number. Directories with a
/// suffix after the number (such as `.tmp`) are ignored.
pub fn list_checkpoints(dir: &Path) -> Result<Vec<(u32, PathBuf)>, WalError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err("list wal dir", dir))? {
        let entry = entry.map_err(io_err("list wal dir", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(num) = name.strip_prefix(CHECKPOINT_PREFIX) else {
            continue;
        };
        if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let is_dir = entry
            .file_type()
            .map_err(io_err("stat", &entry.path()))?
            .is_dir();
        if let (true, Ok(n)) = (is_dir, num.parse::<u32>()) {
            out.push((n, entry.path()));
        }
    }
    out.sort_unstable_by_key(|(n, _)| *n);
    Ok(out)
}

/// The newest checkpoint in `dir`, if any.
pub fn last_checkpoint(dir: &Path) -> Result<Option<(u32, PathBuf)>, WalError> {
    Ok(list_checkpoints(dir)?.pop())
}

/// Fsyncs a directory so that created, renamed and deleted entries are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync dir", dir))
}

fn round_up_to_page(n: u64) -> u64 {
    n.div_ceil(PAGE_SIZE as u64) * PAGE_SIZE as u64
}

/// Zero-pads a segment to a whole number of pages.
fn pad_segment(path: &Path) -> Result<(), WalError> {
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err("open segment", path))?;
    let len = f.metadata().map_err(io_err("stat segment", path))?.len();
    let padded = round_up_to_page(len);
    if padded != len {
        f.set_len(padded).map_err(io_err("pad segment", path))?;
        f.sync_all().map_err(io_err("fsync segment", path))?;
    }
    Ok(())
}

/// Segment writer.
///
/// Every [`Wal::open`] starts a new segment (after zero-padding a torn last page of the
/// previous one). Records passed to [`Wal::log`] are written to the file (not yet fsynced)
/// when `log` returns; [`Wal::sync`] makes them durable. One `log` call with many records
/// followed by one `sync` is the batching API: the caller decides how many writes one
/// fsync covers.
///
/// Open the writer only after replaying (and, if needed, [`repair`]ing) the directory: a
/// record left incomplete by a crash would otherwise end up in a closed segment.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    opts: WalOptions,
    file: File,
    segment: u32,
    /// Path of the active segment.
    path: PathBuf,
    page: Box<[u8]>,
    /// Bytes of `page` in use.
    alloc: usize,
    /// Bytes of `page` already written to the file.
    flushed: usize,
    /// Full pages written to the active segment.
    done_pages: usize,
    compress_buf: Vec<u8>,
    encoder: snap::raw::Encoder,
    poisoned: bool,
}

impl Wal {
    /// Opens (creating it if needed) the WAL directory `dir` for writing and starts a new
    /// segment after the last existing one.
    pub fn open(dir: impl Into<PathBuf>, opts: WalOptions) -> Result<Self, WalError> {
        let dir = dir.into();
        if opts.segment_size == 0 || !opts.segment_size.is_multiple_of(PAGE_SIZE) {
            return Err(WalError::InvalidSegmentSize(opts.segment_size));
        }
        fs::create_dir_all(&dir).map_err(io_err("create wal dir", &dir))?;
        let segments = list_segments(&dir)?;
        let next = match segments.last() {
            Some(&last) => {
                pad_segment(&segment_path(&dir, last))?;
                last.saturating_add(1)
            }
            None => 0,
        };
        let file = create_segment(&dir, next)?;
        info!(dir = %dir.display(), segment = next, "opened wal");
        Ok(Self {
            path: segment_path(&dir, next),
            dir,
            opts,
            file,
            segment: next,
            page: vec![0u8; PAGE_SIZE].into_boxed_slice(),
            alloc: 0,
            flushed: 0,
            done_pages: 0,
            compress_buf: Vec::new(),
            encoder: snap::raw::Encoder::new(),
            poisoned: false,
        })
    }

    /// The WAL directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The number of the active segment.
    pub fn segment(&self) -> u32 {
        self.segment
    }

    /// The end of the data written so far (active segment and byte offset in it).
    pub fn position(&self) -> Position {
        Position {
            segment: self.segment,
            offset: (self.done_pages * PAGE_SIZE + self.alloc) as u64,
        }
    }

    /// Appends records (each one already encoded, see [`crate::record`]) and writes them to
    /// the active segment file. Call [`Wal::sync`] to make them durable.
    pub fn log<R: AsRef<[u8]>>(&mut self, records: &[R]) -> Result<(), WalError> {
        if self.poisoned {
            return Err(WalError::Poisoned {
                dir: self.dir.clone(),
            });
        }
        let res = self.log_inner(records);
        if res.is_err() {
            self.poisoned = true;
        }
        res
    }

    fn log_inner<R: AsRef<[u8]>>(&mut self, records: &[R]) -> Result<(), WalError> {
        for rec in records {
            self.log_one(rec.as_ref())?;
        }
        if self.alloc > self.flushed {
            self.flush_page(false)?;
        }
        Ok(())
    }

    /// Fsyncs the active segment: every record logged before is durable afterwards.
    pub fn sync(&mut self) -> Result<(), WalError> {
        if self.poisoned {
            return Err(WalError::Poisoned {
                dir: self.dir.clone(),
            });
        }
        let res = self
            .file
            .sync_data()
            .map_err(io_err("fsync segment", &self.path));
        if res.is_err() {
            self.poisoned = true;
        }
        res
    }

    /// Closes the active segment (zero-padded and fsynced) and starts the next one; returns
    /// the new segment number. Prometheus cuts a segment before every checkpoint.
    pub fn cut(&mut self) -> Result<u32, WalError> {
        if self.poisoned {
            return Err(WalError::Poisoned {
                dir: self.dir.clone(),
            });
        }
        let res = self.next_segment();
        if res.is_err() {
            self.poisoned = true;
        }
        res.map(|()| self.segment)
    }

    /// Zero-pads and fsyncs the active segment and closes the writer.
    pub fn close(mut self) -> Result<(), WalError> {
        if self.poisoned {
            return Err(WalError::Poisoned { dir: self.dir });
        }
        if self.alloc > 0 {
            self.flush_page(true)?;
        }
        self.file
            .sync_all()
            .map_err(io_err("fsync segment", &self.path))?;
        debug!(dir = %self.dir.display(), segment = self.segment, "closed wal");
        Ok(())
    }

    fn log_one(&mut self, rec: &[u8]) -> Result<(), WalError> {
        let mut compressed = std::mem::take(&mut self.compress_buf);
        let res = self.log_fragments(rec, &mut compressed);
        self.compress_buf = compressed;
        res
    }

    fn log_fragments(&mut self, rec: &[u8], scratch: &mut Vec<u8>) -> Result<(), WalError> {
        let mut data = rec;
        let mut flags = 0u8;
        if self.opts.compression == Compression::Snappy && !rec.is_empty() {
            scratch.resize(snap::raw::max_compress_len(rec.len()), 0);
            // Compression only fails for inputs larger than snappy's 4 GiB limit; such
            // records are stored uncompressed.
            if let Ok(n) = self.encoder.compress(rec, scratch)
                && n < rec.len()
            {
                data = &scratch[..n];
                flags = FLAG_SNAPPY;
            }
        }

        // Room for payload in the active segment: the rest of this page plus every page left.
        let pages_per_segment = self.opts.segment_size / PAGE_SIZE;
        let pages_left = pages_per_segment.saturating_sub(self.done_pages + 1);
        let room = (PAGE_SIZE - self.alloc - FRAGMENT_HEADER_SIZE)
            + (PAGE_SIZE - FRAGMENT_HEADER_SIZE) * pages_left;
        let segment_has_data = self.done_pages > 0 || self.alloc > 0;
        if data.len() > room && segment_has_data {
            self.next_segment()?;
        }

        let mut rest = data;
        let mut first = true;
        loop {
            let space = PAGE_SIZE - self.alloc - FRAGMENT_HEADER_SIZE;
            let (part, tail) = rest.split_at(rest.len().min(space));
            let kind = match (first, tail.is_empty()) {
                (true, true) => FRAG_FULL,
                (true, false) => FRAG_FIRST,
                (false, false) => FRAG_MIDDLE,
                (false, true) => FRAG_LAST,
            };
            let h = &mut self.page[self.alloc..self.alloc + FRAGMENT_HEADER_SIZE];
            h[0] = kind | flags;
            // `part` fits in a page, so its length fits in 16 bits.
            h[1..3].copy_from_slice(&(part.len() as u16).to_be_bytes());
            h[3..7].copy_from_slice(&crc32c::crc32c(part).to_be_bytes());
            let start = self.alloc + FRAGMENT_HEADER_SIZE;
            self.page[start..start + part.len()].copy_from_slice(part);
            self.alloc = start + part.len();
            if PAGE_SIZE - self.alloc < FRAGMENT_HEADER_SIZE {
                self.flush_page(true)?;
            }
            rest = tail;
            first = false;
            if rest.is_empty() {
                return Ok(());
            }
        }
    }

    /// Writes the unwritten part of the page; with `full`, zero-pads it to the page end and
    /// starts a new page.
    fn flush_page(&mut self, full: bool) -> Result<(), WalError> {
        if full {
            self.alloc = PAGE_SIZE;
        }
        if self.alloc > self.flushed {
            self.file
                .write_all(&self.page[self.flushed..self.alloc])
                .map_err(io_err("write segment", &self.path))?;
            self.flushed = self.alloc;
        }
        if full {
            self.page.fill(0);
            self.alloc = 0;
            self.flushed = 0;
            self.done_pages += 1;
        }
        Ok(())
    }

    fn next_segment(&mut self) -> Result<(), WalError> {
        if self.alloc > 0 {
            self.flush_page(true)?;
        }
        self.file
            .sync_all()
            .map_err(io_err("fsync segment", &self.path))?;
        let next = self.segment.saturating_add(1);
        self.file = create_segment(&self.dir, next)?;
        self.segment = next;
        self.path = segment_path(&self.dir, next);
        self.done_pages = 0;
        debug!(dir = %self.dir.display(), segment = next, "started wal segment");
        Ok(())
    }
}

fn create_segment(dir: &Path, n: u32) -> Result<File, WalError> {
    let path = segment_path(dir, n);
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(io_err("create segment", &path))?;
    sync_dir(dir)?;
    Ok(f)
}

/// One segment file to read.
#[derive(Debug, Clone)]
struct SegmentSource {
    path: PathBuf,
    segment: u32,
    in_checkpoint: bool,
}

/// Result of reading one record from a segment.
enum Outcome {
    Record {
        offset: u64,
        flags: u8,
    },
    Eof,
    /// The segment ends inside a record (or a fragment header/payload).
    Torn {
        offset: u64,
    },
    Corrupt {
        offset: u64,
        reason: String,
    },
}

/// Page-wise reader of one segment file.
struct SegmentReader {
    file: File,
    page: Box<[u8]>,
    page_len: usize,
    in_page: usize,
    page_start: u64,
    file_pos: u64,
}

impl SegmentReader {
    fn open(path: &Path) -> Result<Self, WalError> {
        let file = File::open(path).map_err(io_err("open segment", path))?;
        Ok(Self {
            file,
            page: vec![0u8; PAGE_SIZE].into_boxed_slice(),
            page_len: 0,
            in_page: 0,
            page_start: 0,
            file_pos: 0,
        })
    }

    /// Loads the next page; returns the number of bytes read (0 at end of file).
    fn load_page(&mut self) -> io::Result<usize> {
        let mut n = 0;
        while n < PAGE_SIZE {
            match self.file.read(&mut self.page[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.page_start = self.file_pos;
        self.file_pos += n as u64;
        self.page_len = n;
        self.in_page = 0;
        Ok(n)
    }

    /// Reads the next record's fragments into `out` (cleared first).
    fn read_record(&mut self, out: &mut Vec<u8>) -> io::Result<Outcome> {
        out.clear();
        let mut start: Option<u64> = None;
        let mut flags = 0u8;
        loop {
            let page_rest = PAGE_SIZE - self.in_page;
            if self.in_page >= self.page_len || page_rest < FRAGMENT_HEADER_SIZE {
                if self.page[self.in_page.min(self.page_len)..self.page_len]
                    .iter()
                    .any(|b| *b != 0)
                {
                    let pos = self.page_start + self.in_page as u64;
                    return Ok(Outcome::Corrupt {
                        offset: start.unwrap_or(pos),
                        reason: format!("non-zero bytes in page padding at {pos}"),
                    });
                }
                if self.load_page()? == 0 {
                    return Ok(match start {
                        Some(offset) => Outcome::Torn { offset },
                        None => Outcome::Eof,
                    });
                }
                continue;
            }
            let pos = self.page_start + self.in_page as u64;
            let corrupt = |reason: String| Outcome::Corrupt {
                offset: start.unwrap_or(pos),
                reason,
            };
            let typ = self.page[self.in_page];
            if typ == 0 {
                // Rest of the page is padding; it must be all zeros.
                if self.page[self.in_page..self.page_len]
                    .iter()
                    .any(|b| *b != 0)
                {
                    return Ok(corrupt(format!("non-zero bytes in page padding at {pos}")));
                }
                self.in_page = self.page_len.max(PAGE_SIZE);
                continue;
            }
            if self.page_len - self.in_page < FRAGMENT_HEADER_SIZE {
                return Ok(Outcome::Torn {
                    offset: start.unwrap_or(pos),
                });
            }
            let kind = typ & FRAG_KIND_MASK;
            if typ & FLAG_RESERVED != 0 || kind > FRAG_LAST {
                return Ok(corrupt(format!(
                    "invalid fragment type {typ:#04x} at {pos}"
                )));
            }
            let h = &self.page[self.in_page..self.in_page + FRAGMENT_HEADER_SIZE];
            let len = usize::from(u16::from_be_bytes([h[1], h[2]]));
            let crc = u32::from_be_bytes([h[3], h[4], h[5], h[6]]);
            let payload_start = self.in_page + FRAGMENT_HEADER_SIZE;
            let payload_end = payload_start + len;
            if payload_end > PAGE_SIZE {
                return Ok(corrupt(format!(
                    "fragment of {len} bytes at {pos} crosses the page boundary"
                )));
            }
            if payload_end > self.page_len {
                return Ok(Outcome::Torn {
                    offset: start.unwrap_or(pos),
                });
            }
            let payload = &self.page[payload_start..payload_end];
            let actual = crc32c::crc32c(payload);
            if actual != crc {
                return Ok(corrupt(format!(
                    "fragment checksum mismatch at {pos}: stored {crc:#010x}, computed {actual:#010x}"
                )));
            }
            let frag_flags = typ & !FRAG_KIND_MASK;
            let done = match kind {
                FRAG_FULL | FRAG_FIRST => {
                    if start.is_some() {
                        return Ok(corrupt(format!(
                            "fragment at {pos} starts a record inside an unfinished one"
                        )));
                    }
                    start = Some(pos);
                    flags = frag_flags;
                    kind == FRAG_FULL
                }
                _ => {
                    if start.is_none() {
                        return Ok(corrupt(format!(
                            "continuation fragment at {pos} without a first fragment"
                        )));
                    }
                    kind == FRAG_LAST
                }
            };
            out.extend_from_slice(payload);
            self.in_page = payload_end;
            if done {
                return Ok(Outcome::Record {
                    offset: start.unwrap_or(pos),
                    flags,
                });
            }
        }
    }
}

/// Where a record returned by [`WalReader::next_record`] starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecordPosition {
    /// Segment number and offset of the record's first fragment.
    pub position: Position,
    /// True when the record comes from the checkpoint directory.
    pub in_checkpoint: bool,
}

/// Sequential reader of records across segments.
///
/// [`WalReader::open`] reads the newest checkpoint (if any) and then the segments after it,
/// in Prometheus's replay order. Fragment CRCs are verified and Snappy records decompressed.
/// If the last segment ends inside a record (a write torn by a crash), reading stops cleanly
/// before that record and [`WalReader::torn_tail`] tells where; anything else invalid is a
/// [`WalError::Corruption`] naming the segment and offset, after which the reader returns
/// no more records.
pub struct WalReader {
    sources: Vec<SegmentSource>,
    idx: usize,
    cur: Option<SegmentReader>,
    allow_torn_tail: bool,
    frag: Vec<u8>,
    rec: Vec<u8>,
    decoder: snap::raw::Decoder,
    torn: Option<Position>,
    last: RecordPosition,
}

impl std::fmt::Debug for WalReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalReader")
            .field("segments", &self.sources.len())
            .field("idx", &self.idx)
            .field("torn", &self.torn)
            .field("last", &self.last)
            .finish_non_exhaustive()
    }
}

fn check_sequential(dir: &Path, segments: &[u32]) -> Result<(), WalError> {
    for w in segments.windows(2) {
        if w[1] != w[0] + 1 {
            return Err(WalError::SegmentGap {
                dir: dir.to_path_buf(),
                prev: w[0],
                next: w[1],
            });
        }
    }
    Ok(())
}

impl WalReader {
    /// Reader for replay: the newest checkpoint of `dir`, then the segments numbered after
    /// it. A torn tail of the last segment is tolerated and reported by
    /// [`WalReader::torn_tail`].
    pub fn open(dir: &Path) -> Result<Self, WalError> {
        let mut sources = Vec::new();
        let mut first = 0u32;
        if let Some((n, cp_dir)) = last_checkpoint(dir)? {
            let segs = list_segments(&cp_dir)?;
            check_sequential(&cp_dir, &segs)?;
            sources.extend(segs.into_iter().map(|s| SegmentSource {
                path: segment_path(&cp_dir, s),
                segment: s,
                in_checkpoint: true,
            }));
            first = n.saturating_add(1);
        }
        let segs: Vec<u32> = list_segments(dir)?
            .into_iter()
            .filter(|s| *s >= first)
            .collect();
        check_sequential(dir, &segs)?;
        sources.extend(segs.into_iter().map(|s| SegmentSource {
            path: segment_path(dir, s),
            segment: s,
            in_checkpoint: false,
        }));
        Ok(Self::new(sources, true))
    }

    /// Reader for the segments `from..=to` of `dir` only (no checkpoint). Every segment must
    /// exist; a torn tail is reported as corruption, since these segments are closed.
    pub fn segment_range(dir: &Path, from: u32, to: u32) -> Result<Self, WalError> {
        let segs: Vec<u32> = list_segments(dir)?
            .into_iter()
            .filter(|s| (from..=to).contains(s))
            .collect();
        check_sequential(dir, &segs)?;
        if from <= to && (segs.first() != Some(&from) || segs.last() != Some(&to)) {
            return Err(WalError::Io {
                op: "find segments",
                path: dir.to_path_buf(),
                source: io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("segments {from}..={to} are not all present"),
                ),
            });
        }
        let sources = segs
            .into_iter()
            .map(|s| SegmentSource {
                path: segment_path(dir, s),
                segment: s,
                in_checkpoint: false,
            })
            .collect();
        Ok(Self::new(sources, false))
    }

    /// Reader for every segment of a checkpoint directory.
    pub fn checkpoint(cp_dir: &Path) -> Result<Self, WalError> {
        let segs = list_segments(cp_dir)?;
        check_sequential(cp_dir, &segs)?;
        let sources = segs
            .into_iter()
            .map(|s| SegmentSource {
                path: segment_path(cp_dir, s),
                segment: s,
                in_checkpoint: true,
            })
            .collect();
        Ok(Self::new(sources, false))
    }

    fn new(sources: Vec<SegmentSource>, allow_torn_tail: bool) -> Self {
        Self {
            sources,
            idx: 0,
            cur: None,
            allow_torn_tail,
            frag: Vec::new(),
            rec: Vec::new(),
            decoder: snap::raw::Decoder::new(),
            torn: None,
            last: RecordPosition::default(),
        }
    }

    /// Where the last segment was torn (the offset of the incomplete record), once reading
    /// has reached it. Pass it to [`repair`] before writing to the directory again.
    pub fn torn_tail(&self) -> Option<Position> {
        self.torn
    }

    /// Where the record last returned by [`WalReader::next_record`] starts.
    pub fn last_position(&self) -> RecordPosition {
        self.last
    }

    fn stop(&mut self) {
        self.cur = None;
        self.idx = self.sources.len();
    }

    /// The next record (decompressed), or `None` at the end of the log.
    pub fn next_record(&mut self) -> Result<Option<&[u8]>, WalError> {
        loop {
            if self.cur.is_none() {
                let Some(src) = self.sources.get(self.idx) else {
                    return Ok(None);
                };
                self.cur = Some(SegmentReader::open(&src.path)?);
            }
            let idx = self.idx;
            let Some(reader) = self.cur.as_mut() else {
                continue;
            };
            let outcome = match reader.read_record(&mut self.frag) {
                Ok(o) => o,
                Err(source) => {
                    let path = self.sources[idx].path.clone();
                    self.stop();
                    return Err(WalError::Io {
                        op: "read segment",
                        path,
                        source,
                    });
                }
            };
            match outcome {
                Outcome::Record { offset, flags } => {
                    // No per-record copy of the source: records are the hot path.
                    let src = &self.sources[idx];
                    self.last = RecordPosition {
                        position: Position {
                            segment: src.segment,
                            offset,
                        },
                        in_checkpoint: src.in_checkpoint,
                    };
                    if flags & FLAG_ZSTD != 0 {
                        let path = src.path.clone();
                        self.stop();
                        return Err(WalError::UnsupportedCompression {
                            path,
                            offset,
                            flags,
                        });
                    }
                    if flags & FLAG_SNAPPY == 0 {
                        return Ok(Some(&self.frag));
                    }
                    return match self.decompress() {
                        Ok(()) => Ok(Some(&self.rec)),
                        Err(reason) => {
                            let src = self.sources[idx].clone();
                            self.stop();
                            Err(corruption(&src, offset, reason))
                        }
                    };
                }
                Outcome::Eof => {
                    self.cur = None;
                    self.idx += 1;
                }
                Outcome::Torn { offset } => {
                    let src = self.sources[idx].clone();
                    let is_last = self.idx + 1 == self.sources.len();
                    self.stop();
                    if self.allow_torn_tail && is_last && !src.in_checkpoint {
                        let pos = Position {
                            segment: src.segment,
                            offset,
                        };
                        warn!(
                            path = %src.path.display(),
                            offset,
                            "wal ends with a torn record; stopping before it"
                        );
                        self.torn = Some(pos);
                        return Ok(None);
                    }
                    return Err(corruption(
                        &src,
                        offset,
                        format!("segment ends inside the record starting at {offset}"),
                    ));
                }
                Outcome::Corrupt { offset, reason } => {
                    let src = self.sources[idx].clone();
                    self.stop();
                    return Err(corruption(&src, offset, reason));
                }
            }
        }
    }

    fn decompress(&mut self) -> Result<(), String> {
        let len = snap::raw::decompress_len(&self.frag)
            .map_err(|e| format!("invalid snappy header: {e}"))?;
        if len > MAX_RECORD_SIZE {
            return Err(format!("snappy record declares {len} bytes"));
        }
        self.rec.resize(len, 0);
        let n = self
            .decoder
            .decompress(&self.frag, &mut self.rec)
            .map_err(|e| format!("invalid snappy data: {e}"))?;
        self.rec.truncate(n);
        Ok(())
    }
}

fn corruption(src: &SegmentSource, offset: u64, reason: String) -> WalError {
    WalError::Corruption(Box::new(Corruption {
        path: src.path.clone(),
        segment: src.segment,
        offset,
        in_checkpoint: src.in_checkpoint,
        reason,
    }))
}

/// Repairs a WAL directory after a torn write or a corruption, as Prometheus does: deletes
/// every segment after `at.segment`, truncates that segment at `at.offset` (the start of the
/// first invalid record) and zero-pads it to a page boundary. Records before `at` are kept.
pub fn repair(dir: &Path, at: Position) -> Result<(), WalError> {
    let segments = list_segments(dir)?;
    for &s in segments.iter().rev().filter(|s| **s > at.segment) {
        let path = segment_path(dir, s);
        fs::remove_file(&path).map_err(io_err("delete segment", &path))?;
    }
    let path = segment_path(dir, at.segment);
    let f = OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(io_err("open segment", &path))?;
    f.set_len(at.offset)
        .and_then(|()| f.set_len(round_up_to_page(at.offset)))
        .map_err(io_err("truncate segment", &path))?;
    f.sync_all().map_err(io_err("fsync segment", &path))?;
    sync_dir(dir)?;
    warn!(
        dir = %dir.display(),
        segment = at.segment,
        offset = at.offset,
        deleted_segments = segments.iter().filter(|s| **s > at.segment).count(),
        "repaired wal"
    );
    Ok(())
}

mod group;
pub use group::{CommitTicket, GroupCommitWal};

#[cfg(test)]
mod tests;
