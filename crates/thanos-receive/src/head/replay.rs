//! WAL replay straight into series handles, sharded over worker threads (the head side of
//! Prometheus's `Head.loadWAL`).
//!
//! The thread reading the WAL feeds a [`ReplaySink`]: a series record creates (or finds)
//! the series once and maps its WAL reference to a slot in one worker's table; a samples
//! record is split by that mapping into per-worker batches. Workers append to the series
//! in their table by slot index, so replaying a sample costs one reference lookup on the
//! reading thread and no label work at all. Workers sort a window of samples by series
//! (stably) before appending, so each series' memory is touched once per window rather
//! than once per sample. A series belongs to exactly one worker (chosen by its head ID,
//! so two WAL references for one label set land on the same worker), and each worker
//! appends every series' samples in log order: the head and the counts are the same
//! whatever the number of workers.
//!
//! Native histogram samples take the same route, in messages of their own kind: before a
//! float sample is queued behind histograms of the same worker (or the other way round)
//! the pending message is sent, and a worker appends the floats it holds before the
//! histograms of a message, so every series still sees its samples in log order.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use thanos_model::{Labels, Sample};
use thanos_wal::record::RefSample;

use super::{Appended, Head, MemSeries};
use crate::error::Reason;
use crate::histogram::HistogramValue;

/// Samples (or new series) per message to a worker.
const BATCH: usize = 4096;
/// Messages queued per worker before the reading thread waits.
const QUEUE: usize = 8;
/// Samples a worker collects before sorting them by series and appending them (small in
/// unit tests, so that they replay across many windows).
const WINDOW: usize = if cfg!(test) { 300 } else { 1 << 19 };
/// Upper bound on replay workers.
const MAX_WORKERS: usize = 64;

/// Hasher for maps keyed by series references: a multiply-xorshift mix, so sequential
/// references spread over the whole table (an identity hash would not).
#[derive(Default)]
struct RefHasher(u64);

impl Hasher for RefHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(self.0.rotate_left(8) ^ u64::from(b));
        }
    }
    fn write_u64(&mut self, v: u64) {
        let x = (v ^ (v >> 31)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        self.0 = x ^ (x >> 29);
    }
}

type RefMap<V> = HashMap<u64, V, BuildHasherDefault<RefHasher>>;

/// Where a series lives during replay: its worker and its slot in that worker's table.
#[derive(Clone, Copy)]
struct Slot {
    worker: u32,
    index: u32,
}

impl Slot {
    /// Marks an unused entry of [`SlotIndex`]'s dense table.
    const NONE: Slot = Slot {
        worker: u32::MAX,
        index: u32::MAX,
    };
}

/// WAL reference → slot. References are usually small and dense (Prometheus and this
/// head number series from 1), so they index a table directly; references far beyond
/// the number of series seen (a log after heavy churn) go to a hash map instead.
#[derive(Default)]
struct SlotIndex {
    dense: Vec<Slot>,
    sparse: RefMap<Slot>,
    len: usize,
}

impl SlotIndex {
    /// Largest dense table, in entries (8 bytes each).
    const MAX_DENSE: usize = 1 << 26;

    fn insert(&mut self, wal_ref: u64, slot: Slot) {
        self.len += 1;
        if let Ok(i) = usize::try_from(wal_ref) {
            if i >= self.dense.len() && i < (4 * self.len + 65_536).min(Self::MAX_DENSE) {
                let grown = (i + 1).max(2 * self.dense.len()).min(Self::MAX_DENSE);
                self.dense.resize(grown, Slot::NONE);
            }
            if let Some(entry) = self.dense.get_mut(i) {
                *entry = slot;
                return;
            }
        }
        self.sparse.insert(wal_ref, slot);
    }

    fn get(&self, wal_ref: u64) -> Option<Slot> {
        match usize::try_from(wal_ref)
            .ok()
            .and_then(|i| self.dense.get(i))
        {
            Some(slot) if slot.worker != Slot::NONE.worker => Some(*slot),
            // Inserted before the dense table grew over it, or never seen.
            _ if self.sparse.is_empty() => None,
            _ => self.sparse.get(&wal_ref).copied(),
        }
    }
}

/// A histogram sample routed to a worker: slot index, timestamp, value.
struct SlotHistogram {
    slot: u32,
    t: i64,
    value: HistogramValue,
}

/// One message to a worker: series to add to its table (in slot order), then float
/// samples whose `series_ref` is a slot index, then histogram samples (which were logged
/// after those floats).
#[derive(Default)]
struct Work {
    series: Vec<Arc<MemSeries>>,
    samples: Vec<RefSample>,
    histograms: Vec<SlotHistogram>,
}

impl Work {
    fn is_empty(&self) -> bool {
        self.series.is_empty() && self.samples.is_empty() && self.histograms.is_empty()
    }
}

/// What a replay appended, summed over workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ReplayCounts {
    /// Samples stored.
    pub(crate) appended: u64,
    /// Samples rejected: out of order or a different value at an existing timestamp.
    pub(crate) rejected: u64,
    /// Samples whose WAL reference had no series record before them.
    pub(crate) unknown_refs: u64,
    /// Samples below the head's min valid time (already in a block).
    pub(crate) in_blocks: u64,
}

/// What one worker did.
struct WorkerCounts {
    appended: u64,
    /// Histogram samples stored (also counted in `appended`).
    histograms_appended: u64,
    rejected: u64,
    out_of_order: u64,
    min_t: i64,
    max_t: i64,
}

/// Receives decoded WAL records during [`Head::replay`] and routes them to the workers.
pub(crate) struct ReplaySink<'h> {
    head: &'h Head,
    /// The head's min valid time when replay started.
    floor: i64,
    /// WAL reference → slot.
    by_wal_ref: SlotIndex,
    /// Head series ID → slot (a label set logged under several WAL references).
    by_head_ref: RefMap<Slot>,
    /// Slots handed out per worker.
    slots: Vec<u32>,
    pending: Vec<Work>,
    senders: Vec<SyncSender<Work>>,
    unknown_refs: u64,
    in_blocks: u64,
}

impl ReplaySink<'_> {
    /// Replays one entry of a series record: finds or creates the series holding
    /// `labels` (a new series keeps `wal_ref` as its ID) and maps `wal_ref` to it.
    pub(crate) fn series(&mut self, wal_ref: u64, labels: &Labels) {
        let series = self.head.replay_series(labels, wal_ref);
        let slot = match self.by_head_ref.get(&series.series_ref) {
            Some(&slot) => slot,
            None => {
                let workers = self.senders.len() as u64;
                let worker = usize::try_from(series.series_ref % workers).unwrap_or_default();
                let slot = Slot {
                    worker: worker as u32,
                    index: self.slots[worker],
                };
                self.slots[worker] += 1;
                self.by_head_ref.insert(series.series_ref, slot);
                let work = &mut self.pending[worker];
                work.series.push(series);
                if work.series.len() >= BATCH {
                    self.flush(worker);
                }
                slot
            }
        };
        self.by_wal_ref.insert(wal_ref, slot);
    }

    /// Replays the samples of one samples record, in order.
    pub(crate) fn samples(&mut self, samples: &[RefSample]) {
        for s in samples {
            if s.t < self.floor {
                self.in_blocks += 1;
                continue;
            }
            let Some(slot) = self.by_wal_ref.get(s.series_ref) else {
                self.unknown_refs += 1;
                continue;
            };
            let worker = slot.worker as usize;
            if !self.pending[worker].histograms.is_empty() {
                // Histograms logged earlier are appended before these floats.
                self.flush(worker);
            }
            let work = &mut self.pending[worker];
            work.samples.push(RefSample {
                series_ref: u64::from(slot.index),
                t: s.t,
                v: s.v,
            });
            if work.samples.len() >= BATCH {
                self.flush(worker);
            }
        }
    }

    /// Replays the histogram samples of one histogram record, in order (`(WAL
    /// reference, timestamp, value)`).
    pub(crate) fn histograms(&mut self, samples: impl Iterator<Item = (u64, i64, HistogramValue)>) {
        for (wal_ref, t, value) in samples {
            if t < self.floor {
                self.in_blocks += 1;
                continue;
            }
            let Some(slot) = self.by_wal_ref.get(wal_ref) else {
                self.unknown_refs += 1;
                continue;
            };
            let worker = slot.worker as usize;
            let work = &mut self.pending[worker];
            work.histograms.push(SlotHistogram {
                slot: slot.index,
                t,
                value,
            });
            if work.histograms.len() >= BATCH {
                self.flush(worker);
            }
        }
    }

    fn flush(&mut self, worker: usize) {
        if self.pending[worker].is_empty() {
            return;
        }
        let work = std::mem::replace(
            &mut self.pending[worker],
            Work {
                series: Vec::new(),
                samples: Vec::with_capacity(BATCH),
                histograms: Vec::new(),
            },
        );
        // A send only fails when the worker panicked; the panic resurfaces when it is
        // joined.
        let _ = self.senders[worker].send(work);
    }
}

/// Appends the samples a worker receives to the series of its table.
///
/// Consecutive samples almost always belong to different series, so appending them in
/// arrival order would miss the cache on every sample (the series and its chunk). The
/// worker therefore collects a window of samples, sorts it by series with a stable
/// counting sort (each series keeps its samples in log order) and appends series by
/// series, touching every series once per window.
fn work(head: &Head, rx: &Receiver<Work>) -> WorkerCounts {
    let mut w = Worker {
        head,
        table: Vec::new(),
        window: Vec::new(),
        sorted: Vec::new(),
        starts: Vec::new(),
        counts: WorkerCounts {
            appended: 0,
            histograms_appended: 0,
            rejected: 0,
            out_of_order: 0,
            min_t: i64::MAX,
            max_t: i64::MIN,
        },
    };
    while let Ok(work) = rx.recv() {
        // Slots are sent before (or with) the samples that use them.
        w.table.extend(work.series);
        w.window.extend_from_slice(&work.samples);
        if !work.histograms.is_empty() {
            w.append_window();
            w.append_histograms(&work.histograms);
        } else if w.window.len() >= WINDOW {
            w.append_window();
        }
    }
    w.append_window();
    w.counts
}

/// A replay worker's state.
struct Worker<'h> {
    head: &'h Head,
    /// Slot index → series.
    table: Vec<Arc<MemSeries>>,
    /// Samples received and not yet appended (`series_ref` = slot index).
    window: Vec<RefSample>,
    /// `window` sorted by slot.
    sorted: Vec<RefSample>,
    /// Bucket start per slot for the counting sort.
    starts: Vec<u32>,
    counts: WorkerCounts,
}

impl Worker<'_> {
    /// Appends histogram samples in order (after every float received before them).
    fn append_histograms(&mut self, histograms: &[SlotHistogram]) {
        let opts = &self.head.options;
        let chunks_created = &self.head.metrics.chunks_created;
        let c = &mut self.counts;
        for h in histograms {
            let Some(series) = usize::try_from(h.slot).ok().and_then(|i| self.table.get(i)) else {
                continue;
            };
            match series
                .lock()
                .append_histogram(h.t, &h.value, opts, chunks_created)
            {
                Ok(Appended::New) => {
                    c.appended += 1;
                    c.histograms_appended += 1;
                    c.min_t = c.min_t.min(h.t);
                    c.max_t = c.max_t.max(h.t);
                }
                Ok(Appended::Identical) => {}
                Err(reason) => {
                    c.rejected += 1;
                    if reason == Reason::OutOfOrder {
                        c.out_of_order += 1;
                    }
                }
            }
        }
    }

    /// Appends the window's samples, series by series, and empties it.
    fn append_window(&mut self) {
        if self.window.is_empty() {
            return;
        }
        let slot_of = |s: &RefSample| usize::try_from(s.series_ref).ok();
        let slots = self.table.len();
        self.starts.clear();
        self.starts.resize(slots + 1, 0);
        for s in &self.window {
            if let Some(n) = slot_of(s)
                .filter(|&i| i < slots)
                .map(|i| &mut self.starts[i + 1])
            {
                *n += 1;
            }
        }
        for i in 1..=slots {
            self.starts[i] += self.starts[i - 1];
        }
        let valid = self.starts[slots] as usize;
        self.sorted.clear();
        self.sorted.resize(
            valid,
            RefSample {
                series_ref: 0,
                t: 0,
                v: 0.0,
            },
        );
        for s in &self.window {
            if let Some(i) = slot_of(s).filter(|&i| i < slots) {
                let at = &mut self.starts[i];
                self.sorted[*at as usize] = *s;
                *at += 1;
            }
        }
        self.window.clear();
        let opts = &self.head.options;
        let chunks_created = &self.head.metrics.chunks_created;
        let c = &mut self.counts;
        for run in self.sorted.chunk_by(|a, b| a.series_ref == b.series_ref) {
            let Some(series) = slot_of(&run[0]).and_then(|i| self.table.get(i)) else {
                continue;
            };
            let mut state = series.lock();
            for s in run {
                match state.append(Sample { t: s.t, v: s.v }, opts, chunks_created) {
                    Ok(Appended::New) => {
                        c.appended += 1;
                        c.min_t = c.min_t.min(s.t);
                        c.max_t = c.max_t.max(s.t);
                    }
                    Ok(Appended::Identical) => {}
                    Err(reason) => {
                        c.rejected += 1;
                        if reason == Reason::OutOfOrder {
                            c.out_of_order += 1;
                        }
                    }
                }
            }
        }
    }
}

impl Head {
    /// Replays already-logged data: `feed` receives a [`ReplaySink`] and pushes the
    /// WAL's records into it in log order, while `workers` threads (clamped to 1..=64)
    /// append the samples. No appendable-window or future checks, no logging; samples
    /// below the min valid time are only counted. Returns `feed`'s result and the counts
    /// once every sample is in the head. Blocking.
    pub(crate) fn replay<R>(
        &self,
        workers: usize,
        feed: impl FnOnce(&mut ReplaySink<'_>) -> R,
    ) -> (R, ReplayCounts) {
        let n = workers.clamp(1, MAX_WORKERS);
        std::thread::scope(|scope| {
            let mut senders = Vec::with_capacity(n);
            let mut handles = Vec::with_capacity(n);
            for _ in 0..n {
                let (tx, rx) = sync_channel::<Work>(QUEUE);
                senders.push(tx);
                handles.push(scope.spawn(move || work(self, &rx)));
            }
            let mut sink = ReplaySink {
                head: self,
                floor: self.min_valid_time(),
                by_wal_ref: SlotIndex::default(),
                by_head_ref: RefMap::default(),
                slots: vec![0; n],
                pending: (0..n).map(|_| Work::default()).collect(),
                senders,
                unknown_refs: 0,
                in_blocks: 0,
            };
            let result = feed(&mut sink);
            for worker in 0..n {
                sink.flush(worker);
            }
            let mut counts = ReplayCounts {
                unknown_refs: sink.unknown_refs,
                in_blocks: sink.in_blocks,
                ..ReplayCounts::default()
            };
            // Closing the channels lets the workers finish.
            drop(sink);
            let (mut min_t, mut max_t, mut out_of_order) = (i64::MAX, i64::MIN, 0);
            let mut histograms_appended = 0;
            for handle in handles {
                let c = handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                counts.appended += c.appended;
                counts.rejected += c.rejected;
                out_of_order += c.out_of_order;
                histograms_appended += c.histograms_appended;
                min_t = min_t.min(c.min_t);
                max_t = max_t.max(c.max_t);
            }
            if min_t <= max_t {
                self.min_time.fetch_min(min_t, Ordering::AcqRel);
                self.max_time.fetch_max(max_t, Ordering::AcqRel);
            }
            self.metrics
                .samples_appended
                .inc_by(counts.appended - histograms_appended);
            self.metrics.histograms_appended.inc_by(histograms_appended);
            self.metrics.out_of_order.inc_by(out_of_order);
            (result, counts)
        })
    }

    /// Creates the series with WAL reference `series_ref` unless a series with these
    /// labels exists, and returns the series holding `labels`. Later series get IDs
    /// above `series_ref`.
    fn replay_series(&self, labels: &Labels, series_ref: u64) -> Arc<MemSeries> {
        self.next_ref
            .fetch_max(series_ref.saturating_add(1), Ordering::AcqRel);
        let hash = labels.stable_hash();
        let mut guard = self
            .stripe(hash)
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(s) = guard.get(hash, labels) {
            return Arc::clone(s);
        }
        self.insert_series(&mut guard, hash, labels, series_ref)
    }
}
