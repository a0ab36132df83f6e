//! Errors of the write path and the per-reason summary of rejected series and samples.
//!
//! A remote-write request can fail as a whole (unsupported media type, corrupt snappy,
//! body too large, limits) or partially: single series with bad labels and single samples
//! that conflict with the head are rejected while the rest of the request is stored.
//! Partial failures are aggregated in [`Rejections`]: a count per [`Reason`] and one
//! example series per reason, rendered into one error body like Thanos's aggregated
//! errors. Every error maps to an [`ErrorKind`], which decides the HTTP status and the
//! gRPC code ([`WriteError::to_status`]); [`WriteError::class`] and [`class_of_status`]
//! classify failed replica writes for the quorum ([`ErrorClass`]).

use std::fmt;

use thanos_server::ErrorKind;

use crate::hashring::HashringError;
use crate::hashring::quorum::{ErrorClass, FailureCause};

/// Why a single series or sample was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Reason {
    /// The series has no labels (after dropping empty-valued ones).
    EmptyLabelSet,
    /// A label of the series has an empty name.
    EmptyLabelName,
    /// A label name or value is not valid UTF-8.
    InvalidUtf8,
    /// Two labels of the series share a name.
    DuplicateLabelName,
    /// Remote write 2.0: the label references have odd length.
    OddLabelRefs,
    /// Remote write 2.0: a label reference points outside the symbol table.
    SymbolRefOutOfRange,
    /// A native histogram sample is malformed (bad spans, negative or inconsistent
    /// counts, bad custom bounds) or shares its timestamp with a float sample of the same
    /// series: the whole series is rejected.
    InvalidHistogram,
    /// The sample is older than the newest sample of its series.
    OutOfOrder,
    /// The sample has the newest timestamp of its series but a different value.
    DuplicateSample,
    /// The sample is older than the head's minimum valid time.
    OutOfBounds,
    /// The sample is further in the future than `--tsdb.too-far-in-future.time-window`.
    TooFarInFuture,
}

impl Reason {
    /// Every reason, in reporting order.
    pub const ALL: [Reason; 11] = [
        Reason::EmptyLabelSet,
        Reason::EmptyLabelName,
        Reason::InvalidUtf8,
        Reason::DuplicateLabelName,
        Reason::OddLabelRefs,
        Reason::SymbolRefOutOfRange,
        Reason::InvalidHistogram,
        Reason::OutOfOrder,
        Reason::DuplicateSample,
        Reason::OutOfBounds,
        Reason::TooFarInFuture,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// The error class: malformed series and unsupported sample types are bad requests
    /// (400), samples conflicting with stored data are conflicts (409); neither is retried
    /// by Prometheus.
    pub fn kind(self) -> ErrorKind {
        match self {
            Reason::OutOfOrder
            | Reason::DuplicateSample
            | Reason::OutOfBounds
            | Reason::TooFarInFuture => ErrorKind::Conflict,
            _ => ErrorKind::BadRequest,
        }
    }

    /// True when the reason rejects a whole series (counted in series), false when it
    /// rejects single samples (counted in samples).
    pub fn is_series_level(self) -> bool {
        !matches!(
            self,
            Reason::OutOfOrder
                | Reason::DuplicateSample
                | Reason::OutOfBounds
                | Reason::TooFarInFuture
        )
    }

    /// The reason as written in error bodies (Prometheus's wording where it has one).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::EmptyLabelSet => "empty label set",
            Reason::EmptyLabelName => "empty label name",
            Reason::InvalidUtf8 => "invalid utf-8 in label name or value",
            Reason::DuplicateLabelName => "duplicate label name",
            Reason::OddLabelRefs => "odd number of label references",
            Reason::SymbolRefOutOfRange => "label reference out of symbol table range",
            Reason::InvalidHistogram => "invalid native histogram",
            Reason::OutOfOrder => "out of order sample",
            Reason::DuplicateSample => "duplicate sample for timestamp",
            Reason::OutOfBounds => "out of bounds",
            Reason::TooFarInFuture => "out of bounds: timestamp is too far in the future",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const NUM_REASONS: usize = Reason::ALL.len();

/// Counts of rejected series/samples per [`Reason`], with the first example of each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rejections {
    counts: [u64; NUM_REASONS],
    examples: [Option<String>; NUM_REASONS],
}

impl Rejections {
    /// Records `n` rejections for `reason`; `example` (a series description, built only
    /// for the first rejection of this reason) is quoted in the error message.
    pub fn add(&mut self, reason: Reason, n: u64, example: impl FnOnce() -> String) {
        let i = reason.index();
        self.counts[i] += n;
        if self.examples[i].is_none() {
            self.examples[i] = Some(example());
        }
    }

    /// Adds all counts of `other`, keeping existing examples.
    pub fn merge(&mut self, other: &Rejections) {
        for i in 0..NUM_REASONS {
            self.counts[i] += other.counts[i];
            if self.examples[i].is_none() {
                self.examples[i] = other.examples[i].clone();
            }
        }
    }

    /// Number of rejections recorded for `reason`.
    pub fn count(&self, reason: Reason) -> u64 {
        self.counts[reason.index()]
    }

    /// The example recorded for `reason`.
    pub fn example(&self, reason: Reason) -> Option<&str> {
        self.examples[reason.index()].as_deref()
    }

    /// True when nothing was rejected.
    pub fn is_empty(&self) -> bool {
        self.counts.iter().all(|&c| c == 0)
    }

    /// Total rejected samples (sample-level reasons only).
    pub fn samples(&self) -> u64 {
        Reason::ALL
            .iter()
            .filter(|r| !r.is_series_level())
            .map(|r| self.count(*r))
            .sum()
    }

    /// Total rejected series (series-level reasons only).
    pub fn series(&self) -> u64 {
        Reason::ALL
            .iter()
            .filter(|r| r.is_series_level())
            .map(|r| self.count(*r))
            .sum()
    }

    /// The class of the whole set: [`ErrorKind::BadRequest`] if any series was malformed
    /// (a client bug is reported before conflicts), else [`ErrorKind::Conflict`];
    /// `None` when nothing was rejected.
    pub fn kind(&self) -> Option<ErrorKind> {
        let mut kind = None;
        for reason in Reason::ALL {
            if self.count(reason) == 0 {
                continue;
            }
            if reason.kind() == ErrorKind::BadRequest {
                return Some(ErrorKind::BadRequest);
            }
            kind = Some(reason.kind());
        }
        kind
    }
}

/// `"2 series and 3 samples rejected: duplicate label name: 2 series (e.g. …); out of
/// order sample: 3 samples (e.g. …)"`.
impl fmt::Display for Rejections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (series, samples) = (self.series(), self.samples());
        match (series, samples) {
            (0, n) => write!(f, "{n} samples rejected")?,
            (n, 0) => write!(f, "{n} series rejected")?,
            (s, n) => write!(f, "{s} series and {n} samples rejected")?,
        }
        let mut sep = ": ";
        for reason in Reason::ALL {
            let count = self.count(reason);
            if count == 0 {
                continue;
            }
            let unit = if reason.is_series_level() {
                "series"
            } else {
                "samples"
            };
            write!(f, "{sep}{reason}: {count} {unit}")?;
            if let Some(example) = self.example(reason) {
                write!(f, " (e.g. {example})")?;
            }
            sep = "; ";
        }
        Ok(())
    }
}

/// An error of the remote-write path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The receiver is not ready to accept writes.
    #[error("service unavailable: receiver is not ready")]
    NotReady,
    /// The tenant is not a single path element.
    #[error("invalid tenant {tenant:?}: must be a single, non-empty path element")]
    InvalidTenant {
        /// The tenant as received.
        tenant: String,
    },
    /// The `Content-Type` names an unsupported media type or `proto=` message.
    #[error("unsupported content type {content_type:?}")]
    UnsupportedContentType {
        /// The header value.
        content_type: String,
    },
    /// The `Content-Encoding` is not `snappy`.
    #[error("unsupported content encoding {encoding:?}: only snappy is supported")]
    UnsupportedContentEncoding {
        /// The header value.
        encoding: String,
    },
    /// The compressed body is larger than allowed.
    #[error("write request too large: body of {len} bytes exceeds the limit of {max} bytes")]
    BodyTooLarge {
        /// Body size (from `Content-Length` or counted while reading).
        len: u64,
        /// The configured limit.
        max: usize,
    },
    /// The snappy block declares a decompressed size above the limit.
    #[error(
        "write request too large: snappy block declares {declared} decompressed bytes, more than the limit of {max}"
    )]
    DecompressedTooLarge {
        /// Decompressed size declared by the snappy header.
        declared: usize,
        /// The configured limit.
        max: usize,
    },
    /// The body could not be read from the connection.
    #[error("read request body: {reason}")]
    ReadBody {
        /// What the HTTP layer reported.
        reason: String,
    },
    /// The body is not a valid snappy block.
    #[error("decompress snappy body of {len} bytes: {source}")]
    Snappy {
        /// Compressed body size.
        len: usize,
        /// The decoder's error.
        source: thanos_proto::remote_write::Error,
    },
    /// The decompressed body is not a valid protobuf message of the expected type.
    #[error("decode protobuf {message}: {reason} at byte {offset}")]
    Protobuf {
        /// Name of the proto message being decoded.
        message: &'static str,
        /// Offset into the decompressed body where decoding stopped.
        offset: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// More series in one request than allowed.
    #[error("too many timeseries: request has {count}, limit is {max}")]
    TooManySeries {
        /// Series in the request.
        count: usize,
        /// The configured limit.
        max: usize,
    },
    /// More samples in one request than allowed.
    #[error("too many samples: request has {count}, limit is {max}")]
    TooManySamples {
        /// Samples in the request.
        count: usize,
        /// The configured limit.
        max: usize,
    },
    /// The tenant's active series, as reported by meta-monitoring, are at or above its
    /// `head_series_limit`; the whole request is rejected (429, retryable).
    #[error(
        "tenant is above active series limit: tenant {tenant:?} has {current} active series, limit is {limit}"
    )]
    HeadSeriesLimit {
        /// The tenant.
        tenant: String,
        /// Active series last reported by meta-monitoring.
        current: u64,
        /// The configured limit.
        limit: u64,
    },
    /// Some series or samples were rejected; the others were stored.
    #[error("{0}")]
    Rejected(Box<Rejections>),
    /// A write task died unexpectedly.
    #[error("write task for tenant {tenant:?}: {reason}")]
    Task {
        /// The tenant being written.
        tenant: String,
        /// What went wrong.
        reason: String,
    },
    /// The write could not be made durable (WAL log or fsync failed); not acknowledged.
    #[error("tenant {tenant:?}: {source}")]
    Append {
        /// The tenant being written.
        tenant: String,
        /// The head's error.
        source: crate::head::AppendError,
    },
    /// The tenant's storage could not be opened (WAL directory, replay).
    #[error("open storage of tenant {tenant:?}: {reason}")]
    Storage {
        /// The tenant.
        tenant: String,
        /// What went wrong.
        reason: String,
    },
    /// A request header holds an invalid value (e.g. a non-integer replica number).
    #[error("invalid {header} header {value:?}: {reason}")]
    InvalidHeader {
        /// The header name.
        header: String,
        /// The value as received.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The replica number of an already-replicated write exceeds the replication factor.
    #[error("replica number {replica} exceeds replication factor {replication_factor}")]
    InvalidReplica {
        /// The 1-based replica number received.
        replica: i64,
        /// The configured replication factor.
        replication_factor: u64,
    },
    /// The hashring could not place a series (no hashring for the tenant, too few nodes).
    #[error("tenant {tenant:?}: {source}")]
    Hashring {
        /// The tenant.
        tenant: String,
        /// The hashring's error.
        source: HashringError,
    },
    /// Replication missed the write quorum for at least one series.
    #[error("{0}")]
    Replication(Box<ReplicationFailure>),
}

/// Why a replicated write failed: the request-level cause and the distinct errors of the
/// failed replica writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationFailure {
    /// The cause reported for the request (decides 409 / 503 / 500).
    pub cause: FailureCause,
    /// Distinct error messages of the failed replica writes, in arrival order.
    pub errors: Vec<String>,
}

/// `"2 errors: forwarding request to endpoint a: …; forwarding request to endpoint b: …"`.
impl fmt::Display for ReplicationFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.errors.as_slice() {
            [] => write!(f, "write quorum not reached"),
            [one] => f.write_str(one),
            many => write!(f, "{} errors: {}", many.len(), many.join("; ")),
        }
    }
}

/// Classifies a failed gRPC `RemoteWrite` to a peer: `AlreadyExists` (and
/// `InvalidArgument`, bad labels) are conflicts, `Unavailable` is unavailable, anything
/// else (timeouts, internal errors) is [`ErrorClass::Other`].
pub fn class_of_status(code: tonic::Code) -> ErrorClass {
    match code {
        tonic::Code::AlreadyExists | tonic::Code::InvalidArgument => ErrorClass::Conflict,
        tonic::Code::Unavailable => ErrorClass::Unavailable,
        _ => ErrorClass::Other,
    }
}

impl WriteError {
    /// The error class (decides the HTTP status and the gRPC code).
    pub fn kind(&self) -> ErrorKind {
        match self {
            WriteError::NotReady => ErrorKind::Unavailable,
            WriteError::UnsupportedContentType { .. }
            | WriteError::UnsupportedContentEncoding { .. } => ErrorKind::UnsupportedMediaType,
            WriteError::InvalidTenant { .. }
            | WriteError::ReadBody { .. }
            | WriteError::Snappy { .. }
            | WriteError::Protobuf { .. } => ErrorKind::BadRequest,
            WriteError::BodyTooLarge { .. }
            | WriteError::DecompressedTooLarge { .. }
            | WriteError::TooManySeries { .. }
            | WriteError::TooManySamples { .. } => ErrorKind::TooLarge,
            WriteError::HeadSeriesLimit { .. } => ErrorKind::TooManyRequests,
            WriteError::Rejected(r) => r.kind().unwrap_or(ErrorKind::Internal),
            WriteError::Task { .. }
            | WriteError::Append { .. }
            | WriteError::Storage { .. }
            | WriteError::Hashring { .. } => ErrorKind::Internal,
            WriteError::InvalidHeader { .. } | WriteError::InvalidReplica { .. } => {
                ErrorKind::BadRequest
            }
            WriteError::Replication(failure) => match failure.cause {
                FailureCause::Conflict => ErrorKind::Conflict,
                FailureCause::NotReady | FailureCause::Unavailable => ErrorKind::Unavailable,
                FailureCause::Internal => ErrorKind::Internal,
            },
        }
    }

    /// The gRPC status answered by `thanos.WriteableStore/RemoteWrite`: conflicts are
    /// `AlreadyExists`, not ready / unavailable `Unavailable`, bad requests (replica
    /// number above the replication factor, malformed series) `InvalidArgument`, size
    /// limits `ResourceExhausted`, everything else `Internal`.
    pub fn to_status(&self) -> tonic::Status {
        self.kind().to_grpc_status(self.to_string())
    }

    /// The class of this error when it is the result of one replica write: conflicts
    /// and malformed series are [`ErrorClass::Conflict`] (retrying cannot help), a node
    /// that is not ready is [`ErrorClass::NotReady`], anything else
    /// [`ErrorClass::Other`].
    pub fn class(&self) -> ErrorClass {
        match self {
            WriteError::NotReady => ErrorClass::NotReady,
            WriteError::Replication(failure) => match failure.cause {
                FailureCause::Conflict => ErrorClass::Conflict,
                FailureCause::NotReady => ErrorClass::NotReady,
                FailureCause::Unavailable => ErrorClass::Unavailable,
                FailureCause::Internal => ErrorClass::Other,
            },
            other => match other.kind() {
                ErrorKind::Conflict | ErrorKind::BadRequest => ErrorClass::Conflict,
                ErrorKind::Unavailable => ErrorClass::Unavailable,
                _ => ErrorClass::Other,
            },
        }
    }

    /// The HTTP status: [`ErrorKind::http_status`] of [`WriteError::kind`].
    pub fn http_status(&self) -> http::StatusCode {
        self.kind().http_status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_classify_and_index_consistently() {
        for (i, reason) in Reason::ALL.iter().enumerate() {
            assert_eq!(reason.index(), i, "{reason}");
        }
        assert_eq!(Reason::DuplicateLabelName.kind(), ErrorKind::BadRequest);
        assert_eq!(Reason::OutOfOrder.kind(), ErrorKind::Conflict);
        assert_eq!(Reason::TooFarInFuture.kind(), ErrorKind::Conflict);
        assert_eq!(Reason::InvalidHistogram.kind(), ErrorKind::BadRequest);
        assert!(Reason::InvalidHistogram.is_series_level());
    }

    #[test]
    fn rejections_aggregate_counts_and_first_example() {
        let mut r = Rejections::default();
        assert!(r.is_empty());
        assert_eq!(r.kind(), None);
        r.add(Reason::OutOfOrder, 2, || "{a=\"1\"} t=5".into());
        r.add(Reason::OutOfOrder, 1, || "{a=\"2\"} t=6".into());
        assert_eq!(r.kind(), Some(ErrorKind::Conflict));
        r.add(Reason::DuplicateLabelName, 1, || {
            "{a=\"1\", a=\"2\"}".into()
        });
        assert_eq!(r.kind(), Some(ErrorKind::BadRequest));
        assert_eq!(r.count(Reason::OutOfOrder), 3);
        assert_eq!(r.samples(), 3);
        assert_eq!(r.series(), 1);
        let msg = r.to_string();
        assert_eq!(
            msg,
            "1 series and 3 samples rejected: duplicate label name: 1 series \
             (e.g. {a=\"1\", a=\"2\"}); out of order sample: 3 samples (e.g. {a=\"1\"} t=5)"
        );
        let mut total = Rejections::default();
        total.merge(&r);
        total.merge(&r);
        assert_eq!(total.count(Reason::OutOfOrder), 6);
        assert_eq!(total.example(Reason::OutOfOrder), Some("{a=\"1\"} t=5"));
    }

    #[test]
    fn write_errors_map_to_statuses() {
        let unsupported = WriteError::UnsupportedContentEncoding {
            encoding: "gzip".into(),
        };
        assert_eq!(unsupported.http_status().as_u16(), 415);
        assert_eq!(unsupported.kind(), ErrorKind::UnsupportedMediaType);
        let big = WriteError::TooManySeries { count: 2, max: 1 };
        assert_eq!(big.http_status().as_u16(), 413);
        let limited = WriteError::HeadSeriesLimit {
            tenant: "t".into(),
            current: 10,
            limit: 10,
        };
        assert_eq!(limited.http_status().as_u16(), 429);
        assert_eq!(limited.to_status().code(), tonic::Code::ResourceExhausted);
        assert_eq!(WriteError::NotReady.http_status().as_u16(), 503);
        let mut r = Rejections::default();
        r.add(Reason::DuplicateSample, 1, String::new);
        let rejected = WriteError::Rejected(Box::new(r));
        assert_eq!(rejected.http_status().as_u16(), 409);
        assert_eq!(rejected.to_status().code(), tonic::Code::AlreadyExists);
        assert_eq!(rejected.class(), ErrorClass::Conflict);
        assert_eq!(
            WriteError::NotReady.to_status().code(),
            tonic::Code::Unavailable
        );
        assert_eq!(WriteError::NotReady.class(), ErrorClass::NotReady);
        let replica = WriteError::InvalidReplica {
            replica: 4,
            replication_factor: 3,
        };
        assert_eq!(replica.http_status().as_u16(), 400);
        assert_eq!(replica.to_status().code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn replication_failures_map_to_statuses_and_render_their_errors() {
        let failure = |cause, errors: &[&str]| {
            WriteError::Replication(Box::new(ReplicationFailure {
                cause,
                errors: errors.iter().map(|e| (*e).to_owned()).collect(),
            }))
        };
        let conflict = failure(FailureCause::Conflict, &["a: out of order", "b: dup"]);
        assert_eq!(conflict.http_status().as_u16(), 409);
        assert_eq!(conflict.to_status().code(), tonic::Code::AlreadyExists);
        assert_eq!(conflict.to_string(), "2 errors: a: out of order; b: dup");
        let mixed = failure(FailureCause::Unavailable, &["x"]);
        assert_eq!(mixed.http_status().as_u16(), 503);
        assert_eq!(mixed.to_status().code(), tonic::Code::Unavailable);
        assert_eq!(mixed.to_string(), "x");
        assert_eq!(mixed.class(), ErrorClass::Unavailable);
        assert_eq!(
            class_of_status(tonic::Code::AlreadyExists),
            ErrorClass::Conflict
        );
        assert_eq!(
            class_of_status(tonic::Code::Unavailable),
            ErrorClass::Unavailable
        );
        assert_eq!(
            class_of_status(tonic::Code::DeadlineExceeded),
            ErrorClass::Other
        );
    }
}
