use super::*;

fn opts(segment_pages: usize, compression: Compression) -> WalOptions {
    WalOptions {
        segment_size: segment_pages * PAGE_SIZE,
        compression,
    }
}

fn read_all(dir: &Path) -> (Vec<Vec<u8>>, Option<Position>) {
    let mut r = WalReader::open(dir).unwrap();
    let mut out = Vec::new();
    while let Some(rec) = r.next_record().unwrap() {
        out.push(rec.to_vec());
    }
    (out, r.torn_tail())
}

/// Deterministic pseudo-random bytes (incompressible).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn records_of_all_sizes_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let mut wal = Wal::open(&dir, opts(4, Compression::None)).unwrap();
    let sizes = [
        0,
        1,
        100,
        PAGE_SIZE - 2 * FRAGMENT_HEADER_SIZE, // leaves exactly one header's room
        10,                                   // zero-length first fragment, rest on next page
        PAGE_SIZE - FRAGMENT_HEADER_SIZE - 13, // leaves 6 bytes: padded
        3 * PAGE_SIZE,                        // first/middle/last
        5 * PAGE_SIZE,                        // larger than a segment: oversize segment
        7,
    ];
    let recs: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, n)| noise(*n, i as u64 + 1))
        .collect();
    for r in &recs {
        wal.log(&[r]).unwrap();
    }
    wal.sync().unwrap();
    wal.close().unwrap();
    let (got, torn) = read_all(&dir);
    assert_eq!(torn, None);
    assert_eq!(got, recs);
    // Closed segments are whole pages; the oversize record got its own segment.
    let segs = list_segments(&dir).unwrap();
    assert!(segs.len() >= 3, "{segs:?}");
    for s in segs {
        let len = fs::metadata(segment_path(&dir, s)).unwrap().len();
        assert_eq!(len % PAGE_SIZE as u64, 0, "segment {s} has {len} bytes");
    }
}

#[test]
fn zero_length_first_fragment_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(tmp.path(), opts(4, Compression::None)).unwrap();
    wal.log(&[
        vec![1u8; PAGE_SIZE - 2 * FRAGMENT_HEADER_SIZE],
        vec![2u8; 5],
    ])
    .unwrap();
    let data = fs::read(segment_path(tmp.path(), 0)).unwrap();
    let h = PAGE_SIZE - FRAGMENT_HEADER_SIZE;
    assert_eq!(data[h], FRAG_FIRST);
    assert_eq!(&data[h + 1..h + 3], &[0, 0]);
    assert_eq!(data[PAGE_SIZE], FRAG_LAST);
    assert_eq!(&data[PAGE_SIZE + 1..PAGE_SIZE + 3], &[0, 5]);
    assert_eq!(data.len(), PAGE_SIZE + FRAGMENT_HEADER_SIZE + 5);
}

#[test]
fn snappy_only_when_smaller() {
    let tmp = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(tmp.path(), opts(4, Compression::Snappy)).unwrap();
    let compressible = vec![7u8; 1000];
    let random = noise(1000, 3);
    wal.log(&[&compressible, &random]).unwrap();
    let data = fs::read(segment_path(tmp.path(), 0)).unwrap();
    assert_eq!(data[0], FRAG_FULL | FLAG_SNAPPY);
    let len = usize::from(u16::from_be_bytes([data[1], data[2]]));
    assert!(len < 100, "compressed to {len} bytes");
    let second = FRAGMENT_HEADER_SIZE + len;
    assert_eq!(data[second], FRAG_FULL);
    drop(wal);
    let (got, _) = read_all(tmp.path());
    assert_eq!(got, vec![compressible, random]);
}

#[test]
fn new_segment_on_every_open_and_segment_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = noise(PAGE_SIZE / 2, 9);
    let mut wal = Wal::open(tmp.path(), opts(2, Compression::None)).unwrap();
    for _ in 0..5 {
        wal.log(&[&rec]).unwrap();
    }
    // Three half-page records fit in two pages (with headers), so 5 records need 2 segments.
    assert_eq!(wal.segment(), 1);
    drop(wal);
    let wal = Wal::open(tmp.path(), opts(2, Compression::None)).unwrap();
    assert_eq!(wal.segment(), 2);
    // The unclosed segment 1 was padded on reopen.
    let len = fs::metadata(segment_path(tmp.path(), 1)).unwrap().len();
    assert_eq!(len % PAGE_SIZE as u64, 0);
    drop(wal);
    let (got, torn) = read_all(tmp.path());
    assert_eq!(got.len(), 5);
    assert_eq!(torn, None);
}

#[test]
fn invalid_segment_size_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let err = Wal::open(
        tmp.path(),
        WalOptions {
            segment_size: 1000,
            compression: Compression::None,
        },
    )
    .unwrap_err();
    assert!(matches!(err, WalError::InvalidSegmentSize(1000)), "{err}");
}

#[test]
fn segment_gap_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(segment_path(tmp.path(), 0), []).unwrap();
    fs::write(segment_path(tmp.path(), 2), []).unwrap();
    let err = WalReader::open(tmp.path()).unwrap_err();
    assert!(
        matches!(
            err,
            WalError::SegmentGap {
                prev: 0,
                next: 2,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn crc_mismatch_names_segment_and_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(tmp.path(), opts(4, Compression::None)).unwrap();
    wal.log(&[vec![1u8; 50], vec![2u8; 50], vec![3u8; 50]])
        .unwrap();
    drop(wal);
    let path = segment_path(tmp.path(), 0);
    let mut data = fs::read(&path).unwrap();
    data[57 + 10] ^= 0xff; // payload of the second record
    fs::write(&path, &data).unwrap();
    let mut r = WalReader::open(tmp.path()).unwrap();
    assert_eq!(r.next_record().unwrap().unwrap(), &[1u8; 50][..]);
    let err = r.next_record().unwrap_err();
    let WalError::Corruption(c) = &err else {
        panic!("{err}")
    };
    assert_eq!((c.segment, c.offset, c.in_checkpoint), (0, 57, false));
    assert!(c.reason.contains("checksum"), "{}", c.reason);
    assert!(r.next_record().unwrap().is_none());
    repair(tmp.path(), c.repair_position().unwrap()).unwrap();
    let (got, torn) = read_all(tmp.path());
    assert_eq!(got, vec![vec![1u8; 50]]);
    assert_eq!(torn, None);
}

#[test]
fn zstd_records_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let payload = b"\x01abc";
    let mut data = vec![FRAG_FULL | FLAG_ZSTD, 0, payload.len() as u8];
    data.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    data.extend_from_slice(payload);
    fs::write(segment_path(tmp.path(), 0), &data).unwrap();
    let err = WalReader::open(tmp.path())
        .unwrap()
        .next_record()
        .unwrap_err();
    assert!(
        matches!(err, WalError::UnsupportedCompression { offset: 0, .. }),
        "{err}"
    );
}
