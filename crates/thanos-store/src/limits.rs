//! Per-query limits (`--store.grpc.{touched-series,series-sample,downloaded-bytes}-limit`),
//! checked before the data they guard is fetched, so a huge query is refused instead of
//! growing memory.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use prometheus::IntCounterVec;

use crate::error::{Error, Result};

/// Thanos assumes at most this many samples per chunk to turn the sample limit into a
/// chunk limit.
pub const MAX_SAMPLES_PER_CHUNK: u64 = 120;

/// Limits of one query; 0 disables a limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Maximum series touched (matched by the postings) per call.
    pub series: u64,
    /// Maximum samples per Series call, enforced as `samples / 120` chunks.
    pub samples: u64,
    /// Maximum bytes downloaded from the bucket per call.
    pub bytes: u64,
}

/// Counters of one call, shared by the per-block tasks.
#[derive(Debug)]
pub(crate) struct QueryLimiter {
    limits: Limits,
    series: AtomicU64,
    chunks: AtomicU64,
    bytes: AtomicU64,
    /// Set once a limit tripped: the query is counted as dropped only once.
    tripped: AtomicBool,
    dropped: IntCounterVec,
}

impl QueryLimiter {
    pub(crate) fn new(limits: Limits, dropped: IntCounterVec) -> Self {
        Self {
            limits,
            series: AtomicU64::new(0),
            chunks: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            tripped: AtomicBool::new(false),
            dropped,
        }
    }

    fn reserve(
        &self,
        counter: &AtomicU64,
        limit: u64,
        n: u64,
        what: &str,
        reason: &str,
    ) -> Result<()> {
        let total = counter.fetch_add(n, Ordering::Relaxed).saturating_add(n);
        if limit > 0 && total > limit {
            if !self.tripped.swap(true, Ordering::Relaxed) {
                self.dropped.with_label_values(&[reason]).inc();
            }
            return Err(Error::LimitExceeded(format!(
                "exceeded {what} limit: limit {limit} violated (got {total})"
            )));
        }
        Ok(())
    }

    /// Accounts `n` more touched series.
    pub(crate) fn reserve_series(&self, n: u64) -> Result<()> {
        self.reserve(&self.series, self.limits.series, n, "series", "series")
    }

    /// Accounts `n` more chunks against the sample limit.
    pub(crate) fn reserve_chunks(&self, n: u64) -> Result<()> {
        let limit = self.limits.samples / MAX_SAMPLES_PER_CHUNK;
        let limit = if self.limits.samples > 0 {
            limit.max(1)
        } else {
            0
        };
        self.reserve(&self.chunks, limit, n, "chunks", "chunks")
    }

    /// Accounts `n` bytes about to be downloaded.
    pub(crate) fn reserve_bytes(&self, n: u64) -> Result<()> {
        self.reserve(&self.bytes, self.limits.bytes, n, "bytes", "bytes")
    }

    /// Bytes accounted so far.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::Opts;

    fn dropped() -> IntCounterVec {
        IntCounterVec::new(Opts::new("d", "d"), &["reason"]).unwrap()
    }

    #[test]
    fn limits_trip_once_exceeded() {
        let d = dropped();
        let l = QueryLimiter::new(
            Limits {
                series: 10,
                samples: 240,
                bytes: 100,
            },
            d.clone(),
        );
        l.reserve_series(10).unwrap();
        let e = l.reserve_series(1).unwrap_err();
        assert_eq!(
            e.to_string(),
            "exceeded series limit: limit 10 violated (got 11)"
        );
        assert!(l.reserve_series(1).is_err());
        l.reserve_chunks(2).unwrap();
        assert!(l.reserve_chunks(1).is_err());
        // One query is counted once, whatever trips afterwards.
        assert_eq!(d.with_label_values(&["series"]).get(), 1);
        assert_eq!(d.with_label_values(&["chunks"]).get(), 0);
        let l = QueryLimiter::new(
            Limits {
                bytes: 100,
                ..Limits::default()
            },
            d.clone(),
        );
        l.reserve_bytes(60).unwrap();
        assert!(l.reserve_bytes(41).is_err());
        assert_eq!(d.with_label_values(&["bytes"]).get(), 1);
        let unlimited = QueryLimiter::new(Limits::default(), d);
        unlimited.reserve_bytes(u64::MAX / 2).unwrap();
        unlimited.reserve_chunks(1 << 40).unwrap();
    }
}
