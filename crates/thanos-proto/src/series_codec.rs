//! A client for `thanos.Store/Series` that decodes response frames by hand.
//!
//! Queriers receive most of their data through this one call. The generated client
//! decodes every frame through prost's generic field loop into wire types, and the
//! caller then moves every label into the model's types. [`series`] decodes a frame in
//! one pass straight into model labels and wire chunks; chunk data stays a slice of the
//! received buffer. The result is what prost would decode (a property test checks it),
//! with two differences: groups (a wire type proto3 never writes) are rejected, and
//! hints frames are not decoded.

use bytes::{Buf, Bytes};
use thanos_model::{CompactString, Label};
use tonic::codec::{Codec, DecodeBuf, Decoder};
use tonic::{Status, Streaming};

use crate::thanos::{AggrChunk, Chunk, SeriesRequest};

/// One decoded `SeriesResponse` frame.
#[derive(Debug, Clone, PartialEq)]
pub enum SeriesFrame {
    /// The series of a `series` frame (one) or of a `batch` frame, in order.
    Series(Vec<WireSeries>),
    /// A `warning` frame.
    Warning(String),
    /// A `hints` frame or a frame without a result; neither carries series.
    Other,
}

/// A series as received: labels in wire order (not validated), chunks as sent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WireSeries {
    /// The labels, as sent.
    pub labels: Vec<Label>,
    /// The chunks, as sent.
    pub chunks: Vec<AggrChunk>,
}

/// Calls `thanos.Store/Series` on `channel`, decoding the response frames with
/// [`SeriesDecoder`]. Frames larger than `max_decoding_message_size` bytes fail the
/// stream.
pub async fn series<T>(
    channel: T,
    request: tonic::Request<SeriesRequest>,
    max_decoding_message_size: usize,
) -> Result<Streaming<SeriesFrame>, Status>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<tonic::codegen::StdError>,
    T::ResponseBody: tonic::codegen::Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    let mut grpc =
        tonic::client::Grpc::new(channel).max_decoding_message_size(max_decoding_message_size);
    grpc.ready()
        .await
        .map_err(|e| Status::unknown(format!("Service was not ready: {}", e.into())))?;
    let mut request = request;
    request
        .extensions_mut()
        .insert(tonic::GrpcMethod::new("thanos.Store", "Series"));
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(crate::method::STORE_SERIES);
    Ok(grpc
        .server_streaming(request, path, SeriesCodec)
        .await?
        .into_inner())
}

/// The codec of [`series`]: prost encodes the request, [`SeriesDecoder`] decodes frames.
#[derive(Debug, Clone, Copy, Default)]
pub struct SeriesCodec;

impl Codec for SeriesCodec {
    type Encode = SeriesRequest;
    type Decode = SeriesFrame;
    type Encoder = tonic_prost::ProstEncoder<SeriesRequest>;
    type Decoder = SeriesDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        SeriesDecoder
    }
}

/// Decodes one `SeriesResponse` message into a [`SeriesFrame`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SeriesDecoder;

impl Decoder for SeriesDecoder {
    type Item = SeriesFrame;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<SeriesFrame>, Status> {
        let message = buf.copy_to_bytes(buf.remaining());
        decode_frame(&message)
            .map(Some)
            .map_err(|e| Status::internal(format!("failed to decode Series response: {e}")))
    }
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The message ends inside a field.
    #[error("buffer underflow in {0}")]
    Truncated(&'static str),
    /// A varint is longer than ten bytes.
    #[error("invalid varint in {0}")]
    Varint(&'static str),
    /// A field has a wire type its number does not allow, or an unsupported one.
    #[error("invalid wire type {wire_type} for field {field} of {message}")]
    WireType {
        /// The message being decoded.
        message: &'static str,
        /// The field number.
        field: u64,
        /// The wire type found.
        wire_type: u64,
    },
    /// A string is not UTF-8.
    #[error("invalid string in {0}: data is not UTF-8 encoded")]
    Utf8(&'static str),
}

const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LEN: u64 = 2;
const FIXED32: u64 = 5;

/// A position in a message being decoded; nested messages are ranges of the frame.
struct Reader<'a> {
    /// The whole frame, for zero-copy slices of chunk data.
    frame: &'a Bytes,
    /// Where the message being read ends in `frame`.
    end: usize,
    pos: usize,
    message: &'static str,
}

impl<'a> Reader<'a> {
    fn new(frame: &'a Bytes, start: usize, end: usize, message: &'static str) -> Self {
        Self {
            frame,
            end,
            pos: start,
            message,
        }
    }

    fn done(&self) -> bool {
        self.pos >= self.end
    }

    #[inline(always)]
    fn varint(&mut self) -> Result<u64, FrameError> {
        // Keys and short lengths are one byte.
        if self.pos < self.end
            && let Some(&b) = self.frame.get(self.pos)
            && b < 0x80
        {
            self.pos += 1;
            return Ok(u64::from(b));
        }
        self.varint_long()
    }

    #[inline(never)]
    fn varint_long(&mut self) -> Result<u64, FrameError> {
        let bytes = &self.frame[self.pos..self.end];
        let mut value = 0u64;
        for (i, &b) in bytes.iter().enumerate().take(10) {
            // The tenth byte holds the top bit only (prost rejects more).
            if i == 9 && b > 1 {
                return Err(FrameError::Varint(self.message));
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                self.pos += i + 1;
                return Ok(value);
            }
        }
        if bytes.len() < 10 {
            Err(FrameError::Truncated(self.message))
        } else {
            Err(FrameError::Varint(self.message))
        }
    }

    /// The next field's number and wire type.
    #[inline(always)]
    fn key(&mut self) -> Result<(u64, u64), FrameError> {
        let key = self.varint()?;
        Ok((key >> 3, key & 7))
    }

    /// The range of the length-delimited field at the position, skipped.
    #[inline(always)]
    fn len_delimited(&mut self) -> Result<(usize, usize), FrameError> {
        let len = self.varint()?;
        let start = self.pos;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| start.checked_add(l))
            .filter(|&e| e <= self.end)
            .ok_or(FrameError::Truncated(self.message))?;
        self.pos = end;
        Ok((start, end))
    }

    fn string(&mut self) -> Result<CompactString, FrameError> {
        let (s, e) = self.len_delimited()?;
        std::str::from_utf8(&self.frame[s..e])
            .map(CompactString::from)
            .map_err(|_| FrameError::Utf8(self.message))
    }

    /// A nested message's reader; the field is skipped in this one.
    fn nested(&mut self, message: &'static str) -> Result<Reader<'a>, FrameError> {
        let (s, e) = self.len_delimited()?;
        Ok(Reader::new(self.frame, s, e, message))
    }

    fn skip(&mut self, field: u64, wire_type: u64) -> Result<(), FrameError> {
        let fixed = |r: &mut Self, n: usize| {
            if r.end - r.pos < n {
                return Err(FrameError::Truncated(r.message));
            }
            r.pos += n;
            Ok(())
        };
        match wire_type {
            VARINT => self.varint().map(drop),
            FIXED64 => fixed(self, 8),
            LEN => self.len_delimited().map(drop),
            FIXED32 => fixed(self, 4),
            _ => Err(self.wire_type(field, wire_type)),
        }
    }

    fn wire_type(&self, field: u64, wire_type: u64) -> FrameError {
        FrameError::WireType {
            message: self.message,
            field,
            wire_type,
        }
    }

    /// Checks that field `field` has wire type `want`.
    fn expect(&self, field: u64, wire_type: u64, want: u64) -> Result<(), FrameError> {
        if wire_type == want {
            Ok(())
        } else {
            Err(self.wire_type(field, wire_type))
        }
    }
}

/// Decodes one encoded `SeriesResponse`.
pub fn decode_frame(frame: &Bytes) -> Result<SeriesFrame, FrameError> {
    let mut r = Reader::new(frame, 0, frame.len(), "SeriesResponse");
    let mut out = SeriesFrame::Other;
    // Which oneof member `out` holds: a later member replaces it, a repeated one merges
    // into it, as protobuf's merge semantics (and prost) have it.
    let mut member = 0;
    while !r.done() {
        let (field, wire_type) = r.key()?;
        match field {
            1 | 4 => {
                r.expect(field, wire_type, LEN)?;
                let mut nested = r.nested(if field == 1 { "Series" } else { "SeriesBatch" })?;
                if member != field {
                    out = SeriesFrame::Series(Vec::new());
                    member = field;
                }
                let SeriesFrame::Series(list) = &mut out else {
                    unreachable!("set above");
                };
                if field == 1 {
                    if list.is_empty() {
                        list.push(WireSeries::default());
                    }
                    let last = list.len() - 1;
                    decode_series(&mut nested, &mut list[last])?;
                } else {
                    decode_batch(&mut nested, list)?;
                }
            }
            2 => {
                r.expect(field, wire_type, LEN)?;
                out = SeriesFrame::Warning(r.string()?.into_string());
                member = field;
            }
            3 => {
                r.expect(field, wire_type, LEN)?;
                r.len_delimited()?;
                out = SeriesFrame::Other;
                member = field;
            }
            _ => r.skip(field, wire_type)?,
        }
    }
    Ok(out)
}

fn decode_batch(r: &mut Reader<'_>, out: &mut Vec<WireSeries>) -> Result<(), FrameError> {
    while !r.done() {
        let (field, wire_type) = r.key()?;
        if field == 1 {
            r.expect(field, wire_type, LEN)?;
            let mut nested = r.nested("Series")?;
            let mut series = WireSeries::default();
            decode_series(&mut nested, &mut series)?;
            out.push(series);
        } else {
            r.skip(field, wire_type)?;
        }
    }
    Ok(())
}

fn decode_series(r: &mut Reader<'_>, out: &mut WireSeries) -> Result<(), FrameError> {
    while !r.done() {
        let (field, wire_type) = r.key()?;
        match field {
            1 => {
                r.expect(field, wire_type, LEN)?;
                let mut nested = r.nested("Label")?;
                if out.labels.is_empty() {
                    out.labels.reserve(8);
                }
                out.labels.push(decode_label(&mut nested)?);
            }
            2 => {
                r.expect(field, wire_type, LEN)?;
                let mut nested = r.nested("AggrChunk")?;
                let mut chunk = AggrChunk::default();
                decode_aggr_chunk(&mut nested, &mut chunk)?;
                out.chunks.push(chunk);
            }
            _ => r.skip(field, wire_type)?,
        }
    }
    Ok(())
}

fn decode_label(r: &mut Reader<'_>) -> Result<Label, FrameError> {
    let mut label = Label::default();
    while !r.done() {
        let (field, wire_type) = r.key()?;
        match field {
            1 => {
                r.expect(field, wire_type, LEN)?;
                label.name = r.string()?;
            }
            2 => {
                r.expect(field, wire_type, LEN)?;
                label.value = r.string()?;
            }
            _ => r.skip(field, wire_type)?,
        }
    }
    Ok(label)
}

fn decode_aggr_chunk(r: &mut Reader<'_>, out: &mut AggrChunk) -> Result<(), FrameError> {
    while !r.done() {
        let (field, wire_type) = r.key()?;
        let slot = match field {
            1 | 2 => {
                r.expect(field, wire_type, VARINT)?;
                // int64 on the wire: the varint's bits are the two's complement value.
                let v = r.varint()? as i64;
                if field == 1 {
                    out.min_time = v;
                } else {
                    out.max_time = v;
                }
                continue;
            }
            3 => &mut out.raw,
            4 => &mut out.count,
            5 => &mut out.sum,
            6 => &mut out.min,
            7 => &mut out.max,
            8 => &mut out.counter,
            _ => {
                r.skip(field, wire_type)?;
                continue;
            }
        };
        r.expect(field, wire_type, LEN)?;
        let mut nested = r.nested("Chunk")?;
        decode_chunk(&mut nested, slot.get_or_insert_with(Chunk::default))?;
    }
    Ok(())
}

fn decode_chunk(r: &mut Reader<'_>, out: &mut Chunk) -> Result<(), FrameError> {
    while !r.done() {
        let (field, wire_type) = r.key()?;
        match field {
            1 => {
                r.expect(field, wire_type, VARINT)?;
                // An enum is an int32: the low 32 bits of the varint.
                out.r#type = r.varint()? as i32;
            }
            2 => {
                r.expect(field, wire_type, LEN)?;
                let (s, e) = r.len_delimited()?;
                out.data = r.frame.slice(s..e);
            }
            3 => {
                r.expect(field, wire_type, VARINT)?;
                out.hash = r.varint()?;
            }
            _ => r.skip(field, wire_type)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::thanos::series_response::Result as Frame;
    use crate::thanos::{Series, SeriesBatch, SeriesResponse};
    use proptest::prelude::*;
    use prost::Message;

    /// What prost decodes, in this module's terms.
    fn via_prost(bytes: &[u8]) -> Result<SeriesFrame, prost::DecodeError> {
        let msg = SeriesResponse::decode(bytes)?;
        let series = |s: Series| WireSeries {
            labels: s
                .labels
                .into_iter()
                .map(|l| Label::new(l.name, l.value))
                .collect(),
            chunks: s.chunks,
        };
        Ok(match msg.result {
            Some(Frame::Series(s)) => SeriesFrame::Series(vec![series(s)]),
            Some(Frame::Batch(b)) => {
                SeriesFrame::Series(b.series.into_iter().map(series).collect())
            }
            Some(Frame::Warning(w)) => SeriesFrame::Warning(w),
            Some(Frame::Hints(_)) | None => SeriesFrame::Other,
        })
    }

    fn response_strategy() -> impl Strategy<Value = SeriesResponse> {
        prop_oneof![
            crate::codec::tests::series().prop_map(|s| SeriesResponse {
                result: Some(Frame::Series(s))
            }),
            proptest::collection::vec(crate::codec::tests::series(), 0..5).prop_map(|series| {
                SeriesResponse {
                    result: Some(Frame::Batch(SeriesBatch { series })),
                }
            }),
            "\\PC{0,30}".prop_map(|w| SeriesResponse {
                result: Some(Frame::Warning(w))
            }),
            Just(SeriesResponse {
                result: Some(Frame::Hints(prost_types::Any {
                    type_url: "type.googleapis.com/hintspb.SeriesResponseHints".into(),
                    value: vec![10, 2, 8, 1],
                }))
            }),
            Just(SeriesResponse { result: None }),
        ]
    }

    proptest! {
        #[test]
        fn decodes_what_prost_decodes(msg in response_strategy()) {
            let bytes = Bytes::from(msg.encode_to_vec());
            prop_assert_eq!(decode_frame(&bytes).unwrap(), via_prost(&bytes).unwrap());
        }

        #[test]
        fn concatenated_frames_merge_like_prost(
            a in response_strategy(),
            b in response_strategy(),
        ) {
            let mut joined = a.encode_to_vec();
            joined.extend(b.encode_to_vec());
            let bytes = Bytes::from(joined);
            prop_assert_eq!(decode_frame(&bytes).unwrap(), via_prost(&bytes).unwrap());
        }

        #[test]
        fn damaged_frames_never_panic_and_agree_with_prost_on_success(
            msg in response_strategy(),
            cut in any::<prop::sample::Index>(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
        ) {
            let mut bytes = msg.encode_to_vec();
            for (at, x) in flips {
                if !bytes.is_empty() {
                    let i = at.index(bytes.len());
                    bytes[i] ^= x;
                }
            }
            bytes.truncate(cut.index(bytes.len() + 1));
            let bytes = Bytes::from(bytes);
            // Hints are not decoded here and groups are rejected, so either decoder may
            // accept what the other refuses; when both accept, they agree.
            if let (Ok(ours), Ok(theirs)) = (decode_frame(&bytes), via_prost(&bytes)) {
                prop_assert_eq!(ours, theirs);
            }
        }
    }

    #[test]
    fn chunk_data_is_a_slice_of_the_frame() {
        let msg = SeriesResponse {
            result: Some(Frame::Series(Series {
                labels: vec![],
                chunks: vec![AggrChunk {
                    raw: Some(Chunk {
                        r#type: 0,
                        data: Bytes::from_static(b"chunk-bytes"),
                        hash: 7,
                    }),
                    ..AggrChunk::default()
                }],
            })),
        };
        let bytes = Bytes::from(msg.encode_to_vec());
        let SeriesFrame::Series(series) = decode_frame(&bytes).unwrap() else {
            panic!("a series frame");
        };
        let data = &series[0].chunks[0].raw.as_ref().unwrap().data;
        assert_eq!(&data[..], b"chunk-bytes");
        let frame_range = bytes.as_ptr() as usize..bytes.as_ptr() as usize + bytes.len();
        assert!(frame_range.contains(&(data.as_ptr() as usize)));
    }

    #[test]
    fn malformed_frames_are_errors() {
        // Series frame whose length runs past the end.
        assert_eq!(
            decode_frame(&Bytes::from_static(&[0x0a, 0x05, 0x0a])),
            Err(FrameError::Truncated("SeriesResponse"))
        );
        // A label with empty name and value decodes; one whose value is not UTF-8 not.
        let label = [0x0a, 0x06, 0x0a, 0x04, 0x0a, 0x00, 0x12, 0x00];
        assert!(decode_frame(&Bytes::copy_from_slice(&label)).is_ok());
        let invalid = [0x0a, 0x07, 0x0a, 0x05, 0x0a, 0x00, 0x12, 0x01, 0xff];
        assert_eq!(
            decode_frame(&Bytes::copy_from_slice(&invalid)),
            Err(FrameError::Utf8("Label"))
        );
        // A series sent as a varint.
        assert_eq!(
            decode_frame(&Bytes::from_static(&[0x08, 0x01])),
            Err(FrameError::WireType {
                message: "SeriesResponse",
                field: 1,
                wire_type: 0
            })
        );
        // An overlong varint.
        assert_eq!(
            decode_frame(&Bytes::from_static(&[0xff; 11])),
            Err(FrameError::Varint("SeriesResponse"))
        );
    }
}
