//! Heap bytes per active series, measured with a counting global allocator: 20k series
//! with node-exporter-like labels, 120 samples each (one full chunk, as in the project's
//! memory target of ≤ 2.6 KB per active series).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use thanos_model::{Labels, Sample};
use thanos_receive::{Batch, Head, HeadMetrics, HeadOptions, SeriesSamples};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; only a counter is
// updated on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const SERIES: usize = 5_000;
const SAMPLES: usize = 120;

fn labels(i: usize) -> Labels {
    Labels::from_pairs([
        ("__name__", format!("node_metric_{}", i % 200)),
        ("instance", format!("host-{}.example.com:9100", i / 200)),
        ("job", "node".to_owned()),
        ("cpu", (i % 8).to_string()),
        (
            "mode",
            ["idle", "user", "system", "iowait"][i % 4].to_owned(),
        ),
        ("region", "eu-west-1".to_owned()),
    ])
}

#[test]
fn bytes_per_active_series_is_within_target() {
    let all_labels: Vec<Labels> = (0..SERIES).map(labels).collect();
    let before = LIVE.load(Ordering::Relaxed);
    let head = Head::new(HeadOptions::default(), HeadMetrics::unregistered());
    let t0 = 1_700_000_000_000i64;
    for step in 0..SAMPLES {
        for chunk in all_labels.chunks(1000) {
            let series = chunk
                .iter()
                .enumerate()
                .map(|(i, l)| SeriesSamples {
                    histograms: Vec::new(),
                    labels: l.clone(),
                    // A counter-like value with per-series jitter.
                    samples: vec![Sample::new(
                        t0 + step as i64 * 15_000,
                        (step * (i % 7 + 1)) as f64 + 0.25,
                    )],
                })
                .collect();
            let report = head
                .append_batch(&Batch::from_series(series), t0)
                .expect("append");
            assert_eq!(report.appended, chunk.len() as u64);
        }
    }
    let after = LIVE.load(Ordering::Relaxed);
    let per_series = (after - before) as f64 / SERIES as f64;
    println!("head heap bytes per series ({SERIES} series x {SAMPLES} samples): {per_series:.0}");
    assert_eq!(head.num_series(), SERIES as u64);
    assert!(per_series > 100.0, "implausibly small: {per_series}");
    assert!(per_series <= 2600.0, "{per_series} bytes per series");
    drop(all_labels);
}
