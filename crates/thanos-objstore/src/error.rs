//! Error type of the crate.

use std::path::PathBuf;

/// Result alias using [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors from parsing an objstore configuration, building a client or running a bucket
/// operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Neither `--objstore.config-file` nor `--objstore.config` was given (or the content is
    /// empty). Callers may treat this as "no bucket configured".
    #[error("no object storage configuration given (--objstore.config-file or --objstore.config)")]
    NotConfigured,
    /// Both `--objstore.config-file` and `--objstore.config` were given.
    #[error("--objstore.config-file and --objstore.config are mutually exclusive, both were given")]
    ConflictingFlags,
    /// The configuration file could not be read.
    #[error("read objstore config file {path}: {source}")]
    ReadConfigFile {
        /// File named by `--objstore.config-file`.
        path: PathBuf,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// The configuration references an environment variable that is not set.
    #[error("objstore config references unset environment variable {name:?}")]
    UnsetEnvVar {
        /// Name inside `$(...)`.
        name: String,
    },
    /// The YAML is malformed or does not match the expected schema (unknown keys included).
    #[error("parse objstore config yaml: {source}")]
    Yaml {
        /// YAML parser error (names the offending key and position).
        #[source]
        source: Box<serde_saphyr::Error>,
    },
    /// The top-level `type` key is missing or empty.
    #[error("objstore config: missing key type")]
    MissingType,
    /// `type` names a Thanos provider that this implementation has no client for.
    #[error(
        "objstore type {kind} is not supported; use type S3 with the provider's S3-compatible endpoint"
    )]
    UnsupportedType {
        /// The `type` value as given.
        kind: String,
    },
    /// `type` names no known provider.
    #[error("unknown objstore type {kind:?} (supported: S3, GCS, AZURE, FILESYSTEM)")]
    UnknownType {
        /// The `type` value as given.
        kind: String,
    },
    /// A required key is missing or empty.
    #[error("{provider} objstore config: missing key {key}")]
    MissingKey {
        /// Provider (`S3`, `GCS`, …).
        provider: &'static str,
        /// Key path, e.g. `bucket` or `sse_config.kms_key_id`.
        key: &'static str,
    },
    /// A key has a value that is invalid or that cannot be honoured safely.
    #[error("{provider} objstore config: invalid key {key}: {reason}")]
    InvalidKey {
        /// Provider (`S3`, `GCS`, …).
        provider: &'static str,
        /// Key path, e.g. `endpoint` or `http_config.tls_config.cert_file`.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A file named by a configuration key could not be read.
    #[error("{provider} objstore config: read file {path} of key {key}: {source}")]
    ReadKeyFile {
        /// Provider (`S3`, `GCS`, …).
        provider: &'static str,
        /// Key naming the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// The FILESYSTEM directory could not be created.
    #[error("create FILESYSTEM objstore directory {path}: {source}")]
    CreateDirectory {
        /// The `directory` key.
        path: PathBuf,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// The `object_store` client could not be built.
    #[error("build {provider} client for bucket {bucket}: {source}")]
    Build {
        /// Provider (`S3`, `GCS`, …).
        provider: &'static str,
        /// Bucket (or container, or directory).
        bucket: String,
        /// Client builder error.
        source: Box<object_store::Error>,
    },
    /// Registering the bucket metrics failed (for example twice on one registry).
    #[error("register objstore bucket metrics: {source}")]
    Metrics {
        /// Registry error.
        #[from]
        source: prometheus::Error,
    },
    /// A bucket operation failed (after retries, when the error was transient).
    #[error(
        "objstore {operation} {path} in bucket {bucket}: {}",
        error_chain(source)
    )]
    Operation {
        /// Bucket name (metrics label value).
        bucket: String,
        /// Operation label value (`get`, `upload`, …).
        operation: &'static str,
        /// Object name or listing prefix.
        path: String,
        /// Store error.
        source: Box<object_store::Error>,
    },
    /// A local file to upload could not be read.
    #[error("read local file {path} for upload: {source}")]
    LocalFile {
        /// Local file.
        path: PathBuf,
        /// Underlying I/O error.
        source: std::io::Error,
    },
}

/// Renders an error and its causes, skipping causes whose text is already shown (object_store
/// errors often embed their source), so that e.g. "connection refused" is not hidden.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

impl Error {
    /// Whether this is a bucket operation error because the object does not exist (the Thanos
    /// `IsObjNotFoundErr` check).
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::Operation { source, .. } => {
                matches!(**source, object_store::Error::NotFound { .. })
            }
            _ => false,
        }
    }
}
