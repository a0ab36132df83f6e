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
use thanos_model::chunkenc::{ChunkSample, decode_any};
use thanos_model::{Matcher, Sample};
use thanos_promql::{HPoint, SelectHints, Series, Storage, StorageError};
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
                .filter(|r| {
                    r.as_ref()
                        .map_or(true, |s| !s.samples.is_empty() || !s.histograms.is_empty())
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(|e| QueryError::Task(e.to_string()))??;
        Ok(decoded)
    }
}

/// Decodes a merged series into samples inside `[start, end]`, deduplicating overlapping
/// float chunks with `dedup` or chaining them when `None`.
///
/// Histogram (StoreAPI type 1) and float-histogram (type 2) chunks decode into the
/// engine's histogram samples; replicas of those are chained (sorted by time, the first
/// sample of a timestamp kept) in both modes, since the penalty algorithm is defined
/// for float counters only.
pub fn decode_series(
    series: MergedSeries,
    start: i64,
    end: i64,
    dedup: Option<DedupFunc>,
    counter_adjust: bool,
) -> Result<Series, QueryError> {
    let mut chunks = Vec::with_capacity(series.chunks.len());
    let mut histograms: Vec<HPoint> = Vec::new();
    for c in &series.chunks {
        let Some(raw) = &c.raw else { continue };
        // StoreAPI chunk encodings are the TSDB values minus one.
        let encoding = u8::try_from(raw.r#type + 1).unwrap_or(u8::MAX);
        let chunk_err = |source| QueryError::Chunk {
            labels: series.labels.to_string(),
            source,
        };
        let mut it = decode_any(encoding, &raw.data).map_err(chunk_err)?;
        let mut samples = Vec::new();
        for s in it.by_ref() {
            let t = s.t();
            if t > end {
                break;
            }
            if t < start {
                continue;
            }
            match s {
                ChunkSample::Float(f) => samples.push(f),
                ChunkSample::Histogram(t, h) => histograms.push(HPoint { t, h: h.to_float() }),
                ChunkSample::FloatHistogram(t, h) => histograms.push(HPoint { t, h }),
            }
        }
        if let Some(e) = it.err() {
            return Err(chunk_err(e.clone()));
        }
        if !samples.is_empty() {
            chunks.push((c.min_time, c.max_time, samples));
        }
    }
    let samples: Vec<Sample> = match dedup {
        Some(func) => merge_replicas(func, split_overlapping(chunks), counter_adjust),
        None => crate::dedup::chain(&chunks.into_iter().map(|(_, _, s)| s).collect::<Vec<_>>()),
    };
    // Stable sort: for equal timestamps the sample of the earliest chunk wins.
    histograms.sort_by_key(|p| p.t);
    histograms.dedup_by_key(|p| p.t);
    Ok(Series {
        labels: series.labels,
        samples,
        histograms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use thanos_model::Labels;
    use thanos_model::chunkenc::XorChunk;
    use thanos_model::chunkenc::histogram::{AppendOutcome, FloatHistogramChunk};
    use thanos_model::histogram::{FloatHistogram, Span};
    use thanos_proto::thanos::{AggrChunk, Chunk};

    fn hist(count: f64) -> FloatHistogram {
        FloatHistogram {
            schema: 0,
            count,
            sum: count * 2.0,
            positive_spans: vec![Span::new(0, 1)],
            positive_buckets: vec![count],
            ..FloatHistogram::default()
        }
    }

    fn chunk(r#type: i32, min_time: i64, max_time: i64, data: Vec<u8>) -> AggrChunk {
        AggrChunk {
            min_time,
            max_time,
            raw: Some(Chunk {
                r#type,
                data: data.into(),
                ..Chunk::default()
            }),
            ..AggrChunk::default()
        }
    }

    #[test]
    fn decodes_float_histogram_chunks_next_to_xor_chunks() {
        let mut fh = FloatHistogramChunk::new();
        for (t, c) in [(1000, 1.0), (2000, 2.0), (3000, 3.0)] {
            let outcome = fh.append(t, &hist(c)).expect("append histogram");
            assert!(matches!(outcome, AppendOutcome::Appended), "{outcome:?}");
        }
        let mut xor = XorChunk::new();
        xor.append(4000, 7.0);
        let series = MergedSeries {
            labels: Labels::from_pairs([("__name__", "h")]),
            chunks: vec![
                chunk(2, 1000, 3000, fh.bytes().to_vec()),
                // The same histogram chunk from a second replica.
                chunk(2, 1000, 3000, fh.bytes().to_vec()),
                chunk(0, 4000, 4000, xor.bytes().to_vec()),
            ],
        };
        let s = decode_series(series, 1500, 5000, None, false).expect("decode");
        assert_eq!(
            s.histograms.iter().map(|p| p.t).collect::<Vec<_>>(),
            vec![2000, 3000]
        );
        assert_eq!(s.histograms[0].h.count, 2.0);
        assert_eq!(s.histograms[1].h.positive_buckets, vec![3.0]);
        assert_eq!(s.samples, vec![Sample::new(4000, 7.0)]);
    }

    #[test]
    fn unknown_chunk_encodings_are_errors() {
        let series = MergedSeries {
            labels: Labels::from_pairs([("__name__", "x")]),
            chunks: vec![chunk(9, 0, 0, vec![0, 0])],
        };
        let err = decode_series(series, 0, 10, None, false).expect_err("bad encoding");
        assert!(err.to_string().contains("__name__"), "{err}");
    }
}
