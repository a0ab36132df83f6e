//! Prometheus remote-write HTTP bodies: protobuf messages compressed with the
//! snappy *block* format (not the framed format), see `docs/remote-write.md`.
//!
//! Decoding is guarded against snappy bombs: the decompressed length that a
//! snappy block declares in its header is compared with a caller-supplied
//! maximum before any output buffer is allocated.
//!
//! The helpers are generic over [`prost::Message`], so they work for
//! remote write 1.0 ([`crate::prometheus::WriteRequest`]), Thanos' copy
//! ([`crate::prometheus_copy::WriteRequest`]) and remote write 2.0
//! ([`crate::io::prometheus::write::v2::Request`]).

use bytes::Bytes;
use prost::Message;

/// `Content-Encoding` value of remote-write request bodies.
pub const CONTENT_ENCODING_SNAPPY: &str = "snappy";
/// `Content-Type` of a remote write 1.0 body (`prometheus.WriteRequest`).
pub const CONTENT_TYPE_V1: &str = "application/x-protobuf";
/// `Content-Type` of a remote write 2.0 body (`io.prometheus.write.v2.Request`).
pub const CONTENT_TYPE_V2: &str = "application/x-protobuf;proto=io.prometheus.write.v2.Request";
/// Name of the remote-write protocol version header.
pub const VERSION_HEADER: &str = "X-Prometheus-Remote-Write-Version";
/// Value of [`VERSION_HEADER`] sent with remote write 1.0 bodies.
pub const VERSION_V1: &str = "0.1.0";
/// Value of [`VERSION_HEADER`] sent with remote write 2.0 bodies.
pub const VERSION_V2: &str = "2.0.0";

/// Errors of remote-write body encoding and decoding.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The snappy header (varint decompressed length) could not be read.
    #[error("read snappy block header: {source}")]
    SnappyHeader {
        /// Underlying snappy error.
        source: snap::Error,
    },
    /// The declared decompressed size exceeds the caller's limit.
    #[error("snappy block declares {declared} decompressed bytes, more than the limit of {max}")]
    TooLarge {
        /// Decompressed length declared in the snappy header.
        declared: usize,
        /// Limit supplied by the caller.
        max: usize,
    },
    /// The snappy block is corrupt.
    #[error("decompress snappy block of {compressed} bytes: {source}")]
    Decompress {
        /// Size of the compressed input.
        compressed: usize,
        /// Underlying snappy error.
        source: snap::Error,
    },
    /// Compression failed (input too large for the snappy block format).
    #[error("compress {len} bytes with snappy: {source}")]
    Compress {
        /// Size of the uncompressed input.
        len: usize,
        /// Underlying snappy error.
        source: snap::Error,
    },
    /// The decompressed bytes are not a valid protobuf message of the
    /// requested type.
    #[error("decode protobuf {message} of {len} bytes: {source}")]
    Decode {
        /// Rust type name of the message being decoded.
        message: &'static str,
        /// Size of the decompressed protobuf payload.
        len: usize,
        /// Underlying prost error.
        source: prost::DecodeError,
    },
}

/// Result alias of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Serialises `message` to protobuf and compresses it with snappy block
/// format, giving a ready-to-send remote-write body.
pub fn encode<M: Message>(message: &M) -> Result<Bytes> {
    let raw = message.encode_to_vec();
    let compressed = snap::raw::Encoder::new()
        .compress_vec(&raw)
        .map_err(|source| Error::Compress {
            len: raw.len(),
            source,
        })?;
    Ok(Bytes::from(compressed))
}

/// Returns the decompressed length declared in the header of a snappy block,
/// without decompressing or allocating.
pub fn declared_len(body: &[u8]) -> Result<usize> {
    snap::raw::decompress_len(body).map_err(|source| Error::SnappyHeader { source })
}

/// Decompresses a snappy block, refusing bodies whose declared decompressed
/// length exceeds `max_decompressed` before allocating the output buffer.
pub fn decompress(body: &[u8], max_decompressed: usize) -> Result<Bytes> {
    let declared = declared_len(body)?;
    if declared > max_decompressed {
        return Err(Error::TooLarge {
            declared,
            max: max_decompressed,
        });
    }
    let mut out = vec![0u8; declared];
    let written = snap::raw::Decoder::new()
        .decompress(body, &mut out)
        .map_err(|source| Error::Decompress {
            compressed: body.len(),
            source,
        })?;
    out.truncate(written);
    Ok(Bytes::from(out))
}

/// Decompresses a snappy block (see [`decompress`] for the size guard) and
/// decodes it as protobuf message `M`. `bytes` fields of the result share the
/// decompressed buffer instead of being copied.
pub fn decode<M: Message + Default>(body: &[u8], max_decompressed: usize) -> Result<M> {
    let raw = decompress(body, max_decompressed)?;
    let len = raw.len();
    M::decode(raw).map_err(|source| Error::Decode {
        message: std::any::type_name::<M>(),
        len,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prometheus::{Label, Sample, TimeSeries, WriteRequest};

    fn request() -> WriteRequest {
        WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![
                    Label {
                        name: "__name__".into(),
                        value: "up".into(),
                    },
                    Label {
                        name: "job".into(),
                        value: "node".into(),
                    },
                ],
                samples: vec![Sample {
                    value: 1.0,
                    timestamp: 1_700_000_000_000,
                }],
                ..Default::default()
            }],
            metadata: vec![],
        }
    }

    #[test]
    fn encode_decode_round_trip() {
        let req = request();
        let body = encode(&req).expect("encode");
        assert_eq!(declared_len(&body).expect("header"), req.encoded_len());
        let back: WriteRequest = decode(&body, 1 << 20).expect("decode");
        assert_eq!(back, req);
    }

    #[test]
    fn body_is_snappy_block_not_framed() {
        let req = request();
        let body = encode(&req).expect("encode");
        // A framed stream starts with the stream identifier chunk 0xff.
        assert_ne!(body[0], 0xff);
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&body)
            .expect("plain block decoder accepts the body");
        assert_eq!(raw, req.encode_to_vec());
    }

    #[test]
    fn limit_equal_to_size_is_accepted_one_below_rejected() {
        let req = request();
        let body = encode(&req).expect("encode");
        let size = req.encoded_len();
        let ok: WriteRequest = decode(&body, size).expect("exact limit accepted");
        assert_eq!(ok, req);
        let err = decode::<WriteRequest>(&body, size - 1).expect_err("limit exceeded");
        match err {
            Error::TooLarge { declared, max } => {
                assert_eq!(declared, size);
                assert_eq!(max, size - 1);
            }
            other => panic!("unexpected error {other}"),
        }
    }

    #[test]
    fn corrupt_snappy_is_a_decompress_error() {
        // Header declares 10 bytes, then a literal tag announcing 10 bytes
        // (tag 0x24 = (10-1) << 2 | 0b00) but only 3 follow.
        let body = [10u8, 0x24, b'a', b'b', b'c'];
        let err = decode::<WriteRequest>(&body, 1024).expect_err("corrupt");
        assert!(
            matches!(err, Error::Decompress { compressed: 5, .. }),
            "{err}"
        );
    }

    #[test]
    fn empty_input_is_corrupt() {
        let err = decompress(&[], 1024).expect_err("empty body");
        assert!(
            matches!(err, Error::Decompress { compressed: 0, .. }),
            "{err}"
        );
    }

    #[test]
    fn unterminated_header_varint_is_a_header_error() {
        // Every byte has the continuation bit set: the length never ends.
        let err = decompress(&[0xff; 6], 1024).expect_err("bad header");
        assert!(matches!(err, Error::SnappyHeader { .. }), "{err}");
    }

    #[test]
    fn garbage_protobuf_is_a_decode_error() {
        // Field 1, wire type 2 (0x0a), length 5 but only 1 byte present.
        let raw = [0x0a, 0x05, 0x00];
        let body = snap::raw::Encoder::new()
            .compress_vec(&raw)
            .expect("compress");
        let err = decode::<WriteRequest>(&body, 1024).expect_err("bad protobuf");
        let msg = err.to_string();
        assert!(matches!(err, Error::Decode { len: 3, .. }), "{msg}");
        assert!(msg.contains("WriteRequest"), "{msg}");
    }

    #[test]
    fn decoded_bytes_fields_share_the_buffer() {
        use crate::prometheus::{Chunk, ChunkedReadResponse, ChunkedSeries};
        let data = Bytes::from(vec![7u8; 64]);
        let msg = ChunkedReadResponse {
            chunked_series: vec![ChunkedSeries {
                labels: vec![],
                chunks: vec![Chunk {
                    data: data.clone(),
                    ..Default::default()
                }],
            }],
            query_index: 0,
        };
        let raw = Bytes::from(msg.encode_to_vec());
        let back = ChunkedReadResponse::decode(raw.clone()).expect("decode");
        let chunk = &back.chunked_series[0].chunks[0].data;
        assert_eq!(chunk, &data);
        let range = raw.as_ptr_range();
        assert!(range.contains(&chunk.as_ptr()), "chunk data was copied");
    }
}
