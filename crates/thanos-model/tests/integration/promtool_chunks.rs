//! Byte-compatibility proof for the XOR codec against a block written by Prometheus's own
//! `promtool tsdb create-blocks-from openmetrics`.
//!
//! The test reads the block's chunk segment files directly (verifying magic, version and
//! every CRC32C), decodes every chunk, compares the samples with `promtool tsdb dump`, and
//! re-encodes every chunk, requiring the bytes to equal what promtool wrote.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use thanos_model::chunkenc::{Encoding, XorChunk, XorIterator, float_iterator};

/// The NaN bit pattern Prometheus's parsers produce for `NaN`.
const PROM_NAN_BITS: u64 = 0x7ff8_0000_0000_0001;
const SEGMENT_MAGIC: [u8; 4] = [0x85, 0xbd, 0x40, 0xdd];

fn promtool() -> String {
    std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".to_owned())
}

fn run(args: &[&str]) -> String {
    let out = Command::new(promtool())
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run promtool (install Debian's `prometheus` package): {e}")
        });
    assert!(
        out.status.success(),
        "promtool {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("promtool output is UTF-8")
}

/// Deterministic xorshift64* generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
}

fn fmt_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v == f64::INFINITY {
        "+Inf".to_owned()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        format!("{v:e}")
    }
}

/// Irregular timestamps inside one 2h block window: mostly ~15s with jitter, some
/// millisecond-close samples and some long gaps, so every delta-of-delta bucket is used.
fn timestamps(rng: &mut Rng, n: usize) -> Vec<i64> {
    let window_start = 1_700_006_400_000i64; // multiple of 2h
    let mut t = window_start + rng.range(0, 5_000);
    (0..n)
        .map(|_| {
            let gap = match rng.range(0, 99) {
                0..=59 => 15_000 + rng.range(-40, 40),
                60..=74 => 15_000,
                75..=84 => rng.range(1, 300),
                85..=92 => rng.range(20_000, 120_000),
                93..=97 => rng.range(200_000, 400_000),
                _ => rng.range(530_000, 700_000),
            };
            t += gap;
            t
        })
        .collect()
}

struct Series {
    family: &'static str,
    kind: &'static str,
    name: String,
    labels: String,
    samples: Vec<(i64, f64)>,
}

fn build_series() -> Vec<Series> {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut out = Vec::new();
    for (i, instance) in ["a", "b", "c"].into_iter().enumerate() {
        let ts = timestamps(&mut rng, 130 + 60 * i);
        let mut v = 1000.0 * i as f64;
        let samples = ts
            .into_iter()
            .map(|t| {
                v += rng.range(0, 20) as f64;
                if rng.range(0, 150) == 0 {
                    v = 0.0; // counter reset
                }
                (t, v)
            })
            .collect();
        out.push(Series {
            family: "http_requests",
            kind: "counter",
            name: "http_requests_total".to_owned(),
            labels: format!("instance=\"{instance}\",job=\"api\""),
            samples,
        });
    }
    for room in ["kitchen", "lab"] {
        let ts = timestamps(&mut rng, 250);
        let mut v = 21.5;
        let samples = ts
            .into_iter()
            .map(|t| {
                v += rng.range(-500, 500) as f64 / 997.0;
                (t, v)
            })
            .collect();
        out.push(Series {
            family: "temperature_celsius",
            kind: "gauge",
            name: "temperature_celsius".to_owned(),
            labels: format!("room=\"{room}\""),
            samples,
        });
    }
    let specials = [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0,
        0.0,
        1e300,
        -1e300,
        5e-324,
        -2.2250738585072014e-308,
        f64::MAX,
        9007199254740993.0,
        -42.125,
        1.0 / 3.0,
    ];
    let ts = timestamps(&mut rng, 400);
    let samples = ts
        .into_iter()
        .map(|t| {
            let v = if rng.range(0, 2) == 0 {
                specials[rng.range(0, specials.len() as i64 - 1) as usize]
            } else {
                f64::from_bits(rng.next() >> rng.range(0, 12))
            };
            (t, if v.is_nan() { f64::NAN } else { v })
        })
        .collect();
    out.push(Series {
        family: "weird_values",
        kind: "gauge",
        name: "weird_values".to_owned(),
        labels: "kind=\"special\"".to_owned(),
        samples,
    });
    // Values whose consecutive XORs have many leading zeros (the 31-zero clamp) and
    // windows that are sometimes reused, sometimes not.
    let ts = timestamps(&mut rng, 300);
    let mut bits = 1.5f64.to_bits();
    let samples = ts
        .into_iter()
        .map(|t| {
            match rng.range(0, 3) {
                0 => {}
                1 => bits ^= rng.next() >> rng.range(30, 63),
                _ => bits ^= (rng.next() >> 40) << rng.range(0, 12),
            }
            (t, f64::from_bits(bits))
        })
        .collect();
    out.push(Series {
        family: "weird_values",
        kind: "gauge",
        name: "weird_values".to_owned(),
        labels: "kind=\"tiny_changes\"".to_owned(),
        samples,
    });
    out
}

fn write_openmetrics(series: &[Series], path: &Path) {
    let mut text = String::new();
    let mut last_family = "";
    for s in series {
        if s.family != last_family {
            writeln!(text, "# TYPE {} {}", s.family, s.kind).unwrap();
            last_family = s.family;
        }
        for &(t, v) in &s.samples {
            writeln!(
                text,
                "{}{{{}}} {} {}.{:03}",
                s.name,
                s.labels,
                fmt_value(v),
                t / 1000,
                t % 1000
            )
            .unwrap();
        }
    }
    text.push_str("# EOF\n");
    std::fs::write(path, text).unwrap();
}

/// One chunk record read from a segment file.
struct ChunkRecord {
    encoding: u8,
    data: Vec<u8>,
}

fn read_uvarint(buf: &[u8], pos: &mut usize) -> u64 {
    let mut x = 0u64;
    let mut shift = 0;
    loop {
        let b = buf[*pos];
        *pos += 1;
        x |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return x;
        }
        shift += 7;
        assert!(shift < 64, "uvarint too long");
    }
}

fn read_segments(block: &Path) -> Vec<ChunkRecord> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(block.join("chunks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no chunk segment files in {block:?}");
    let mut out = Vec::new();
    for f in files {
        let buf = std::fs::read(&f).unwrap();
        assert_eq!(buf[..4], SEGMENT_MAGIC, "magic of {f:?}");
        assert_eq!(buf[4], 1, "version of {f:?}");
        assert_eq!(buf[5..8], [0, 0, 0], "padding of {f:?}");
        let mut pos = 8;
        while pos < buf.len() {
            let len = read_uvarint(&buf, &mut pos) as usize;
            let enc_and_data = &buf[pos..pos + 1 + len];
            pos += 1 + len;
            let crc = u32::from_be_bytes(buf[pos..pos + 4].try_into().unwrap());
            pos += 4;
            assert_eq!(
                crc32c::crc32c(enc_and_data),
                crc,
                "crc of chunk ending at {pos} in {f:?}"
            );
            out.push(ChunkRecord {
                encoding: enc_and_data[0],
                data: enc_and_data[1..].to_vec(),
            });
        }
    }
    out
}

/// `promtool tsdb dump` lines grouped by series, in output order.
fn parse_dump(text: &str) -> Vec<(String, Vec<(i64, f64)>)> {
    let mut out: Vec<(String, Vec<(i64, f64)>)> = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let close = line.rfind('}').expect("dump line has labels");
        let labels = &line[..=close];
        let mut rest = line[close + 1..].split_whitespace();
        let v: f64 = rest.next().unwrap().parse().unwrap();
        let t: i64 = rest.next().unwrap().parse().unwrap();
        assert!(rest.next().is_none(), "unexpected dump line {line:?}");
        match out.last_mut() {
            Some((l, samples)) if l == labels => samples.push((t, v)),
            _ => out.push((labels.to_owned(), vec![(t, v)])),
        }
    }
    out
}

fn same_value(chunk_bits: u64, dumped: f64) -> bool {
    if dumped.is_nan() {
        chunk_bits == PROM_NAN_BITS
    } else {
        chunk_bits == dumped.to_bits()
    }
}

/// Asserts byte equality, reporting the first difference instead of both buffers.
fn assert_same_bytes(ours: &[u8], promtool: &[u8], what: &str) {
    if let Some(at) = ours.iter().zip(promtool).position(|(a, b)| a != b) {
        panic!(
            "{what}: first difference at byte {at}: ours {:#04x}, promtool {:#04x}",
            ours[at], promtool[at]
        );
    }
    assert_eq!(ours.len(), promtool.len(), "{what}: lengths differ");
}

/// Reads an integer field such as `"minTime": 123` from a block's tab-indented meta.json.
fn meta_int(meta: &str, key: &str) -> i64 {
    let pat = format!("\"{key}\": ");
    let at = meta
        .find(&pat)
        .unwrap_or_else(|| panic!("{key} missing in meta.json"))
        + pat.len();
    let digits: String = meta[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    digits.parse().unwrap()
}

/// Checks one block; returns the number of samples promtool dumped for it.
fn check_block(db: &Path, block: &Path) -> usize {
    let meta = std::fs::read_to_string(block.join("meta.json")).unwrap();
    let chunks = read_segments(block);
    assert_eq!(
        chunks.len() as i64,
        meta_int(&meta, "numChunks"),
        "chunks in {block:?}"
    );

    // Decode, and re-encode each chunk from its samples: bytes must be identical.
    let mut decoded: Vec<Vec<(i64, u64)>> = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        assert_eq!(
            Encoding::try_from(c.encoding).unwrap(),
            Encoding::Xor,
            "chunk {i}"
        );
        let mut it = float_iterator(c.encoding, &c.data).unwrap();
        let samples: Vec<(i64, u64)> = it.by_ref().map(|s| (s.t, s.v.to_bits())).collect();
        assert_eq!(it.err(), None, "chunk {i}");
        assert_eq!(samples.len(), it.num_samples(), "chunk {i}");

        let mut re = XorChunk::new();
        for &(t, v) in &samples {
            re.append(t, f64::from_bits(v));
        }
        assert_same_bytes(
            re.bytes(),
            &c.data,
            &format!("re-encoded chunk {i} of {block:?}"),
        );
        assert_eq!(re.min_time(), samples.first().map(|s| s.0));
        assert_eq!(re.max_time(), samples.last().map(|s| s.0));

        let restored = XorChunk::from_bytes(c.data.clone()).unwrap();
        assert_same_bytes(
            restored.bytes(),
            &c.data,
            &format!("from_bytes of chunk {i}"),
        );
        assert_eq!(XorIterator::new(&c.data).count(), samples.len());
        decoded.push(samples);
    }
    let in_chunks: usize = decoded.iter().map(Vec::len).sum();
    assert_eq!(
        in_chunks as i64,
        meta_int(&meta, "numSamples"),
        "samples in {block:?}"
    );

    // Compare with promtool's own reading of exactly this block's time range.
    let (min_t, max_t) = (meta_int(&meta, "minTime"), meta_int(&meta, "maxTime"));
    let dump = parse_dump(&run(&[
        "tsdb",
        "dump",
        &format!("--min-time={min_t}"),
        &format!("--max-time={}", max_t - 1),
        db.to_str().unwrap(),
    ]));

    // Chunks are written series by series in label order, like the dump, so walking the
    // chunks must consume each series exactly, with no chunk spanning two series.
    let mut chunk_iter = decoded.iter().enumerate();
    for (labels, samples) in &dump {
        let mut pos = 0;
        while pos < samples.len() {
            let (i, chunk) = chunk_iter
                .next()
                .unwrap_or_else(|| panic!("chunks exhausted inside series {labels}"));
            assert!(
                pos + chunk.len() <= samples.len(),
                "chunk {i} spans past the end of series {labels}"
            );
            for (k, &(t, bits)) in chunk.iter().enumerate() {
                let (dt, dv) = samples[pos + k];
                assert_eq!(t, dt, "timestamp of sample {k} in chunk {i} ({labels})");
                assert!(
                    same_value(bits, dv),
                    "value of sample {k} in chunk {i} ({labels}): chunk {bits:#x}, dump {dv}"
                );
            }
            pos += chunk.len();
        }
    }
    assert!(
        chunk_iter.next().is_none(),
        "chunks left over after all series"
    );
    dump.iter().map(|(_, s)| s.len()).sum()
}

#[test]
fn xor_chunks_written_by_promtool_decode_and_reencode_identically() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.om");
    let db = dir.path().join("blocks");
    let series = build_series();
    write_openmetrics(&series, &input);
    run(&[
        "tsdb",
        "create-blocks-from",
        "openmetrics",
        input.to_str().unwrap(),
        db.to_str().unwrap(),
    ]);
    // `promtool tsdb dump` opens the directory as a database and wants a WAL directory.
    std::fs::create_dir_all(db.join("wal")).unwrap();

    let mut blocks: Vec<PathBuf> = std::fs::read_dir(&db)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("meta.json").exists())
        .collect();
    blocks.sort();
    assert!(!blocks.is_empty(), "promtool wrote no block");

    let mut total_chunks = 0;
    let mut dumped = 0;
    for block in &blocks {
        total_chunks += read_segments(block).len();
        dumped += check_block(&db, block);
    }
    let input_samples: usize = series.iter().map(|s| s.samples.len()).sum();
    assert_eq!(dumped, input_samples, "samples dumped over all blocks");
    assert!(
        total_chunks >= 2 * series.len(),
        "expected several chunks per series, got {total_chunks} for {} series",
        series.len()
    );
}
