//! The PromQL [`Storage`] over the proxy store (Thanos `pkg/query/querier.go`).
//!
//! A select becomes a `SeriesRequest` (replica labels sent as `without_replica_labels` when
//! deduplicating), executed by the in-process [`ProxyStore`]. Each merged series is decoded
//! as soon as it arrives, while the stores are still streaming: its chunks outside the
//! selected range are skipped, the others are decoded straight into one sample vector
//! trimmed to the range. When the chunks do not overlap (one store, or replicas already
//! removed) that vector is the answer; otherwise, with deduplication on, overlapping
//! chunks are split into fake replicas and merged by the configured algorithm, and without
//! it they are chained (equal timestamps collapsed).
//!
//! Warnings from stores cannot travel through the engine's `Storage` interface, so they
//! are collected here and read back with [`QueryStorage::take_warnings`].

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::StreamExt;
use thanos_model::chunkenc::{ChunkSample, SampleIterator, decode_any};
use thanos_model::{Matcher, Sample};
use thanos_promql::{HPoint, SelectHints, Series, Storage, StorageError};
use thanos_proto::thanos::{
    Aggr, AggrChunk, Func, PartialResponseStrategy, QueryHints, Range, SeriesRequest,
};
use tokio::time::Instant;

use crate::dedup::{DedupFunc, chain, merge_replicas, needs_counter_adjustment, split_overlapping};
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

    /// Streams the proxied series for a request whose matchers are `matchers` (already
    /// parsed), collecting warnings; fails on the first proxy error.
    pub async fn fetch(
        &self,
        request: SeriesRequest,
        matchers: &[Matcher],
    ) -> Result<Vec<MergedSeries>, QueryError> {
        let mut out = Vec::new();
        self.for_each(request, matchers, |s| {
            out.push(s);
            Ok(())
        })
        .await?;
        Ok(out)
    }

    /// Runs `request` through the proxy and hands each series to `f` in arrival order,
    /// after counting it against the limits; warnings are collected.
    async fn for_each(
        &self,
        request: SeriesRequest,
        matchers: &[Matcher],
        mut f: impl FnMut(MergedSeries) -> Result<(), QueryError>,
    ) -> Result<(), QueryError> {
        let mut stream = self.proxy.series_matching(
            request,
            matchers,
            self.options.deadline,
            &self.options.store_matchers,
        );
        while let Some(frame) = stream.next().await {
            match frame? {
                ProxyFrame::Series(s) => {
                    self.account(&s)?;
                    f(s)?;
                }
                ProxyFrame::Warning(w) => self.add_warning(w),
            }
        }
        Ok(())
    }

    /// Counts a fetched series against the query's limits.
    fn account(&self, s: &MergedSeries) -> Result<(), QueryError> {
        let limits = self.options.limits;
        let bytes = thanos_proto::storepb::chunk_bytes(&s.chunks);
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
        let dedup = self
            .options
            .dedup_active()
            .then_some(self.options.dedup_func);
        let counter_adjust = needs_counter_adjustment(hints.func.as_deref());
        let (start, end) = (hints.start, hints.end);
        let decode = move |batch: Vec<MergedSeries>| -> Result<Vec<Series>, QueryError> {
            let mut out = Vec::with_capacity(batch.len());
            for s in batch {
                let series = decode_series(s, start, end, dedup, counter_adjust)?;
                if !series.samples.is_empty() || !series.histograms.is_empty() {
                    out.push(series);
                }
            }
            Ok(out)
        };
        // Full batches are decoded on the blocking pool while the stores still send, so
        // decoding runs on another core than receiving; the last (for a small answer,
        // the only) batch is decoded here, without a hand-off.
        let mut batch = Vec::new();
        let mut decoding = Vec::new();
        self.for_each(request, matchers, |s| {
            batch.push(s);
            if batch.len() >= DECODE_BATCH {
                let full = std::mem::take(&mut batch);
                decoding.push(tokio::task::spawn_blocking(move || decode(full)));
            }
            Ok(())
        })
        .await?;
        let last = decode(batch)?;
        let mut out = Vec::new();
        for task in decoding {
            let decoded = task.await.map_err(|e| QueryError::Task(e.to_string()))?;
            out.extend(decoded?);
        }
        out.extend(last);
        Ok(out)
    }
}

/// Series decoded per blocking task by [`QueryStorage::select`]: a few milliseconds of
/// work for typical chunks, enough to pay for the hand-off.
const DECODE_BATCH: usize = 256;

/// Where the samples of one decoded float chunk sit in a series' sample buffer.
#[derive(Debug, Clone, Copy)]
struct Segment {
    min_time: i64,
    max_time: i64,
    from: usize,
    to: usize,
}

/// Decodes a merged series into samples inside `[start, end]`, deduplicating overlapping
/// float chunks with `dedup` or chaining them when `None`. Chunks whose time range lies
/// outside `[start, end]` are not decoded.
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
    let MergedSeries { labels, chunks } = series;
    let chunk_err = |source| QueryError::Chunk {
        labels: labels.to_string(),
        source,
    };
    let in_range = |c: &AggrChunk| c.max_time >= start && c.min_time <= end;
    let capacity = chunks
        .iter()
        .filter(|c| in_range(c))
        .filter_map(|c| estimated_samples(c, start, end))
        .sum();
    let mut samples: Vec<Sample> = Vec::with_capacity(capacity);
    let mut segments: Vec<Segment> = Vec::with_capacity(chunks.len());
    let mut histograms: Vec<HPoint> = Vec::new();
    for c in chunks.iter().filter(|c| in_range(c)) {
        let Some(raw) = &c.raw else { continue };
        // StoreAPI chunk encodings are the TSDB values minus one.
        let encoding = u8::try_from(raw.r#type + 1).unwrap_or(u8::MAX);
        let from = samples.len();
        match decode_any(encoding, &raw.data).map_err(chunk_err)? {
            SampleIterator::Float(it) => it
                .decode_range_into(start, end, &mut samples)
                .map_err(chunk_err)?,
            mut it => {
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
                        ChunkSample::Histogram(t, h) => {
                            histograms.push(HPoint { t, h: h.to_float() });
                        }
                        ChunkSample::FloatHistogram(t, h) => histograms.push(HPoint { t, h }),
                    }
                }
                if let Some(e) = it.err() {
                    return Err(chunk_err(e.clone()));
                }
            }
        }
        if samples.len() > from {
            segments.push(Segment {
                min_time: c.min_time,
                max_time: c.max_time,
                from,
                to: samples.len(),
            });
        }
    }
    let samples = merge_segments(samples, &segments, dedup, counter_adjust);
    // Stable sort: for equal timestamps the sample of the earliest chunk wins.
    histograms.sort_by_key(|p| p.t);
    histograms.dedup_by_key(|p| p.t);
    Ok(Series {
        labels,
        samples,
        histograms,
    })
}

/// How many samples of chunk `c` fall in `[start, end]`, assuming even spacing; `None`
/// for chunks without data.
fn estimated_samples(c: &AggrChunk, start: i64, end: i64) -> Option<usize> {
    let raw = c.raw.as_ref()?;
    let total = raw
        .data
        .first_chunk::<2>()
        .map_or(0, |h| usize::from(u16::from_be_bytes(*h)));
    if c.min_time >= start && c.max_time <= end {
        return Some(total);
    }
    let span = c.max_time.saturating_sub(c.min_time).max(1);
    let overlap = c
        .max_time
        .min(end)
        .saturating_sub(c.min_time.max(start))
        .max(0);
    let share =
        u128::from(overlap.unsigned_abs()) * total as u128 / u128::from(span.unsigned_abs());
    Some(usize::try_from(share).unwrap_or(total).min(total) + 1)
}

/// Turns the decoded float samples of a series' chunks into its sample sequence.
///
/// The concatenation is the answer when the chunks follow each other without overlap:
/// for deduplication, chunk time ranges that do not overlap form a single fake replica;
/// for chaining, strictly increasing timestamps leave nothing to collapse. Otherwise the
/// chunks are merged as replicas.
fn merge_segments(
    samples: Vec<Sample>,
    segments: &[Segment],
    dedup: Option<DedupFunc>,
    counter_adjust: bool,
) -> Vec<Sample> {
    match dedup {
        Some(func) => {
            if segments.windows(2).all(|w| w[1].min_time > w[0].max_time) {
                return samples;
            }
            let chunks = segments
                .iter()
                .map(|s| (s.min_time, s.max_time, samples[s.from..s.to].to_vec()))
                .collect();
            merge_replicas(func, split_overlapping(chunks), counter_adjust)
        }
        None => {
            if samples.windows(2).all(|w| w[0].t < w[1].t) {
                return samples;
            }
            let replicas: Vec<&[Sample]> =
                segments.iter().map(|s| &samples[s.from..s.to]).collect();
            chain(&replicas)
        }
    }
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

    fn xor(samples: &[(i64, f64)]) -> AggrChunk {
        let mut c = XorChunk::new();
        for &(t, v) in samples {
            c.append(t, v);
        }
        let (min, max) = (samples[0].0, samples[samples.len() - 1].0);
        chunk(0, min, max, c.bytes().to_vec())
    }

    fn times(s: &[Sample]) -> Vec<i64> {
        s.iter().map(|x| x.t).collect()
    }

    fn series_of(chunks: Vec<AggrChunk>) -> MergedSeries {
        MergedSeries {
            labels: Labels::from_pairs([("__name__", "x")]),
            chunks,
        }
    }

    #[test]
    fn trims_to_the_range_and_skips_chunks_outside_it() {
        let chunks = vec![
            xor(&[(1000, 1.0), (2000, 2.0), (3000, 3.0)]),
            xor(&[(4000, 4.0), (5000, 5.0), (6000, 6.0)]),
            // Undecodable, but outside the range: never decoded.
            chunk(9, 7000, 9000, vec![1, 2, 3]),
        ];
        let s = decode_series(series_of(chunks), 2000, 5500, None, false).expect("decode");
        assert_eq!(times(&s.samples), vec![2000, 3000, 4000, 5000]);
        assert_eq!(s.samples[3].v, 5.0);
    }

    #[test]
    fn overlapping_chunks_are_chained_without_dedup() {
        let a = xor(&[(1000, 1.0), (2000, 2.0), (3000, 3.0), (4000, 4.0)]);
        let b = xor(&[(2500, 25.0), (3000, 30.0), (5000, 50.0)]);
        let s = decode_series(series_of(vec![a, b]), 0, 10_000, None, false).expect("decode");
        assert_eq!(times(&s.samples), vec![1000, 2000, 2500, 3000, 4000, 5000]);
        assert_eq!(
            s.samples[3].v, 3.0,
            "equal timestamps keep the first chunk's sample"
        );
    }

    #[test]
    fn dedup_merges_only_overlapping_chunks() {
        // Disjoint chunks are one replica: kept as they are, even with a gap.
        let a = xor(&[(10_000, 1.0), (20_000, 2.0)]);
        let b = xor(&[(90_000, 9.0), (100_000, 10.0)]);
        let s = decode_series(
            series_of(vec![a.clone(), b]),
            0,
            200_000,
            Some(DedupFunc::Penalty),
            false,
        )
        .expect("decode");
        assert_eq!(times(&s.samples), vec![10_000, 20_000, 90_000, 100_000]);
        // Overlapping chunks are replicas: the penalty merge sticks to the first one.
        let replica = xor(&[(10_100, 5.0), (20_100, 6.0), (30_100, 7.0), (40_100, 8.0)]);
        let s = decode_series(
            series_of(vec![a, replica]),
            0,
            200_000,
            Some(DedupFunc::Penalty),
            false,
        )
        .expect("decode");
        // After a's end, b's next sample inside the 2x10s penalty window is skipped.
        assert_eq!(times(&s.samples), vec![10_000, 20_000, 40_100]);
        assert_eq!(s.samples[2].v, 8.0);
    }

    #[test]
    fn sample_estimates_stay_within_the_chunk() {
        let c = xor(&[(0, 1.0), (1000, 1.0), (2000, 1.0), (3000, 1.0)]);
        assert_eq!(estimated_samples(&c, 0, 3000), Some(4));
        assert_eq!(estimated_samples(&c, 1500, 10_000), Some(3));
        assert_eq!(estimated_samples(&c, -5000, 0), Some(1));
        let empty = AggrChunk::default();
        assert_eq!(estimated_samples(&empty, 0, 10), None);
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
