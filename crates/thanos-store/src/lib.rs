//! Thanos store gateway library: serves Prometheus TSDB blocks straight from object
//! storage over the StoreAPI (`thanos.Store`) and the Info API (`thanos.info.Info`).
//!
//! Mirrors Thanos's `pkg/store` (`BucketStore`: per-block index-headers, postings →
//! series → chunks by merged ranged reads, limits, label calls, Info) and `pkg/block`
//! (the meta fetcher and its filters).
//!
//! Usage: build a [`thanos_objstore::Bucket`], create a [`BucketStore`] with
//! [`BucketStoreOptions`], call [`BucketStore::sync`] once (the store is not ready before)
//! and then every `--sync-block-duration`, and serve it with
//! `thanos_proto::thanos::store_server::StoreServer::new(store.clone())` and
//! `thanos_proto::thanos::info::info_server::InfoServer::new(store)`.
//!
//! Memory per query is bounded: each block first loads its matching series entries
//! (labels and chunk references only), sorts them, then fetches chunks batch by batch as
//! the k-way merge across blocks consumes them (one batch buffered per block), so chunk
//! data is streamed rather than accumulated. The touched-series, sample (chunk) and
//! downloaded-bytes limits are checked *before* the corresponding data is fetched,
//! failing the call with gRPC `ResourceExhausted`. Only the offsets of the index-header's
//! symbols (4 bytes each, so a lookup by reference is one varint read) and a sample of its
//! postings offset table stay resident per block (the file itself is memory-mapped).
//!
//! When the bucket is a FILESYSTEM directory ([`BucketStoreOptions::direct_filesystem_reads`],
//! on by default), each block's index and chunk segments are memory-mapped at load and
//! every read is a zero-copy slice of a mapping instead of a range request; a Series call
//! then does each block's work in one blocking task (or inline when at most a few hundred
//! series match) and streams the merged answer without per-series channel hand-offs. The
//! answer is materialised, but its chunk data are views of the mappings (page cache), not
//! heap copies. Object storage (S3, GCS, Azure…) keeps the ranged-read pipeline above.
//!
//! Postings lists and series entries (the latter only for blocks not memory-mapped: a
//! mapping is as fast as the cache) are cached in a size-bounded LRU,
//! the IN-MEMORY index cache configured like Thanos's `--index-cache.config`
//! ([`IndexCacheConfig`]; `MEMCACHED` and `REDIS` are refused, not emulated).
//!
//! Blocks can be sharded across gateways with `--selector.relabel-config`
//! ([`FilterOptions::relabel`]): the rules see each block's external labels plus
//! `__block_id`, and blocks they drop are neither loaded nor queried.

mod block;
mod cache;
mod error;
mod fetcher;
mod grpc;
mod limits;
mod local;
mod metrics;
mod store;

pub use cache::{
    DEFAULT_MAX_ITEM_SIZE, DEFAULT_MAX_SIZE, IndexCache, IndexCacheConfig, IndexCacheConfigError,
    ItemType,
};
pub use error::{Error, Result};
pub use fetcher::{
    BLOCK_ID_LABEL, DELETION_MARK_FILENAME, FetchResult, FilterOptions, META_FILENAME,
    NO_COMPACT_MARK_FILENAME, fetch_metas, selected_by_relabel,
};
pub use limits::{Limits, MAX_SAMPLES_PER_CHUNK};
pub use metrics::SYNC_STATES;
pub use store::{BucketStore, BucketStoreOptions, LoadedBlock, SyncSummary};
/// Prometheus relabelling, used by `--selector.relabel-config` (re-exported from
/// `thanos_model`).
pub use thanos_model::relabel;
