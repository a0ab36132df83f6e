//! The codec of every generated gRPC client and server: prost's, except that
//! `SeriesResponse` frames are encoded by hand.
//!
//! prost encodes a nested message by asking each level for its encoded length before
//! writing it, so the labels of a series in a batch frame are measured three times and
//! its chunks four. [`ThanosEncoder`] measures every series of a frame once, then writes
//! the frame in one pass. The bytes are exactly prost's (a property test checks it).

use std::any::Any;
use std::marker::PhantomData;

use bytes::BufMut;
use prost::Message;
use prost::encoding::{WireType, encoded_len_varint};
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, EncodeBuf, Encoder};

use crate::thanos::series_response::Result as Frame;
use crate::thanos::{AggrChunk, Chunk, Series, SeriesResponse};

/// Initial size of a stream's encode buffer (tonic's default).
const BUFFER_SIZE: usize = 8 * 1024;

/// Encoded bytes after which a response stream hands its buffer to HTTP/2 (tonic: 32
/// KiB). Each hand-off is one write and one wake-up of the reader; a 20,000-series
/// Series answer took about a hundred. With 512 KiB, a few; answers of up to a few
/// thousand series leave in one write once encoded. The PromQL benchmark's latency
/// ratio went down by about 2.5% (the querier accepts frames of up to 1 MiB).
const YIELD_THRESHOLD: usize = 512 * 1024;

/// prost's codec with [`ThanosEncoder`] for the messages sent.
#[derive(Debug, Clone)]
pub struct ThanosCodec<T, U> {
    _pd: PhantomData<(T, U)>,
}

impl<T, U> Default for ThanosCodec<T, U> {
    fn default() -> Self {
        Self { _pd: PhantomData }
    }
}

impl<T, U> Codec for ThanosCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ThanosEncoder<T>;
    type Decoder = tonic_prost::ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ThanosEncoder {
            _pd: PhantomData,
            sizes: Vec::new(),
        }
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstDecoder::default()
    }
}

/// Encodes messages as prost does; `SeriesResponse` series and batch frames in one pass.
#[derive(Debug, Clone)]
pub struct ThanosEncoder<T> {
    _pd: PhantomData<T>,
    /// Encoded lengths of the series of the frame being written.
    sizes: Vec<usize>,
}

impl<T: Message + 'static> Encoder for ThanosEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        if let Some(frame) = (&item as &dyn Any).downcast_ref::<SeriesResponse>()
            && encode_series_response(frame, &mut self.sizes, buf)
        {
            return Ok(());
        }
        item.encode(buf)
            .map_err(|e| Status::internal(format!("encoding a message: {e}")))
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::new(BUFFER_SIZE, YIELD_THRESHOLD)
    }
}

/// Writes a series or batch frame and returns `true`; other frames are left to prost.
/// `sizes` is scratch space.
pub fn encode_series_response(
    frame: &SeriesResponse,
    sizes: &mut Vec<usize>,
    buf: &mut impl BufMut,
) -> bool {
    match &frame.result {
        Some(Frame::Series(series)) => {
            let len = series_len(series);
            put_head(1, WireType::LengthDelimited, len as u64, buf);
            write_series(series, buf);
            true
        }
        Some(Frame::Batch(batch)) => {
            sizes.clear();
            let mut total = 0;
            for s in &batch.series {
                let len = series_len(s);
                sizes.push(len);
                total += field_len(len);
            }
            put_head(4, WireType::LengthDelimited, total as u64, buf);
            for (s, &len) in batch.series.iter().zip(sizes.iter()) {
                put_head(1, WireType::LengthDelimited, len as u64, buf);
                write_series(s, buf);
            }
            true
        }
        _ => false,
    }
}

/// Bytes of a length-delimited field (one-byte key) whose payload is `len` bytes.
fn field_len(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

/// Bytes of a proto3 string or bytes field (omitted when empty).
fn bytes_len(len: usize) -> usize {
    if len == 0 { 0 } else { field_len(len) }
}

/// Bytes of a proto3 varint field (omitted when zero).
fn varint_len(v: u64) -> usize {
    if v == 0 { 0 } else { 1 + encoded_len_varint(v) }
}

fn chunk_len(c: &Chunk) -> usize {
    // An enum is an int32, sign-extended on the wire.
    varint_len(i64::from(c.r#type) as u64) + bytes_len(c.data.len()) + varint_len(c.hash)
}

fn aggr_chunks(c: &AggrChunk) -> [(u32, Option<&Chunk>); 6] {
    [
        (3, c.raw.as_ref()),
        (4, c.count.as_ref()),
        (5, c.sum.as_ref()),
        (6, c.min.as_ref()),
        (7, c.max.as_ref()),
        (8, c.counter.as_ref()),
    ]
}

fn aggr_len(c: &AggrChunk) -> usize {
    varint_len(c.min_time as u64)
        + varint_len(c.max_time as u64)
        + aggr_chunks(c)
            .iter()
            .filter_map(|(_, ch)| ch.map(|ch| field_len(chunk_len(ch))))
            .sum::<usize>()
}

fn series_len(s: &Series) -> usize {
    s.labels
        .iter()
        .map(|l| field_len(l.encoded_len()))
        .sum::<usize>()
        + s.chunks
            .iter()
            .map(|c| field_len(aggr_len(c)))
            .sum::<usize>()
}

/// Writes a field key (tags below 16: one byte) and a varint (a value or a length)
/// with one `put_slice`: the buffer's `put_u8` is a `put_slice` per byte.
fn put_head(tag: u32, wire: WireType, v: u64, buf: &mut impl BufMut) {
    debug_assert!(tag < 16);
    let mut head = [0u8; 11];
    head[0] = ((tag << 3) | wire as u32) as u8;
    let mut n = 1;
    let mut v = v;
    while v >= 0x80 {
        head[n] = (v as u8) | 0x80;
        v >>= 7;
        n += 1;
    }
    head[n] = v as u8;
    buf.put_slice(&head[..=n]);
}

fn write_bytes(tag: u32, data: &[u8], buf: &mut impl BufMut) {
    if !data.is_empty() {
        put_head(tag, WireType::LengthDelimited, data.len() as u64, buf);
        buf.put_slice(data);
    }
}

fn write_varint(tag: u32, v: u64, buf: &mut impl BufMut) {
    if v != 0 {
        put_head(tag, WireType::Varint, v, buf);
    }
}

fn write_series(s: &Series, buf: &mut impl BufMut) {
    for l in &s.labels {
        put_head(1, WireType::LengthDelimited, l.encoded_len() as u64, buf);
        write_bytes(1, l.name.as_bytes(), buf);
        write_bytes(2, l.value.as_bytes(), buf);
    }
    for c in &s.chunks {
        put_head(2, WireType::LengthDelimited, aggr_len(c) as u64, buf);
        write_varint(1, c.min_time as u64, buf);
        write_varint(2, c.max_time as u64, buf);
        for (tag, ch) in aggr_chunks(c) {
            let Some(ch) = ch else { continue };
            put_head(tag, WireType::LengthDelimited, chunk_len(ch) as u64, buf);
            write_varint(1, i64::from(ch.r#type) as u64, buf);
            write_bytes(2, &ch.data, buf);
            write_varint(3, ch.hash, buf);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::thanos::{Label, SeriesBatch};
    use bytes::Bytes;
    use proptest::prelude::*;

    fn chunk() -> impl Strategy<Value = Option<Chunk>> {
        proptest::option::of(
            (
                prop_oneof![Just(0i32), Just(1), Just(2), any::<i32>()],
                proptest::collection::vec(any::<u8>(), 0..200),
                prop_oneof![Just(0u64), any::<u64>()],
            )
                .prop_map(|(r#type, data, hash)| Chunk {
                    r#type,
                    data: Bytes::from(data),
                    hash,
                }),
        )
    }

    /// Random series: empty and long (multi-byte length) strings, zero and negative times,
    /// absent and present aggregate chunks.
    pub(crate) fn series() -> impl Strategy<Value = Series> {
        let label = ("[a-z_]{0,8}", "\\PC{0,140}")
            .prop_map(|(name, value): (String, String)| Label::new(name, value));
        let time = prop_oneof![Just(0i64), any::<i64>()];
        let aggr = (time.clone(), time, chunk(), chunk(), chunk(), chunk()).prop_map(
            |(min_time, max_time, raw, sum, max, counter)| AggrChunk {
                min_time,
                max_time,
                raw,
                sum,
                max,
                counter,
                ..AggrChunk::default()
            },
        );
        (
            proptest::collection::vec(label, 0..8),
            proptest::collection::vec(aggr, 0..4),
        )
            .prop_map(|(labels, chunks)| Series { labels, chunks })
    }

    proptest! {
        #[test]
        fn series_frames_are_prosts_bytes(s in series()) {
            let frame = SeriesResponse::series(s);
            let mut ours = Vec::new();
            prop_assert!(encode_series_response(&frame, &mut Vec::new(), &mut ours));
            prop_assert_eq!(ours, frame.encode_to_vec());
        }

        #[test]
        fn batch_frames_are_prosts_bytes(series in proptest::collection::vec(series(), 0..20)) {
            let frame = SeriesResponse {
                result: Some(Frame::Batch(SeriesBatch { series })),
            };
            let mut ours = Vec::new();
            // Scratch space left over from a larger frame must not matter.
            let mut sizes = vec![7; 30];
            prop_assert!(encode_series_response(&frame, &mut sizes, &mut ours));
            prop_assert_eq!(ours, frame.encode_to_vec());
        }
    }

    #[test]
    fn other_frames_are_left_to_prost() {
        let mut buf = Vec::new();
        assert!(!encode_series_response(
            &SeriesResponse::warning("w".into()),
            &mut Vec::new(),
            &mut buf
        ));
        assert!(!encode_series_response(
            &SeriesResponse { result: None },
            &mut Vec::new(),
            &mut buf
        ));
        assert!(buf.is_empty());
    }
}
