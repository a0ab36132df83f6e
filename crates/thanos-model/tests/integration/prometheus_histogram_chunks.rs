//! Byte-compatibility proof for the histogram chunk codecs against Prometheus itself.
//!
//! Starts Debian's Prometheus 2.42 (`/usr/bin/prometheus`, or `$PROMETHEUS`) with native
//! histograms and the remote-write receiver enabled and one-minute blocks, posts integer,
//! float, gauge and stale-marker histogram series over remote write 1.0, waits for head
//! compaction to write blocks, then reads every chunk of those blocks directly (magic,
//! CRC32C) and requires that
//! * every histogram chunk decodes without error into samples that were sent,
//! * re-encoding the decoded samples with our appenders gives exactly Prometheus's bytes,
//! * appending the samples *as sent* to a chunk with Prometheus's counter-reset header
//!   gives the same bytes too (this exercises our recoding when new buckets appear), and
//! * our verdict on the sample after each chunk (append, or cut with which header)
//!   agrees with where and how Prometheus started its next chunk.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use thanos_model::chunkenc::{
    AppendOutcome, CounterResetHeader, Encoding, FloatHistogramChunk, FloatHistogramIterator,
    HistogramChunk, HistogramIterator,
};
use thanos_model::histogram::{CounterResetHint, FloatHistogram, Histogram, Span, bucket_indexes};
use thanos_proto::prometheus as pb;

const SEGMENT_MAGIC: [u8; 4] = [0x85, 0xbd, 0x40, 0xdd];

/// Kills the child on drop so a failing test leaves no server behind.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind loopback")
        .local_addr()
        .expect("local addr")
        .port()
}

/// Sends one HTTP/1.0 request and returns the status code.
fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut req = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).ok()?;
    let line = String::from_utf8_lossy(&resp);
    line.split(' ').nth(1)?.parse().ok()
}

fn span_pb(s: &[Span]) -> Vec<pb::BucketSpan> {
    s.iter()
        .map(|s| pb::BucketSpan {
            offset: s.offset,
            length: s.length,
        })
        .collect()
}

fn hint_pb(h: CounterResetHint) -> i32 {
    h.as_u8().into()
}

fn int_pb(t: i64, h: &Histogram) -> pb::Histogram {
    pb::Histogram {
        count: Some(pb::histogram::Count::CountInt(h.count)),
        sum: h.sum,
        schema: h.schema,
        zero_threshold: h.zero_threshold,
        zero_count: Some(pb::histogram::ZeroCount::ZeroCountInt(h.zero_count)),
        negative_spans: span_pb(&h.negative_spans),
        negative_deltas: h.negative_buckets.clone(),
        positive_spans: span_pb(&h.positive_spans),
        positive_deltas: h.positive_buckets.clone(),
        reset_hint: hint_pb(h.counter_reset_hint),
        timestamp: t,
        ..Default::default()
    }
}

fn float_pb(t: i64, h: &FloatHistogram) -> pb::Histogram {
    pb::Histogram {
        count: Some(pb::histogram::Count::CountFloat(h.count)),
        sum: h.sum,
        schema: h.schema,
        zero_threshold: h.zero_threshold,
        zero_count: Some(pb::histogram::ZeroCount::ZeroCountFloat(h.zero_count)),
        negative_spans: span_pb(&h.negative_spans),
        negative_counts: h.negative_buckets.clone(),
        positive_spans: span_pb(&h.positive_spans),
        positive_counts: h.positive_buckets.clone(),
        reset_hint: hint_pb(h.counter_reset_hint),
        timestamp: t,
        ..Default::default()
    }
}

/// Integer histogram with the given absolute bucket counts (positive, negative).
fn int_hist(
    schema: i32,
    zt: f64,
    pos: (&[Span], &[i64]),
    neg: (&[Span], &[i64]),
    zero: u64,
    sum: f64,
) -> Histogram {
    let delta = |abs: &[i64]| {
        let mut prev = 0;
        abs.iter()
            .map(|&a| {
                let d = a - prev;
                prev = a;
                d
            })
            .collect::<Vec<_>>()
    };
    let count = zero + pos.1.iter().chain(neg.1).map(|&c| c as u64).sum::<u64>();
    Histogram {
        counter_reset_hint: CounterResetHint::Unknown,
        schema,
        zero_threshold: zt,
        zero_count: zero,
        count,
        sum,
        positive_spans: pos.0.to_vec(),
        negative_spans: neg.0.to_vec(),
        positive_buckets: delta(pos.1),
        negative_buckets: delta(neg.1),
        custom_values: Vec::new(),
    }
}

/// A histogram as sent.
#[derive(Debug, Clone)]
enum Sent {
    Int(Histogram),
    Float(FloatHistogram),
}

impl Sent {
    fn as_float(&self) -> FloatHistogram {
        match self {
            Sent::Int(h) => h.to_float(),
            Sent::Float(h) => h.clone(),
        }
    }
}

/// One sample we send: series name, timestamp, histogram, protobuf message.
type Work = (&'static str, i64, Sent, pb::Histogram);

/// Everything we send.
fn workload(base: i64, n: i64) -> Vec<Work> {
    let mut out: Vec<Work> = Vec::new();
    let push_int = |out: &mut Vec<Work>, name, t, h: Histogram| {
        let p = int_pb(t, &h);
        out.push((name, t, Sent::Int(h), p));
    };
    let two = [Span::new(0, 2), Span::new(1, 2)];
    let three = [Span::new(0, 2), Span::new(1, 3)];
    let neg = [Span::new(-1, 1)];
    for i in 0..n {
        let t = base + i * 1000;
        // Counter: steady growth, a counter reset at 70, a new bucket from 130 (Prometheus
        // recodes the open chunk), a schema change at 200.
        let k = if i < 70 { i } else { i - 70 };
        let g = k + k * k / 7;
        let counts = [g, 2 * g + 1, 3 * g / 2, g + 5];
        let sum = 0.37 * (k as f64) + 1.0 / 3.0;
        let h = if i < 130 {
            int_hist(
                0,
                2f64.powi(-128),
                (&two, &counts),
                (&neg, &[g / 3]),
                k as u64,
                sum,
            )
        } else {
            let schema = if i < 200 { 0 } else { 1 };
            int_hist(
                schema,
                2f64.powi(-128),
                (&three, &[counts[0], counts[1], counts[2], counts[3], g / 2]),
                (&neg, &[g / 3]),
                k as u64,
                sum,
            )
        };
        push_int(&mut out, "h_counter", t, h);

        // Gauge: counts go up and down.
        let w = (i * 37 % 11) - 5 + 20;
        let mut gauge = int_hist(
            -2,
            0.001,
            (&[Span::new(-3, 3)], &[w, 20 - w / 2, 1 + i % 3]),
            (&[], &[]),
            (i % 4) as u64,
            -1.5 * w as f64,
        );
        gauge.counter_reset_hint = CounterResetHint::Gauge;
        push_int(&mut out, "h_gauge", t, gauge);

        // Stale marker in the middle of a counter series.
        let stale = if i == 90 || i == 91 {
            Histogram::stale()
        } else {
            int_hist(
                3,
                0.0,
                (&[Span::new(5, 1), Span::new(2, 2)], &[i, i / 2, 3 * i]),
                (&[], &[]),
                0,
                i as f64 * 10.0,
            )
        };
        push_int(&mut out, "h_stale", t, stale);

        // Float histogram with fractional counts; a new bucket from 150.
        let f = i as f64;
        let mut fh = FloatHistogram {
            counter_reset_hint: CounterResetHint::Unknown,
            schema: 3,
            zero_threshold: 0.001,
            zero_count: 0.5 * f,
            count: 0.5 * f + 1.25 * f + 0.1 * f + 7.0 + 0.75 * f,
            sum: 2.71 * f,
            positive_spans: vec![Span::new(2, 2), Span::new(3, 1)],
            negative_spans: vec![Span::new(0, 1)],
            positive_buckets: vec![1.25 * f, 0.1 * f, 7.0],
            negative_buckets: vec![0.75 * f],
            custom_values: Vec::new(),
        };
        if i >= 150 {
            fh.positive_spans = vec![Span::new(2, 3), Span::new(2, 1)];
            fh.positive_buckets = vec![1.25 * f, 0.1 * f, 0.5, 7.0];
            fh.count += 0.5;
        }
        let p = float_pb(t, &fh);
        out.push(("h_float", t, Sent::Float(fh), p));
    }
    out
}

/// Key of a histogram independent of its span layout (Prometheus may add empty buckets
/// when it recodes a chunk).
/// Timestamp, schema, zero threshold, zero count, count, sum (bit patterns) and the
/// non-zero buckets as (negative side, index, count bits).
type Key = (i64, i32, u64, u64, u64, u64, Vec<(bool, i64, u64)>);

fn key(t: i64, h: &FloatHistogram) -> Key {
    let mut b = Vec::new();
    for (neg, spans, counts) in [
        (false, &h.positive_spans, &h.positive_buckets),
        (true, &h.negative_spans, &h.negative_buckets),
    ] {
        for (idx, c) in bucket_indexes(spans).zip(counts.iter()) {
            if *c != 0.0 {
                b.push((neg, idx, c.to_bits()));
            }
        }
    }
    let stale = h.is_stale();
    (
        t,
        if stale { 0 } else { h.schema },
        if stale { 0 } else { h.zero_threshold.to_bits() },
        h.zero_count.to_bits(),
        h.count.to_bits(),
        h.sum.to_bits(),
        b,
    )
}

/// A histogram chunk read from a block: encoding, header, bytes, decoded samples.
type ReadChunk = (u8, CounterResetHeader, Vec<u8>, Vec<(i64, FloatHistogram)>);

/// Every chunk (encoding byte, data) in a block's segment files, CRCs verified.
fn block_chunks(block: &Path) -> Vec<(u8, Vec<u8>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(block.join("chunks"))
        .expect("chunks dir")
        .map(|e| e.expect("dir entry").path())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let data = std::fs::read(&f).expect("read segment");
        assert_eq!(data[..4], SEGMENT_MAGIC, "{}", f.display());
        assert_eq!(data[4], 1, "segment version");
        let mut pos = 8;
        while pos < data.len() {
            let mut len = 0usize;
            let mut shift = 0;
            loop {
                let b = data[pos];
                pos += 1;
                len |= usize::from(b & 0x7f) << shift;
                shift += 7;
                if b < 0x80 {
                    break;
                }
            }
            let enc = data[pos];
            let body = data[pos + 1..pos + 1 + len].to_vec();
            let crc = u32::from_be_bytes(
                data[pos + 1 + len..pos + 5 + len]
                    .try_into()
                    .expect("4 bytes"),
            );
            assert_eq!(crc32c::crc32c(&data[pos..pos + 1 + len]), crc, "chunk CRC");
            pos += 5 + len;
            out.push((enc, body));
        }
    }
    out
}

fn blocks(data_dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(data_dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("meta.json").is_file() && p.join("chunks").is_dir())
        .collect();
    v.sort();
    v
}

#[test]
fn histogram_chunks_written_by_prometheus_reencode_identically() {
    let prometheus = std::env::var("PROMETHEUS").unwrap_or_else(|_| "/usr/bin/prometheus".into());
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 1h\n").expect("write config");
    let data_dir = dir.path().join("data");
    let port = free_port();
    let child = Command::new(&prometheus)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", data_dir.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--enable-feature=native-histograms")
        .arg("--web.enable-remote-write-receiver")
        .arg("--storage.tsdb.min-block-duration=1m")
        .arg("--storage.tsdb.max-block-duration=1m")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {prometheus} (install Debian's `prometheus` package): {e}")
        });
    let _server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while http(port, "GET", "/-/ready", &[], &[]) != Some(200) {
        assert!(Instant::now() < deadline, "prometheus did not become ready");
        std::thread::sleep(Duration::from_millis(200));
    }

    // Ten minutes ago, aligned to the minute; 300 one-second steps make Prometheus
    // compact four one-minute blocks (it stops when the head spans at most 90 s).
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let base = (now / 60_000 - 10) * 60_000;
    let stale_float = FloatHistogram::stale();
    let work = workload(base, 300);
    let mut series: Vec<pb::TimeSeries> = Vec::new();
    for name in ["h_counter", "h_gauge", "h_stale", "h_float"] {
        series.push(pb::TimeSeries {
            labels: vec![pb::Label {
                name: "__name__".into(),
                value: name.into(),
            }],
            histograms: work
                .iter()
                .filter(|w| w.0 == name)
                .map(|w| w.3.clone())
                .collect(),
            ..Default::default()
        });
    }
    let req = pb::WriteRequest {
        timeseries: series,
        ..Default::default()
    };
    let body = thanos_proto::remote_write::encode(&req).expect("encode write request");
    let status = http(
        port,
        "POST",
        "/api/v1/write",
        &[
            ("Content-Type", "application/x-protobuf"),
            ("Content-Encoding", "snappy"),
            ("X-Prometheus-Remote-Write-Version", "0.1.0"),
        ],
        &body,
    );
    assert_eq!(status, Some(204), "remote write rejected");

    let deadline = Instant::now() + Duration::from_secs(120);
    while blocks(&data_dir).len() < 4 {
        assert!(Instant::now() < deadline, "prometheus wrote no blocks");
        std::thread::sleep(Duration::from_millis(500));
    }
    // Let a block being written finish (its directory only appears after the rename).
    std::thread::sleep(Duration::from_secs(1));

    // Pass 1: every histogram chunk decodes into samples we sent, and re-encoding the
    // decoded samples gives Prometheus's bytes.
    let mut sent = HashSet::new();
    for (_, t, h, _) in &work {
        // A stale marker decodes as an empty histogram with the stale sum.
        let h = h.as_float();
        sent.insert(key(*t, if h.is_stale() { &stale_float } else { &h }));
    }
    let (mut samples, mut stale) = (0, 0);
    let mut chunks: Vec<ReadChunk> = Vec::new();
    for block in blocks(&data_dir) {
        for (enc, data) in block_chunks(&block) {
            let header = CounterResetHeader::from_flags(data.get(2).copied().unwrap_or(0));
            let decoded: Vec<(i64, FloatHistogram)> = if enc == Encoding::Histogram.as_u8() {
                let mut ours = HistogramChunk::with_header(header);
                let mut it = HistogramIterator::new(&data);
                let mut out = Vec::new();
                for (t, h) in it.by_ref() {
                    assert_eq!(ours.append(t, &h), Ok(AppendOutcome::Appended));
                    out.push((t, h.to_float()));
                }
                assert_eq!(it.err(), None);
                assert_eq!(ours.bytes(), &data[..], "integer histogram chunk differs");
                out
            } else if enc == Encoding::FloatHistogram.as_u8() {
                let mut ours = FloatHistogramChunk::with_header(header);
                let mut it = FloatHistogramIterator::new(&data);
                let mut out = Vec::new();
                for (t, h) in it.by_ref() {
                    assert_eq!(ours.append(t, &h), Ok(AppendOutcome::Appended));
                    out.push((t, h));
                }
                assert_eq!(it.err(), None);
                assert_eq!(ours.bytes(), &data[..], "float histogram chunk differs");
                out
            } else {
                continue;
            };
            for (t, h) in &decoded {
                samples += 1;
                stale += usize::from(h.is_stale());
                assert!(
                    sent.contains(&key(*t, h)),
                    "unexpected sample at {t}: {h:?}"
                );
            }
            chunks.push((enc, header, data, decoded));
        }
    }

    // Pass 2: appending the samples as sent (not as decoded) to a chunk with
    // Prometheus's header reproduces each chunk, including recoding for new buckets,
    // and our verdict on the following sample predicts where and with which header
    // Prometheus cut the next chunk.
    let series_of = |t: i64, h: &FloatHistogram| {
        work.iter()
            .find(|w| {
                w.1 == t && {
                    let f = w.2.as_float();
                    key(t, if f.is_stale() { &stale_float } else { &f }) == key(t, h)
                }
            })
            .map(|w| w.0)
            .expect("chunk sample was sent")
    };
    let firsts: Vec<(&str, i64, CounterResetHeader)> = chunks
        .iter()
        .map(|(_, header, _, d)| (series_of(d[0].0, &d[0].1), d[0].0, *header))
        .collect();
    let (mut recoded, mut predicted_cuts) = (0, 0);
    let mut per_chunk = Vec::new();
    for (enc, header, data, decoded) in &chunks {
        let name = series_of(decoded[0].0, &decoded[0].1);
        let (first_t, last_t) = (decoded[0].0, decoded[decoded.len() - 1].0);
        let inputs: Vec<&Work> = work
            .iter()
            .filter(|w| w.0 == name && w.1 >= first_t && w.1 <= last_t)
            .collect();
        assert_eq!(inputs.len(), decoded.len());
        let next = work.iter().find(|w| w.0 == name && w.1 > last_t);
        let (bytes, next_outcome) = match enc {
            2 => {
                let mut c = HistogramChunk::with_header(*header);
                for w in &inputs {
                    let Sent::Int(h) = &w.2 else {
                        panic!("float sample in integer chunk")
                    };
                    let o = c.append(w.1, h).expect("append");
                    assert!(
                        matches!(o, AppendOutcome::Appended | AppendOutcome::Recoded),
                        "{name} at {}: {o:?}",
                        w.1
                    );
                    recoded += usize::from(o == AppendOutcome::Recoded);
                }
                let o = next.map(|w| match &w.2 {
                    Sent::Int(h) => c.clone().append(w.1, h).expect("append"),
                    Sent::Float(_) => panic!("encoding change"),
                });
                (c.bytes().to_vec(), o)
            }
            _ => {
                let mut c = FloatHistogramChunk::with_header(*header);
                for w in &inputs {
                    let Sent::Float(h) = &w.2 else {
                        panic!("integer sample in float chunk")
                    };
                    let o = c.append(w.1, h).expect("append");
                    assert!(
                        matches!(o, AppendOutcome::Appended | AppendOutcome::Recoded),
                        "{name} at {}: {o:?}",
                        w.1
                    );
                    recoded += usize::from(o == AppendOutcome::Recoded);
                }
                let o = next.map(|w| match &w.2 {
                    Sent::Float(h) => c.clone().append(w.1, h).expect("append"),
                    Sent::Int(_) => panic!("encoding change"),
                });
                (c.bytes().to_vec(), o)
            }
        };
        assert_eq!(
            &bytes, data,
            "{name} chunk from {first_t} rebuilt from sent samples differs"
        );
        per_chunk.push((name, *enc, *header, decoded.len()));
        let (Some(next), Some(outcome)) = (next, next_outcome) else {
            continue;
        };
        let same_window = (next.1 - base) / 60_000 == (last_t - base) / 60_000;
        let want_header = match outcome {
            AppendOutcome::NewChunk(reason) => reason.next_chunk_header(),
            _ => {
                assert!(
                    !same_window,
                    "{name}: Prometheus cut at {} but we would append",
                    next.1
                );
                CounterResetHeader::NotCounterReset
            }
        };
        // A gauge histogram appended first marks its chunk as a gauge chunk.
        let want_header = if next.2.as_float().counter_reset_hint == CounterResetHint::Gauge {
            CounterResetHeader::Gauge
        } else {
            want_header
        };
        if let Some(&(_, _, got)) = firsts.iter().find(|f| f.0 == name && f.1 == next.1) {
            assert_eq!(
                got, want_header,
                "{name}: header of the chunk starting at {}",
                next.1
            );
            predicted_cuts += 1;
        }
    }
    let int_chunks = chunks.iter().filter(|c| c.0 == 2).count();
    let float_chunks = chunks.len() - int_chunks;
    let bytes_of = |enc: u8| {
        let (b, n) = chunks
            .iter()
            .filter(|c| c.0 == enc)
            .fold((0, 0), |(b, n), c| (b + c.2.len(), n + c.3.len()));
        b as f64 / n.max(1) as f64
    };
    eprintln!(
        "compared {int_chunks} integer and {float_chunks} float histogram chunks \
         ({samples} samples, {stale} stale markers, {recoded} recodes, {predicted_cuts} \
         next-chunk headers predicted; {:.1} / {:.1} bytes per integer / float \
         histogram sample); (series, encoding, header, samples): {per_chunk:?}",
        bytes_of(2),
        bytes_of(3)
    );
    assert!(
        int_chunks >= 12,
        "expected integer chunks of three series in four blocks"
    );
    assert!(float_chunks >= 4, "expected float chunks in four blocks");
    assert!(
        samples >= 4 * 200,
        "expected most samples of the first four minutes"
    );
    assert!(stale >= 2, "expected the stale markers in a block");
    assert!(
        recoded >= 2,
        "expected recoding in the counter and float series"
    );
    assert!(
        predicted_cuts >= 10,
        "expected chunk boundaries inside the blocks"
    );
}
