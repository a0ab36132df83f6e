//! The project-wide error classification.
//!
//! Every error that crosses an API boundary (HTTP handler, gRPC method, remote-write
//! response, peer forward) is classified into one [`ErrorKind`]. The kind alone decides the
//! HTTP status code, the gRPC code and the Prometheus API `errorType`, so the three
//! protocols never disagree about an error. Crate error types expose a `kind()` method and
//! the edges call [`ErrorKind::http_status`] / [`ErrorKind::grpc_code`].
//!
//! Why this matters for compatibility:
//! * Prometheus remote-write senders retry 5xx, drop data on 4xx and retry 429 only when
//!   configured to; so [`ErrorKind::Conflict`] (out-of-order, duplicate sample, …) must be
//!   409 and never 5xx, while [`ErrorKind::Unavailable`] must be 503 (components.md §3.4).
//! * Receive peers speak gRPC: `AlreadyExists` from a peer is a conflict, `Unavailable` is a
//!   retryable failure; [`ErrorKind::from_grpc_code`] is the inverse used when classifying
//!   replies from other receivers.
//! * The query API reports `errorType` (`bad_data` → 400, `execution` → 422,
//!   `timeout`/`canceled` → 503, `internal` → 500; http-api.md).

use std::fmt;

/// Classification of an error, independent of the protocol that reports it.
///
/// | kind | HTTP | gRPC | Prometheus `errorType` |
/// |---|---|---|---|
/// | `BadRequest` | 400 | `InvalidArgument` | `bad_data` |
/// | `Unauthenticated` | 401 | `Unauthenticated` | `bad_data` |
/// | `PermissionDenied` | 403 | `PermissionDenied` | `bad_data` |
/// | `NotFound` | 404 | `NotFound` | `not_found` |
/// | `Conflict` | 409 | `AlreadyExists` | `bad_data` |
/// | `TooLarge` | 413 | `ResourceExhausted` | `bad_data` |
/// | `UnsupportedMediaType` | 415 | `InvalidArgument` | `bad_data` |
/// | `Unprocessable` | 422 | `FailedPrecondition` | `execution` |
/// | `TooManyRequests` | 429 | `ResourceExhausted` | `unavailable` |
/// | `Internal` | 500 | `Internal` | `internal` |
/// | `Unimplemented` | 501 | `Unimplemented` | `internal` |
/// | `Unavailable` | 503 | `Unavailable` | `unavailable` |
/// | `Cancelled` | 503 | `Cancelled` | `canceled` |
/// | `DeadlineExceeded` | 503 | `DeadlineExceeded` | `timeout` |
///
/// `Cancelled` and `DeadlineExceeded` map to 503 like the Prometheus API does
/// (`canceled`/`timeout` → 503), so remote-write senders retry them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request is malformed or invalid (bad parameter, corrupt body, invalid sample).
    /// Never retried.
    BadRequest,
    /// Credentials are missing or wrong.
    Unauthenticated,
    /// Credentials are valid but do not allow this operation.
    PermissionDenied,
    /// The addressed resource (block, tenant, endpoint, label) does not exist.
    NotFound,
    /// The write conflicts with stored data: out-of-order or duplicate sample, out of
    /// bounds, too old, invalid labels; also "already exists". Never retried.
    Conflict,
    /// The request exceeds a size or count limit (body size, series/samples per request).
    TooLarge,
    /// The body's content type or encoding is not supported (remote write 2.0 requires 415
    /// here; gRPC has no such class, so it travels as `InvalidArgument`). Never retried.
    UnsupportedMediaType,
    /// The request is well-formed but cannot be executed (PromQL execution error).
    Unprocessable,
    /// A rate or active-series limit was hit; the sender may retry later.
    TooManyRequests,
    /// A bug or unexpected failure on our side.
    Internal,
    /// The operation is not supported by this component.
    Unimplemented,
    /// A dependency or peer is unavailable, or the component is not ready; retry.
    Unavailable,
    /// The caller cancelled the operation.
    Cancelled,
    /// The operation ran out of time.
    DeadlineExceeded,
}

impl ErrorKind {
    /// Every kind, for exhaustive tests and documentation.
    pub const ALL: [ErrorKind; 14] = [
        ErrorKind::BadRequest,
        ErrorKind::Unauthenticated,
        ErrorKind::PermissionDenied,
        ErrorKind::NotFound,
        ErrorKind::Conflict,
        ErrorKind::TooLarge,
        ErrorKind::UnsupportedMediaType,
        ErrorKind::Unprocessable,
        ErrorKind::TooManyRequests,
        ErrorKind::Internal,
        ErrorKind::Unimplemented,
        ErrorKind::Unavailable,
        ErrorKind::Cancelled,
        ErrorKind::DeadlineExceeded,
    ];

    /// The HTTP status code this kind is reported with.
    pub fn http_status(self) -> http::StatusCode {
        use http::StatusCode as S;
        match self {
            ErrorKind::BadRequest => S::BAD_REQUEST,
            ErrorKind::Unauthenticated => S::UNAUTHORIZED,
            ErrorKind::PermissionDenied => S::FORBIDDEN,
            ErrorKind::NotFound => S::NOT_FOUND,
            ErrorKind::Conflict => S::CONFLICT,
            ErrorKind::TooLarge => S::PAYLOAD_TOO_LARGE,
            ErrorKind::UnsupportedMediaType => S::UNSUPPORTED_MEDIA_TYPE,
            ErrorKind::Unprocessable => S::UNPROCESSABLE_ENTITY,
            ErrorKind::TooManyRequests => S::TOO_MANY_REQUESTS,
            ErrorKind::Internal => S::INTERNAL_SERVER_ERROR,
            ErrorKind::Unimplemented => S::NOT_IMPLEMENTED,
            ErrorKind::Unavailable | ErrorKind::Cancelled | ErrorKind::DeadlineExceeded => {
                S::SERVICE_UNAVAILABLE
            }
        }
    }

    /// The gRPC status code this kind is reported with.
    pub fn grpc_code(self) -> tonic::Code {
        use tonic::Code as C;
        match self {
            ErrorKind::BadRequest | ErrorKind::UnsupportedMediaType => C::InvalidArgument,
            ErrorKind::Unauthenticated => C::Unauthenticated,
            ErrorKind::PermissionDenied => C::PermissionDenied,
            ErrorKind::NotFound => C::NotFound,
            ErrorKind::Conflict => C::AlreadyExists,
            ErrorKind::TooLarge | ErrorKind::TooManyRequests => C::ResourceExhausted,
            ErrorKind::Unprocessable => C::FailedPrecondition,
            ErrorKind::Internal => C::Internal,
            ErrorKind::Unimplemented => C::Unimplemented,
            ErrorKind::Unavailable => C::Unavailable,
            ErrorKind::Cancelled => C::Cancelled,
            ErrorKind::DeadlineExceeded => C::DeadlineExceeded,
        }
    }

    /// The Prometheus HTTP API `errorType` string for this kind.
    pub fn prometheus_error_type(self) -> &'static str {
        match self {
            ErrorKind::BadRequest
            | ErrorKind::Unauthenticated
            | ErrorKind::PermissionDenied
            | ErrorKind::Conflict
            | ErrorKind::TooLarge
            | ErrorKind::UnsupportedMediaType => "bad_data",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Unprocessable => "execution",
            ErrorKind::TooManyRequests | ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal | ErrorKind::Unimplemented => "internal",
            ErrorKind::Cancelled => "canceled",
            ErrorKind::DeadlineExceeded => "timeout",
        }
    }

    /// Classifies a gRPC status received from a peer (e.g. a receiver answering a forwarded
    /// write). `ResourceExhausted` is read as [`ErrorKind::TooManyRequests`]; codes without
    /// a better match (`Unknown`, `DataLoss`, `Aborted`, `OutOfRange`) become `Internal`.
    pub fn from_grpc_code(code: tonic::Code) -> ErrorKind {
        use tonic::Code as C;
        match code {
            C::InvalidArgument => ErrorKind::BadRequest,
            C::Unauthenticated => ErrorKind::Unauthenticated,
            C::PermissionDenied => ErrorKind::PermissionDenied,
            C::NotFound => ErrorKind::NotFound,
            C::AlreadyExists => ErrorKind::Conflict,
            C::ResourceExhausted => ErrorKind::TooManyRequests,
            C::FailedPrecondition => ErrorKind::Unprocessable,
            C::Unimplemented => ErrorKind::Unimplemented,
            C::Unavailable => ErrorKind::Unavailable,
            C::Cancelled => ErrorKind::Cancelled,
            C::DeadlineExceeded => ErrorKind::DeadlineExceeded,
            C::Ok | C::Unknown | C::Aborted | C::OutOfRange | C::Internal | C::DataLoss => {
                ErrorKind::Internal
            }
        }
    }

    /// Whether a client may retry an operation that failed with this kind: exactly the kinds
    /// Prometheus remote-write senders retry, i.e. every kind reported as 5xx, plus 429.
    pub fn is_retryable(self) -> bool {
        let status = self.http_status();
        status.is_server_error() || status == http::StatusCode::TOO_MANY_REQUESTS
    }

    /// Builds a `tonic::Status` of this kind with the given message.
    pub fn to_grpc_status(self, message: impl Into<String>) -> tonic::Status {
        tonic::Status::new(self.grpc_code(), message)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            ErrorKind::BadRequest => "bad request",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::NotFound => "not found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::TooLarge => "too large",
            ErrorKind::UnsupportedMediaType => "unsupported media type",
            ErrorKind::Unprocessable => "unprocessable",
            ErrorKind::TooManyRequests => "too many requests",
            ErrorKind::Internal => "internal",
            ErrorKind::Unimplemented => "unimplemented",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::DeadlineExceeded => "deadline exceeded",
        };
        f.write_str(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_write_codes_match_the_spec() {
        // components.md §3.4: conflict → 409/AlreadyExists, unavailable → 503/Unavailable,
        // bad request → 400/InvalidArgument, anything else → 500/Internal, limits → 413/429.
        let expected = [
            (ErrorKind::Conflict, 409, tonic::Code::AlreadyExists),
            (ErrorKind::Unavailable, 503, tonic::Code::Unavailable),
            (ErrorKind::BadRequest, 400, tonic::Code::InvalidArgument),
            (ErrorKind::Internal, 500, tonic::Code::Internal),
            (ErrorKind::TooLarge, 413, tonic::Code::ResourceExhausted),
            (
                ErrorKind::UnsupportedMediaType,
                415,
                tonic::Code::InvalidArgument,
            ),
            (
                ErrorKind::TooManyRequests,
                429,
                tonic::Code::ResourceExhausted,
            ),
            (ErrorKind::NotFound, 404, tonic::Code::NotFound),
            (
                ErrorKind::Unprocessable,
                422,
                tonic::Code::FailedPrecondition,
            ),
            (ErrorKind::Cancelled, 503, tonic::Code::Cancelled),
            (
                ErrorKind::DeadlineExceeded,
                503,
                tonic::Code::DeadlineExceeded,
            ),
        ];
        for (kind, status, code) in expected {
            assert_eq!(kind.http_status().as_u16(), status, "{kind}");
            assert_eq!(kind.grpc_code(), code, "{kind}");
        }
    }

    #[test]
    fn grpc_round_trip_is_stable() {
        for kind in ErrorKind::ALL {
            let back = ErrorKind::from_grpc_code(kind.grpc_code());
            // TooLarge and TooManyRequests share ResourceExhausted, UnsupportedMediaType and
            // BadRequest share InvalidArgument; everything else is exact.
            if kind == ErrorKind::TooLarge {
                assert_eq!(back, ErrorKind::TooManyRequests);
            } else if kind == ErrorKind::UnsupportedMediaType {
                assert_eq!(back, ErrorKind::BadRequest);
            } else {
                assert_eq!(back, kind, "{kind}");
            }
            assert_eq!(kind.to_grpc_status("x").code(), kind.grpc_code());
        }
        assert_eq!(
            ErrorKind::from_grpc_code(tonic::Code::Unknown),
            ErrorKind::Internal
        );
    }

    #[test]
    fn only_server_errors_and_429_are_retryable() {
        let retryable: Vec<_> = ErrorKind::ALL
            .into_iter()
            .filter(|kind| kind.is_retryable())
            .collect();
        assert_eq!(
            retryable,
            [
                ErrorKind::TooManyRequests,
                ErrorKind::Internal,
                ErrorKind::Unimplemented,
                ErrorKind::Unavailable,
                ErrorKind::Cancelled,
                ErrorKind::DeadlineExceeded
            ]
        );
        assert!(!ErrorKind::Conflict.is_retryable());
    }

    #[test]
    fn prometheus_error_types() {
        assert_eq!(ErrorKind::BadRequest.prometheus_error_type(), "bad_data");
        assert_eq!(
            ErrorKind::Unprocessable.prometheus_error_type(),
            "execution"
        );
        assert_eq!(
            ErrorKind::DeadlineExceeded.prometheus_error_type(),
            "timeout"
        );
        assert_eq!(ErrorKind::Cancelled.prometheus_error_type(), "canceled");
        assert_eq!(ErrorKind::Internal.prometheus_error_type(), "internal");
    }
}
