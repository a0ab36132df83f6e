//! The `snappy` gRPC compression of Thanos: each gRPC message compressed in the snappy
//! **framed (stream) format** (storeapi.md §0), not raw block snappy.
//!
//! tonic only ships gzip, deflate and zstd, so both directions are tower wrappers around
//! unary calls that rewrite the length-prefixed gRPC frames of the body:
//!
//! * [`SnappyDecompression`] wraps a tonic server: a request with
//!   `grpc-encoding: snappy` is buffered (bounded), every frame whose compressed flag is
//!   set is decoded with the framed-format reader and re-emitted uncompressed, and the
//!   header is removed before the inner service sees the request. Responses are sent
//!   uncompressed, which every gRPC client accepts.
//! * [`SnappyCompression`] wraps a client channel: the request body is buffered, each
//!   frame compressed with the framed-format writer and flagged, and
//!   `grpc-encoding: snappy` set.
//!
//! Both are meant for unary calls (`thanos.WriteableStore/RemoteWrite`), whose request is
//! one message; streams would be buffered completely.

use std::convert::Infallible;
use std::io::{Read, Write};
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use tonic::Status;
use tonic::body::Body;
use tonic::server::NamedService;

/// The `grpc-encoding` value of Thanos's snappy compressor.
pub const SNAPPY_ENCODING: &str = "snappy";
const GRPC_ENCODING: &str = "grpc-encoding";
const GRPC_ACCEPT_ENCODING: &str = "grpc-accept-encoding";
/// Length of a gRPC message prefix: compressed flag (1 byte) + big-endian length (4).
const PREFIX: usize = 5;

/// Error of a boxed service.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Rewrites every frame of a gRPC body, calling `f(compressed, payload)` for each and
/// re-framing its result with the flag `set_compressed`.
fn reframe(
    body: &[u8],
    set_compressed: bool,
    mut f: impl FnMut(bool, &[u8]) -> Result<Vec<u8>, Status>,
) -> Result<Bytes, Status> {
    let mut out = BytesMut::with_capacity(body.len());
    let mut rest = body;
    while !rest.is_empty() {
        if rest.len() < PREFIX {
            return Err(Status::internal(format!(
                "truncated gRPC frame: {} trailing bytes",
                rest.len()
            )));
        }
        let compressed = match rest[0] {
            0 => false,
            1 => true,
            flag => {
                return Err(Status::internal(format!(
                    "invalid gRPC compressed flag {flag}"
                )));
            }
        };
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        let Some(payload) = rest.get(PREFIX..PREFIX + len) else {
            return Err(Status::internal(format!(
                "truncated gRPC frame: declares {len} bytes, {} present",
                rest.len() - PREFIX
            )));
        };
        let data = f(compressed, payload)?;
        let data_len = u32::try_from(data.len()).map_err(|_| {
            Status::resource_exhausted(format!("gRPC message of {} bytes", data.len()))
        })?;
        out.put_u8(u8::from(set_compressed));
        out.put_u32(data_len);
        out.put_slice(&data);
        rest = &rest[PREFIX + len..];
    }
    Ok(out.freeze())
}

/// Decodes the frames of a `grpc-encoding: snappy` body into uncompressed frames; a
/// decompressed message larger than `max_message` bytes is `ResourceExhausted`.
pub fn decompress_frames(body: &[u8], max_message: usize) -> Result<Bytes, Status> {
    reframe(body, false, |compressed, payload| {
        if !compressed {
            return Ok(payload.to_vec());
        }
        let mut out = Vec::new();
        snap::read::FrameDecoder::new(payload)
            .take(max_message as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| Status::internal(format!("decompress snappy gRPC message: {e}")))?;
        if out.len() > max_message {
            return Err(Status::resource_exhausted(format!(
                "decompressed gRPC message larger than {max_message} bytes"
            )));
        }
        Ok(out)
    })
}

/// Compresses every (uncompressed) frame of a gRPC body with framed snappy.
pub fn compress_frames(body: &[u8]) -> Result<Bytes, Status> {
    reframe(body, true, |compressed, payload| {
        if compressed {
            return Err(Status::internal("gRPC message already compressed"));
        }
        let mut encoder = snap::write::FrameEncoder::new(Vec::with_capacity(payload.len() / 2));
        encoder
            .write_all(payload)
            .map_err(|e| Status::internal(format!("compress gRPC message: {e}")))?;
        encoder
            .into_inner()
            .map_err(|e| Status::internal(format!("compress gRPC message: {}", e.error())))
    })
}

fn is_snappy<B>(request: &http::Request<B>) -> bool {
    request
        .headers()
        .get(GRPC_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(SNAPPY_ENCODING))
}

/// Reads a whole body of at most `max` bytes.
async fn collect(body: Body, max: usize) -> Result<Bytes, Status> {
    match Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => Err(
            Status::resource_exhausted(format!("gRPC request body larger than {max} bytes")),
        ),
        Err(err) => Err(Status::internal(format!("read gRPC request body: {err}"))),
    }
}

/// Server wrapper accepting `grpc-encoding: snappy` (see the module docs).
#[derive(Debug, Clone)]
pub struct SnappyDecompression<S> {
    inner: S,
    max_message: usize,
}

impl<S> SnappyDecompression<S> {
    /// Wraps `inner`; compressed bodies and decompressed messages are limited to
    /// `max_message` bytes.
    pub fn new(inner: S, max_message: usize) -> Self {
        Self { inner, max_message }
    }
}

impl<S: NamedService> NamedService for SnappyDecompression<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> tower::Service<http::Request<Body>> for SnappyDecompression<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if !is_snappy(&request) {
            return Box::pin(self.inner.call(request));
        }
        // The clone is not ready; keep the ready one for this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let max = self.max_message;
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            let plain = match collect(body, max).await {
                Ok(raw) => decompress_frames(&raw, max),
                Err(status) => Err(status),
            };
            let plain = match plain {
                Ok(plain) => plain,
                Err(status) => return Ok(status.into_http()),
            };
            parts.headers.remove(GRPC_ENCODING);
            inner
                .call(http::Request::from_parts(
                    parts,
                    Body::new(Full::new(plain)),
                ))
                .await
        })
    }
}

/// Client wrapper sending every request with `grpc-encoding: snappy` (see the module
/// docs). Responses are read as the server sends them.
#[derive(Debug, Clone)]
pub struct SnappyCompression<S> {
    inner: S,
    max_message: usize,
}

impl<S> SnappyCompression<S> {
    /// Wraps `inner`; request bodies above `max_message` bytes are refused.
    pub fn new(inner: S, max_message: usize) -> Self {
        Self { inner, max_message }
    }
}

impl<S> tower::Service<http::Request<Body>> for SnappyCompression<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>
        + Clone
        + Send
        + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let max = self.max_message;
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            let raw = collect(body, max).await.map_err(Box::new)?;
            let compressed = compress_frames(&raw).map_err(Box::new)?;
            parts.headers.insert(
                GRPC_ENCODING,
                http::HeaderValue::from_static(SNAPPY_ENCODING),
            );
            parts.headers.insert(
                GRPC_ACCEPT_ENCODING,
                http::HeaderValue::from_static("identity"),
            );
            let request = http::Request::from_parts(parts, Body::new(Full::new(compressed)));
            inner.call(request).await.map_err(Into::into)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(flag: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![flag];
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn frames_round_trip_in_the_framed_format() {
        let msg = b"hello hello hello hello hello hello".repeat(20);
        let mut body = frame(0, &msg);
        body.extend(frame(0, b""));
        let compressed = compress_frames(&body).unwrap();
        assert_eq!(compressed[0], 1);
        let len = u32::from_be_bytes(compressed[1..5].try_into().unwrap()) as usize;
        let payload = &compressed[5..5 + len];
        // The framed format starts with the stream identifier chunk "sNaPpY".
        assert_eq!(&payload[..10], b"\xff\x06\x00\x00sNaPpY");
        assert!(payload.len() < msg.len());
        let mut plain = Vec::new();
        snap::read::FrameDecoder::new(payload)
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain, msg);
        let back = decompress_frames(&compressed, 1 << 20).unwrap();
        assert_eq!(back.as_ref(), body.as_slice());
    }

    #[test]
    fn malformed_or_oversized_bodies_are_refused() {
        let msg = vec![7u8; 4096];
        let compressed = compress_frames(&frame(0, &msg)).unwrap();
        let err = decompress_frames(&compressed, 100).unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        // Raw block snappy is not the framed format.
        let block = snap::raw::Encoder::new().compress_vec(&msg).unwrap();
        let err = decompress_frames(&frame(1, &block), 1 << 20).unwrap_err();
        assert_eq!(err.code(), tonic::Code::Internal, "{err}");
        assert!(decompress_frames(&[0, 0, 0], 10).is_err());
        assert!(decompress_frames(&frame(0, b"abc")[..6], 10).is_err());
        assert!(decompress_frames(&frame(2, b"abc"), 10).is_err());
    }
}
