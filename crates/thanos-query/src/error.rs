//! Errors of the querier, each classified into an [`ErrorKind`].

use std::time::Duration;

use thanos_server::ErrorKind;

/// An error from endpoint handling, the proxy or series decoding.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// An endpoint address cannot be turned into a gRPC endpoint.
    #[error("endpoint {address}: {source}")]
    Endpoint {
        /// The configured address.
        address: String,
        /// The underlying error.
        source: thanos_server::Error,
    },
    /// An endpoint spec cannot be parsed.
    #[error("invalid endpoint {spec:?}: {reason}")]
    InvalidSpec {
        /// The spec as configured.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A DNS lookup for an endpoint spec failed.
    #[error("dns lookup of {name}: {message}")]
    Dns {
        /// The name looked up.
        name: String,
        /// The resolver's error.
        message: String,
    },
    /// The endpoint SD config cannot be read or parsed.
    #[error("endpoint sd config {origin}: {message}")]
    SdConfig {
        /// Where the config comes from (file path or `--endpoint.sd-config`).
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// A metric could not be registered.
    #[error("registering metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// No endpoint is configured and the partial response strategy is ABORT.
    #[error("No StoreAPIs available")]
    NoStores,
    /// A store answered with a gRPC error.
    #[error("receive series from {address}: {message}")]
    Store {
        /// Store address.
        address: String,
        /// gRPC code of the answer.
        code: tonic::Code,
        /// gRPC message of the answer.
        message: String,
    },
    /// A store sent no frame within the per-store deadline or response timeout.
    #[error("failed to receive any data in {timeout:?} from {address}")]
    StoreTimeout {
        /// Store address.
        address: String,
        /// How long the proxy waited.
        timeout: Duration,
    },
    /// A store sent a warning frame while partial responses are disabled.
    #[error("warning from {address}: {message}")]
    StoreWarning {
        /// Store address.
        address: String,
        /// The warning text.
        message: String,
    },
    /// A store sent a series whose labels are not a valid label set.
    #[error("invalid series labels from {address}: {source}")]
    InvalidLabels {
        /// Store address.
        address: String,
        /// Why the labels are invalid.
        source: thanos_model::ModelError,
    },
    /// A chunk of a series could not be decoded.
    #[error("decoding chunk of series {labels}: {source}")]
    Chunk {
        /// The series labels.
        labels: String,
        /// The decoder's error.
        source: thanos_model::ChunkError,
    },
    /// A label matcher from a request is invalid.
    #[error("invalid matcher: {0}")]
    Matcher(#[from] thanos_model::ModelError),
    /// A per-query limit was exceeded.
    #[error("exceeded {what} limit: the query fetches more than {limit} {what}")]
    Limit {
        /// What was counted (`series`, `chunk bytes`).
        what: &'static str,
        /// The configured limit.
        limit: usize,
    },
    /// A StoreAPI matcher cannot be decoded.
    #[error(transparent)]
    WireMatcher(#[from] thanos_proto::storepb::MatcherError),
    /// A blocking decode task panicked or was cancelled.
    #[error("decode task: {0}")]
    Task(String),
}

impl QueryError {
    /// The kind deciding HTTP status, gRPC code and Prometheus `errorType`.
    ///
    /// Store failures are execution errors (422) like Thanos reports them, except timeouts
    /// (503 `timeout`) and invalid requests (400).
    pub fn kind(&self) -> ErrorKind {
        match self {
            QueryError::Endpoint { .. }
            | QueryError::InvalidSpec { .. }
            | QueryError::SdConfig { .. }
            | QueryError::Matcher(_)
            | QueryError::WireMatcher(_) => ErrorKind::BadRequest,
            QueryError::Metrics(_) | QueryError::Task(_) | QueryError::Dns { .. } => {
                ErrorKind::Internal
            }
            QueryError::StoreTimeout { .. } => ErrorKind::DeadlineExceeded,
            QueryError::Store { code, .. } => match code {
                tonic::Code::DeadlineExceeded => ErrorKind::DeadlineExceeded,
                tonic::Code::InvalidArgument => ErrorKind::BadRequest,
                tonic::Code::Cancelled => ErrorKind::Cancelled,
                _ => ErrorKind::Unprocessable,
            },
            QueryError::NoStores
            | QueryError::Limit { .. }
            | QueryError::StoreWarning { .. }
            | QueryError::InvalidLabels { .. }
            | QueryError::Chunk { .. } => ErrorKind::Unprocessable,
        }
    }

    /// The gRPC status a proxy answers with: `Aborted` for store failures under ABORT,
    /// `ResourceExhausted` when a store hit a limit (storeapi.md §4 item 5).
    pub fn to_status(&self) -> tonic::Status {
        let msg = self.to_string();
        match self {
            QueryError::Store {
                code: tonic::Code::ResourceExhausted,
                ..
            } => tonic::Status::resource_exhausted(msg),
            QueryError::Store { .. }
            | QueryError::StoreTimeout { .. }
            | QueryError::StoreWarning { .. }
            | QueryError::NoStores => tonic::Status::aborted(msg),
            other => other.kind().to_grpc_status(msg),
        }
    }
}
