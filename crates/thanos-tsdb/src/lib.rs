//! Prometheus TSDB blocks: a byte-compatible reader and writer.
//!
//! Mirrors Prometheus's `tsdb` package family (`tsdb/index`, `tsdb/chunks`,
//! `tsdb/tombstones`, `tsdb/encoding`, the block parts of `tsdb/block.go` and
//! `tsdb/compact.go`) and the `meta.json` handling of Thanos's `pkg/block/metadata`.
//!
//! * [`encoding`]: bounds-checked decode buffer and encode buffer.
//! * [`meta`]: `meta.json` with the Thanos section.
//! * [`chunks`]: chunk segment files `chunks/000001…`.
//! * [`index`]: index format v2 reader and streaming writer, postings set operations.
//! * [`index_header`]: Thanos's binary index-header (symbols + postings offset table).
//! * [`tombstones`]: the tombstones file.
//! * [`block`]: opening a block directory and writing a whole block.
//! * [`merge`]: merging N blocks into one, removing duplicate samples.
//!
//! Decoding never panics on bad input: truncated or corrupt files give an [`Error`] that
//! names the file, the offset and (inside a block) the block ULID.

pub mod block;
pub mod chunks;
pub mod encoding;
pub mod error;
pub mod fsutil;
pub mod index;
pub mod index_header;
pub mod merge;
pub mod meta;
pub mod tombstones;

pub use block::{Block, BlockWriter, BlockWriterOptions, ChunkData, write_block};
pub use error::{Error, Result};
pub use merge::merge_blocks;
pub use meta::BlockMeta;
