//! Decoding and validation of remote-write requests (1.0 and 2.0) into a [`Batch`].
//!
//! Order of checks, following Thanos receive (components.md §3.4) and the remote-write
//! specs (remote-write.md §2–§4):
//!
//! 1. [`negotiate`]: the message type from `Content-Type` (`proto=` parameter, else the
//!    `X-Prometheus-Remote-Write-Version` header, else 1.0) and `Content-Encoding`
//!    (`snappy`, or absent); anything else is 415.
//! 2. Size: the compressed body against [`WriteLimits::max_body_bytes`] and the
//!    decompressed size *declared in the snappy header* against
//!    [`WriteLimits::max_decompressed_bytes`] before anything is allocated (413), so a
//!    snappy bomb costs nothing.
//! 3. Snappy and protobuf decoding (400 on corrupt input, naming the byte offset).
//! 4. Request limits: series and samples per request (413).
//! 5. Per-series validation. A malformed series (no labels, empty label name, invalid
//!    UTF-8, duplicate label names, bad 2.0 symbol references) is left out of the batch
//!    and recorded in [`Batch::rejections`]; the other series of the request are still
//!    written and the request answers 400 naming the series and the reason. Unsorted
//!    labels are sorted and empty-valued labels dropped, like Prometheus. Series without
//!    `__name__` are accepted (as Prometheus 2.42 and Thanos do). Exemplars and metadata
//!    are ignored, as Thanos does with `--tsdb.max-exemplars=0`. Native histogram samples
//!    (integer and float, exponential or custom-bucket schemas) are decoded into
//!    [`SeriesSamples::histograms`]; a series with a malformed histogram (bad spans,
//!    negative or inconsistent counts) or with a float and a histogram sample at the same
//!    timestamp is rejected as a whole with [`Reason::InvalidHistogram`] (400).
//! 6. [`Batch::relabel`]: `--receive.relabel-config` rules on every valid series; dropped
//!    series are ignored, a series whose labels the rules make invalid is rejected (400).

use bytes::Bytes;
use thanos_model::relabel::{self, RelabelConfig};
use thanos_model::{Label, Labels, Sample};
use thanos_proto::{prometheus_copy, remote_write};

use crate::error::{Reason, Rejections, WriteError};
use crate::histogram::HistogramSample;
use crate::wire::{FIXED64, LEN, Reader, VARINT, WireError};

/// The remote-write message carried by a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Remote write 1.0, `prometheus.WriteRequest`.
    V1,
    /// Remote write 2.0, `io.prometheus.write.v2.Request`.
    V2,
}

/// `proto=` value of remote write 1.0.
const PROTO_V1: &str = "prometheus.WriteRequest";
/// `proto=` value of remote write 2.0.
const PROTO_V2: &str = "io.prometheus.write.v2.Request";

/// Picks the protocol from the request headers (values as received, `None` if absent).
///
/// `Content-Encoding` must be `snappy` or absent (1.0 senders predating the header).
/// `Content-Type` must be `application/x-protobuf`, optionally with `proto=` naming one of
/// the two messages; without `proto=` (or without the header) the
/// `X-Prometheus-Remote-Write-Version` header decides (`2.x` → 2.0, otherwise 1.0).
pub fn negotiate(
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    version: Option<&str>,
) -> Result<Protocol, WriteError> {
    if let Some(enc) = content_encoding.map(str::trim).filter(|e| !e.is_empty())
        && !enc.eq_ignore_ascii_case(remote_write::CONTENT_ENCODING_SNAPPY)
    {
        return Err(WriteError::UnsupportedContentEncoding {
            encoding: enc.to_owned(),
        });
    }
    let by_version = || match version.map(str::trim) {
        Some(v) if v.starts_with("2.") => Protocol::V2,
        _ => Protocol::V1,
    };
    let Some(ct) = content_type.map(str::trim).filter(|c| !c.is_empty()) else {
        return Ok(by_version());
    };
    let unsupported = || WriteError::UnsupportedContentType {
        content_type: ct.to_owned(),
    };
    let mut parts = ct.split(';');
    let media = parts.next().unwrap_or_default().trim();
    if !media.eq_ignore_ascii_case(remote_write::CONTENT_TYPE_V1) {
        return Err(unsupported());
    }
    let mut proto = None;
    for param in parts {
        let Some((key, value)) = param.split_once('=') else {
            continue;
        };
        if key.trim().eq_ignore_ascii_case("proto") {
            proto = Some(value.trim().trim_matches('"'));
        }
    }
    match proto {
        None => Ok(by_version()),
        Some(PROTO_V1) => Ok(Protocol::V1),
        Some(PROTO_V2) => Ok(Protocol::V2),
        Some(_) => Err(unsupported()),
    }
}

/// Size and count limits of one request (0 = unlimited for the counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteLimits {
    /// Maximum compressed body size in bytes (`size_bytes_limit`).
    pub max_body_bytes: usize,
    /// Maximum decompressed size in bytes, checked against the snappy header before
    /// allocating.
    pub max_decompressed_bytes: usize,
    /// Maximum series per request (`series_limit`, 0 = unlimited).
    pub max_series: usize,
    /// Maximum samples (floats and histograms) per request (`samples_limit`,
    /// 0 = unlimited).
    pub max_samples: usize,
}

impl Default for WriteLimits {
    /// 32 MiB compressed, 128 MiB decompressed, no count limits.
    fn default() -> Self {
        Self {
            max_body_bytes: 32 << 20,
            max_decompressed_bytes: 128 << 20,
            max_series: 0,
            max_samples: 0,
        }
    }
}

/// One valid series of a request with its float and histogram samples, in request order.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSamples {
    /// Sorted, validated labels.
    pub labels: Labels,
    /// Float samples as sent (not checked for order here; the head does that).
    pub samples: Vec<Sample>,
    /// Native histogram samples as sent (validated; the head appends them after the
    /// float samples of the series, as Prometheus's write handler does).
    pub histograms: Vec<HistogramSample>,
}

/// The decoded content of one request: valid series plus what was rejected while
/// decoding.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    /// Valid series.
    pub series: Vec<SeriesSamples>,
    /// Series (and histogram samples) rejected during validation.
    pub rejections: Rejections,
    received_series: usize,
    received_samples: usize,
}

impl Batch {
    /// A batch of already validated series (e.g. built in-process or replayed), with
    /// nothing rejected.
    pub fn from_series(series: Vec<SeriesSamples>) -> Self {
        let received_samples = series
            .iter()
            .map(|s| s.samples.len() + s.histograms.len())
            .sum();
        Self {
            received_series: series.len(),
            received_samples,
            series,
            rejections: Rejections::default(),
        }
    }

    /// Series in the request, valid or not.
    pub fn received_series(&self) -> usize {
        self.received_series
    }

    /// Samples (floats and histograms) in the request, valid or not.
    pub fn received_samples(&self) -> usize {
        self.received_samples
    }

    /// Float and histogram samples in the valid series.
    pub fn num_samples(&self) -> usize {
        self.series
            .iter()
            .map(|s| s.samples.len() + s.histograms.len())
            .sum()
    }

    /// Histogram samples in the valid series.
    pub fn num_histograms(&self) -> usize {
        self.series.iter().map(|s| s.histograms.len()).sum()
    }

    /// Validates the series of a `thanos.WriteRequest` (Thanos's `prometheus_copy`
    /// messages, as forwarded between receivers) exactly like a decoded remote-write
    /// body: malformed series (and series with malformed histograms) are recorded in
    /// [`Batch::rejections`]; exemplars are ignored.
    pub fn from_timeseries(series: &[prometheus_copy::TimeSeries]) -> Self {
        let mut batch = Batch::default();
        let mut labels = Vec::new();
        for ts in series {
            labels.clear();
            labels.extend(
                ts.labels
                    .iter()
                    .map(|l| (l.name.as_bytes(), l.value.as_bytes())),
            );
            let samples = ts
                .samples
                .iter()
                .map(|s| Sample::new(s.timestamp, s.value))
                .collect();
            let histograms = ts
                .histograms
                .iter()
                .map(|h| HistogramSample::from_proto(h.clone()))
                .collect();
            batch.add_series(&labels, samples, histograms);
        }
        batch
    }
}

impl Batch {
    /// Applies relabel rules to every valid series, before distribution (components.md
    /// §3.4 step 7). A series the rules drop is left out silently (it still counts as
    /// received); a series left without labels or with an empty label name is rejected
    /// like a malformed series (400 for that series, the others are written).
    pub fn relabel(&mut self, configs: &[RelabelConfig]) {
        if configs.is_empty() {
            return;
        }
        let series = std::mem::take(&mut self.series);
        for s in series {
            let Some(labels) = relabel::process(&s.labels, configs) else {
                continue;
            };
            let invalid = if labels.is_empty() {
                Some(Reason::EmptyLabelSet)
            } else if labels.iter().any(|l| l.name.is_empty()) {
                Some(Reason::EmptyLabelName)
            } else {
                None
            };
            match invalid {
                None => self.series.push(SeriesSamples {
                    labels,
                    samples: s.samples,
                    histograms: s.histograms,
                }),
                Some(reason) => self
                    .rejections
                    .add(reason, 1, || format!("{} relabelled to {labels}", s.labels)),
            }
        }
    }
}

impl SeriesSamples {
    /// The series as a Thanos `prometheus_copy.TimeSeries` (for forwarding to a peer).
    pub fn to_proto(&self) -> prometheus_copy::TimeSeries {
        prometheus_copy::TimeSeries {
            labels: thanos_proto::storepb::labels_to_proto(&self.labels),
            samples: self
                .samples
                .iter()
                .map(|s| prometheus_copy::Sample {
                    value: s.v,
                    timestamp: s.t,
                })
                .collect(),
            exemplars: Vec::new(),
            histograms: self
                .histograms
                .iter()
                .map(HistogramSample::to_proto)
                .collect(),
        }
    }
}

/// Decompresses and decodes a request body, applies the request limits and validates
/// every series (see the module docs for the order and the outcomes).
pub fn decode_request(
    protocol: Protocol,
    body: &[u8],
    limits: &WriteLimits,
) -> Result<Batch, WriteError> {
    if body.len() > limits.max_body_bytes {
        return Err(WriteError::BodyTooLarge {
            len: body.len() as u64,
            max: limits.max_body_bytes,
        });
    }
    let raw = decompress(body, limits.max_decompressed_bytes)?;
    let batch = match protocol {
        Protocol::V1 => decode_v1(&raw),
        Protocol::V2 => decode_v2(&raw),
    }?;
    if limits.max_series > 0 && batch.received_series > limits.max_series {
        return Err(WriteError::TooManySeries {
            count: batch.received_series,
            max: limits.max_series,
        });
    }
    if limits.max_samples > 0 && batch.received_samples > limits.max_samples {
        return Err(WriteError::TooManySamples {
            count: batch.received_samples,
            max: limits.max_samples,
        });
    }
    Ok(batch)
}

fn decompress(body: &[u8], max: usize) -> Result<Bytes, WriteError> {
    remote_write::decompress(body, max).map_err(|source| match source {
        remote_write::Error::TooLarge { declared, max } => {
            WriteError::DecompressedTooLarge { declared, max }
        }
        source => WriteError::Snappy {
            len: body.len(),
            source,
        },
    })
}

fn proto_err(message: &'static str) -> impl Fn(WireError) -> WriteError {
    move |e| WriteError::Protobuf {
        message,
        offset: e.offset,
        reason: e.reason,
    }
}

/// Decodes a `prometheus.WriteRequest`.
fn decode_v1(raw: &[u8]) -> Result<Batch, WriteError> {
    let err = proto_err("prometheus.WriteRequest");
    let mut batch = Batch::default();
    let mut r = Reader::new(raw, 0);
    let mut labels = Vec::new();
    while !r.is_empty() {
        let (field, wire) = r.key().map_err(&err)?;
        if field != 1 {
            r.skip(wire).map_err(&err)?;
            continue;
        }
        r.expect(wire, LEN).map_err(&err)?;
        let (ts, base) = r.bytes().map_err(&err)?;
        let mut samples = Vec::new();
        let mut histograms = Vec::new();
        labels.clear();
        let mut ts = Reader::new(ts, base);
        while !ts.is_empty() {
            let (field, wire) = ts.key().map_err(&err)?;
            match field {
                1 => {
                    ts.expect(wire, LEN).map_err(&err)?;
                    let (label, base) = ts.bytes().map_err(&err)?;
                    labels.push(decode_v1_label(label, base).map_err(&err)?);
                }
                2 => {
                    ts.expect(wire, LEN).map_err(&err)?;
                    let (sample, base) = ts.bytes().map_err(&err)?;
                    samples.push(decode_sample(sample, base).map_err(&err)?);
                }
                4 => {
                    ts.expect(wire, LEN).map_err(&err)?;
                    let (h, base) = ts.bytes().map_err(&err)?;
                    histograms.push(decode_histogram("prometheus.WriteRequest", h, base)?);
                }
                _ => ts.skip(wire).map_err(&err)?,
            }
        }
        batch.add_series(&labels, samples, histograms);
    }
    Ok(batch)
}

fn decode_v1_label(buf: &[u8], base: usize) -> Result<(&[u8], &[u8]), WireError> {
    let mut r = Reader::new(buf, base);
    let (mut name, mut value): (&[u8], &[u8]) = (b"", b"");
    while !r.is_empty() {
        let (field, wire) = r.key()?;
        match field {
            1 => {
                r.expect(wire, LEN)?;
                name = r.bytes()?.0;
            }
            2 => {
                r.expect(wire, LEN)?;
                value = r.bytes()?.0;
            }
            _ => r.skip(wire)?,
        }
    }
    Ok((name, value))
}

/// Decodes a `Sample` (the same field numbers in 1.0 and 2.0; 2.0's start timestamp,
/// field 3, is skipped).
fn decode_sample(buf: &[u8], base: usize) -> Result<Sample, WireError> {
    let mut r = Reader::new(buf, base);
    let mut s = Sample::default();
    while !r.is_empty() {
        let (field, wire) = r.key()?;
        match field {
            1 => {
                r.expect(wire, FIXED64)?;
                s.v = f64::from_bits(r.fixed64()?);
            }
            2 => {
                r.expect(wire, VARINT)?;
                s.t = r.varint()? as i64;
            }
            _ => r.skip(wire)?,
        }
    }
    Ok(s)
}

/// Decodes an `io.prometheus.write.v2.Request`.
fn decode_v2(raw: &[u8]) -> Result<Batch, WriteError> {
    let err = proto_err("io.prometheus.write.v2.Request");
    let mut symbols: Vec<&[u8]> = Vec::new();
    let mut series: Vec<(&[u8], usize)> = Vec::new();
    let mut r = Reader::new(raw, 0);
    while !r.is_empty() {
        let (field, wire) = r.key().map_err(&err)?;
        match field {
            4 => {
                r.expect(wire, LEN).map_err(&err)?;
                symbols.push(r.bytes().map_err(&err)?.0);
            }
            5 => {
                r.expect(wire, LEN).map_err(&err)?;
                series.push(r.bytes().map_err(&err)?);
            }
            _ => r.skip(wire).map_err(&err)?,
        }
    }
    if symbols.first().is_some_and(|s| !s.is_empty()) {
        return Err(WriteError::Protobuf {
            message: "io.prometheus.write.v2.Request",
            offset: 0,
            reason: "symbols[0] must be the empty string",
        });
    }
    let mut batch = Batch::default();
    let mut refs: Vec<u32> = Vec::new();
    let mut labels = Vec::new();
    for (buf, base) in series {
        refs.clear();
        let mut samples = Vec::new();
        let mut histograms = Vec::new();
        let mut ts = Reader::new(buf, base);
        while !ts.is_empty() {
            let (field, wire) = ts.key().map_err(&err)?;
            match field {
                1 if wire == LEN => {
                    let (packed, base) = ts.bytes().map_err(&err)?;
                    let mut p = Reader::new(packed, base);
                    while !p.is_empty() {
                        refs.push(read_u32(&mut p).map_err(&err)?);
                    }
                }
                1 => {
                    ts.expect(wire, VARINT).map_err(&err)?;
                    refs.push(read_u32(&mut ts).map_err(&err)?);
                }
                2 => {
                    ts.expect(wire, LEN).map_err(&err)?;
                    let (sample, base) = ts.bytes().map_err(&err)?;
                    samples.push(decode_sample(sample, base).map_err(&err)?);
                }
                3 => {
                    ts.expect(wire, LEN).map_err(&err)?;
                    let (h, base) = ts.bytes().map_err(&err)?;
                    histograms.push(decode_histogram("io.prometheus.write.v2.Request", h, base)?);
                }
                _ => ts.skip(wire).map_err(&err)?,
            }
        }
        if refs.len() % 2 == 1 {
            batch.reject_series(
                Reason::OddLabelRefs,
                samples.len() + histograms.len(),
                || format!("series with label refs {refs:?}"),
            );
            continue;
        }
        if let Some(bad) = refs.iter().find(|&&r| r as usize >= symbols.len()) {
            let n = symbols.len();
            batch.reject_series(
                Reason::SymbolRefOutOfRange,
                samples.len() + histograms.len(),
                || format!("series with label refs {refs:?}: ref {bad} but {n} symbols"),
            );
            continue;
        }
        labels.clear();
        labels.extend(
            refs.chunks_exact(2)
                .map(|p| (symbols[p[0] as usize], symbols[p[1] as usize])),
        );
        batch.add_series(&labels, samples, histograms);
    }
    Ok(batch)
}

/// Decodes one `Histogram` message found at byte `base` of the request.
fn decode_histogram(
    message: &'static str,
    buf: &[u8],
    base: usize,
) -> Result<HistogramSample, WriteError> {
    HistogramSample::decode(buf).map_err(|_| WriteError::Protobuf {
        message,
        offset: base,
        reason: "malformed histogram message",
    })
}

fn read_u32(r: &mut Reader<'_>) -> Result<u32, WireError> {
    let at = r.offset();
    let v = r.varint()?;
    u32::try_from(v).map_err(|_| WireError {
        offset: at,
        reason: "label reference overflows uint32",
    })
}

impl Batch {
    fn reject_series(&mut self, reason: Reason, samples: usize, example: impl FnOnce() -> String) {
        self.received_series += 1;
        self.received_samples += samples;
        self.rejections.add(reason, 1, example);
    }

    /// Validates raw labels and adds the series, or records why it was rejected.
    fn add_series(
        &mut self,
        raw: &[(&[u8], &[u8])],
        samples: Vec<Sample>,
        histograms: Vec<HistogramSample>,
    ) {
        let total = samples.len() + histograms.len();
        match build_labels(raw) {
            Ok(labels) => {
                self.received_series += 1;
                self.received_samples += total;
                if let Some(problem) = histogram_problem(&samples, &histograms) {
                    self.rejections.add(Reason::InvalidHistogram, 1, || {
                        format!("{labels}: {problem}")
                    });
                } else if total > 0 {
                    self.series.push(SeriesSamples {
                        labels,
                        samples,
                        histograms,
                    });
                }
            }
            Err((reason, detail)) => self.reject_series(reason, total, || {
                let mut s = describe_raw(raw);
                if let Some(detail) = detail {
                    s.push_str(": ");
                    s.push_str(&detail);
                }
                s
            }),
        }
    }
}

/// Why the histograms of a series cannot be stored, if they cannot: the first one that
/// fails Prometheus's checks, or one sharing its timestamp with a float sample.
fn histogram_problem(samples: &[Sample], histograms: &[HistogramSample]) -> Option<String> {
    if histograms.is_empty() {
        return None;
    }
    for h in histograms {
        if let Err(e) = h.value.validate() {
            return Some(format!("histogram at t={}: {e}", h.t));
        }
    }
    let floats: std::collections::HashSet<i64> = samples.iter().map(|s| s.t).collect();
    histograms
        .iter()
        .find(|h| floats.contains(&h.t))
        .map(|h| format!("float and histogram sample at the same timestamp t={}", h.t))
}

/// Validates and sorts raw labels: empty names, invalid UTF-8 and duplicate names are
/// errors, empty values are dropped, an empty result is an error.
fn build_labels(raw: &[(&[u8], &[u8])]) -> Result<Labels, (Reason, Option<String>)> {
    let mut labels = Vec::with_capacity(raw.len());
    for &(name, value) in raw {
        if name.is_empty() {
            return Err((Reason::EmptyLabelName, None));
        }
        let (Ok(name), Ok(value)) = (std::str::from_utf8(name), std::str::from_utf8(value)) else {
            let name = String::from_utf8_lossy(name);
            return Err((Reason::InvalidUtf8, Some(format!("label {name:?}"))));
        };
        if !value.is_empty() {
            labels.push(Label::new(name, value));
        }
    }
    if labels.is_empty() {
        return Err((Reason::EmptyLabelSet, None));
    }
    if !labels.is_sorted_by(|a, b| a.name < b.name) {
        labels.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        if let Some(w) = labels.windows(2).find(|w| w[0].name == w[1].name) {
            return Err((
                Reason::DuplicateLabelName,
                Some(format!("label {:?}", w[0].name)),
            ));
        }
    }
    Ok(Labels::from_sorted_unchecked(labels))
}

/// Renders raw labels as `{name="value", …}`, replacing invalid UTF-8.
fn describe_raw(raw: &[(&[u8], &[u8])]) -> String {
    let mut s = String::from("{");
    for (i, (name, value)) in raw.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&String::from_utf8_lossy(name));
        s.push('=');
        s.push_str(&format!("{:?}", String::from_utf8_lossy(value)));
    }
    s.push('}');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use thanos_proto::io::prometheus::write::v2 as pb2;
    use thanos_proto::prometheus as pb1;

    fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> pb1::TimeSeries {
        pb1::TimeSeries {
            labels: labels
                .iter()
                .map(|(n, v)| pb1::Label {
                    name: (*n).into(),
                    value: (*v).into(),
                })
                .collect(),
            samples: samples
                .iter()
                .map(|&(timestamp, value)| pb1::Sample { value, timestamp })
                .collect(),
            ..Default::default()
        }
    }

    fn body(req: &impl Message) -> Vec<u8> {
        remote_write::encode(req).expect("encode").to_vec()
    }

    fn v1(ts: Vec<pb1::TimeSeries>) -> Vec<u8> {
        body(&pb1::WriteRequest {
            timeseries: ts,
            metadata: vec![],
        })
    }

    #[test]
    fn negotiation_follows_headers() {
        use Protocol::*;
        let ok = |ct, enc, ver| negotiate(ct, enc, ver).expect("supported");
        assert_eq!(ok(None, None, None), V1);
        assert_eq!(ok(Some("application/x-protobuf"), Some("snappy"), None), V1);
        assert_eq!(
            ok(
                Some("application/x-protobuf;proto=prometheus.WriteRequest"),
                Some("SNAPPY"),
                Some("0.1.0")
            ),
            V1
        );
        assert_eq!(
            ok(Some(remote_write::CONTENT_TYPE_V2), Some("snappy"), None),
            V2
        );
        assert_eq!(ok(Some("application/x-protobuf"), None, Some("2.0.0")), V2);
        let status = |ct, enc| negotiate(ct, enc, None).expect_err("415").http_status();
        assert_eq!(status(Some("application/json"), None).as_u16(), 415);
        assert_eq!(
            status(Some("application/x-protobuf;proto=foo.Bar"), None).as_u16(),
            415
        );
        assert_eq!(
            status(Some("application/x-protobuf"), Some("gzip")).as_u16(),
            415
        );
    }

    #[test]
    fn v1_decodes_sorts_and_drops_empty_values() {
        let b = v1(vec![
            series(
                &[("job", "a"), ("__name__", "up"), ("empty", "")],
                &[(1, 1.0), (2, 0.0)],
            ),
            series(&[("__name__", "x")], &[(5, f64::NAN)]),
        ]);
        let batch = decode_request(Protocol::V1, &b, &WriteLimits::default()).expect("decode");
        assert!(batch.rejections.is_empty());
        assert_eq!(batch.received_series(), 2);
        assert_eq!(batch.received_samples(), 3);
        assert_eq!(
            batch.series[0].labels,
            Labels::from_pairs([("__name__", "up"), ("job", "a")])
        );
        assert_eq!(
            batch.series[0].samples,
            vec![Sample::new(1, 1.0), Sample::new(2, 0.0)]
        );
        assert!(batch.series[1].samples[0].v.is_nan());
    }

    #[test]
    fn invalid_series_are_rejected_individually() {
        let mut bad_utf8 = series(&[("__name__", "ok")], &[(1, 1.0)]);
        bad_utf8.labels.push(pb1::Label {
            name: "z".into(),
            value: "x".into(),
        });
        let mut raw = pb1::WriteRequest {
            timeseries: vec![
                series(&[("a", "1"), ("a", "2")], &[(1, 1.0)]),
                series(&[("", "1")], &[(1, 1.0)]),
                series(&[("a", "")], &[(1, 1.0)]),
                series(&[("__name__", "good")], &[(1, 1.0)]),
                bad_utf8,
            ],
            metadata: vec![],
        }
        .encode_to_vec();
        // Patch the value "x" of label z into an invalid UTF-8 byte.
        let pos = raw
            .windows(4)
            .rposition(|w| w == [0x0a, 0x01, b'z', 0x12])
            .expect("label z");
        raw[pos + 5] = 0xff;
        let b = snap::raw::Encoder::new()
            .compress_vec(&raw)
            .expect("snappy");
        let batch = decode_request(Protocol::V1, &b, &WriteLimits::default()).expect("decode");
        assert_eq!(batch.series.len(), 1);
        assert_eq!(batch.series[0].labels.metric_name(), Some("good"));
        let r = &batch.rejections;
        assert_eq!(r.count(Reason::DuplicateLabelName), 1);
        assert_eq!(r.count(Reason::EmptyLabelName), 1);
        assert_eq!(r.count(Reason::EmptyLabelSet), 1);
        assert_eq!(r.count(Reason::InvalidUtf8), 1);
        assert!(
            r.example(Reason::DuplicateLabelName)
                .expect("example")
                .contains(r#"{a="1", a="2"}: label "a""#),
            "{r}"
        );
        assert!(
            r.example(Reason::InvalidUtf8)
                .expect("example")
                .contains("\u{fffd}")
        );
        assert_eq!(batch.received_series(), 5);
    }

    fn int_histogram(t: i64, count: u64) -> pb1::Histogram {
        pb1::Histogram {
            count: Some(pb1::histogram::Count::CountInt(count)),
            zero_count: Some(pb1::histogram::ZeroCount::ZeroCountInt(0)),
            sum: count as f64,
            schema: 0,
            positive_spans: vec![pb1::BucketSpan {
                offset: 0,
                length: 1,
            }],
            positive_deltas: vec![count as i64],
            timestamp: t,
            ..Default::default()
        }
    }

    fn float_histogram(t: i64, count: f64) -> pb1::Histogram {
        pb1::Histogram {
            count: Some(pb1::histogram::Count::CountFloat(count)),
            zero_count: Some(pb1::histogram::ZeroCount::ZeroCountFloat(0.0)),
            sum: 2.0 * count,
            schema: 3,
            positive_spans: vec![pb1::BucketSpan {
                offset: -2,
                length: 1,
            }],
            positive_counts: vec![count],
            timestamp: t,
            ..Default::default()
        }
    }

    #[test]
    fn v1_histograms_are_decoded() {
        let mut ints = series(&[("__name__", "h")], &[]);
        ints.histograms = vec![int_histogram(1, 3), int_histogram(2, 5)];
        let mut floats = series(&[("__name__", "fh")], &[]);
        floats.histograms = vec![float_histogram(1, 1.5)];
        let batch = decode_request(
            Protocol::V1,
            &v1(vec![ints, floats]),
            &WriteLimits::default(),
        )
        .expect("decode");
        assert!(batch.rejections.is_empty(), "{}", batch.rejections);
        assert_eq!(batch.received_samples(), 3);
        assert_eq!(batch.num_samples(), 3);
        let h = &batch.series[0].histograms;
        assert_eq!(h.len(), 2);
        assert_eq!(
            (h[1].t, h[1].value.count(), h[1].value.sum()),
            (2, 5.0, 5.0)
        );
        assert!(matches!(
            h[0].value,
            crate::histogram::HistogramValue::Int(_)
        ));
        let f = &batch.series[1].histograms[0];
        match &f.value {
            crate::histogram::HistogramValue::Float(fh) => {
                assert_eq!(
                    (fh.schema, fh.count, fh.positive_buckets.clone()),
                    (3, 1.5, vec![1.5])
                );
                assert_eq!(fh.positive_spans, vec![thanos_model::Span::new(-2, 1)]);
            }
            other => panic!("float histogram expected, got {other:?}"),
        }
    }

    #[test]
    fn invalid_histograms_reject_their_series() {
        let mut bad_spans = series(&[("__name__", "spans")], &[]);
        let mut h = int_histogram(1, 3);
        h.positive_spans[0].length = 2;
        bad_spans.histograms = vec![h];
        let mut mixed = series(&[("__name__", "mixed")], &[(5, 1.0)]);
        mixed.histograms = vec![int_histogram(5, 1)];
        let mut bad_count = series(&[("__name__", "count")], &[]);
        let mut h = float_histogram(1, 2.0);
        h.count = Some(pb1::histogram::Count::CountFloat(1.0));
        bad_count.histograms = vec![h];
        let good = series(&[("__name__", "good")], &[(1, 1.0)]);
        let batch = decode_request(
            Protocol::V1,
            &v1(vec![bad_spans, mixed, bad_count, good]),
            &WriteLimits::default(),
        )
        .expect("decode");
        assert_eq!(batch.series.len(), 1);
        assert_eq!(batch.series[0].labels.metric_name(), Some("good"));
        let r = &batch.rejections;
        assert_eq!(r.count(Reason::InvalidHistogram), 3);
        assert_eq!(r.kind(), Some(thanos_server::ErrorKind::BadRequest));
        let example = r.example(Reason::InvalidHistogram).expect("example");
        assert!(
            example.contains("spans") && example.contains("t=1"),
            "{example}"
        );
        assert_eq!(batch.received_samples(), 5);
    }

    #[test]
    fn v2_histograms_are_decoded() {
        let h = |t, count: u64| pb2::Histogram {
            count: Some(pb2::histogram::Count::CountInt(count)),
            zero_count: Some(pb2::histogram::ZeroCount::ZeroCountInt(count)),
            sum: 1.0,
            schema: -1,
            zero_threshold: 0.5,
            timestamp: t,
            ..Default::default()
        };
        let b = body(&pb2::Request {
            symbols: vec!["".into(), "__name__".into(), "h".into()],
            timeseries: vec![pb2::TimeSeries {
                labels_refs: vec![1, 2],
                histograms: vec![h(10, 2), h(20, 4)],
                ..Default::default()
            }],
        });
        let batch = decode_request(Protocol::V2, &b, &WriteLimits::default()).expect("decode");
        assert!(batch.rejections.is_empty(), "{}", batch.rejections);
        let got: Vec<(i64, f64)> = batch.series[0]
            .histograms
            .iter()
            .map(|h| (h.t, h.value.count()))
            .collect();
        assert_eq!(got, vec![(10, 2.0), (20, 4.0)]);
    }

    #[test]
    fn forwarded_histograms_round_trip() {
        let mut ts = series(&[("__name__", "h")], &[(1, 2.0)]);
        ts.histograms = vec![int_histogram(2, 3), float_histogram(3, 1.0)];
        let batch =
            decode_request(Protocol::V1, &v1(vec![ts]), &WriteLimits::default()).expect("decode");
        let proto = batch.series[0].to_proto();
        assert_eq!(proto.histograms.len(), 2);
        let again = Batch::from_timeseries(&[proto]);
        assert_eq!(again.series, batch.series);
    }

    #[test]
    fn limits_and_sizes() {
        let b = v1(vec![
            series(&[("__name__", "a")], &[(1, 1.0), (2, 1.0)]),
            series(&[("__name__", "b")], &[(1, 1.0)]),
        ]);
        let lim = |max_series, max_samples| WriteLimits {
            max_series,
            max_samples,
            ..WriteLimits::default()
        };
        let err = decode_request(Protocol::V1, &b, &lim(1, 0)).expect_err("series");
        assert!(
            matches!(err, WriteError::TooManySeries { count: 2, max: 1 }),
            "{err}"
        );
        let err = decode_request(Protocol::V1, &b, &lim(0, 2)).expect_err("samples");
        assert!(
            matches!(err, WriteError::TooManySamples { count: 3, max: 2 }),
            "{err}"
        );
        decode_request(Protocol::V1, &b, &lim(2, 3)).expect("at the limits");
        let small = WriteLimits {
            max_body_bytes: b.len() - 1,
            ..WriteLimits::default()
        };
        let err = decode_request(Protocol::V1, &b, &small).expect_err("body");
        assert_eq!(err.http_status().as_u16(), 413);
        // A snappy header declaring 1 GiB in a 6-byte body: rejected from the header.
        let bomb = [0x80, 0x80, 0x80, 0x80, 0x04, 0x00];
        let err = decode_request(Protocol::V1, &bomb, &WriteLimits::default()).expect_err("bomb");
        assert!(
            matches!(
                err,
                WriteError::DecompressedTooLarge {
                    declared: 0x4000_0000,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(err.http_status().as_u16(), 413);
        // 4 GiB does not even fit the snappy block format: a corrupt header, 400.
        let bomb = [0x80, 0x80, 0x80, 0x80, 0x10, 0x00];
        let err = decode_request(Protocol::V1, &bomb, &WriteLimits::default()).expect_err("bomb");
        assert_eq!(err.http_status().as_u16(), 400, "{err}");
    }

    #[test]
    fn corrupt_bodies_are_bad_requests() {
        let lim = WriteLimits::default();
        for body in [&b""[..], b"not snappy at all", &[0x05, 0x00]] {
            let err = decode_request(Protocol::V1, body, &lim).expect_err("corrupt");
            assert!(matches!(err, WriteError::Snappy { .. }), "{err}");
            assert_eq!(err.http_status().as_u16(), 400);
        }
        let not_proto = snap::raw::Encoder::new()
            .compress_vec(&[0x0a, 0x05, 0x01])
            .expect("snappy");
        let err = decode_request(Protocol::V1, &not_proto, &lim).expect_err("protobuf");
        assert!(err.to_string().contains("prometheus.WriteRequest"), "{err}");
        assert_eq!(err.http_status().as_u16(), 400);
    }

    type RawSeries = (Vec<u32>, Vec<(i64, f64)>);

    fn v2_request(symbols: &[&str], ts: Vec<RawSeries>) -> Vec<u8> {
        body(&pb2::Request {
            symbols: symbols.iter().map(|s| (*s).into()).collect(),
            timeseries: ts
                .into_iter()
                .map(|(labels_refs, samples)| pb2::TimeSeries {
                    labels_refs,
                    samples: samples
                        .into_iter()
                        .map(|(timestamp, value)| pb2::Sample {
                            value,
                            timestamp,
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                })
                .collect(),
        })
    }

    #[test]
    fn v2_resolves_symbols_and_rejects_bad_refs() {
        let b = v2_request(
            &["", "__name__", "up", "job", "node"],
            vec![
                (vec![1, 2, 3, 4], vec![(10, 1.0)]),
                (vec![1, 2, 3, 9], vec![(10, 1.0)]),
                (vec![1, 2, 3], vec![(10, 1.0)]),
            ],
        );
        let batch = decode_request(Protocol::V2, &b, &WriteLimits::default()).expect("decode");
        assert_eq!(batch.series.len(), 1);
        assert_eq!(
            batch.series[0].labels,
            Labels::from_pairs([("__name__", "up"), ("job", "node")])
        );
        assert_eq!(batch.rejections.count(Reason::SymbolRefOutOfRange), 1);
        assert_eq!(batch.rejections.count(Reason::OddLabelRefs), 1);
        let bad = v2_request(&["x"], vec![]);
        let err = decode_request(Protocol::V2, &bad, &WriteLimits::default()).expect_err("sym0");
        assert!(err.to_string().contains("symbols[0]"), "{err}");
    }

    #[test]
    fn relabel_drops_rewrites_and_rejects_series() {
        let b = v1(vec![
            series(&[("__name__", "drop_me"), ("job", "a")], &[(1, 1.0)]),
            series(&[("__name__", "keep"), ("job", "a")], &[(1, 1.0), (2, 2.0)]),
            series(&[("__name__", "emptied")], &[(1, 1.0)]),
        ]);
        let mut batch = decode_request(Protocol::V1, &b, &WriteLimits::default()).expect("decode");
        let rules = relabel::parse_yaml(
            r#"
- source_labels: [__name__]
  regex: drop_me
  action: drop
- source_labels: [job]
  regex: "(.+)"
  target_label: team
  replacement: "t-$1"
- source_labels: [__name__]
  regex: emptied
  action: replace
  target_label: __name__
  replacement: ""
"#,
        )
        .expect("rules");
        batch.relabel(&rules);
        assert_eq!(batch.series.len(), 1);
        assert_eq!(
            batch.series[0].labels,
            Labels::from_pairs([("__name__", "keep"), ("job", "a"), ("team", "t-a")])
        );
        assert_eq!(batch.series[0].samples.len(), 2);
        assert_eq!(batch.rejections.count(Reason::EmptyLabelSet), 1);
        assert_eq!(
            batch.rejections.kind(),
            Some(thanos_server::ErrorKind::BadRequest)
        );
        assert_eq!(batch.received_series(), 3);
        let mut untouched =
            decode_request(Protocol::V1, &b, &WriteLimits::default()).expect("decode");
        untouched.relabel(&[]);
        assert_eq!(untouched.series.len(), 3);
    }

    #[test]
    fn v2_body_read_as_v1_is_empty() {
        // Fields 1..3 are reserved in 2.0, so a 1.0 decoder sees nothing (remote-write.md §4).
        let b = v2_request(&["", "a", "b"], vec![(vec![1, 2], vec![(1, 1.0)])]);
        let batch = decode_request(Protocol::V1, &b, &WriteLimits::default()).expect("decode");
        assert_eq!(batch.received_series(), 0);
    }
}
