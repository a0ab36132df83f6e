//! Bucket operation metrics with the names and labels of Thanos's instrumented bucket
//! (`thanos_objstore_bucket_*`, labels `bucket` and `operation`).

use prometheus::{
    Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts,
    Registry,
};

use crate::bucket::Operation;
use crate::error::Result;

/// Duration histogram buckets (seconds), as Thanos uses them.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.01, 0.1, 0.3, 0.6, 1.0, 3.0, 6.0, 9.0, 20.0, 30.0, 60.0, 90.0, 120.0,
];

/// Registered metric families, shared by every [`crate::Bucket`] built on one registry. Each
/// bucket gets its own `bucket` label value.
#[derive(Debug, Clone)]
pub struct BucketMetrics {
    ops: IntCounterVec,
    failures: IntCounterVec,
    duration: HistogramVec,
    fetched_bytes: IntCounterVec,
    transferred_bytes: HistogramVec,
    last_upload: GaugeVec,
}

impl BucketMetrics {
    /// Registers the metric families on `registry`. Registering twice on the same registry is an
    /// error; build several buckets from one `BucketMetrics` instead.
    pub fn new(registry: &Registry) -> Result<Self> {
        let labels = &["bucket", "operation"];
        let ops = IntCounterVec::new(
            Opts::new(
                "thanos_objstore_bucket_operations_total",
                "Total number of all attempted operations against a bucket.",
            ),
            labels,
        )?;
        let failures = IntCounterVec::new(
            Opts::new(
                "thanos_objstore_bucket_operation_failures_total",
                "Total number of operations against a bucket that failed, but were not expected to fail in certain way from caller perspective. Those errors have to be investigated.",
            ),
            labels,
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "thanos_objstore_bucket_operation_duration_seconds",
                "Duration of successful operations against the remote bucket",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            labels,
        )?;
        let fetched_bytes = IntCounterVec::new(
            Opts::new(
                "thanos_objstore_bucket_operation_fetched_bytes_total",
                "Total number of bytes fetched from bucket, per operation.",
            ),
            labels,
        )?;
        let transferred_bytes = HistogramVec::new(
            HistogramOpts::new(
                "thanos_objstore_bucket_operation_transferred_bytes",
                "Number of bytes transferred from/to bucket per operation.",
            )
            .buckets(prometheus::exponential_buckets(32768.0, 2.0, 16)?),
            labels,
        )?;
        let last_upload = GaugeVec::new(
            Opts::new(
                "thanos_objstore_bucket_last_successful_upload_time",
                "Second timestamp of the last successful upload to the bucket.",
            ),
            &["bucket"],
        )?;
        registry.register(Box::new(ops.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(fetched_bytes.clone()))?;
        registry.register(Box::new(transferred_bytes.clone()))?;
        registry.register(Box::new(last_upload.clone()))?;
        Ok(Self {
            ops,
            failures,
            duration,
            fetched_bytes,
            transferred_bytes,
            last_upload,
        })
    }

    /// Label children for one bucket; creating them initialises every series to 0.
    pub(crate) fn for_bucket(&self, bucket: &str) -> BucketSeries {
        let per_op = Operation::ALL.map(|op| OpSeries {
            ops: self.ops.with_label_values(&[bucket, op.as_str()]),
            failures: self.failures.with_label_values(&[bucket, op.as_str()]),
            duration: self.duration.with_label_values(&[bucket, op.as_str()]),
            fetched_bytes: self.fetched_bytes.with_label_values(&[bucket, op.as_str()]),
            transferred_bytes: self
                .transferred_bytes
                .with_label_values(&[bucket, op.as_str()]),
        });
        BucketSeries {
            per_op,
            last_upload: self.last_upload.with_label_values(&[bucket]),
        }
    }
}

/// Series of one operation of one bucket.
#[derive(Debug, Clone)]
pub(crate) struct OpSeries {
    pub(crate) ops: IntCounter,
    pub(crate) failures: IntCounter,
    pub(crate) duration: Histogram,
    pub(crate) fetched_bytes: IntCounter,
    pub(crate) transferred_bytes: Histogram,
}

/// Series of one bucket.
#[derive(Debug, Clone)]
pub(crate) struct BucketSeries {
    per_op: [OpSeries; Operation::ALL.len()],
    pub(crate) last_upload: Gauge,
}

impl BucketSeries {
    pub(crate) fn op(&self, op: Operation) -> &OpSeries {
        &self.per_op[op as usize]
    }
}
