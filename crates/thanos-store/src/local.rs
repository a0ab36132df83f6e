//! Direct reads for FILESYSTEM buckets: the block files already sit on a local disk, so
//! instead of one open + read (through `object_store`'s blocking pool) per range request,
//! each block's index and chunk segments are memory-mapped once at load and ranges are
//! sliced out of the mappings without copying.

use std::path::Path;

use bytes::Bytes;
use thanos_tsdb::fsutil::FileBytes;

/// Memory-maps `path` when it exists with exactly `size` bytes (the size the bucket
/// listed), as zero-copy [`Bytes`]; `None` otherwise, and the caller reads through the
/// bucket. Block files are immutable and a FILESYSTEM bucket replaces objects by
/// renaming new files into place, so a mapping never sees a file change under it.
pub(crate) fn map_file(path: &Path, size: u64) -> Option<Bytes> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.len() != size {
        tracing::debug!(path = %path.display(), listed = size, local = meta.len(), "local file size differs from the bucket listing");
        return None;
    }
    match FileBytes::open(path) {
        Ok(data) => Some(Bytes::from_owner(data)),
        Err(err) => {
            tracing::debug!(path = %path.display(), err = %err, "cannot map local block file");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_checks_the_listed_size() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"hello").unwrap();
        let b = map_file(&p, 5).unwrap();
        assert_eq!(&b[1..3], b"el");
        assert!(map_file(&p, 6).is_none());
        assert!(map_file(&dir.path().join("missing"), 5).is_none());
    }
}
