//! The crate's error type.

use std::io;
use std::path::PathBuf;

use ulid::Ulid;

/// Errors of a shipper sync. Every variant names the block and/or the path it concerns.
#[derive(Debug, thiserror::Error)]
pub enum ShipperError {
    /// The TSDB directory (or a block directory inside it) could not be listed.
    #[error("list directory {}: {source}", path.display())]
    ListDir {
        /// Directory being listed.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A block directory has no readable or valid `meta.json`.
    #[error("read meta.json of block {block} in {}: {source}", path.display())]
    CorruptBlock {
        /// ULID of the block (its directory name).
        block: Ulid,
        /// The block directory.
        path: PathBuf,
        /// Why the meta could not be read.
        #[source]
        source: thanos_tsdb::Error,
    },
    /// The progress file `thanos.shipper.json` exists but cannot be read or parsed.
    #[error("read progress file {}: {reason}", path.display())]
    ReadProgress {
        /// Path of the progress file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The progress file could not be written.
    #[error("write progress file {}: {source}", path.display())]
    WriteProgress {
        /// Path of the progress file (or its temporary sibling).
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// Hard-linking or reading a block's files in the upload directory failed.
    #[error("prepare upload of block {block} at {}: {source}", path.display())]
    Prepare {
        /// ULID of the block.
        block: Ulid,
        /// The file or directory concerned.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The rewritten `meta.json` could not be written into the upload directory.
    #[error("write meta.json of block {block} for upload: {source}")]
    WriteMeta {
        /// ULID of the block.
        block: Ulid,
        /// The write error.
        #[source]
        source: thanos_tsdb::Error,
    },
    /// The external labels are empty; Thanos refuses to upload such blocks.
    #[error("upload block {block}: empty external labels are not allowed for thanos blocks")]
    EmptyLabels {
        /// ULID of the block.
        block: Ulid,
    },
    /// Checking whether the block is already in the bucket failed.
    #[error("check whether block {block} exists in the bucket: {source}")]
    CheckExists {
        /// ULID of the block.
        block: Ulid,
        /// The bucket error.
        #[source]
        source: thanos_objstore::Error,
    },
    /// Uploading one object of a block failed.
    #[error("upload {object} of block {block}: {source}")]
    Upload {
        /// ULID of the block.
        block: Ulid,
        /// Object path inside the bucket (`<ULID>/index`, ...).
        object: String,
        /// The bucket error.
        #[source]
        source: thanos_objstore::Error,
    },
    /// A blocking filesystem task panicked or was cancelled.
    #[error("filesystem task on {}: {source}", path.display())]
    Task {
        /// Directory the task worked on.
        path: PathBuf,
        /// The join error.
        #[source]
        source: tokio::task::JoinError,
    },
}

impl ShipperError {
    /// The block the error concerns, when there is one.
    pub fn block(&self) -> Option<Ulid> {
        match self {
            ShipperError::CorruptBlock { block, .. }
            | ShipperError::Prepare { block, .. }
            | ShipperError::WriteMeta { block, .. }
            | ShipperError::EmptyLabels { block }
            | ShipperError::CheckExists { block, .. }
            | ShipperError::Upload { block, .. } => Some(*block),
            ShipperError::ListDir { .. }
            | ShipperError::ReadProgress { .. }
            | ShipperError::WriteProgress { .. }
            | ShipperError::Task { .. } => None,
        }
    }
}
