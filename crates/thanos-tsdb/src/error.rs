//! The crate's error type.

use std::io;

use ulid::Ulid;

use crate::encoding::{DecodeError, DecodeErrorKind};

/// Errors reading or writing TSDB blocks. Every variant names the file it concerns;
/// errors raised inside a block are wrapped in [`Error::Block`] naming the block ULID.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file's content is corrupt or truncated.
    #[error("{file}: corrupt data at offset {offset}: {kind}")]
    Corrupt {
        /// File name (relative to the block directory when inside a block).
        file: String,
        /// Absolute offset in the file.
        offset: u64,
        /// What is wrong.
        kind: DecodeErrorKind,
    },
    /// An I/O operation failed.
    #[error("{file}: {source}")]
    Io {
        /// Path of the file or directory.
        file: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// `meta.json` is not valid JSON for a block meta.
    #[error("{file}: invalid json: {source}")]
    Json {
        /// Path of the JSON file.
        file: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A file is well-formed but its content is not acceptable (unsupported meta version,
    /// unknown chunk segment, series reference out of range, ...).
    #[error("{file}: {reason}")]
    Invalid {
        /// File name.
        file: String,
        /// What is not acceptable.
        reason: String,
    },
    /// The caller passed input that violates the format's rules (unsorted series, unknown
    /// symbol, ...); nothing on disk is wrong.
    #[error("invalid input for {file}: {reason}")]
    InvalidInput {
        /// File being written.
        file: String,
        /// Which rule was violated.
        reason: String,
    },
    /// A chunk's payload could not be decoded.
    #[error("{file}: chunk {chunk_ref:#x}: {source}")]
    Chunk {
        /// Chunk segment file (or `chunks` when the segment is unknown).
        file: String,
        /// The chunk reference.
        chunk_ref: u64,
        /// The codec error.
        #[source]
        source: thanos_model::ChunkError,
    },
    /// An error inside a block.
    #[error("block {block}: {source}")]
    Block {
        /// The block's ULID.
        block: Ulid,
        /// The underlying error.
        #[source]
        source: Box<Error>,
    },
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps a decode error with the name of the file it happened in.
    pub fn corrupt(file: impl Into<String>, e: DecodeError) -> Self {
        Self::Corrupt {
            file: file.into(),
            offset: e.offset,
            kind: e.kind,
        }
    }

    /// An I/O error on `file`.
    pub fn io(file: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            file: file.into(),
            source,
        }
    }

    /// An [`Error::Invalid`] for `file`.
    pub fn invalid(file: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            file: file.into(),
            reason: reason.into(),
        }
    }

    /// An [`Error::InvalidInput`] for `file`.
    pub fn invalid_input(file: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            file: file.into(),
            reason: reason.into(),
        }
    }

    /// Wraps this error as happening inside block `block`.
    pub fn in_block(self, block: Ulid) -> Self {
        match self {
            already @ Self::Block { .. } => already,
            other => Self::Block {
                block,
                source: Box::new(other),
            },
        }
    }

    /// The innermost error (unwraps [`Error::Block`]).
    pub fn root(&self) -> &Error {
        match self {
            Self::Block { source, .. } => source.root(),
            other => other,
        }
    }
}
