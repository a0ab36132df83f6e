//! Errors of this crate.

use std::path::PathBuf;

use crate::kind::ErrorKind;

/// Boxed error used for shutdown hooks and server tasks supplied by components.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors raised while configuring or running servers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file named by a flag or config could not be read.
    #[error("read {what} {path}")]
    ReadFile {
        /// What the file holds (e.g. "TLS certificate").
        what: &'static str,
        /// The file path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// PEM data could not be decoded or held nothing usable.
    #[error("decode {what} from {origin}: {message}")]
    Pem {
        /// What was expected (e.g. "private key").
        what: &'static str,
        /// File path or "inline config".
        origin: String,
        /// What went wrong.
        message: String,
    },
    /// A TLS setting is invalid or unsupported.
    #[error("invalid TLS configuration: {0}")]
    TlsConfig(String),
    /// rustls refused the certificate, key or settings.
    #[error("build TLS configuration")]
    Rustls(#[from] rustls::Error),
    /// The client-CA verifier could not be built.
    #[error("build client certificate verifier")]
    ClientVerifier(#[from] rustls::server::VerifierBuilderError),
    /// The `--http.config` web config file is invalid.
    #[error("parse web config {path}: {message}")]
    WebConfig {
        /// The file path.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A listener could not be bound.
    #[error("listen on {address}")]
    Bind {
        /// The address from the flag.
        address: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("serve gRPC on {address}")]
    Grpc {
        /// The listen address.
        address: String,
        /// The transport error.
        #[source]
        source: tonic::transport::Error,
    },
    /// A gRPC client endpoint address is invalid.
    #[error("invalid gRPC endpoint {endpoint}")]
    Endpoint {
        /// The endpoint as given.
        endpoint: String,
        /// The parse error.
        #[source]
        source: tonic::transport::Error,
    },
    /// Metrics could not be registered.
    #[error("register metrics")]
    Metrics(#[from] prometheus::Error),
    /// A named run-group task or shutdown hook failed.
    #[error("{name}")]
    Task {
        /// Task or hook name.
        name: String,
        /// Its error.
        #[source]
        source: BoxError,
    },
    /// A named run-group task stopped although no shutdown was requested.
    #[error("{name} exited unexpectedly")]
    TaskExited {
        /// Task name.
        name: String,
    },
    /// Waiting for a shutdown signal failed.
    #[error("install signal handler")]
    Signal(#[source] std::io::Error),
}

impl Error {
    /// Classification of this error (all configuration errors are bad requests; runtime
    /// failures are internal or unavailable).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::ReadFile { .. }
            | Error::Pem { .. }
            | Error::TlsConfig(_)
            | Error::Rustls(_)
            | Error::ClientVerifier(_)
            | Error::WebConfig { .. }
            | Error::Endpoint { .. } => ErrorKind::BadRequest,
            Error::Bind { .. } | Error::Grpc { .. } => ErrorKind::Unavailable,
            Error::Metrics(_)
            | Error::Task { .. }
            | Error::TaskExited { .. }
            | Error::Signal(_) => ErrorKind::Internal,
        }
    }
}
