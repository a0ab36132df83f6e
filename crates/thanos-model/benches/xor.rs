//! Encode/decode throughput of the XOR chunk for realistic 120-sample chunks.
//!
//! Throughput is reported in elements (samples), so criterion's time per element is the
//! cost per sample.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use thanos_model::chunkenc::{XorChunk, XorIterator};

const SAMPLES: usize = 120;

/// Small deterministic PRNG (xorshift64*), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `[lo, hi]`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
}

/// 15s scrapes with ±25ms jitter starting at a realistic wall-clock time.
fn timestamps(rng: &mut Rng) -> Vec<i64> {
    let start = 1_700_006_400_000i64;
    (0..SAMPLES as i64)
        .map(|i| start + i * 15_000 + rng.range(-25, 25))
        .collect()
}

/// A slowly growing request counter.
fn counter() -> Vec<(i64, f64)> {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut v = 18_204.0;
    timestamps(&mut rng)
        .into_iter()
        .map(|t| {
            v += rng.range(0, 12) as f64;
            (t, v)
        })
        .collect()
}

/// A gauge wandering around like memory usage in bytes / CPU ratio values.
fn gauge() -> Vec<(i64, f64)> {
    let mut rng = Rng(0x0fed_cba9_8765_4321);
    let mut v = 0.4123;
    timestamps(&mut rng)
        .into_iter()
        .map(|t| {
            v = (v + (rng.range(-1000, 1000) as f64) * 1e-4).abs();
            (t, v)
        })
        .collect()
}

/// A target's `up`: exact 15s scrapes of a constant, the smallest chunks there are.
fn steady() -> Vec<(i64, f64)> {
    (0..SAMPLES as i64)
        .map(|i| (1_700_006_400_000 + i * 15_000, 1.0))
        .collect()
}

fn encode(samples: &[(i64, f64)]) -> XorChunk {
    let mut c = XorChunk::new();
    for &(t, v) in samples {
        c.append(t, v);
    }
    c
}

fn bench_xor(c: &mut Criterion) {
    for (name, samples) in [
        ("counter", counter()),
        ("gauge", gauge()),
        ("steady", steady()),
    ] {
        let chunk = encode(&samples);
        let mut g = c.benchmark_group(format!("xor/{name}"));
        g.throughput(Throughput::Elements(SAMPLES as u64));
        g.bench_function("encode", |b| {
            b.iter(|| encode(black_box(&samples)));
        });
        g.bench_function("decode", |b| {
            b.iter(|| {
                let mut sum = 0.0;
                let mut last_t = 0;
                for s in XorIterator::new(black_box(chunk.bytes())) {
                    sum += s.v;
                    last_t = s.t;
                }
                (sum, last_t)
            });
        });
        let mut out = Vec::with_capacity(SAMPLES);
        g.bench_function("decode_range_into", |b| {
            b.iter(|| {
                out.clear();
                XorIterator::new(black_box(chunk.bytes()))
                    .decode_range_into(i64::MIN, i64::MAX, &mut out)
                    .expect("valid chunk");
                out.len()
            });
        });
        g.finish();
        println!(
            "xor/{name}: {} samples in {} bytes ({:.2} bytes/sample)",
            SAMPLES,
            chunk.bytes().len(),
            chunk.bytes().len() as f64 / SAMPLES as f64
        );
    }
}

criterion_group!(benches, bench_xor);
criterion_main!(benches);
