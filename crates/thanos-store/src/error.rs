//! Error type of the store gateway and its mapping onto gRPC status codes.

use thanos_server::kind::ErrorKind;
use ulid::Ulid;

/// Result alias using [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors from syncing blocks or answering StoreAPI calls.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An object storage operation failed (outage, permissions, missing object).
    #[error("{what}: {source}")]
    Bucket {
        /// What was being done, e.g. `fetch postings of block <ulid>`.
        what: String,
        /// Underlying bucket error.
        #[source]
        source: thanos_objstore::Error,
    },
    /// Block data (index, chunks, meta.json) could not be decoded.
    #[error("block {block}: {source}")]
    Block {
        /// The block.
        block: Ulid,
        /// Underlying TSDB error.
        #[source]
        source: thanos_tsdb::Error,
    },
    /// A byte range of a block did not decode (corrupt or truncated object).
    #[error("block {block}: corrupt {file} at offset {offset}: {reason}")]
    Corrupt {
        /// The block.
        block: Ulid,
        /// File inside the block (`index`, `chunks/000001`).
        file: String,
        /// Absolute offset in that file.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A local file under `--data-dir` could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// Underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The request is invalid (bad matcher, empty label name, no matchers).
    #[error("{0}")]
    InvalidArgument(String),
    /// A per-query limit was exceeded; the query is refused before memory grows.
    #[error("{0}")]
    LimitExceeded(String),
    /// The store has not completed its initial sync.
    #[error("store gateway is not ready: initial block sync has not completed")]
    NotReady,
    /// A metric could not be registered.
    #[error("register metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// A blocking task panicked or was cancelled.
    #[error("{what}: background task failed: {reason}")]
    Task {
        /// What was being done.
        what: String,
        /// Join error text.
        reason: String,
    },
}

impl Error {
    /// Classification of the error (decides the gRPC code).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Bucket { source, .. } if source.is_not_found() => ErrorKind::Internal,
            Error::Bucket { .. } | Error::NotReady => ErrorKind::Unavailable,
            Error::InvalidArgument(_) => ErrorKind::BadRequest,
            Error::LimitExceeded(_) => ErrorKind::TooLarge,
            Error::Block { .. }
            | Error::Corrupt { .. }
            | Error::Io { .. }
            | Error::Metrics(_)
            | Error::Task { .. } => ErrorKind::Internal,
        }
    }

    /// The gRPC status reporting this error.
    pub fn to_status(&self) -> tonic::Status {
        self.kind().to_grpc_status(self.to_string())
    }

    pub(crate) fn bucket(what: impl Into<String>, source: thanos_objstore::Error) -> Self {
        Error::Bucket {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn io(path: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        e.to_status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_map_to_resource_exhausted_and_not_ready_to_unavailable() {
        let e = Error::LimitExceeded("exceeded series limit".into());
        assert_eq!(e.to_status().code(), tonic::Code::ResourceExhausted);
        assert_eq!(Error::NotReady.to_status().code(), tonic::Code::Unavailable);
        let e = Error::InvalidArgument("label name parameter cannot be empty".into());
        let s = e.to_status();
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        assert_eq!(s.message(), "label name parameter cannot be empty");
    }
}
