//! Group commit: many writers share one fsync.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use super::{Position, Wal, WalError, io_err};

/// Proof that records were logged; [`GroupCommitWal::wait_durable`] waits until they are
/// fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CommitTicket(u64);

struct Writer {
    wal: Wal,
    /// Number of `log` calls so far; the ticket of the latest one.
    written: u64,
}

#[derive(Default)]
struct SyncState {
    /// Every ticket up to this one is durable.
    synced: u64,
    /// A thread is running fsync right now.
    syncing: bool,
    /// An fsync failed: nothing logged afterwards can be acknowledged.
    failed: bool,
}

/// A [`Wal`] shared by concurrent writers with group commit.
///
/// Writers call [`GroupCommitWal::log`] (serialized, fast: no fsync) and then
/// [`GroupCommitWal::wait_durable`]. One waiter at a time runs fsync; it covers every record
/// logged before it started, so writers that arrive while an fsync is running are covered by
/// the next one, and one fsync acknowledges many requests. Both calls block; call them from
/// a blocking thread (for example `tokio::task::spawn_blocking`), not from async code.
pub struct GroupCommitWal {
    writer: Mutex<Writer>,
    state: Mutex<SyncState>,
    synced_cv: Condvar,
    syncs: AtomicU64,
}

impl std::fmt::Debug for GroupCommitWal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommitWal")
            .field("syncs", &self.syncs.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl GroupCommitWal {
    /// Wraps an open writer.
    pub fn new(wal: Wal) -> Self {
        Self {
            writer: Mutex::new(Writer { wal, written: 0 }),
            state: Mutex::new(SyncState::default()),
            synced_cv: Condvar::new(),
            syncs: AtomicU64::new(0),
        }
    }

    fn writer(&self) -> Result<MutexGuard<'_, Writer>, WalError> {
        self.writer.lock().map_err(|e| WalError::Poisoned {
            dir: e.into_inner().wal.dir.clone(),
        })
    }

    fn state(&self) -> Result<MutexGuard<'_, SyncState>, WalError> {
        match self.state.lock() {
            Ok(g) => Ok(g),
            Err(_) => Err(self.poisoned()),
        }
    }

    fn poisoned(&self) -> WalError {
        let dir = match self.writer.lock() {
            Ok(w) => w.wal.dir.clone(),
            Err(e) => e.into_inner().wal.dir.clone(),
        };
        WalError::Poisoned { dir }
    }

    /// Logs records (see [`Wal::log`]) and returns the ticket to wait for.
    pub fn log<R: AsRef<[u8]>>(&self, records: &[R]) -> Result<CommitTicket, WalError> {
        let mut w = self.writer()?;
        w.wal.log(records)?;
        w.written += 1;
        Ok(CommitTicket(w.written))
    }

    /// Blocks until the records of `ticket` are durable, running an fsync if no other
    /// thread is.
    pub fn wait_durable(&self, ticket: CommitTicket) -> Result<(), WalError> {
        let mut st = self.state()?;
        loop {
            if st.synced >= ticket.0 {
                return Ok(());
            }
            if st.failed {
                drop(st);
                return Err(self.poisoned());
            }
            if st.syncing {
                st = self.synced_cv.wait(st).map_err(|_| WalError::Poisoned {
                    dir: std::path::PathBuf::new(),
                })?;
                continue;
            }
            st.syncing = true;
            drop(st);
            let res = self.sync_now();
            st = self.state()?;
            st.syncing = false;
            match res {
                Ok(covered) => st.synced = st.synced.max(covered),
                Err(e) => {
                    st.failed = true;
                    self.synced_cv.notify_all();
                    return Err(e);
                }
            }
            self.synced_cv.notify_all();
        }
    }

    /// Logs records and waits until they are durable.
    pub fn log_durable<R: AsRef<[u8]>>(&self, records: &[R]) -> Result<(), WalError> {
        let ticket = self.log(records)?;
        self.wait_durable(ticket)
    }

    /// Fsyncs the active segment without holding the writer lock; returns the last ticket
    /// covered. Earlier segments were fsynced when they were closed.
    fn sync_now(&self) -> Result<u64, WalError> {
        let (file, path, covered) = {
            let w = self.writer()?;
            let file = w
                .wal
                .file
                .try_clone()
                .map_err(io_err("duplicate segment handle", &w.wal.path))?;
            (file, w.wal.path.clone(), w.written)
        };
        file.sync_data().map_err(io_err("fsync segment", &path))?;
        self.syncs.fetch_add(1, Ordering::Relaxed);
        Ok(covered)
    }

    /// Number of fsyncs run by [`GroupCommitWal::wait_durable`] so far.
    pub fn sync_count(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// See [`Wal::cut`].
    pub fn cut(&self) -> Result<u32, WalError> {
        self.writer()?.wal.cut()
    }

    /// See [`Wal::position`].
    pub fn position(&self) -> Result<Position, WalError> {
        Ok(self.writer()?.wal.position())
    }

    /// Unwraps the writer (for example to [`Wal::close`] it).
    pub fn into_inner(self) -> Result<Wal, WalError> {
        self.writer
            .into_inner()
            .map(|w| w.wal)
            .map_err(|e| WalError::Poisoned {
                dir: e.into_inner().wal.dir,
            })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::wlog::{Compression, WalOptions, WalReader};

    #[test]
    fn one_fsync_covers_earlier_tickets() {
        let tmp = tempfile::tempdir().unwrap();
        let g = GroupCommitWal::new(Wal::open(tmp.path(), WalOptions::default()).unwrap());
        let t1 = g.log(&[b"a"]).unwrap();
        let t2 = g.log(&[b"b"]).unwrap();
        let t3 = g.log(&[b"c"]).unwrap();
        assert!(t1 < t2 && t2 < t3);
        g.wait_durable(t3).unwrap();
        g.wait_durable(t1).unwrap();
        g.wait_durable(t2).unwrap();
        assert_eq!(g.sync_count(), 1);
        let t4 = g.log(&[b"d"]).unwrap();
        g.wait_durable(t4).unwrap();
        assert_eq!(g.sync_count(), 2);
    }

    #[test]
    fn concurrent_writers_all_land() {
        let tmp = tempfile::tempdir().unwrap();
        let opts = WalOptions {
            segment_size: 2 * crate::wlog::PAGE_SIZE,
            compression: Compression::Snappy,
        };
        let g = Arc::new(GroupCommitWal::new(Wal::open(tmp.path(), opts).unwrap()));
        let handles: Vec<_> = (0..4u8)
            .map(|t| {
                let g = Arc::clone(&g);
                std::thread::spawn(move || {
                    for i in 0..50u8 {
                        g.log_durable(&[vec![t, i, 0, 0, 0, 0, 0, 0, 0, 0]])
                            .unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert!(g.sync_count() <= 200);
        let wal = Arc::try_unwrap(g).unwrap().into_inner().unwrap();
        wal.close().unwrap();
        let mut r = WalReader::open(tmp.path()).unwrap();
        let mut seen = std::collections::HashSet::new();
        while let Some(rec) = r.next_record().unwrap() {
            assert!(seen.insert((rec[0], rec[1])));
        }
        assert_eq!(seen.len(), 200);
    }
}
