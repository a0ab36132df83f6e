//! Snappy-bomb guard: a remote-write body whose snappy header declares 1 GiB
//! must be rejected before the decompression buffer is allocated. This test
//! binary installs a global allocator that records the largest single
//! allocation, so "without allocating" is actually checked.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use thanos_proto::prometheus::WriteRequest;
use thanos_proto::remote_write::{self, Error};

/// Forwards to the system allocator, remembering the largest request.
struct PeakAlloc;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to `System`; we only read the
// layout size.
unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: PeakAlloc = PeakAlloc;

const GIB: usize = 1 << 30;

#[test]
fn one_gib_declared_is_rejected_without_allocating() {
    // Snappy block header = uvarint of the decompressed length. 2^30 in
    // 7-bit groups, low first: 0, 0, 0, 0, 4 -> 0x80 0x80 0x80 0x80 0x04.
    // Then a tiny literal (tag 0x0c = (4-1) << 2 | 0b00, 4 bytes) so the body
    // looks plausible; it is only a few bytes long.
    let body = [0x80, 0x80, 0x80, 0x80, 0x04, 0x0c, b'b', b'o', b'o', b'm'];
    assert_eq!(remote_write::declared_len(&body).expect("header"), GIB);

    let max = 32 << 20;
    LARGEST.store(0, Ordering::Relaxed);
    let err = remote_write::decode::<WriteRequest>(&body, max).expect_err("bomb rejected");
    let peak = LARGEST.load(Ordering::Relaxed);

    match &err {
        Error::TooLarge {
            declared,
            max: limit,
        } => {
            assert_eq!(*declared, GIB);
            assert_eq!(*limit, max);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("1073741824"), "declared size missing: {msg}");
    assert!(msg.contains(&max.to_string()), "limit missing: {msg}");
    assert!(peak < (1 << 20), "largest allocation was {peak} bytes");

    // Control: a body declaring 2 MiB under a 4 MiB limit makes the decoder
    // allocate the full buffer, proving the allocator hook observes it (the
    // body is then rejected as corrupt). 2 MiB = 2^21: groups 0, 0, 0, 1 ->
    // 0x80 0x80 0x80 0x01.
    let small = [0x80, 0x80, 0x80, 0x01, 0x0c, b'b', b'o', b'o', b'm'];
    LARGEST.store(0, Ordering::Relaxed);
    let err = remote_write::decode::<WriteRequest>(&small, 4 << 20).expect_err("corrupt body");
    assert!(matches!(err, Error::Decompress { .. }), "{err:?}");
    assert!(LARGEST.load(Ordering::Relaxed) >= 2 << 20);
}
