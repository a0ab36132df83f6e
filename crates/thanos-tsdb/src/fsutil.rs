//! File helpers: read-only byte sources (mmap or owned) and synced writes.

use std::fs::File;
use std::io::Write;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use memmap2::Mmap;

use crate::error::{Error, Result};

/// Immutable bytes of a file: memory-mapped, or owned (e.g. fetched from object storage).
#[derive(Clone)]
pub struct FileBytes(Repr);

#[derive(Clone)]
enum Repr {
    Mmap(Arc<Mmap>),
    Owned(Arc<[u8]>),
}

impl FileBytes {
    /// Memory-maps `path` read-only. Empty files are represented without a mapping.
    ///
    /// The file must not be modified while mapped; blocks are immutable once written.
    pub fn open(path: &Path) -> Result<Self> {
        let name = path.display().to_string();
        let f = File::open(path).map_err(|e| Error::io(&name, e))?;
        let len = f.metadata().map_err(|e| Error::io(&name, e))?.len();
        if len == 0 {
            return Ok(Self::from_vec(Vec::new()));
        }
        // SAFETY: block files are immutable after creation (written to a temporary
        // directory and renamed into place); nothing truncates them while we read.
        let map = unsafe { Mmap::map(&f) }.map_err(|e| Error::io(&name, e))?;
        Ok(Self(Repr::Mmap(Arc::new(map))))
    }

    /// Wraps owned bytes.
    pub fn from_vec(v: Vec<u8>) -> Self {
        Self(Repr::Owned(v.into()))
    }
}

impl Deref for FileBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.0 {
            Repr::Mmap(m) => m,
            Repr::Owned(v) => v,
        }
    }
}

impl AsRef<[u8]> for FileBytes {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl From<Vec<u8>> for FileBytes {
    fn from(v: Vec<u8>) -> Self {
        Self::from_vec(v)
    }
}

impl std::fmt::Debug for FileBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileBytes")
            .field("len", &self.len())
            .finish()
    }
}

/// Creates `path` with `data` and fsyncs it.
pub(crate) fn write_file_synced(path: &Path, data: &[u8]) -> Result<()> {
    let name = path.display().to_string();
    let mut f = File::create(path).map_err(|e| Error::io(&name, e))?;
    f.write_all(data).map_err(|e| Error::io(&name, e))?;
    f.sync_all().map_err(|e| Error::io(&name, e))
}

/// Fsyncs a directory so that renames and new entries in it are durable.
pub(crate) fn sync_dir(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(path.display().to_string(), e))
}
