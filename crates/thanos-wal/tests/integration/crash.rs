//! Kill -9 simulation: records are logged and synced one by one, then the last segment is
//! torn (truncated) at arbitrary positions or has bytes overwritten. The reader must return
//! exactly the records that were completely written before the damage, in order and
//! unchanged, and after `repair` the WAL must accept new writes and replay cleanly.

use std::fs;
use std::path::Path;
use std::sync::OnceLock;

use proptest::prelude::*;
use thanos_wal::wlog::{
    self, Compression, PAGE_SIZE, Position, Wal, WalError, WalOptions, WalReader,
};

const OPTS: WalOptions = WalOptions {
    segment_size: 4 * PAGE_SIZE,
    compression: Compression::Snappy,
};

struct Original {
    dir: tempfile::TempDir,
    records: Vec<Vec<u8>>,
    /// End position after logging each record.
    ends: Vec<Position>,
    last_segment: u32,
    last_len: u64,
}

fn record(i: usize) -> Vec<u8> {
    // Alternate compressible and incompressible payloads of varied sizes (up to ~1.3 pages).
    let len = (i * 7919) % 43_000 + 1;
    let mut x = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (0..len)
        .map(|j| {
            if i.is_multiple_of(2) {
                (j / 64) as u8
            } else {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            }
        })
        .collect()
}

fn original() -> &'static Original {
    static ORIGINAL: OnceLock<Original> = OnceLock::new();
    ORIGINAL.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), OPTS).unwrap();
        let mut records = Vec::new();
        let mut ends = Vec::new();
        for i in 0..40 {
            let r = record(i);
            wal.log(&[&r]).unwrap();
            wal.sync().unwrap();
            records.push(r);
            ends.push(wal.position());
        }
        let last_segment = wal.segment();
        // Dropped without close: the active segment ends mid-page, as after a crash.
        drop(wal);
        let last_len = fs::metadata(wlog::segment_path(dir.path(), last_segment))
            .unwrap()
            .len();
        assert!(last_segment >= 2, "workload should span segments");
        assert_ne!(last_len % PAGE_SIZE as u64, 0);
        Original {
            dir,
            records,
            ends,
            last_segment,
            last_len,
        }
    })
}

fn copy_dir(from: &Path, to: &Path) {
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// Reads everything; returns the records and how reading ended.
fn read(dir: &Path) -> (Vec<Vec<u8>>, Result<Option<Position>, WalError>) {
    let mut r = WalReader::open(dir).unwrap();
    let mut got = Vec::new();
    loop {
        match r.next_record() {
            Ok(Some(rec)) => got.push(rec.to_vec()),
            Ok(None) => return (got, Ok(r.torn_tail())),
            Err(e) => return (got, Err(e)),
        }
    }
}

/// Records that are entirely before byte `offset` of the last segment.
fn complete_before(o: &Original, offset: u64) -> usize {
    o.ends
        .iter()
        .filter(|e| e.segment < o.last_segment || e.offset <= offset)
        .count()
}

/// Checks the prefix property, repairs, writes one more record and replays again.
fn check_and_recover(
    dir: &Path,
    o: &Original,
    got: &[Vec<u8>],
    end: Result<Option<Position>, WalError>,
    must: usize,
) -> Result<(), TestCaseError> {
    prop_assert!(
        got.len() >= must,
        "got {} records, {} were complete",
        got.len(),
        must
    );
    prop_assert!(got.len() <= o.records.len());
    for (i, r) in got.iter().enumerate() {
        prop_assert!(r == &o.records[i], "record {} differs", i);
    }
    let repair_at = match end {
        Ok(torn) => torn,
        Err(WalError::Corruption(c)) => {
            prop_assert_eq!(c.segment, o.last_segment);
            c.repair_position()
        }
        Err(e) => return Err(TestCaseError::fail(format!("unexpected error {e}"))),
    };
    if let Some(at) = repair_at {
        wlog::repair(dir, at).unwrap();
    }
    let mut wal = Wal::open(dir, OPTS).unwrap();
    let extra = b"after the crash".to_vec();
    wal.log(&[&extra]).unwrap();
    wal.sync().unwrap();
    drop(wal);
    let (again, end) = read(dir);
    prop_assert!(matches!(end, Ok(None)), "replay after repair: {:?}", end);
    prop_assert_eq!(again.len(), got.len() + 1);
    prop_assert!(again[..got.len()] == got[..]);
    prop_assert!(again[got.len()] == extra);
    Ok(())
}

#[test]
fn intact_wal_replays_everything() {
    let o = original();
    let (got, end) = read(o.dir.path());
    assert!(matches!(end, Ok(None)), "{end:?}");
    assert_eq!(got, o.records);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn torn_last_segment(frac in 0.0f64..1.0) {
        let o = original();
        let tmp = tempfile::tempdir().unwrap();
        copy_dir(o.dir.path(), tmp.path());
        let cut = (frac * o.last_len as f64) as u64;
        let path = wlog::segment_path(tmp.path(), o.last_segment);
        let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(cut).unwrap();
        drop(f);
        let (got, end) = read(tmp.path());
        prop_assert!(end.is_ok(), "a torn tail is not an error: {:?}", end);
        let must = complete_before(o, cut);
        check_and_recover(tmp.path(), o, &got, end, must)?;
    }

    #[test]
    fn corrupted_last_segment(frac in 0.0f64..1.0, garbage_len in 1usize..16) {
        let o = original();
        let tmp = tempfile::tempdir().unwrap();
        copy_dir(o.dir.path(), tmp.path());
        let path = wlog::segment_path(tmp.path(), o.last_segment);
        let mut data = fs::read(&path).unwrap();
        let at = ((frac * o.last_len as f64) as usize).min(data.len() - 1);
        let end = (at + garbage_len).min(data.len());
        for b in &mut data[at..end] {
            *b ^= 0xff;
        }
        fs::write(&path, &data).unwrap();
        let (got, end) = read(tmp.path());
        let must = complete_before(o, at as u64);
        prop_assert!(got.len() < o.records.len(), "damage went unnoticed");
        check_and_recover(tmp.path(), o, &got, end, must)?;
    }
}
