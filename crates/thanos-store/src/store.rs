//! The bucket store (Thanos's `BucketStore`): keeps the set of loaded blocks in sync with
//! the bucket and answers StoreAPI and Info calls from them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use prometheus::Registry;
use thanos_model::{Labels, Matcher};
use thanos_objstore::Bucket;
use thanos_proto::storepb::{
    finalize_labels, in_shard, labels_into_proto, labels_to_proto, matchers_from_proto,
    strip_external,
};
use thanos_proto::thanos::{
    AggrChunk, Chunk, LabelMatcher, LabelNamesRequest, LabelValuesRequest, Series, SeriesRequest,
    ShardInfo,
};
use thanos_tsdb::BlockMeta;
use thanos_tsdb::index::{ChunkMeta, SeriesRef};
use tokio::sync::{Mutex as AsyncMutex, Semaphore, mpsc};
use ulid::Ulid;

use crate::block::{BucketBlock, RESOLUTIONS, ReadConfig, spawn_blocking};
use crate::cache::{IndexCache, IndexCacheConfig};
use crate::error::{Error, Result};
use crate::fetcher::{FilterOptions, fetch_metas};
use crate::limits::{Limits, QueryLimiter};
use crate::metrics::{SYNC_STATES, StoreMetrics};

/// Options of a [`BucketStore`] (the `thanos store` flags it needs).
#[derive(Debug, Clone)]
pub struct BucketStoreOptions {
    /// `--data-dir`: index-headers (`<ULID>/index-header`) and the meta cache.
    pub data_dir: PathBuf,
    /// Discovery filters (`--min-time`, `--max-time`, `--consistency-delay`,
    /// `--ignore-deletion-marks-delay`, `--block-meta-fetch-concurrency`). `min_time` and
    /// `max_time` also clamp every query.
    pub filters: FilterOptions,
    /// `--block-sync-concurrency`: parallel block loads.
    pub block_sync_concurrency: usize,
    /// The in-memory index cache (`--index-cache.config`, else `--index-cache-size`).
    pub index_cache: IndexCacheConfig,
    /// `--store.grpc.{touched-series,series-sample,downloaded-bytes}-limit`.
    pub limits: Limits,
    /// `--store.grpc.series-max-concurrency`: concurrent Series calls (others wait).
    pub series_max_concurrency: usize,
    /// `--store.index-header-posting-offsets-in-mem-sampling`.
    pub postings_offsets_in_mem_sampling: usize,
    /// `--debug.estimated-max-series-size` (bytes), unless meta.json `index_stats` says.
    pub estimated_max_series_size: u64,
    /// `--debug.estimated-max-chunk-size` (bytes), unless meta.json `index_stats` says.
    pub estimated_max_chunk_size: u64,
    /// Neighbouring byte ranges closer than this are fetched in one request (512 KiB).
    pub max_range_gap: u64,
    /// `--debug.series-batch-size`: series entries fetched per batch.
    pub series_batch_size: usize,
    /// Blocks expanding postings and loading series entries in parallel per call (chunk
    /// fetching then proceeds as the merged stream is consumed).
    pub block_query_concurrency: usize,
    /// When the bucket is a FILESYSTEM directory, memory-map each block's index and chunk
    /// segments at load and serve reads from the mappings instead of range requests
    /// through the bucket (default on; off makes a local bucket behave like object
    /// storage, e.g. to measure range-request planning).
    pub direct_filesystem_reads: bool,
}

impl Default for BucketStoreOptions {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            filters: FilterOptions::default(),
            block_sync_concurrency: 20,
            index_cache: IndexCacheConfig::default(),
            limits: Limits::default(),
            series_max_concurrency: 20,
            postings_offsets_in_mem_sampling: 32,
            estimated_max_series_size: 64 * 1024,
            estimated_max_chunk_size: 16_000,
            max_range_gap: 512 * 1024,
            series_batch_size: 10_000,
            block_query_concurrency: 8,
            direct_filesystem_reads: true,
        }
    }
}

/// What one [`BucketStore::sync`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncSummary {
    /// Blocks loaded after the sync.
    pub loaded: usize,
    /// Blocks newly loaded by this sync.
    pub added: Vec<Ulid>,
    /// Blocks dropped by this sync.
    pub removed: Vec<Ulid>,
    /// Blocks that passed the filters but failed to load (retried next sync).
    pub failed: Vec<Ulid>,
}

/// Summary of one loaded block, as shown by [`BucketStore::blocks`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedBlock {
    /// Block ULID.
    pub id: Ulid,
    /// `minTime` (inclusive, ms).
    pub min_time: i64,
    /// `maxTime` (exclusive, ms).
    pub max_time: i64,
    /// External labels.
    pub labels: Labels,
    /// Downsampling resolution (ms).
    pub resolution: i64,
}

#[derive(Debug)]
struct Inner {
    bucket: Bucket,
    opts: BucketStoreOptions,
    read_cfg: ReadConfig,
    blocks: RwLock<BTreeMap<Ulid, Arc<BucketBlock>>>,
    cache: IndexCache,
    metrics: StoreMetrics,
    gate: Arc<Semaphore>,
    ready: AtomicBool,
    sync_lock: AsyncMutex<bool>,
}

/// Serves the blocks of a bucket over the StoreAPI. Cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct BucketStore {
    inner: Arc<Inner>,
}

/// Decodes request matchers; a bad matcher is an invalid argument.
fn convert_matchers(ms: &[LabelMatcher]) -> Result<Vec<Matcher>> {
    matchers_from_proto(ms).map_err(|e| Error::InvalidArgument(e.to_string()))
}

/// Blocks of one label set covering `[mint, maxt]`: the coarsest allowed resolution first,
/// gaps filled with finer ones (Thanos's `bucketBlockSet.getFor`).
fn select_blocks(
    blocks: &[Arc<BucketBlock>],
    mint: i64,
    maxt: i64,
    max_resolution: i64,
) -> Vec<Arc<BucketBlock>> {
    let items: Vec<Span<Arc<BucketBlock>>> = blocks
        .iter()
        .map(|b| Span {
            resolution: b.resolution,
            min_time: b.meta.min_time,
            max_time: b.meta.max_time,
            item: Arc::clone(b),
        })
        .collect();
    select_by_resolution(&items, mint, maxt, max_resolution)
}

/// A block's resolution and half-open time range `[min_time, max_time)`.
#[derive(Debug, Clone)]
struct Span<T> {
    resolution: i64,
    min_time: i64,
    max_time: i64,
    item: T,
}

fn select_by_resolution<T: Clone>(
    items: &[Span<T>],
    mint: i64,
    maxt: i64,
    max_resolution: i64,
) -> Vec<T> {
    // Levels ordered coarse → fine, each sorted by time.
    let levels: Vec<Vec<&Span<T>>> = RESOLUTIONS
        .iter()
        .rev()
        .map(|&r| {
            let mut v: Vec<&Span<T>> = items.iter().filter(|b| b.resolution == r).collect();
            v.sort_by_key(|b| (b.min_time, b.max_time));
            v
        })
        .collect();
    let start = RESOLUTIONS
        .iter()
        .rev()
        .position(|&r| r <= max_resolution.max(0))
        .unwrap_or(RESOLUTIONS.len() - 1);
    fn fill<T: Clone>(levels: &[Vec<&Span<T>>], i: usize, mint: i64, maxt: i64, out: &mut Vec<T>) {
        if i >= levels.len() || mint > maxt {
            return;
        }
        let mut cursor = mint;
        for b in levels[i]
            .iter()
            .filter(|b| b.max_time > mint && b.min_time <= maxt)
        {
            if b.min_time > cursor {
                fill(levels, i + 1, cursor, b.min_time - 1, out);
            }
            cursor = cursor.max(b.max_time);
            out.push(b.item.clone());
        }
        fill(levels, i + 1, cursor, maxt, out);
    }
    let mut out = Vec::new();
    fill(&levels, start, mint, maxt, &mut out);
    out
}

/// Builds the wire chunk(s) of one stored chunk.
fn to_aggr_chunk(
    block: Ulid,
    meta: &ChunkMeta,
    encoding: u8,
    data: bytes::Bytes,
    aggregates: &[i32],
) -> Result<AggrChunk> {
    let wire = |enc: u8, data: bytes::Bytes| -> Result<Chunk> {
        if !(1..=3).contains(&enc) {
            return Err(Error::Corrupt {
                block,
                file: "chunks".into(),
                offset: meta.chunk_ref,
                reason: format!("unknown chunk encoding {enc}"),
            });
        }
        Ok(Chunk {
            r#type: i32::from(enc) - 1,
            hash: xxhash_rust::xxh64::xxh64(&data, 0),
            data,
        })
    };
    let mut out = AggrChunk {
        min_time: meta.min_time,
        max_time: meta.max_time,
        ..AggrChunk::default()
    };
    if encoding != 0xff {
        out.raw = Some(wire(encoding, data)?);
        return Ok(out);
    }
    // Aggregate chunk: count, sum, min, max, counter, each `uvarint L` + (enc + L bytes).
    let mut parts: [Option<Chunk>; 5] = Default::default();
    let mut pos = 0usize;
    for slot in &mut parts {
        let bad = |reason: &str| Error::Corrupt {
            block,
            file: "chunks".into(),
            offset: meta.chunk_ref,
            reason: format!("aggregate chunk: {reason}"),
        };
        let (len, n) =
            thanos_tsdb::encoding::uvarint(&data[pos..]).map_err(|_| bad("bad length"))?;
        pos += n;
        if len == 0 {
            continue;
        }
        let len = usize::try_from(len).map_err(|_| bad("length overflow"))?;
        if pos + 1 + len > data.len() {
            return Err(bad("truncated"));
        }
        let enc = data[pos];
        *slot = Some(wire(enc, data.slice(pos + 1..pos + 1 + len))?);
        pos += 1 + len;
    }
    let [count, sum, min, max, counter] = parts;
    let pick = |a: i32, c: &Option<Chunk>| -> Result<Option<Chunk>> {
        if !aggregates.contains(&a) {
            return Ok(None);
        }
        c.clone().map(Some).ok_or_else(|| Error::Corrupt {
            block,
            file: "chunks".into(),
            offset: meta.chunk_ref,
            reason: format!("requested aggregate {a} missing in aggregate chunk"),
        })
    };
    out.count = pick(1, &count)?;
    out.sum = pick(2, &sum)?;
    out.min = pick(3, &min)?;
    out.max = pick(4, &max)?;
    out.counter = pick(5, &counter)?;
    Ok(out)
}

/// Up to this many matching series (over all blocks), a Series call over memory-mapped
/// blocks runs on the calling task: reading them takes a few hundred microseconds, and a
/// hand-off to a blocking thread and back costs about as much on a busy machine.
const INLINE_SERIES: usize = 500;

/// Series per slab that a memory-mapped block of a larger call streams to the merge
/// (see `produce_block`), so that merging, encoding and sending start early.
const LOCAL_SLAB: usize = 256;

/// Merged series buffered between the k-way merge of a streamed call and the response
/// (the querier asks for frames of 64 series).
const MERGED_SERIES_BUFFER: usize = 64;

/// Parameters of one Series call, shared by the per-block tasks.
struct SeriesCtx {
    mint: i64,
    maxt: i64,
    skip_chunks: bool,
    aggregates: Vec<i32>,
    without: Vec<String>,
    shard: Option<ShardInfo>,
    limiter: Arc<QueryLimiter>,
    /// Bounds the blocks loading postings and series entries at the same time.
    prepare_gate: Arc<Semaphore>,
}

/// A batch of series (final labels and chunks) of one block.
type Batch = Vec<(Labels, Vec<AggrChunk>)>;
/// One block's sorted output, in batches; an error ends the stream.
type BatchRx = mpsc::Receiver<Result<Batch>>;
type BatchTx = mpsc::Sender<Result<Batch>>;

/// Where a block producer's series come from.
enum Selection {
    /// Matchers whose postings the producer expands (bucket blocks).
    Matchers(Vec<Matcher>),
    /// Postings already expanded (memory-mapped blocks, expanded first to size the call).
    Refs(Vec<SeriesRef>),
}

/// Runs `read`, reads of a memory-mapped block (which never suspend), to completion on
/// the blocking pool.
async fn on_blocking_pool<T: Send + 'static>(
    what: String,
    read: impl std::future::Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    spawn_blocking(what, move || futures::executor::block_on(read)).await
}

/// Head of one block's stream in the k-way merge.
struct Cursor {
    rx: BatchRx,
    batch: std::vec::IntoIter<(Labels, Vec<AggrChunk>)>,
}

impl Cursor {
    /// The next series of this block, `Ok(None)` at the end.
    async fn next(&mut self) -> Result<Option<(Labels, Vec<AggrChunk>)>> {
        loop {
            if let Some(s) = self.batch.next() {
                return Ok(Some(s));
            }
            match self.rx.recv().await {
                Some(Ok(b)) => self.batch = b.into_iter(),
                Some(Err(e)) => return Err(e),
                None => return Ok(None),
            }
        }
    }
}

impl BucketStore {
    /// A store over `bucket` with `options`; registers its metrics on `registry`. No
    /// block is loaded until [`BucketStore::sync`] runs.
    pub fn new(bucket: Bucket, options: BucketStoreOptions, registry: &Registry) -> Result<Self> {
        let metrics = StoreMetrics::new(registry)?;
        let cache = IndexCache::new(options.index_cache.clone(), registry)?;
        let read_cfg = ReadConfig {
            postings_sampling: options.postings_offsets_in_mem_sampling,
            est_series_size: options.estimated_max_series_size.max(16),
            est_chunk_size: options.estimated_max_chunk_size.max(16),
            max_gap: options.max_range_gap,
            fetch_concurrency: 4,
            direct_filesystem_reads: options.direct_filesystem_reads,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                bucket,
                gate: Arc::new(Semaphore::new(options.series_max_concurrency.max(1))),
                opts: options,
                read_cfg,
                blocks: RwLock::new(BTreeMap::new()),
                cache,
                metrics,
                ready: AtomicBool::new(false),
                sync_lock: AsyncMutex::new(false),
            }),
        })
    }

    /// Whether the initial sync has completed (readiness; Info and queries fail before).
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire)
    }

    fn snapshot(&self) -> Vec<Arc<BucketBlock>> {
        match self.inner.blocks.read() {
            Ok(g) => g.values().cloned().collect(),
            Err(p) => p.into_inner().values().cloned().collect(),
        }
    }

    /// The loaded blocks, by ULID.
    pub fn blocks(&self) -> Vec<LoadedBlock> {
        self.snapshot()
            .iter()
            .map(|b| LoadedBlock {
                id: b.id(),
                min_time: b.meta.min_time,
                max_time: b.meta.max_time,
                labels: b.ext_labels.clone(),
                resolution: b.resolution,
            })
            .collect()
    }

    /// Synchronises the loaded blocks with the bucket: discovers and filters blocks,
    /// loads new ones (building or reusing their index-headers), drops vanished ones and
    /// their local files. On a listing failure the loaded set is kept and the error
    /// returned. Marks the store ready after the first successful sync.
    pub async fn sync(&self) -> Result<SyncSummary> {
        let inner = &self.inner;
        let mut first_done = inner.sync_lock.lock().await;
        inner.metrics.meta_syncs.inc();
        let current = self.snapshot();
        let known: HashMap<Ulid, BlockMeta> =
            current.iter().map(|b| (b.id(), b.meta.clone())).collect();
        let fetched = match fetch_metas(
            &inner.bucket,
            &inner.opts.filters,
            &inner.opts.data_dir,
            &known,
        )
        .await
        {
            Ok(f) => f,
            Err(err) => {
                inner.metrics.meta_sync_failures.inc();
                tracing::warn!(err = %err, "block metadata sync failed");
                return Err(err);
            }
        };
        let to_load: Vec<BlockMeta> = fetched
            .metas
            .values()
            .filter(|m| !known.contains_key(&m.ulid))
            .cloned()
            .collect();
        let data_dir = inner.opts.data_dir.clone();
        let results: Vec<(Ulid, Result<BucketBlock>)> = futures::stream::iter(to_load)
            .map(|meta| {
                let data_dir = &data_dir;
                async move {
                    let id = meta.ulid;
                    inner.metrics.block_loads.inc();
                    let r = BucketBlock::load(
                        &inner.bucket,
                        meta,
                        data_dir,
                        inner.read_cfg,
                        inner.metrics.series_data_fetched.clone(),
                    )
                    .await;
                    (id, r)
                }
            })
            .buffer_unordered(inner.opts.block_sync_concurrency.max(1))
            .collect()
            .await;
        let mut summary = SyncSummary::default();
        let mut added = Vec::new();
        for (id, r) in results {
            match r {
                Ok(b) => {
                    tracing::info!(block = %id, "loaded block");
                    added.push(Arc::new(b));
                }
                Err(err) => {
                    inner.metrics.block_load_failures.inc();
                    tracing::warn!(block = %id, err = %err, "skipping block that failed to load");
                    summary.failed.push(id);
                }
            }
        }
        let removed: Vec<Ulid> = known
            .keys()
            .filter(|id| !fetched.metas.contains_key(id))
            .copied()
            .collect();
        {
            let mut g = inner.blocks.write().unwrap_or_else(|p| p.into_inner());
            for b in added {
                summary.added.push(b.id());
                g.insert(b.id(), b);
            }
            for id in &removed {
                g.remove(id);
            }
            summary.loaded = g.len();
        }
        for id in &removed {
            inner.cache.remove_block(*id);
            inner.metrics.block_drops.inc();
            tracing::info!(block = %id, "dropped block");
            self.remove_local(*id).await;
        }
        summary.removed = removed;
        if !*first_done {
            // Local directories of blocks this store does not serve are garbage.
            if let Ok(mut rd) = tokio::fs::read_dir(&data_dir).await {
                while let Ok(Some(e)) = rd.next_entry().await {
                    let name = e.file_name();
                    let Some(id) = name.to_str().and_then(|n| Ulid::from_string(n).ok()) else {
                        continue;
                    };
                    if !fetched.metas.contains_key(&id) {
                        self.remove_local(id).await;
                    }
                }
            }
            *first_done = true;
        }
        for s in SYNC_STATES {
            let v = match *s {
                "loaded" => summary.loaded as i64,
                "failed" => summary.failed.len() as i64,
                other => fetched.states.get(other).copied().unwrap_or(0),
            };
            inner.metrics.meta_synced.with_label_values(&[s]).set(v);
        }
        inner.metrics.blocks_loaded.set(summary.loaded as i64);
        inner.ready.store(true, Ordering::Release);
        Ok(summary)
    }

    async fn remove_local(&self, id: Ulid) {
        let dirs = [
            self.inner.opts.data_dir.join(id.to_string()),
            self.inner
                .opts
                .data_dir
                .join("meta-syncer")
                .join(id.to_string()),
        ];
        for d in dirs {
            if let Err(err) = tokio::fs::remove_dir_all(&d).await
                && err.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(block = %id, path = %d.display(), err = %err, "removing local block files");
            }
        }
    }

    fn limiter(&self) -> QueryLimiter {
        QueryLimiter::new(
            self.inner.opts.limits,
            self.inner.metrics.queries_dropped.clone(),
        )
    }

    fn clamp(&self, mint: i64, maxt: i64) -> (i64, i64) {
        let f = &self.inner.opts.filters;
        (mint.max(f.min_time), maxt.min(f.max_time))
    }

    /// Blocks grouped by external label set.
    fn block_sets(&self) -> BTreeMap<Labels, Vec<Arc<BucketBlock>>> {
        let mut sets: BTreeMap<Labels, Vec<Arc<BucketBlock>>> = BTreeMap::new();
        for b in self.snapshot() {
            sets.entry(b.ext_labels.clone()).or_default().push(b);
        }
        sets
    }

    /// Produces the series of one block for a Series call, sorted by final label set, in
    /// batches: first every matching series entry (labels and chunk refs, no chunk data)
    /// is loaded and sorted, then chunks are read batch by batch as the merger consumes
    /// them (the channel bounds the batches in flight), so chunk memory stays bounded.
    ///
    /// Bucket blocks are read on this task, in batches of `--store.series-batch-size`.
    /// Memory-mapped blocks are read on the blocking pool by short tasks that never wait
    /// on the channel, in slabs of [`LOCAL_SLAB`], so the first slabs are merged, encoded
    /// and sent while later ones are still read.
    async fn produce_block(
        self,
        block: Arc<BucketBlock>,
        selection: Selection,
        ctx: Arc<SeriesCtx>,
        tx: BatchTx,
    ) {
        if let Err(e) = self.produce_block_inner(block, selection, ctx, &tx).await {
            let _ = tx.send(Err(e)).await;
        }
    }

    async fn produce_block_inner(
        &self,
        block: Arc<BucketBlock>,
        selection: Selection,
        ctx: Arc<SeriesCtx>,
        tx: &BatchTx,
    ) -> Result<()> {
        let prepare = Arc::clone(&ctx.prepare_gate)
            .acquire_owned()
            .await
            .map_err(|_| Error::NotReady)?;
        let refs = match selection {
            Selection::Matchers(matchers) => self.block_postings(&block, &matchers, &ctx).await?,
            Selection::Refs(refs) => refs,
        };
        let mapped = block.is_local();
        let entries = if mapped {
            let (store, b, c) = (self.clone(), Arc::clone(&block), Arc::clone(&ctx));
            let what = format!("series entries of block {}", block.id());
            on_blocking_pool(
                what,
                async move { store.block_entries(&b, &refs, &c).await },
            )
            .await?
        } else {
            self.block_entries(&block, &refs, &ctx).await?
        };
        drop(prepare);
        let batch_size = if mapped {
            LOCAL_SLAB
        } else {
            self.inner.opts.series_batch_size.max(1)
        };
        let mut entries = entries.into_iter();
        loop {
            let batch: Vec<_> = entries.by_ref().take(batch_size).collect();
            if batch.is_empty() {
                return Ok(());
            }
            let out = if mapped {
                let (store, b, c) = (self.clone(), Arc::clone(&block), Arc::clone(&ctx));
                let what = format!("chunks of block {}", block.id());
                on_blocking_pool(what, async move { store.block_chunks(&b, batch, &c).await })
                    .await?
            } else {
                self.block_chunks(&block, batch, &ctx).await?
            };
            if tx.send(Ok(out)).await.is_err() {
                // The merger stopped (limit reached, error elsewhere, client gone).
                return Ok(());
            }
        }
    }

    /// The series refs of one block matching `matchers`, counted against the series limit.
    async fn block_postings(
        &self,
        block: &BucketBlock,
        matchers: &[Matcher],
        ctx: &SeriesCtx,
    ) -> Result<Vec<SeriesRef>> {
        let refs = block
            .expand_postings(matchers, &self.inner.cache, &ctx.limiter)
            .await?;
        ctx.limiter.reserve_series(refs.len() as u64)?;
        Ok(refs)
    }

    /// The series `refs` of one block with chunks in the call's time range: final labels
    /// (external labels attached, replica labels stripped) and chunk metas, sorted by
    /// labels, identical label sets joined. No chunk data is read yet.
    async fn block_entries(
        &self,
        block: &BucketBlock,
        refs: &[SeriesRef],
        ctx: &SeriesCtx,
    ) -> Result<Vec<(Labels, Vec<ChunkMeta>)>> {
        let limiter = &*ctx.limiter;
        let batch_size = self.inner.opts.series_batch_size.max(1);
        let mut kept: Vec<(Labels, Vec<ChunkMeta>)> = Vec::new();
        for batch in refs.chunks(batch_size) {
            for (labels, chunks) in block.load_series(batch, &self.inner.cache, limiter).await? {
                let chunks: Vec<ChunkMeta> = chunks
                    .into_iter()
                    .filter(|c| c.min_time <= ctx.maxt && c.max_time >= ctx.mint)
                    .collect();
                if chunks.is_empty() {
                    continue;
                }
                let labels = finalize_labels(&labels, &block.ext_labels, &ctx.without);
                if in_shard(&labels, ctx.shard.as_ref()) {
                    kept.push((labels, chunks));
                }
            }
        }
        // Index order is stored-label order; external labels and replica stripping can
        // change it, and stripping can make label sets equal.
        if !kept.is_sorted_by(|a, b| a.0 < b.0) {
            kept.sort_by(|a, b| a.0.cmp(&b.0));
            kept.dedup_by(|later, earlier| {
                if later.0 == earlier.0 {
                    earlier.1.append(&mut later.1);
                    true
                } else {
                    false
                }
            });
        }
        Ok(kept)
    }

    /// Reads the chunks of `entries` (series of `block`) after checking the chunk limit;
    /// with `skip_chunks`, only the labels.
    async fn block_chunks(
        &self,
        block: &BucketBlock,
        entries: Vec<(Labels, Vec<ChunkMeta>)>,
        ctx: &SeriesCtx,
    ) -> Result<Batch> {
        if ctx.skip_chunks {
            return Ok(entries.into_iter().map(|(l, _)| (l, Vec::new())).collect());
        }
        let limiter = &*ctx.limiter;
        let n: usize = entries.iter().map(|k| k.1.len()).sum();
        limiter.reserve_chunks(n as u64)?;
        let refs: Vec<u64> = entries
            .iter()
            .flat_map(|k| k.1.iter().map(|c| c.chunk_ref))
            .collect();
        let data = block.load_chunks(&refs, limiter).await?;
        let mut out = Vec::with_capacity(entries.len());
        for (labels, metas) in entries {
            let mut chunks = Vec::with_capacity(metas.len());
            for m in &metas {
                let Some((enc, bytes)) = data.get(m.chunk_ref).cloned() else {
                    return Err(Error::Corrupt {
                        block: block.id(),
                        file: "chunks".into(),
                        offset: m.chunk_ref,
                        reason: "chunk was not fetched".into(),
                    });
                };
                chunks.push(to_aggr_chunk(block.id(), m, enc, bytes, &ctx.aggregates)?);
            }
            out.push((labels, chunks));
        }
        Ok(out)
    }

    /// Answers a Series request as a stream: every matching series, sorted by label set,
    /// external labels attached, identical label sets from several blocks merged (chunks
    /// sorted by time, byte-identical ones dropped). Request errors (not ready, invalid
    /// matchers) are returned before streaming; data errors and limit breaches end the
    /// stream with an error.
    pub async fn series_stream(
        &self,
        req: SeriesRequest,
    ) -> Result<impl futures::Stream<Item = Result<Series>> + Send + 'static> {
        if !self.is_ready() {
            return Err(Error::NotReady);
        }
        let permit = Arc::clone(&self.inner.gate)
            .acquire_owned()
            .await
            .map_err(|_| Error::NotReady)?;
        let start = Instant::now();
        let matchers = convert_matchers(&req.matchers)?;
        if matchers.is_empty() {
            return Err(Error::InvalidArgument(
                "no matchers specified (excluding external labels)".into(),
            ));
        }
        let (mint, maxt) = self.clamp(req.min_time, req.max_time);
        let mut work: Vec<(Arc<BucketBlock>, Vec<Matcher>)> = Vec::new();
        for (ext, blocks) in self.block_sets() {
            let Some(rest) = strip_external(&matchers, &ext) else {
                continue;
            };
            if rest.is_empty() {
                return Err(Error::InvalidArgument(
                    "no matchers specified (excluding external labels)".into(),
                ));
            }
            for b in select_blocks(&blocks, mint, maxt, req.max_resolution_window) {
                work.push((b, rest.clone()));
            }
        }
        self.inner
            .metrics
            .series_blocks_queried
            .observe(work.len() as f64);
        let ctx = Arc::new(SeriesCtx {
            mint,
            maxt,
            skip_chunks: req.skip_chunks,
            aggregates: req.aggregates.clone(),
            without: req.without_replica_labels.clone(),
            shard: req.shard_info.clone(),
            limiter: Arc::new(self.limiter()),
            prepare_gate: Arc::new(Semaphore::new(
                self.inner.opts.block_query_concurrency.max(1),
            )),
        });
        let limit = usize::try_from(req.limit).ok().filter(|&l| l > 0);
        let timer = CallTimer {
            store: self.clone(),
            start,
            limiter: Arc::clone(&ctx.limiter),
            _permit: permit,
        };
        // Producers with the depth of their channel: mapped blocks read slabs ahead on the
        // blocking pool, bucket blocks wait for the merge after each batch.
        let producers: Vec<(Arc<BucketBlock>, Selection, usize)> =
            if work.iter().all(|(b, _)| b.is_local()) {
                // Postings first, here: they come from the cache or a mapping, and their
                // sizes say whether the rest is small enough to run on this task.
                let mut expanded = Vec::with_capacity(work.len());
                for (block, matchers) in work {
                    match self.block_postings(&block, &matchers, &ctx).await {
                        Ok(refs) => expanded.push((block, refs)),
                        Err(e) => return Ok(timed(vec![Err(e)], timer).left_stream()),
                    }
                }
                let total: usize = expanded.iter().map(|(_, refs)| refs.len()).sum();
                if total <= INLINE_SERIES {
                    let items = match self.series_inline(&expanded, &ctx, limit).await {
                        Ok(series) => series.into_iter().map(Ok).collect(),
                        Err(e) => vec![Err(e)],
                    };
                    return Ok(timed(items, timer).left_stream());
                }
                expanded
                    .into_iter()
                    .map(|(block, refs)| (block, Selection::Refs(refs), 2))
                    .collect()
            } else {
                work.into_iter()
                    .map(|(block, ms)| (block, Selection::Matchers(ms), 1))
                    .collect()
            };
        let mut cursors = Vec::with_capacity(producers.len());
        let mut tasks = tokio::task::JoinSet::new();
        for (block, selection, depth) in producers {
            let (tx, rx) = mpsc::channel(depth);
            tasks.spawn(
                self.clone()
                    .produce_block(block, selection, Arc::clone(&ctx), tx),
            );
            cursors.push(Cursor {
                rx,
                batch: Vec::new().into_iter(),
            });
        }
        let (out_tx, out_rx) = mpsc::channel::<Result<Series>>(MERGED_SERIES_BUFFER);
        tokio::spawn(async move {
            let _timer = timer;
            // Dropping the JoinSet aborts producers still running when the merge stops.
            let _tasks = tasks;
            let res = merge_streams(cursors, limit, &out_tx).await;
            if let Err(e) = res {
                let _ = out_tx.send(Err(e)).await;
            }
        });
        Ok(tokio_stream::wrappers::ReceiverStream::new(out_rx).right_stream())
    }

    /// A small Series call over memory-mapped blocks (at most [`INLINE_SERIES`] series
    /// matched), answered on the calling task: every read is a slice of a mapping, so no
    /// read waits, and the sorted per-block results are merged in one go.
    async fn series_inline(
        &self,
        expanded: &[(Arc<BucketBlock>, Vec<SeriesRef>)],
        ctx: &SeriesCtx,
        limit: Option<usize>,
    ) -> Result<Vec<Series>> {
        let mut per_block = Vec::with_capacity(expanded.len());
        for (block, refs) in expanded {
            let entries = self.block_entries(block, refs, ctx).await?;
            per_block.push(self.block_chunks(block, entries, ctx).await?);
        }
        Ok(merge_sorted(per_block, limit))
    }

    /// [`BucketStore::series_stream`] collected into a vector.
    pub async fn series(&self, req: &SeriesRequest) -> Result<Vec<Series>> {
        use futures::TryStreamExt as _;
        self.series_stream(req.clone()).await?.try_collect().await
    }

    /// Blocks overlapping the closed interval `[mint, maxt]`, with their remaining
    /// matchers (blocks whose external labels reject the matchers are left out).
    fn label_blocks(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Vec<(Arc<BucketBlock>, Vec<Matcher>)> {
        let mut out = Vec::new();
        for b in self.snapshot() {
            if b.meta.min_time > maxt || b.meta.max_time < mint {
                continue;
            }
            if let Some(rest) = strip_external(matchers, &b.ext_labels) {
                out.push((b, rest));
            }
        }
        out
    }

    /// Labels of the series of `block` matching `matchers` (series limit applies).
    async fn matching_labels(
        &self,
        block: &BucketBlock,
        matchers: &[Matcher],
        limiter: &QueryLimiter,
    ) -> Result<Vec<Labels>> {
        let refs: Vec<SeriesRef> = block
            .expand_postings(matchers, &self.inner.cache, limiter)
            .await?;
        limiter.reserve_series(refs.len() as u64)?;
        let mut out = Vec::with_capacity(refs.len());
        for batch in refs.chunks(self.inner.opts.series_batch_size.max(1)) {
            out.extend(
                block
                    .load_series(batch, &self.inner.cache, limiter)
                    .await?
                    .into_iter()
                    .map(|(l, _)| l),
            );
        }
        Ok(out)
    }

    /// Answers a LabelNames request: sorted, de-duplicated names of the series matching
    /// the matchers in `[start, end]`, external label names included, replica labels
    /// removed.
    pub async fn label_names(&self, req: &LabelNamesRequest) -> Result<Vec<String>> {
        if !self.is_ready() {
            return Err(Error::NotReady);
        }
        let matchers = convert_matchers(&req.matchers)?;
        let (mint, maxt) = self.clamp(req.start, req.end);
        let limiter = self.limiter();
        let work = self.label_blocks(&matchers, mint, maxt);
        let per_block: Vec<BTreeSet<String>> = futures::stream::iter(work)
            .map(|(b, rest)| {
                let limiter = &limiter;
                async move {
                    let mut names: BTreeSet<String> = BTreeSet::new();
                    if rest.is_empty() {
                        names.extend(b.label_names());
                    } else {
                        let series = self.matching_labels(&b, &rest, limiter).await?;
                        if series.is_empty() {
                            return Ok(names);
                        }
                        for l in &series {
                            names.extend(l.iter().map(|l| l.name.to_string()));
                        }
                    }
                    names.extend(b.ext_labels.iter().map(|l| l.name.to_string()));
                    Ok::<_, Error>(names)
                }
            })
            .buffer_unordered(self.inner.opts.block_query_concurrency.max(1))
            .try_collect()
            .await?;
        let mut names: BTreeSet<String> = per_block.into_iter().flatten().collect();
        for w in &req.without_replica_labels {
            names.remove(w);
        }
        let limit = usize::try_from(req.limit).ok().filter(|&l| l > 0);
        Ok(names
            .into_iter()
            .take(limit.unwrap_or(usize::MAX))
            .collect())
    }

    /// Answers a LabelValues request: sorted, de-duplicated values of `req.label` among
    /// the series matching the matchers in `[start, end]`; for an external label, its
    /// value when the matchers match the block.
    pub async fn label_values(&self, req: &LabelValuesRequest) -> Result<Vec<String>> {
        if req.label.is_empty() {
            return Err(Error::InvalidArgument(
                "label name parameter cannot be empty".into(),
            ));
        }
        if !self.is_ready() {
            return Err(Error::NotReady);
        }
        if req.without_replica_labels.contains(&req.label) {
            return Ok(Vec::new());
        }
        let matchers = convert_matchers(&req.matchers)?;
        let (mint, maxt) = self.clamp(req.start, req.end);
        let limiter = self.limiter();
        let work = self.label_blocks(&matchers, mint, maxt);
        let label = req.label.as_str();
        let per_block: Vec<BTreeSet<String>> = futures::stream::iter(work)
            .map(|(b, rest)| {
                let limiter = &limiter;
                async move {
                    let mut values = BTreeSet::new();
                    if let Some(v) = b.ext_labels.get(label) {
                        if rest.is_empty()
                            || !b
                                .expand_postings(&rest, &self.inner.cache, limiter)
                                .await?
                                .is_empty()
                        {
                            values.insert(v.to_owned());
                        }
                    } else if rest.is_empty() {
                        values.extend(b.label_values(label)?);
                    } else {
                        for l in self.matching_labels(&b, &rest, limiter).await? {
                            if let Some(v) = l.get(label) {
                                values.insert(v.to_owned());
                            }
                        }
                    }
                    Ok::<_, Error>(values)
                }
            })
            .buffer_unordered(self.inner.opts.block_query_concurrency.max(1))
            .try_collect()
            .await?;
        let values: BTreeSet<String> = per_block.into_iter().flatten().collect();
        let limit = usize::try_from(req.limit).ok().filter(|&l| l > 0);
        Ok(values
            .into_iter()
            .take(limit.unwrap_or(usize::MAX))
            .collect())
    }

    /// Info: the external label sets of the loaded blocks (sorted by their string form),
    /// the min/max time over them (clamped to `--min-time/--max-time`), and per label set
    /// the joined time ranges.
    pub fn info(&self) -> Result<thanos_proto::thanos::info::InfoResponse> {
        use thanos_proto::thanos::ZLabelSet;
        use thanos_proto::thanos::info::{InfoResponse, StoreInfo, TsdbInfo};
        if !self.is_ready() {
            return Err(Error::NotReady);
        }
        let sets = self.block_sets();
        let mut keyed: Vec<(String, &Labels)> = sets.keys().map(|l| (l.to_string(), l)).collect();
        keyed.sort();
        let f = &self.inner.opts.filters;
        let mut mint = i64::MAX;
        let mut maxt = i64::MIN;
        let mut tsdb_infos = Vec::new();
        for (_, ls) in &keyed {
            let mut ranges: Vec<(i64, i64)> = sets[*ls]
                .iter()
                .map(|b| (b.meta.min_time, b.meta.max_time))
                .collect();
            ranges.sort();
            let mut joined: Vec<(i64, i64)> = Vec::new();
            for (a, b) in ranges {
                match joined.last_mut() {
                    Some(last) if a <= last.1 => last.1 = last.1.max(b),
                    _ => joined.push((a, b)),
                }
            }
            for (a, b) in joined {
                let (a, b) = (a.max(f.min_time), b.min(f.max_time));
                mint = mint.min(a);
                maxt = maxt.max(b);
                tsdb_infos.push(TsdbInfo {
                    labels: Some(ZLabelSet {
                        labels: labels_to_proto(ls),
                    }),
                    min_time: a,
                    max_time: b,
                });
            }
        }
        Ok(InfoResponse {
            label_sets: keyed
                .iter()
                .map(|(_, l)| ZLabelSet {
                    labels: labels_to_proto(l),
                })
                .collect(),
            component_type: "store".into(),
            store: Some(StoreInfo {
                min_time: mint,
                max_time: maxt,
                supports_sharding: true,
                supports_without_replica_labels: true,
                tsdb_infos,
                supports_projections: false,
            }),
            ..InfoResponse::default()
        })
    }
}

/// k-way merges the sorted per-block streams into `out`, merging identical label sets.
/// Stops early at `limit` series or when the receiver is gone.
async fn merge_streams(
    mut cursors: Vec<Cursor>,
    limit: Option<usize>,
    out: &mpsc::Sender<Result<Series>>,
) -> Result<()> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let mut heads: Vec<Option<Vec<AggrChunk>>> = vec![None; cursors.len()];
    let mut heap: BinaryHeap<Reverse<(Labels, usize)>> = BinaryHeap::new();
    for (i, c) in cursors.iter_mut().enumerate() {
        if let Some((l, chunks)) = c.next().await? {
            heads[i] = Some(chunks);
            heap.push(Reverse((l, i)));
        }
    }
    let mut sent = 0usize;
    while let Some(Reverse((labels, i))) = heap.pop() {
        let mut chunks = heads[i].take().unwrap_or_default();
        let mut advance = vec![i];
        while let Some(Reverse((l, j))) = heap.peek() {
            if *l != labels {
                break;
            }
            let j = *j;
            heap.pop();
            chunks.extend(heads[j].take().unwrap_or_default());
            advance.push(j);
        }
        for k in advance {
            if let Some((l, c)) = cursors[k].next().await? {
                heads[k] = Some(c);
                heap.push(Reverse((l, k)));
            }
        }
        let series = finish_series(labels, chunks);
        if out.send(Ok(series)).await.is_err() {
            return Ok(());
        }
        sent += 1;
        if limit.is_some_and(|l| sent >= l) {
            return Ok(());
        }
    }
    Ok(())
}

/// k-way merges sorted per-block series, merging identical label sets; at most `limit`.
fn merge_sorted(blocks: Vec<Batch>, limit: Option<usize>) -> Vec<Series> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let mut iters: Vec<std::vec::IntoIter<(Labels, Vec<AggrChunk>)>> =
        blocks.into_iter().map(Vec::into_iter).collect();
    let mut heads: Vec<Vec<AggrChunk>> = vec![Vec::new(); iters.len()];
    let mut heap: BinaryHeap<Reverse<(Labels, usize)>> = BinaryHeap::new();
    let mut advance = |i: usize, heads: &mut Vec<Vec<AggrChunk>>, heap: &mut BinaryHeap<_>| {
        if let Some((l, c)) = iters[i].next() {
            heads[i] = c;
            heap.push(Reverse((l, i)));
        }
    };
    for i in 0..heads.len() {
        advance(i, &mut heads, &mut heap);
    }
    let mut out = Vec::new();
    while let Some(Reverse((labels, i))) = heap.pop() {
        if limit.is_some_and(|l| out.len() >= l) {
            break;
        }
        let mut chunks = std::mem::take(&mut heads[i]);
        advance(i, &mut heads, &mut heap);
        while let Some(Reverse((l, j))) = heap.peek() {
            if *l != labels {
                break;
            }
            let j = *j;
            heap.pop();
            chunks.append(&mut heads[j]);
            advance(j, &mut heads, &mut heap);
        }
        out.push(finish_series(labels, chunks));
    }
    out
}

/// The wire series of one merged label set: chunks sorted by time (then hash), exact
/// duplicates (the same chunk from overlapping blocks) dropped.
fn finish_series(labels: Labels, mut chunks: Vec<AggrChunk>) -> Series {
    if chunks.len() > 1 {
        chunks.sort_by(|a, b| {
            (a.min_time, a.max_time)
                .cmp(&(b.min_time, b.max_time))
                .then_with(|| chunk_hash(a).cmp(&chunk_hash(b)))
        });
        chunks.dedup();
    }
    Series {
        labels: labels_into_proto(labels),
        chunks,
    }
}

/// The answer of a Series call computed in one go, as a stream that keeps `timer` (and
/// with it the call's concurrency permit) until it is consumed or dropped.
fn timed(
    items: Vec<Result<Series>>,
    timer: CallTimer,
) -> impl futures::Stream<Item = Result<Series>> + Send + 'static {
    futures::stream::iter(items).map(move |s| {
        let _ = &timer;
        s
    })
}

/// Observes a Series call's duration (and releases its concurrency permit) when
/// dropped, i.e. once its response stream is consumed or abandoned.
struct CallTimer {
    store: BucketStore,
    start: Instant,
    limiter: Arc<QueryLimiter>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for CallTimer {
    fn drop(&mut self) {
        let elapsed = self.start.elapsed();
        self.store
            .inner
            .metrics
            .series_get_all_duration
            .observe(elapsed.as_secs_f64());
        tracing::debug!(
            fetched_bytes = self.limiter.bytes(),
            elapsed_ms = elapsed.as_millis() as u64,
            "series call done"
        );
    }
}

fn chunk_hash(c: &AggrChunk) -> u64 {
    c.raw.as_ref().map(|r| r.hash).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(
        resolution: i64,
        min_time: i64,
        max_time: i64,
        name: &'static str,
    ) -> Span<&'static str> {
        Span {
            resolution,
            min_time,
            max_time,
            item: name,
        }
    }

    #[test]
    fn coarsest_resolution_first_gaps_filled_with_finer() {
        let items = vec![
            span(0, 0, 100, "raw0"),
            span(0, 100, 200, "raw1"),
            span(0, 200, 300, "raw2"),
            span(300_000, 0, 100, "5m0"),
            span(300_000, 200, 300, "5m2"),
            span(3_600_000, 200, 300, "1h2"),
        ];
        assert_eq!(
            select_by_resolution(&items, 0, 299, 0),
            vec!["raw0", "raw1", "raw2"]
        );
        assert_eq!(
            select_by_resolution(&items, 0, 299, 300_000),
            vec!["5m0", "raw1", "5m2"]
        );
        assert_eq!(
            select_by_resolution(&items, 0, 299, 3_600_000),
            vec!["5m0", "raw1", "1h2"]
        );
        assert_eq!(
            select_by_resolution(&items, 150, 160, 3_600_000),
            vec!["raw1"]
        );
        assert!(select_by_resolution(&items, 400, 500, 0).is_empty());
    }

    #[test]
    fn merge_joins_equal_label_sets_and_drops_duplicate_chunks() {
        let chunk = |t: i64, data: &'static [u8]| AggrChunk {
            min_time: t,
            max_time: t + 9,
            raw: Some(Chunk {
                r#type: 0,
                hash: xxhash_rust::xxh64::xxh64(data, 0),
                data: bytes::Bytes::from_static(data),
            }),
            ..AggrChunk::default()
        };
        let l = |v: &str| Labels::from_pairs([("a", v)]);
        let b1: Batch = vec![
            (l("1"), vec![chunk(10, b"x")]),
            (l("3"), vec![chunk(0, b"y")]),
        ];
        let b2: Batch = vec![
            (l("2"), vec![chunk(0, b"z")]),
            (l("3"), vec![chunk(20, b"w"), chunk(0, b"y")]),
        ];
        let out = merge_sorted(vec![b1.clone(), b2.clone()], None);
        let values: Vec<&str> = out.iter().map(|s| s.labels[0].value.as_str()).collect();
        assert_eq!(values, ["1", "2", "3"]);
        // The shared chunk appears once; chunks sorted by time.
        let times: Vec<i64> = out[2].chunks.iter().map(|c| c.min_time).collect();
        assert_eq!(times, [0, 20]);
        let limited = merge_sorted(vec![b1, b2], Some(2));
        assert_eq!(limited, out[..2]);
    }

    #[test]
    fn aggregate_chunks_fill_requested_members() {
        // count (XOR, 2 bytes), sum absent, min (XOR, 1 byte), max absent, counter absent.
        let data = bytes::Bytes::from_static(&[2, 1, 0xAA, 0xBB, 0, 1, 1, 0xCC, 0, 0]);
        let meta = ChunkMeta {
            min_time: 10,
            max_time: 20,
            chunk_ref: 8,
        };
        let id = Ulid::from_parts(1, 2);
        let c = to_aggr_chunk(id, &meta, 0xff, data.clone(), &[1, 3]).unwrap();
        assert!(c.raw.is_none() && c.sum.is_none() && c.max.is_none());
        assert_eq!(c.count.unwrap().data.as_ref(), &[0xAA, 0xBB]);
        let min = c.min.unwrap();
        assert_eq!((min.r#type, min.data.as_ref()), (0, &[0xCC][..]));
        assert_eq!((c.min_time, c.max_time), (10, 20));
        // A requested aggregate that the chunk lacks is an error.
        let e = to_aggr_chunk(id, &meta, 0xff, data, &[2]).unwrap_err();
        assert!(
            e.to_string().contains("requested aggregate 2 missing"),
            "{e}"
        );
        // Raw chunks carry the XXH64 of their data and the storepb encoding (TSDB − 1).
        let raw = to_aggr_chunk(id, &meta, 1, bytes::Bytes::from_static(b"xyz"), &[]).unwrap();
        let r = raw.raw.unwrap();
        assert_eq!(r.r#type, 0);
        assert_eq!(r.hash, xxhash_rust::xxh64::xxh64(b"xyz", 0));
        assert!(to_aggr_chunk(id, &meta, 9, bytes::Bytes::new(), &[]).is_err());
    }
}
