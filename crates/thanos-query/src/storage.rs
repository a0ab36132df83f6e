//! The PromQL [`Storage`] over the proxy store (Thanos `pkg/query/querier.go`).
//!
//! A select becomes a `SeriesRequest` (replica labels sent as `without_replica_labels` when
//! deduplicating), executed by the in-process [`ProxyStore`]. The merged series are decoded
//! on a blocking thread: each series' chunks are decoded and trimmed to the selected range;
//! with deduplication on, overlapping chunks are split into fake replicas and merged by the
//! configured algorithm, otherwise they are chained (equal timestamps collapsed).
//!
//! Warnings from stores cannot travel through the engine's `Storage` interface, so they
//! are collected here and read back with [`QueryStorage::take_warnings`].

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::StreamExt;
use thanos_model::chunkenc::float_iterator;
use thanos_model::{Matcher, Sample};
use thanos_promql::{SelectHints, Series, Storage, StorageError};
use thanos_proto::thanos::{Aggr, Func, PartialResponseStrategy, QueryHints, Range, SeriesRequest};
use tokio::time::Instant;

use crate::dedup::{DedupFunc, merge_replicas, needs_counter_adjustment, split_overlapping};
use crate::error::QueryError;
use crate::proxy::{MergedSeries, ProxyFrame, ProxyStore, matchers_to_proto};

/// StoreAPI batch size requested by the querier (storeapi.md §4 item 4).
pub const RESPONSE_BATCH_SIZE: i64 = 64;

/// Per-query settings of a [`QueryStorage`].
#[derive(Debug, Clone)]
pub struct SelectOptions {
    /// Deduplicate replicas (effective only with replica labels).
    pub dedup: bool,
    /// Replica labels to remove and deduplicate on.
    pub replica_labels: Vec<String>,
    /// Deduplication algorithm.
    pub dedup_func: DedupFunc,
    /// Allow partial responses (WARN) instead of failing (ABORT).
    pub partial_response: bool,
    /// Deadline of every store stream.
    pub deadline: Option<Instant>,
    /// Per-query limits on what is fetched from stores.
    pub limits: QueryLimits,
    /// `storeMatch[]`: restricts the stores queried by address (empty = all).
    pub store_matchers: Vec<Vec<Matcher>>,
}

/// Per-query limits on fetched data (users.md #3: bounded querier memory); 0 = unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryLimits {
    /// Maximum number of series fetched by one query (over all its selects).
    pub max_series: usize,
    /// Maximum bytes of chunk data fetched by one query.
    pub max_chunk_bytes: usize,
}

impl SelectOptions {
    fn dedup_active(&self) -> bool {
        self.dedup && !self.replica_labels.is_empty()
    }

    fn strategy(&self) -> PartialResponseStrategy {
        if self.partial_response {
            PartialResponseStrategy::Warn
        } else {
            PartialResponseStrategy::Abort
        }
    }

    /// The `SeriesRequest` for a select over `[mint, maxt]`.
    pub fn series_request(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        skip_chunks: bool,
    ) -> SeriesRequest {
        SeriesRequest {
            min_time: mint,
            max_time: maxt,
            matchers: matchers_to_proto(matchers),
            aggregates: vec![Aggr::Count as i32, Aggr::Sum as i32],
            partial_response_strategy: self.strategy() as i32,
            skip_chunks,
            without_replica_labels: if self.dedup_active() {
                self.replica_labels.clone()
            } else {
                Vec::new()
            },
            response_batch_size: RESPONSE_BATCH_SIZE,
            ..SeriesRequest::default()
        }
    }
}

/// A per-query [`Storage`] reading through the proxy.
#[derive(Debug)]
pub struct QueryStorage {
    proxy: Arc<ProxyStore>,
    options: SelectOptions,
    warnings: Mutex<Vec<String>>,
    fetched: Mutex<(usize, usize)>,
}

impl QueryStorage {
    /// A storage for one query.
    pub fn new(proxy: Arc<ProxyStore>, options: SelectOptions) -> Self {
        Self {
            proxy,
            options,
            warnings: Mutex::new(Vec::new()),
            fetched: Mutex::new((0, 0)),
        }
    }

    /// Warnings collected from stores so far (drained).
    pub fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut *self.warnings.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Streams the proxied series for a request, collecting warnings; fails on the first
    /// proxy error.
    pub async fn fetch(&self, request: SeriesRequest) -> Result<Vec<MergedSeries>, QueryError> {
        let mut stream =
            self.proxy
                .series_from(request, self.options.deadline, &self.options.store_matchers);
        let mut out = Vec::new();
        while let Some(frame) = stream.next().await {
            match frame? {
                ProxyFrame::Series(s) => {
                    self.account(&s)?;
                    out.push(s);
                }
                ProxyFrame::Warning(w) => self.add_warning(w),
            }
        }
        Ok(out)
    }

    /// Counts a fetched series against the query's limits.
    fn account(&self, s: &MergedSeries) -> Result<(), QueryError> {
        let limits = self.options.limits;
        let bytes: usize = s
            .chunks
            .iter()
            .filter_map(|c| c.raw.as_ref())
            .map(|r| r.data.len())
            .sum();
        let mut fetched = self.fetched.lock().unwrap_or_else(|p| p.into_inner());
        fetched.0 += 1;
        fetched.1 += bytes;
        if limits.max_series > 0 && fetched.0 > limits.max_series {
            return Err(QueryError::Limit {
                what: "series",
                limit: limits.max_series,
            });
        }
        if limits.max_chunk_bytes > 0 && fetched.1 > limits.max_chunk_bytes {
            return Err(QueryError::Limit {
                what: "chunk bytes",
                limit: limits.max_chunk_bytes,
            });
        }
        Ok(())
    }

    fn add_warning(&self, w: String) {
        let mut ws = self.warnings.lock().unwrap_or_else(|p| p.into_inner());
        if !ws.contains(&w) {
            ws.push(w);
        }
    }
}

#[async_trait]
impl Storage for QueryStorage {
    async fn select(
        &self,
        matchers: &[Matcher],
        hints: &SelectHints,
    ) -> Result<Vec<Series>, StorageError> {
        let mut request = self
            .options
            .series_request(matchers, hints.start, hints.end, false);
        request.query_hints = Some(QueryHints {
            step_millis: hints.step,
            func: hints.func.as_ref().map(|name| Func { name: name.clone() }),
            range: (hints.range > 0).then_some(Range {
                millis: hints.range,
            }),
            ..QueryHints::default()
        });
        let merged = self.fetch(request).await?;
        let dedup = self
            .options
            .dedup_active()
            .then_some(self.options.dedup_func);
        let counter_adjust = needs_counter_adjustment(hints.func.as_deref());
        let (start, end) = (hints.start, hints.end);
        let decoded = tokio::task::spawn_blocking(move || {
            merged
                .into_iter()
                .map(|s| decode_series(s, start, end, dedup, counter_adjust))
                .filter(|r| r.as_ref().map_or(true, |s| !s.samples.is_empty()))
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(|e| QueryError::Task(e.to_string()))??;
        Ok(decoded)
    }
}

/// Decodes a merged series into samples inside `[start, end]`, deduplicating overlapping
/// chunks with `dedup` or chaining them when `None`.
pub fn decode_series(
    series: MergedSeries,
    start: i64,
    end: i64,
    dedup: Option<DedupFunc>,
    counter_adjust: bool,
) -> Result<Series, QueryError> {
    let mut chunks = Vec::with_capacity(series.chunks.len());
    for c in &series.chunks {
        let Some(raw) = &c.raw else { continue };
        // StoreAPI chunk encodings are the TSDB values minus one.
        let encoding = u8::try_from(raw.r#type + 1).unwrap_or(u8::MAX);
        let chunk_err = |source| QueryError::Chunk {
            labels: series.labels.to_string(),
            source,
        };
        let mut it = float_iterator(encoding, &raw.data).map_err(chunk_err)?;
        let mut samples = Vec::new();
        for s in it.by_ref() {
            if s.t > end {
                break;
            }
            if s.t >= start {
                samples.push(s);
            }
        }
        if let Some(e) = it.err() {
            return Err(chunk_err(e.clone()));
        }
        chunks.push((c.min_time, c.max_time, samples));
    }
    let samples: Vec<Sample> = match dedup {
        Some(func) => merge_replicas(func, split_overlapping(chunks), counter_adjust),
        None => crate::dedup::chain(&chunks.into_iter().map(|(_, _, s)| s).collect::<Vec<_>>()),
    };
    Ok(Series {
        labels: series.labels,
        samples,
    })
}
