//! Prometheus's write-ahead log, byte-compatible with the on-disk format Prometheus and
//! Thanos receive use (`wal/` directories: segments, pages, fragments, records, checkpoints).
//!
//! Mirrors Prometheus's `tsdb/wlog` package ([`wlog`]: segment writer, reader, repair;
//! [`checkpoint`]: checkpoints) and `tsdb/record` package ([`record`]: record payloads).
//!
//! Typical use by a receiver:
//!
//! 1. On start, replay with [`wlog::WalReader::open`] (checkpoint first, then the segments
//!    after it). If the reader reports a torn tail or a corruption, call [`wlog::repair`].
//! 2. Open a [`wlog::Wal`] (it always starts a new segment), encode records with the
//!    [`record`] encoders, [`wlog::Wal::log`] them and [`wlog::Wal::sync`] before
//!    acknowledging the write.
//! 3. After a head compaction, [`wlog::Wal::cut`] a new segment and write a
//!    [`checkpoint::checkpoint`] of the older segments.

pub mod checkpoint;
pub mod record;
pub mod wlog;
