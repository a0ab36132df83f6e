//! Whole blocks: opening a block directory and writing a new block.
//!
//! Mirrors the block parts of Prometheus's `tsdb/block.go` and `tsdb/compact.go`
//! (`LeveledCompactor.write`): chunks first, then the index, then `meta.json` (only when
//! the block holds samples) and an empty `tombstones` file, all inside
//! `<ULID>.tmp-for-creation`, which is fsynced and renamed to `<ULID>`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use thanos_model::chunkenc::{XorChunk, float_iterator};
use thanos_model::{Labels, Sample};
use ulid::Ulid;

use crate::chunks::{CHUNKS_DIR, ChunkReader, ChunkWriter, DEFAULT_MAX_SEGMENT_SIZE, segment_name};
use crate::error::{Error, Result};
use crate::fsutil::{FileBytes, sync_dir};
use crate::index::{ChunkMeta, INDEX_FILENAME, IndexReader, IndexWriter, SeriesRef};
use crate::meta::{BlockMeta, BlockMetaCompaction, BlockStats, META_FILENAME, ThanosMeta};
use crate::tombstones::{TOMBSTONES_FILENAME, Tombstones};

/// Suffix of a block directory under construction.
pub const TMP_FOR_CREATION_SUFFIX: &str = ".tmp-for-creation";

/// An open block: meta, index and chunk readers, tombstones.
#[derive(Debug, Clone)]
pub struct Block {
    dir: Option<PathBuf>,
    meta: BlockMeta,
    index: IndexReader,
    chunks: ChunkReader,
    tombstones: Tombstones,
}

impl Block {
    /// Opens the block in `dir` (memory-mapping the index and chunk segments). Errors name
    /// the block ULID (from the directory name, or from `meta.json`) and the file.
    pub fn open(dir: &Path) -> Result<Self> {
        let dir_ulid = dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| Ulid::from_string(n).ok());
        let wrap = |e: Error, id: Option<Ulid>| match id {
            Some(id) => e.in_block(id),
            None => e,
        };
        let meta_data = std::fs::read(dir.join(META_FILENAME))
            .map_err(|e| wrap(Error::io(META_FILENAME, e), dir_ulid))?;
        let meta =
            BlockMeta::from_json(&meta_data, META_FILENAME).map_err(|e| wrap(e, dir_ulid))?;
        let id = dir_ulid.unwrap_or(meta.ulid);
        let inner = || -> Result<Self> {
            let index_bytes = FileBytes::open(&dir.join(INDEX_FILENAME))?;
            let index = IndexReader::from_bytes(index_bytes, INDEX_FILENAME)?;
            let chunks = ChunkReader::open_dir(&dir.join(CHUNKS_DIR))?;
            let tombstones = Tombstones::read_from_dir(dir, TOMBSTONES_FILENAME)?;
            Ok(Self {
                dir: Some(dir.to_path_buf()),
                meta: meta.clone(),
                index,
                chunks,
                tombstones,
            })
        };
        inner().map_err(|e| e.in_block(id))
    }

    /// Builds a block from bytes obtained elsewhere (e.g. object storage): `meta.json`
    /// content, the index and the chunk segments in order. Tombstones are empty.
    pub fn from_bytes(
        meta_json: &[u8],
        index: FileBytes,
        segments: Vec<FileBytes>,
    ) -> Result<Self> {
        let meta = BlockMeta::from_json(meta_json, META_FILENAME)?;
        let id = meta.ulid;
        let inner = || -> Result<Self> {
            let index = IndexReader::from_bytes(index, INDEX_FILENAME)?;
            let named = segments
                .into_iter()
                .enumerate()
                .map(|(i, b)| (format!("{CHUNKS_DIR}/{}", segment_name(i as u32)), b))
                .collect();
            let chunks = ChunkReader::from_segments(named)?;
            Ok(Self {
                dir: None,
                meta: meta.clone(),
                index,
                chunks,
                tombstones: Tombstones::new(),
            })
        };
        inner().map_err(|e| e.in_block(id))
    }

    /// The block directory, when opened from disk.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The block's ULID.
    pub fn ulid(&self) -> Ulid {
        self.meta.ulid
    }

    /// Parsed `meta.json`.
    pub fn meta(&self) -> &BlockMeta {
        &self.meta
    }

    /// The index reader.
    pub fn index(&self) -> &IndexReader {
        &self.index
    }

    /// The chunk reader.
    pub fn chunks(&self) -> &ChunkReader {
        &self.chunks
    }

    /// Tombstones of the block (empty when the file is absent).
    pub fn tombstones(&self) -> &Tombstones {
        &self.tombstones
    }

    /// Labels and every float sample of series `series_ref`, decoded from its XOR chunks
    /// (tombstones are not applied). Errors name the block and file.
    pub fn series_samples(&self, series_ref: SeriesRef) -> Result<(Labels, Vec<Sample>)> {
        let id = self.ulid();
        let (labels, metas) = self.index.series(series_ref).map_err(|e| e.in_block(id))?;
        let mut out = Vec::new();
        for m in metas {
            let c = self.chunks.chunk(m.chunk_ref).map_err(|e| e.in_block(id))?;
            let file = format!(
                "{CHUNKS_DIR}/{}",
                segment_name(crate::chunks::split_chunk_ref(m.chunk_ref).0)
            );
            let chunk_err = |source| {
                Error::Chunk {
                    file: file.clone(),
                    chunk_ref: m.chunk_ref,
                    source,
                }
                .in_block(id)
            };
            let mut it = float_iterator(c.encoding, c.data).map_err(chunk_err)?;
            out.extend(&mut it);
            if let Some(e) = it.err() {
                return Err(chunk_err(e.clone()));
            }
        }
        Ok((labels, out))
    }
}

/// One chunk to write: time range, encoding byte and encoded data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkData {
    /// First sample timestamp.
    pub min_time: i64,
    /// Last sample timestamp.
    pub max_time: i64,
    /// Encoding byte.
    pub encoding: u8,
    /// Encoded chunk (for encodings 1–3 the first two bytes are the sample count).
    pub data: Vec<u8>,
}

impl ChunkData {
    /// Wraps a finished XOR chunk; `None` when it holds no samples.
    pub fn from_xor(chunk: &XorChunk) -> Option<Self> {
        Some(Self {
            min_time: chunk.min_time()?,
            max_time: chunk.max_time()?,
            encoding: thanos_model::Encoding::Xor.as_u8(),
            data: chunk.bytes().to_vec(),
        })
    }

    /// Sample count from the 2-byte big-endian header shared by all chunk encodings.
    pub fn num_samples(&self) -> u64 {
        match self.data.as_slice() {
            [a, b, ..] => u64::from(u16::from_be_bytes([*a, *b])),
            _ => 0,
        }
    }
}

/// Options of a [`BlockWriter`].
#[derive(Debug, Clone)]
pub struct BlockWriterOptions {
    /// ULID of the new block; a fresh one when `None`.
    pub ulid: Option<Ulid>,
    /// Also write the legacy label indices (Prometheus ≤ 3.6 layout).
    pub legacy_label_indices: bool,
    /// Maximum chunk segment size.
    pub max_segment_size: u64,
    /// `[minTime, maxTime)` to record; by default first sample to last sample + 1.
    pub time_range: Option<(i64, i64)>,
    /// Compaction section; by default level 1 with the block itself as source.
    pub compaction: Option<BlockMetaCompaction>,
    /// Thanos section; its `index_stats` are filled in by the writer.
    pub thanos: Option<ThanosMeta>,
}

impl Default for BlockWriterOptions {
    fn default() -> Self {
        Self {
            ulid: None,
            legacy_label_indices: false,
            max_segment_size: DEFAULT_MAX_SEGMENT_SIZE,
            time_range: None,
            compaction: None,
            thanos: None,
        }
    }
}

/// Writes one block from series given in label order.
pub struct BlockWriter {
    parent: PathBuf,
    tmp_dir: PathBuf,
    ulid: Ulid,
    opts: BlockWriterOptions,
    chunks: ChunkWriter,
    index: IndexWriter,
    stats: BlockStats,
    min_time: i64,
    max_time: i64,
    chunk_max_size: i64,
}

impl BlockWriter {
    /// Starts a block under `parent` in `<ULID>.tmp-for-creation`. `symbols` must hold
    /// every label name and value of the series to come (sorted and deduplicated here).
    pub fn new<I, S>(parent: &Path, symbols: I, opts: BlockWriterOptions) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let ulid = opts.ulid.unwrap_or_else(Ulid::generate);
        let tmp_dir = parent.join(format!("{ulid}{TMP_FOR_CREATION_SUFFIX}"));
        std::fs::create_dir_all(&tmp_dir)
            .map_err(|e| Error::io(tmp_dir.display().to_string(), e))?;
        let chunks = ChunkWriter::create(&tmp_dir.join(CHUNKS_DIR))?
            .with_max_segment_size(opts.max_segment_size);
        let mut index = IndexWriter::create(&tmp_dir.join(INDEX_FILENAME))?
            .with_legacy_label_indices(opts.legacy_label_indices);
        let sorted: BTreeSet<String> = symbols
            .into_iter()
            .map(|s| s.as_ref().to_string())
            .collect();
        for s in &sorted {
            index.add_symbol(s)?;
        }
        Ok(Self {
            parent: parent.to_path_buf(),
            tmp_dir,
            ulid,
            opts,
            chunks,
            index,
            stats: BlockStats::default(),
            min_time: i64::MAX,
            max_time: i64::MIN,
            chunk_max_size: 0,
        })
    }

    /// ULID of the block being written.
    pub fn ulid(&self) -> Ulid {
        self.ulid
    }

    /// Adds a series with its chunks (in time order). Series without chunks are skipped,
    /// as Prometheus's compactor does.
    pub fn add_series(&mut self, labels: &Labels, chunks: &[ChunkData]) -> Result<()> {
        if chunks.is_empty() {
            return Ok(());
        }
        let raw: Vec<(u8, &[u8])> = chunks
            .iter()
            .map(|c| (c.encoding, c.data.as_slice()))
            .collect();
        let refs = self.chunks.write_series_chunks(&raw)?;
        let metas: Vec<ChunkMeta> = chunks
            .iter()
            .zip(refs)
            .map(|(c, r)| ChunkMeta {
                min_time: c.min_time,
                max_time: c.max_time,
                chunk_ref: r,
            })
            .collect();
        self.index.add_series(labels, &metas)?;
        self.stats.num_series += 1;
        for c in chunks {
            let n = c.num_samples();
            self.stats.num_chunks += 1;
            self.stats.num_samples += n;
            match c.encoding {
                1 | 4 => self.stats.num_float_samples += n,
                _ => self.stats.num_histogram_samples += n,
            }
            self.min_time = self.min_time.min(c.min_time);
            self.max_time = self.max_time.max(c.max_time);
            self.chunk_max_size = self.chunk_max_size.max(c.data.len() as i64);
        }
        Ok(())
    }

    /// Finishes the block: index, `meta.json`, empty `tombstones`, fsync and rename to
    /// `<parent>/<ULID>`. Returns the meta, or `None` (and removes the directory) when no
    /// sample was written, as Prometheus does not keep empty blocks.
    pub fn finish(self) -> Result<Option<BlockMeta>> {
        let id = self.ulid;
        self.finish_inner().map_err(|e| e.in_block(id))
    }

    fn finish_inner(self) -> Result<Option<BlockMeta>> {
        let chunk_summary = self.chunks.finish()?;
        let index_summary = self.index.finish()?;
        if self.stats.num_samples == 0 {
            std::fs::remove_dir_all(&self.tmp_dir)
                .map_err(|e| Error::io(self.tmp_dir.display().to_string(), e))?;
            return Ok(None);
        }
        let (min_time, max_time) = self
            .opts
            .time_range
            .unwrap_or((self.min_time, self.max_time.saturating_add(1)));
        let mut meta = BlockMeta::new_level1(self.ulid, min_time, max_time, self.stats.clone());
        if let Some(c) = self.opts.compaction.clone() {
            meta.compaction = c;
        }
        if let Some(mut t) = self.opts.thanos.clone() {
            t.index_stats.series_max_size = index_summary.series_max_size as i64;
            t.index_stats.chunk_max_size = chunk_summary.max_record_size as i64;
            meta.thanos = Some(t);
        }
        meta.write_to_dir(&self.tmp_dir)?;
        Tombstones::new().write_to_dir(&self.tmp_dir)?;
        sync_dir(&self.tmp_dir)?;
        let final_dir = self.parent.join(self.ulid.to_string());
        std::fs::rename(&self.tmp_dir, &final_dir)
            .map_err(|e| Error::io(final_dir.display().to_string(), e))?;
        sync_dir(&self.parent)?;
        tracing::debug!(
            block = %self.ulid,
            series = meta.stats.num_series,
            samples = meta.stats.num_samples,
            index_bytes = index_summary.size,
            "wrote block"
        );
        Ok(Some(meta))
    }
}

/// Writes a whole block from series sorted by labels, with the symbols taken from the
/// series labels plus the empty string (which Prometheus's head always contributes).
pub fn write_block(
    parent: &Path,
    series: &[(Labels, Vec<ChunkData>)],
    opts: BlockWriterOptions,
) -> Result<Option<BlockMeta>> {
    let mut symbols: BTreeSet<&str> = BTreeSet::new();
    symbols.insert("");
    for (l, _) in series {
        for lbl in l {
            symbols.insert(&lbl.name);
            symbols.insert(&lbl.value);
        }
    }
    let mut w = BlockWriter::new(parent, symbols, opts)?;
    for (l, c) in series {
        w.add_series(l, c)?;
    }
    w.finish()
}
