//! The storage interface the engine pulls series from, and an in-memory implementation.
//!
//! # Design
//!
//! Query execution has two phases. In the *preparation* phase the engine walks the
//! expression, computes for every selector the time range it can possibly touch (taking
//! lookback, range, offset, `@` and subqueries into account) and asks the [`Storage`] for
//! all of them concurrently; this is the only asynchronous part, so a querier can fan out
//! to StoreAPI endpoints over gRPC. The *evaluation* phase then runs synchronously (on a
//! blocking thread) over the fetched, fully decoded series. This is what Prometheus and
//! Thanos effectively do per selector, and keeps the evaluator free of `.await` points in
//! its inner loops.

use std::collections::BTreeMap;

use async_trait::async_trait;
use thanos_model::histogram::FloatHistogram;
use thanos_model::matcher::matches_labels;
use thanos_model::{Labels, Matcher, Sample};

use crate::error::StorageError;
use crate::value::HPoint;

/// Hints passed along with a select, mirroring Prometheus's `storage.SelectHints`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelectHints {
    /// Earliest timestamp (ms, inclusive) any evaluation step can read.
    pub start: i64,
    /// Latest timestamp (ms, inclusive) any evaluation step can read.
    pub end: i64,
    /// Query resolution step in ms (0 for instant queries).
    pub step: i64,
    /// Range of the enclosing range selector in ms (0 for instant selectors).
    pub range: i64,
    /// Name of the function wrapping the selector, if any.
    pub func: Option<String>,
}

/// One series as returned by the storage: its labels, float samples and native-histogram
/// samples, each sorted by time (a series may mix both kinds over time, but a timestamp
/// appears in at most one of them).
///
/// Samples may include stale markers (`thanos_model::sample::stale_nan` floats, or
/// histograms whose sum is that value); the engine interprets them.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The series' labels.
    pub labels: Labels,
    /// Float samples in increasing timestamp order.
    pub samples: Vec<Sample>,
    /// Histogram samples in increasing timestamp order.
    pub histograms: Vec<HPoint>,
}

impl Series {
    /// A series with float samples only.
    pub fn floats(labels: Labels, samples: Vec<Sample>) -> Self {
        Self {
            labels,
            samples,
            histograms: Vec::new(),
        }
    }
}

/// A source of series, selected by label matchers and time range.
#[async_trait]
pub trait Storage: Send + Sync {
    /// Returns every series matching all `matchers` with its samples inside
    /// `[hints.start, hints.end]` (returning more samples is allowed; the engine trims).
    async fn select(
        &self,
        matchers: &[Matcher],
        hints: &SelectHints,
    ) -> Result<Vec<Series>, StorageError>;
}

/// A simple in-memory [`Storage`], used by tests and the promqltest runner.
#[derive(Debug, Default, Clone)]
pub struct MemoryStorage {
    series: BTreeMap<Labels, (Vec<Sample>, Vec<HPoint>)>,
}

impl MemoryStorage {
    /// An empty storage.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a sample to the series `labels`; samples must come in increasing time order
    /// per series, an older or equal timestamp replaces nothing and is reported as an error.
    pub fn append(&mut self, labels: &Labels, t: i64, v: f64) -> Result<(), OutOfOrderSample> {
        let (samples, hists) = self.series.entry(labels.clone()).or_default();
        if samples.last().is_some_and(|l| l.t >= t) || hists.last().is_some_and(|l| l.t >= t) {
            return Err(OutOfOrderSample {
                labels: labels.clone(),
                t,
            });
        }
        samples.push(Sample::new(t, v));
        Ok(())
    }

    /// Appends a native-histogram sample; the same ordering rule as [`Self::append`]
    /// applies across float and histogram samples of a series.
    pub fn append_histogram(
        &mut self,
        labels: &Labels,
        t: i64,
        h: FloatHistogram,
    ) -> Result<(), OutOfOrderSample> {
        let (samples, hists) = self.series.entry(labels.clone()).or_default();
        if samples.last().is_some_and(|l| l.t >= t) || hists.last().is_some_and(|l| l.t >= t) {
            return Err(OutOfOrderSample {
                labels: labels.clone(),
                t,
            });
        }
        hists.push(HPoint { t, h });
        Ok(())
    }

    /// The newest sample of `labels` if it is a histogram (used by loaders that derive
    /// counter-reset hints the way the TSDB appender does).
    pub fn last_histogram(&self, labels: &Labels) -> Option<&HPoint> {
        let (samples, hists) = self.series.get(labels)?;
        let h = hists.last()?;
        match samples.last() {
            Some(s) if s.t > h.t => None,
            _ => Some(h),
        }
    }

    /// Removes every series.
    pub fn clear(&mut self) {
        self.series.clear();
    }

    /// Number of series stored.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// True when no series is stored.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}

/// A sample older than (or as old as) the newest sample of its series.
#[derive(Debug, Clone, thiserror::Error)]
#[error("out of order sample for series {labels} at {t}")]
pub struct OutOfOrderSample {
    /// The series.
    pub labels: Labels,
    /// The rejected timestamp (ms).
    pub t: i64,
}

#[async_trait]
impl Storage for MemoryStorage {
    async fn select(
        &self,
        matchers: &[Matcher],
        hints: &SelectHints,
    ) -> Result<Vec<Series>, StorageError> {
        Ok(self
            .series
            .iter()
            .filter(|(l, _)| matches_labels(matchers, l))
            .filter_map(|(l, (s, h))| {
                let lo = s.partition_point(|x| x.t < hints.start);
                let hi = s.partition_point(|x| x.t <= hints.end);
                let hlo = h.partition_point(|x| x.t < hints.start);
                let hhi = h.partition_point(|x| x.t <= hints.end);
                (lo < hi || hlo < hhi).then(|| Series {
                    labels: l.clone(),
                    samples: s[lo..hi].to_vec(),
                    histograms: h[hlo..hhi].to_vec(),
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use thanos_model::MatchType;

    #[test]
    fn memory_storage_selects_by_matchers_and_time() {
        let mut s = MemoryStorage::new();
        let a = Labels::from_pairs([("__name__", "up"), ("job", "a")]);
        let b = Labels::from_pairs([("__name__", "up"), ("job", "b")]);
        for t in 0..10 {
            s.append(&a, t * 1000, t as f64).unwrap();
            s.append(&b, t * 1000, t as f64).unwrap();
        }
        assert!(
            s.append(&a, 5000, 1.0).is_err(),
            "out-of-order samples are rejected"
        );
        assert_eq!(s.len(), 2);
        let ms = [
            Matcher::equal("__name__", "up"),
            Matcher::new(MatchType::RegexMatch, "job", "a|c").unwrap(),
        ];
        let hints = SelectHints {
            start: 2000,
            end: 4000,
            ..SelectHints::default()
        };
        let got = futures::executor::block_on(s.select(&ms, &hints)).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].labels, a);
        assert_eq!(
            got[0].samples.iter().map(|x| x.t).collect::<Vec<_>>(),
            vec![2000, 3000, 4000]
        );
        s.clear();
        assert!(s.is_empty());
    }
}
