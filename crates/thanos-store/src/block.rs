//! One block served from object storage (Thanos's `bucketBlock`): its meta, its local
//! index-header, and ranged reads of postings, series entries and chunks.

use std::collections::{BTreeSet, HashMap};
use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use prometheus::IntCounterVec;
use thanos_model::{Labels, MatchType, Matcher};
use thanos_objstore::{Bucket, Path};
use thanos_tsdb::BlockMeta;
use thanos_tsdb::encoding::{DecodeError, uvarint};
use thanos_tsdb::index::{ChunkMeta, intersect, merge, without};
use thanos_tsdb::index::{
    SERIES_ALIGNMENT, SeriesEntry, SeriesRef, decode_postings_list, decode_series_entry_into,
};
use thanos_tsdb::index_header::{INDEX_HEADER_FILENAME, IndexHeader, build_index_header};
use ulid::Ulid;

use crate::cache::IndexCache;
use crate::error::{Error, Result};
use crate::limits::QueryLimiter;

/// Downsampling resolutions a store gateway serves (ms): raw, 5m, 1h.
pub const RESOLUTIONS: [i64; 3] = [0, 300_000, 3_600_000];

/// How ranged reads are planned.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadConfig {
    /// Postings offset table sampling kept in memory.
    pub(crate) postings_sampling: usize,
    /// Assumed upper bound of a series entry when `index_stats` does not say.
    pub(crate) est_series_size: u64,
    /// Assumed upper bound of a chunk record when `index_stats` does not say.
    pub(crate) est_chunk_size: u64,
    /// Neighbouring ranges closer than this are fetched with one request.
    pub(crate) max_gap: u64,
    /// Parallel range requests per file.
    pub(crate) fetch_concurrency: usize,
    /// Memory-map block files of a FILESYSTEM bucket (see [`crate::local`]).
    pub(crate) direct_filesystem_reads: bool,
}

/// What the ranges of a read hold.
#[derive(Debug, Clone, Copy)]
enum Content {
    /// Exactly the bytes wanted.
    Exact,
    /// A record starting with its `uvarint` length, followed by `trailer` more bytes than
    /// that length (CRC, encoding byte); the range is an upper-bound estimate.
    Prefixed { trailer: u64 },
}

impl Content {
    /// The whole length (prefix, body, trailer) of the length-prefixed record at the start
    /// of `buf`; `None` for exact ranges or when `buf` does not start with a valid length.
    fn record_len(self, buf: &[u8]) -> Option<u64> {
        match self {
            Content::Exact => None,
            Content::Prefixed { trailer } => uvarint(buf)
                .ok()
                .map(|(n, k)| (k as u64).saturating_add(n).saturating_add(trailer)),
        }
    }
}

/// Series entry: `uvarint` length, body, CRC32.
const SERIES_RECORD: Content = Content::Prefixed { trailer: 4 };
/// Chunk record: `uvarint` length, encoding byte, data, CRC32.
const CHUNK_RECORD: Content = Content::Prefixed { trailer: 5 };

/// Which file of a block a read targets.
#[derive(Debug, Clone, Copy)]
enum BlockFile {
    Index,
    /// Chunk segment by 0-based index.
    Segment(usize),
}

/// A contiguous byte range to fetch and the inputs it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Part {
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) items: Range<usize>,
}

/// Groups `ranges` (sorted by start) into parts, merging neighbours whose gap is at most
/// `max_gap` (Thanos's gap-based partitioner). Overlapping ranges are merged too.
pub(crate) fn partition(ranges: &[Range<u64>], max_gap: u64) -> Vec<Part> {
    let mut out: Vec<Part> = Vec::new();
    for (i, r) in ranges.iter().enumerate() {
        match out.last_mut() {
            Some(p) if r.start <= p.end.saturating_add(max_gap) => {
                p.end = p.end.max(r.end);
                p.items.end = i + 1;
            }
            _ => out.push(Part {
                start: r.start,
                end: r.end,
                items: i..i + 1,
            }),
        }
    }
    out
}

/// A loaded block.
#[derive(Debug)]
pub(crate) struct BucketBlock {
    pub(crate) meta: BlockMeta,
    /// External labels from `meta.json` (`thanos.labels`).
    pub(crate) ext_labels: Labels,
    pub(crate) resolution: i64,
    header: IndexHeader,
    bucket: Bucket,
    index_path: Path,
    index_size: u64,
    /// Chunk segment files by 0-based index, with their sizes.
    segments: Vec<(Path, u64)>,
    /// The index and segments memory-mapped, when the bucket is a local directory.
    local: Option<LocalFiles>,
    cfg: ReadConfig,
    fetched: IntCounterVec,
    /// Largest series entry / chunk record seen so far (0 = none yet): once known, reads
    /// are sized from it instead of the configured worst case.
    observed_series: AtomicU64,
    observed_chunk: AtomicU64,
}

/// A block's files mapped from a FILESYSTEM bucket (see [`crate::local`]).
#[derive(Debug)]
struct LocalFiles {
    index: Bytes,
    /// By 0-based segment index, like [`BucketBlock::segments`].
    segments: Vec<Bytes>,
}

impl LocalFiles {
    /// Maps the files of block `id` under the bucket directory `root`; `None` unless all
    /// of them are there with the sizes the bucket listed.
    fn map(root: &FsPath, id: Ulid, index_size: u64, segments: &[(Path, u64)]) -> Option<Self> {
        let dir = root.join(id.to_string());
        let index = crate::local::map_file(&dir.join("index"), index_size)?;
        let segments = segments
            .iter()
            .map(|(p, size)| {
                let name = p.filename()?;
                crate::local::map_file(&dir.join("chunks").join(name), *size)
            })
            .collect::<Option<Vec<Bytes>>>()?;
        Some(Self { index, segments })
    }
}

/// Size estimate from the largest item seen: twice it plus slack, never above `max`.
fn adaptive_estimate(observed: u64, max: u64) -> u64 {
    if observed == 0 {
        max
    } else {
        observed.saturating_mul(2).saturating_add(256).min(max)
    }
}

fn corrupt(block: Ulid, file: &str, e: &DecodeError) -> Error {
    Error::Corrupt {
        block,
        file: file.to_owned(),
        offset: e.offset,
        reason: e.kind.to_string(),
    }
}

/// Chunk records read by [`BucketBlock::load_chunks`]: encoding byte and data per chunk
/// ref, sorted by ref.
pub(crate) struct LoadedChunks(Vec<(u64, (u8, Bytes))>);

impl LoadedChunks {
    /// The encoding byte and data of chunk `r`, if it was loaded.
    pub(crate) fn get(&self, r: u64) -> Option<&(u8, Bytes)> {
        self.0
            .binary_search_by_key(&r, |e| e.0)
            .ok()
            .map(|i| &self.0[i].1)
    }
}

pub(crate) async fn spawn_blocking<T: Send + 'static>(
    what: String,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Task {
            what,
            reason: e.to_string(),
        })?
}

/// Builds the index-header of block `id` with range reads of its index and writes it to
/// `out` (atomically, through a temporary file).
async fn build_header_file(bucket: &Bucket, id: Ulid, index_size: u64, out: PathBuf) -> Result<()> {
    let bucket = bucket.clone();
    let handle = tokio::runtime::Handle::current();
    spawn_blocking(format!("build index-header of block {id}"), move || {
        let path = Path::from(format!("{id}/index"));
        let failure: Mutex<Option<thanos_objstore::Error>> = Mutex::new(None);
        let built = build_index_header(index_size, |a, b| {
            match handle.block_on(bucket.get_range(&path, a..b)) {
                Ok(data) => Ok(data.to_vec()),
                Err(e) => {
                    let msg = e.to_string();
                    if let Ok(mut f) = failure.lock() {
                        *f = Some(e);
                    }
                    Err(thanos_tsdb::Error::invalid("index", msg))
                }
            }
        });
        let bytes = match built {
            Ok(b) => b,
            Err(source) => {
                let bucket_err = failure.lock().ok().and_then(|mut f| f.take());
                return Err(match bucket_err {
                    Some(e) => Error::bucket(format!("read index of block {id}"), e),
                    None => Error::Block { block: id, source },
                });
            }
        };
        let dir = out.parent().map(FsPath::to_path_buf).unwrap_or_default();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
        let tmp = out.with_extension("tmp");
        std::fs::write(&tmp, &bytes).map_err(|e| Error::io(tmp.display().to_string(), e))?;
        std::fs::rename(&tmp, &out).map_err(|e| Error::io(out.display().to_string(), e))
    })
    .await
}

impl BucketBlock {
    /// Loads block `meta`: lists its chunk segments, builds or reuses
    /// `<data_dir>/<ULID>/index-header`, and opens it.
    pub(crate) async fn load(
        bucket: &Bucket,
        meta: BlockMeta,
        data_dir: &FsPath,
        cfg: ReadConfig,
        fetched: IntCounterVec,
    ) -> Result<Self> {
        let id = meta.ulid;
        let thanos = meta.thanos.clone().unwrap_or_default();
        let resolution = thanos.downsample.resolution;
        if !RESOLUTIONS.contains(&resolution) {
            return Err(Error::Block {
                block: id,
                source: thanos_tsdb::Error::invalid(
                    "meta.json",
                    format!("unsupported downsample resolution {resolution}"),
                ),
            });
        }
        let ext_labels = Labels::from_pairs(thanos.labels.iter());
        let chunks_dir = Path::from(format!("{id}/chunks"));
        let listing = bucket
            .list_with_delimiter(Some(&chunks_dir))
            .await
            .map_err(|e| Error::bucket(format!("list chunks of block {id}"), e))?;
        let mut segs: Vec<(u32, Path, u64)> = Vec::new();
        for o in listing.objects {
            let Some(n) = o.location.filename().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            segs.push((n, o.location.clone(), o.size));
        }
        segs.sort_by_key(|s| s.0);
        if segs.iter().enumerate().any(|(i, s)| s.0 as usize != i + 1) {
            return Err(Error::Block {
                block: id,
                source: thanos_tsdb::Error::invalid(
                    "chunks",
                    "chunk segment files are not numbered 000001..N",
                ),
            });
        }
        let index_path = Path::from(format!("{id}/index"));
        let index_size = bucket
            .attributes(&index_path)
            .await
            .map_err(|e| Error::bucket(format!("stat index of block {id}"), e))?
            .size;
        let header_path = data_dir.join(id.to_string()).join(INDEX_HEADER_FILENAME);
        let sampling = cfg.postings_sampling.max(1);
        let open = |p: PathBuf| {
            spawn_blocking(format!("open index-header of block {id}"), move || {
                IndexHeader::open(&p, sampling).map_err(|source| Error::Block { block: id, source })
            })
        };
        let header = match open(header_path.clone()).await {
            Ok(h) => {
                tracing::debug!(block = %id, "reusing index-header from data dir");
                h
            }
            Err(err) => {
                if header_path.exists() {
                    tracing::warn!(block = %id, err = %err, "rebuilding unreadable index-header");
                }
                build_header_file(bucket, id, index_size, header_path.clone()).await?;
                open(header_path).await?
            }
        };
        let segments: Vec<(Path, u64)> = segs.into_iter().map(|(_, p, s)| (p, s)).collect();
        let root = cfg
            .direct_filesystem_reads
            .then(|| bucket.local_dir().map(std::path::Path::to_path_buf))
            .flatten();
        let local = match root {
            Some(root) => {
                let segs = segments.clone();
                spawn_blocking(format!("map files of block {id}"), move || {
                    Ok(LocalFiles::map(&root, id, index_size, &segs))
                })
                .await?
            }
            None => None,
        };
        tracing::debug!(block = %id, memory_mapped = local.is_some(), "block read path chosen");
        let stats = thanos.index_stats;
        let pick = |v: i64, d: u64| u64::try_from(v).ok().filter(|&v| v > 0).unwrap_or(d);
        let cfg = ReadConfig {
            est_series_size: pick(stats.series_max_size, cfg.est_series_size),
            est_chunk_size: pick(stats.chunk_max_size, cfg.est_chunk_size),
            ..cfg
        };
        Ok(Self {
            meta,
            ext_labels,
            resolution,
            header,
            bucket: bucket.clone(),
            index_path,
            index_size,
            segments,
            local,
            cfg,
            fetched,
            observed_series: AtomicU64::new(0),
            observed_chunk: AtomicU64::new(0),
        })
    }

    /// Read size for a series entry.
    fn series_estimate(&self) -> u64 {
        adaptive_estimate(
            self.observed_series.load(Ordering::Relaxed),
            self.cfg.est_series_size,
        )
    }

    /// Read size for a chunk record.
    fn chunk_estimate(&self) -> u64 {
        adaptive_estimate(
            self.observed_chunk.load(Ordering::Relaxed),
            self.cfg.est_chunk_size,
        )
    }

    /// Whether every read of this block is served from local memory mappings.
    pub(crate) fn is_local(&self) -> bool {
        self.local.is_some()
    }

    pub(crate) fn id(&self) -> Ulid {
        self.meta.ulid
    }

    /// The local mapping of `file`, when the block is read from disk.
    fn local_file(&self, file: BlockFile) -> Option<&Bytes> {
        let local = self.local.as_ref()?;
        match file {
            BlockFile::Index => Some(&local.index),
            BlockFile::Segment(i) => local.segments.get(i),
        }
    }

    /// The bucket object holding `file`; `None` for a segment the block does not have.
    fn object(&self, file: BlockFile) -> Option<&Path> {
        match file {
            BlockFile::Index => Some(&self.index_path),
            BlockFile::Segment(i) => self.segments.get(i).map(|(path, _)| path),
        }
    }

    /// Fetches `ranges` of `file`, merging neighbours, after reserving their bytes with
    /// the limiter. Returns the bytes of every input range, in input order (ranges must be
    /// sorted by start). Ranges are clipped to the object's end. A block read from disk
    /// slices its mapping of `file` instead (no copy), charging only the bytes it returns.
    async fn fetch_ranges(
        &self,
        file: BlockFile,
        ranges: &[Range<u64>],
        content: Content,
        limiter: &QueryLimiter,
        data_type: &str,
    ) -> Result<Vec<Bytes>> {
        if let Some(data) = self.local_file(file) {
            let len = data.len() as u64;
            // Clipped to the file, and for length-prefixed records to the record itself
            // (ranges sized by estimate only), so that exactly the bytes used count.
            let cut: Vec<Range<usize>> = ranges
                .iter()
                .map(|r| {
                    let b = r.end.min(len);
                    let a = r.start.min(b);
                    // Bounded by `len`, which came from `data.len()`.
                    let (a, b) = (a as usize, b as usize);
                    let end = content.record_len(&data[a..b]).map_or(b, |need| {
                        usize::try_from(need).map_or(b, |need| b.min(a.saturating_add(need)))
                    });
                    a..end
                })
                .collect();
            let total: u64 = cut.iter().map(|r| (r.end - r.start) as u64).sum();
            limiter.reserve_bytes(total)?;
            self.fetched.with_label_values(&[data_type]).inc_by(total);
            return Ok(cut.into_iter().map(|r| data.slice(r)).collect());
        }
        let Some(path) = self.object(file) else {
            return Err(Error::Corrupt {
                block: self.id(),
                file: format!("{file:?}"),
                offset: 0,
                reason: "reference into a file the block does not have".into(),
            });
        };
        let parts = partition(ranges, self.cfg.max_gap);
        let total: u64 = parts.iter().map(|p| p.end - p.start).sum();
        limiter.reserve_bytes(total)?;
        self.fetched.with_label_values(&[data_type]).inc_by(total);
        let id = self.id();
        let bufs: Vec<Bytes> =
            futures::stream::iter(parts.iter().map(|p| p.start..p.end).collect::<Vec<_>>())
                .map(|range| async move {
                    self.bucket
                        .get_range(path, range)
                        .await
                        .map_err(|e| Error::bucket(format!("fetch {data_type} of block {id}"), e))
                })
                .buffered(self.cfg.fetch_concurrency.max(1))
                .try_collect()
                .await?;
        let mut out = Vec::with_capacity(ranges.len());
        for (p, buf) in parts.iter().zip(bufs) {
            for r in &ranges[p.items.clone()] {
                let a = usize::try_from(r.start - p.start)
                    .unwrap_or(usize::MAX)
                    .min(buf.len());
                let b = usize::try_from(r.end - p.start)
                    .unwrap_or(usize::MAX)
                    .min(buf.len());
                out.push(buf.slice(a..b));
            }
        }
        Ok(out)
    }

    /// Postings lists of `keys` (label pairs), from the cache or the index.
    async fn fetch_postings(
        &self,
        keys: &[(String, String)],
        cache: &IndexCache,
        limiter: &QueryLimiter,
    ) -> Result<HashMap<(String, String), Arc<Vec<SeriesRef>>>> {
        let id = self.id();
        let mut out = HashMap::with_capacity(keys.len());
        let mut missing: Vec<(Range<u64>, &(String, String))> = Vec::new();
        for k in keys {
            if let Some(p) = cache.get_postings(id, &k.0, &k.1) {
                out.insert(k.clone(), p);
                continue;
            }
            let range = self
                .header
                .postings_range(&k.0, &k.1)
                .map_err(|source| Error::Block { block: id, source })?;
            match range {
                Some((a, b)) if b > a => missing.push((a..b, k)),
                _ => {
                    out.insert(k.clone(), Arc::new(Vec::new()));
                }
            }
        }
        missing.sort_by_key(|m| m.0.start);
        let ranges: Vec<Range<u64>> = missing.iter().map(|m| m.0.clone()).collect();
        let bufs = self
            .fetch_ranges(
                BlockFile::Index,
                &ranges,
                Content::Exact,
                limiter,
                "postings",
            )
            .await?;
        for ((range, key), buf) in missing.into_iter().zip(bufs) {
            let list =
                decode_postings_list(&buf, range.start).map_err(|e| corrupt(id, "index", &e))?;
            let list = Arc::new(list);
            cache.put_postings(id, &key.0, &key.1, Arc::clone(&list));
            out.insert(key.clone(), list);
        }
        Ok(out)
    }

    /// Series refs selected by `matchers` (Prometheus semantics: a matcher matching the
    /// empty string also selects series without the label).
    pub(crate) async fn expand_postings(
        &self,
        matchers: &[Matcher],
        cache: &IndexCache,
        limiter: &QueryLimiter,
    ) -> Result<Vec<SeriesRef>> {
        let id = self.id();
        // Keys `name=v` for the values `v` of `name` that `keep` accepts; only those are
        // copied out of the index-header.
        let keys = |name: &str, keep: &dyn Fn(&str) -> bool| -> Result<Vec<(String, String)>> {
            Ok(self
                .header
                .label_values(name)
                .map_err(|source| Error::Block { block: id, source })?
                .into_iter()
                .filter(|v| keep(v))
                .map(|v| (name.to_owned(), v.to_owned()))
                .collect())
        };
        // (keys, is_removal)
        let mut groups: Vec<(Vec<(String, String)>, bool)> = Vec::new();
        for m in matchers {
            let name = m.name().to_owned();
            if m.matches("") {
                if m.match_type() == MatchType::RegexMatch && m.value() == ".*" {
                    continue;
                }
                groups.push((keys(&name, &|v| !m.matches(v))?, true));
            } else if m.match_type() == MatchType::Equal {
                groups.push((vec![(name, m.value().to_owned())], false));
            } else {
                groups.push((keys(&name, &|v| m.matches(v))?, false));
            }
        }
        if !groups.iter().any(|g| !g.1) {
            groups.push((vec![(String::new(), String::new())], false));
        }
        // An intersection with an empty group is empty: do not fetch anything.
        if groups.iter().any(|g| !g.1 && g.0.is_empty()) {
            return Ok(Vec::new());
        }
        let all: BTreeSet<(String, String)> =
            groups.iter().flat_map(|g| g.0.iter().cloned()).collect();
        let all: Vec<(String, String)> = all.into_iter().collect();
        let lists = self.fetch_postings(&all, cache, limiter).await?;
        let merged = |keys: &[(String, String)]| -> Vec<SeriesRef> {
            let refs: Vec<&[SeriesRef]> = keys
                .iter()
                .filter_map(|k| lists.get(k).map(|l| l.as_slice()))
                .collect();
            merge(&refs)
        };
        let adds: Vec<Vec<SeriesRef>> = groups
            .iter()
            .filter(|g| !g.1)
            .map(|g| merged(&g.0))
            .collect();
        let add_refs: Vec<&[SeriesRef]> = adds.iter().map(Vec::as_slice).collect();
        let mut out = intersect(&add_refs);
        for g in groups.iter().filter(|g| g.1) {
            if out.is_empty() {
                break;
            }
            out = without(&out, &merged(&g.0));
        }
        Ok(out)
    }

    /// Fetches (or, for a block not read from disk, takes from the index cache) and
    /// decodes the series entries of `refs` (sorted ascending), with labels resolved
    /// through the index-header.
    pub(crate) async fn load_series(
        &self,
        refs: &[SeriesRef],
        cache: &IndexCache,
        limiter: &QueryLimiter,
    ) -> Result<Vec<(Labels, Vec<ChunkMeta>)>> {
        let id = self.id();
        // Entries of a memory-mapped block are read straight from the mapping: caching
        // them would only duplicate the page cache and cost a lookup per series.
        let mut raw: Vec<Option<Bytes>> = if self.is_local() {
            vec![None; refs.len()]
        } else {
            cache.get_series_many(id, refs)
        };
        let missing: Vec<usize> = (0..refs.len()).filter(|&i| raw[i].is_none()).collect();
        if !missing.is_empty() {
            let wanted: Vec<SeriesRef> = missing.iter().map(|&i| refs[i]).collect();
            let fetched = self.fetch_series(&wanted, limiter).await?;
            if !self.is_local() {
                cache.put_series_many(id, wanted.iter().copied().zip(fetched.iter().cloned()));
            }
            for (&i, entry) in missing.iter().zip(fetched) {
                raw[i] = Some(entry);
            }
        }
        let mut out = Vec::with_capacity(refs.len());
        // one entry decoded into at a time: its label references are reused, its chunk
        // metas move out with the series
        let mut entry = SeriesEntry::default();
        for (&r, raw) in refs.iter().zip(raw) {
            let offset = r.saturating_mul(SERIES_ALIGNMENT);
            decode_series_entry_into(&raw.unwrap_or_default(), offset, &mut entry)
                .map_err(|e| corrupt(id, "index", &e))?;
            let labels = self
                .header
                .resolve_labels(&entry)
                .map_err(|source| Error::Block { block: id, source })?;
            out.push((labels, std::mem::take(&mut entry.chunks)));
        }
        Ok(out)
    }

    /// Fetches the raw series entries of `refs` (sorted ascending) from the index by
    /// ranged reads: each exactly its encoded length (`uvarint` length, body, CRC32).
    async fn fetch_series(&self, refs: &[SeriesRef], limiter: &QueryLimiter) -> Result<Vec<Bytes>> {
        let id = self.id();
        let est = self.series_estimate();
        let ranges: Vec<Range<u64>> = refs
            .iter()
            .enumerate()
            .map(|(i, &r)| {
                let start = r.saturating_mul(SERIES_ALIGNMENT);
                let mut end = start.saturating_add(est).min(self.index_size);
                if let Some(&next) = refs.get(i + 1) {
                    end = end.min(next.saturating_mul(SERIES_ALIGNMENT)).max(start);
                }
                start..end
            })
            .collect();
        let mut bufs = self
            .fetch_ranges(BlockFile::Index, &ranges, SERIES_RECORD, limiter, "series")
            .await?;
        // Entries longer than estimated are refetched, all in one more round.
        let mut needs = Vec::with_capacity(bufs.len());
        let mut short: Vec<usize> = Vec::new();
        for (i, (range, buf)) in ranges.iter().zip(&bufs).enumerate() {
            let need = match SERIES_RECORD.record_len(buf) {
                Some(need) => need,
                None if buf.len() >= 10 => {
                    return Err(Error::Corrupt {
                        block: id,
                        file: "index".into(),
                        offset: range.start,
                        reason: "invalid series entry length".into(),
                    });
                }
                // Too short to even hold the length: refetch with the configured estimate.
                None => self.cfg.est_series_size,
            };
            if (buf.len() as u64) < need {
                short.push(i);
            }
            needs.push(need);
        }
        if !short.is_empty() {
            let again: Vec<Range<u64>> = short
                .iter()
                .map(|&i| {
                    let a = ranges[i].start;
                    a..a.saturating_add(needs[i]).min(self.index_size)
                })
                .collect();
            let fetched = self
                .fetch_ranges(BlockFile::Index, &again, SERIES_RECORD, limiter, "series")
                .await?;
            for (&i, b) in short.iter().zip(fetched) {
                bufs[i] = b;
            }
        }
        let local = self.local.is_some();
        Ok(bufs
            .into_iter()
            .zip(needs)
            .map(|(buf, need)| {
                let n = buf.len().min(usize::try_from(need).unwrap_or(usize::MAX));
                self.observed_series.fetch_max(need, Ordering::Relaxed);
                if local {
                    // A view of the mapping: it holds no heap memory.
                    buf.slice(..n)
                } else {
                    // A copy, so that a cached entry does not keep its whole read buffer
                    // alive (the cache accounts for the entry's own size only).
                    Bytes::copy_from_slice(&buf[..n])
                }
            })
            .collect())
    }

    /// Fetches the chunk records of `refs` (in any order, duplicates allowed); returns
    /// the [`LoadedChunks`] sorted by chunk ref.
    pub(crate) async fn load_chunks(
        &self,
        refs: &[u64],
        limiter: &QueryLimiter,
    ) -> Result<LoadedChunks> {
        let id = self.id();
        // A chunk ref is the segment index in the high and the offset in the low 32 bits:
        // sorted refs are grouped by segment, offsets ascending.
        let segment = |r: &u64| thanos_tsdb::chunks::split_chunk_ref(*r).0;
        let mut sorted = refs.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut out = Vec::with_capacity(sorted.len());
        for group in sorted.chunk_by(|a, b| segment(a) == segment(b)) {
            let seg = segment(&group[0]);
            let offsets: Vec<u32> = group
                .iter()
                .map(|&r| thanos_tsdb::chunks::split_chunk_ref(r).1)
                .collect();
            let file = thanos_tsdb::chunks::segment_name(seg);
            let Some((_, size)) = self.segments.get(seg as usize) else {
                return Err(Error::Corrupt {
                    block: id,
                    file: format!("chunks/{file}"),
                    offset: 0,
                    reason: format!("chunk reference into missing segment {seg}"),
                });
            };
            let chunk_est = self.chunk_estimate();
            let ranges: Vec<Range<u64>> = offsets
                .iter()
                .map(|&o| {
                    let o = u64::from(o);
                    o..o.saturating_add(chunk_est).min(*size).max(o)
                })
                .collect();
            let file_id = BlockFile::Segment(seg as usize);
            let mut bufs = self
                .fetch_ranges(file_id, &ranges, CHUNK_RECORD, limiter, "chunks")
                .await?;
            let mut needs = Vec::with_capacity(bufs.len());
            let mut short: Vec<usize> = Vec::new();
            for (i, buf) in bufs.iter().enumerate() {
                let need = CHUNK_RECORD
                    .record_len(buf)
                    .unwrap_or(self.cfg.est_chunk_size);
                if (buf.len() as u64) < need {
                    short.push(i);
                }
                needs.push(need);
            }
            if !short.is_empty() {
                let again: Vec<Range<u64>> = short
                    .iter()
                    .map(|&i| {
                        let a = ranges[i].start;
                        a..a.saturating_add(needs[i]).min(*size)
                    })
                    .collect();
                let fetched = self
                    .fetch_ranges(file_id, &again, CHUNK_RECORD, limiter, "chunks")
                    .await?;
                for (&i, b) in short.iter().zip(fetched) {
                    bufs[i] = b;
                }
            }
            for ((&off, range), (buf, need)) in
                offsets.iter().zip(&ranges).zip(bufs.iter().zip(needs))
            {
                self.observed_chunk.fetch_max(need, Ordering::Relaxed);
                let raw = thanos_tsdb::chunks::decode_chunk(buf, range.start)
                    .map_err(|e| corrupt(id, &format!("chunks/{file}"), &e))?;
                // From a mapping, a view (no copy); otherwise a copy, so that the chunk
                // does not keep its whole merged read buffer alive.
                let data = if self.local.is_some() {
                    buf.slice_ref(raw.data)
                } else {
                    Bytes::copy_from_slice(raw.data)
                };
                out.push((
                    thanos_tsdb::chunks::chunk_ref(seg, off),
                    (raw.encoding, data),
                ));
            }
        }
        Ok(LoadedChunks(out))
    }

    /// Label names of the block (from the index-header), without the all-postings key.
    pub(crate) fn label_names(&self) -> Vec<String> {
        self.header
            .label_names()
            .into_iter()
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Values of `name` (from the index-header).
    pub(crate) fn label_values(&self, name: &str) -> Result<Vec<String>> {
        Ok(self
            .header
            .label_values(name)
            .map_err(|source| Error::Block {
                block: self.id(),
                source,
            })?
            .into_iter()
            .map(str::to_owned)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_merge_close_and_overlapping_ranges() {
        let ranges = vec![0..10, 12..20, 15..18, 100..110, 111..120, 500..501];
        let parts = partition(&ranges, 5);
        assert_eq!(
            parts,
            vec![
                Part {
                    start: 0,
                    end: 20,
                    items: 0..3
                },
                Part {
                    start: 100,
                    end: 120,
                    items: 3..5
                },
                Part {
                    start: 500,
                    end: 501,
                    items: 5..6
                },
            ]
        );
        assert_eq!(partition(&ranges, 0).len(), 5);
        assert!(partition(&[], 10).is_empty());
    }

    #[test]
    fn estimates_adapt_to_observed_sizes() {
        assert_eq!(adaptive_estimate(0, 65_536), 65_536);
        assert_eq!(adaptive_estimate(100, 65_536), 456);
        assert_eq!(adaptive_estimate(60_000, 65_536), 65_536);
    }
}
