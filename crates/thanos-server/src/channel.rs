//! The client transport of StoreAPI calls: tonic's channel for TLS endpoints, and for
//! plaintext ones an HTTP/2 connection driven with `h2` directly.
//!
//! tonic's channel hands every call through a buffer task to hyper's connection task,
//! which spawns one more task to send the request body: a request's headers and its one
//! message left in two writes, so the server woke twice, and the caller's task woke other
//! tasks three times before its first byte left. [`DirectChannel`] queues the headers and
//! the message of a call together from the caller's task, and the connection task writes
//! both at once. On this project's benchmark machine, a query whose selector matches
//! nothing went from 0.45 to 0.38 ms.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use http_body_util::BodyExt as _;
use tonic::transport::Channel;

use crate::BoxError;
use crate::grpc::{CLIENT_KEEPALIVE_INTERVAL, CLIENT_KEEPALIVE_TIMEOUT};

/// HTTP/2 receive window of one call: 16 MiB, the most grpc-go's window estimation
/// (which Thanos' querier uses) grows a window to. With hyper's client default of 2 MiB,
/// a store sending a Series answer of several MiB (20,000 series) stopped for window
/// updates; the PromQL benchmark's latency ratio went down by 2–3% with 16 MiB.
const STREAM_WINDOW: u32 = 16 << 20;
/// HTTP/2 receive window of a connection, shared by its concurrent calls.
const CONNECTION_WINDOW: u32 = 32 << 20;

/// Largest HTTP/2 frame payload the server may send. Servers cut their response
/// chunks (tonic: 32 KiB of messages each by default) into frames of at most this size,
/// and send each frame with its own write: at HTTP/2's default of 16 KiB, a chunk took
/// two or three writes (each waking the reader), at 1 MiB it takes one. This cut the
/// PromQL benchmark's latency by about 3%.
const MAX_FRAME: u32 = 1 << 20;

/// A gRPC transport usable by every generated client (`StoreClient::new(channel)`).
#[derive(Debug, Clone)]
pub enum GrpcChannel {
    /// tonic's channel (used for TLS endpoints).
    Tonic(Channel),
    /// One HTTP/2 connection per endpoint, without intermediate tasks (plaintext).
    Direct(DirectChannel),
}

impl tower::Service<http::Request<tonic::body::Body>> for GrpcChannel {
    type Response = http::Response<tonic::body::Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self {
            Self::Tonic(channel) => channel.poll_ready(cx).map_err(Into::into),
            Self::Direct(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        match self {
            Self::Tonic(channel) => {
                let call = channel.call(request);
                Box::pin(async move { call.await.map_err(Into::into) })
            }
            Self::Direct(direct) => Box::pin(direct.clone().call(request)),
        }
    }
}

/// A lazily connected plaintext HTTP/2 connection to one endpoint, reconnected on the
/// next call once it fails; pinged every 10 s and closed when a ping is not answered
/// within 5 s (Thanos' client keepalive).
///
/// Request bodies are sent whole: every StoreAPI call sends a single request message.
#[derive(Clone)]
pub struct DirectChannel {
    inner: Arc<Inner>,
}

struct Inner {
    authority: http::uri::Authority,
    connect_timeout: Duration,
    sender: tokio::sync::Mutex<Option<h2::client::SendRequest<Bytes>>>,
}

impl std::fmt::Debug for DirectChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectChannel")
            .field("address", &self.inner.authority.as_str())
            .finish()
    }
}

impl DirectChannel {
    /// A channel to `authority` (`host:port`); nothing is connected before the first call,
    /// and connecting fails after `connect_timeout`.
    pub fn new(authority: http::uri::Authority, connect_timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                authority,
                connect_timeout,
                sender: tokio::sync::Mutex::new(None),
            }),
        }
    }

    async fn call(
        self,
        request: http::Request<tonic::body::Body>,
    ) -> Result<http::Response<tonic::body::Body>, BoxError> {
        let (mut parts, body) = request.into_parts();
        let message = body.collect().await?.to_bytes();
        let path = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        parts.uri = http::Uri::builder()
            .scheme(http::uri::Scheme::HTTP)
            .authority(self.inner.authority.clone())
            .path_and_query(path)
            .build()?;
        let mut sender = self.sender().await?;
        let empty = message.is_empty();
        let (response, mut stream) =
            sender.send_request(http::Request::from_parts(parts, ()), empty)?;
        if !empty {
            // Queued without waiting for window capacity: h2 sends it as soon as the
            // stream opens, in the same write as the headers.
            stream.send_data(message, true)?;
        }
        let response = response.await?;
        Ok(response.map(|recv| {
            tonic::body::Body::new(ResponseBody {
                recv,
                data_done: false,
                done: false,
            })
        }))
    }

    /// The connection's sender, ready for a new stream; connects when there is no live
    /// connection.
    async fn sender(&self) -> Result<h2::client::SendRequest<Bytes>, BoxError> {
        let mut slot = self.inner.sender.lock().await;
        if let Some(sender) = slot.clone() {
            match sender.ready().await {
                Ok(sender) => return Ok(sender),
                Err(err) => {
                    tracing::debug!(address = %self.inner.authority, error = %err, "grpc connection lost; reconnecting");
                }
            }
        }
        *slot = None;
        let sender = self.connect().await?;
        *slot = Some(sender.clone());
        drop(slot);
        Ok(sender.ready().await?)
    }

    async fn connect(&self) -> Result<h2::client::SendRequest<Bytes>, BoxError> {
        let address = self.inner.authority.as_str();
        let timeout = self.inner.connect_timeout;
        let tcp = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(address))
            .await
            .map_err(|_| format!("connecting to {address} timed out after {timeout:?}"))??;
        tcp.set_nodelay(true)?;
        let (sender, mut connection) = h2::client::Builder::new()
            .max_frame_size(MAX_FRAME)
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .handshake::<_, Bytes>(tcp)
            .await?;
        let ping = connection
            .ping_pong()
            .ok_or("h2 handed out the connection's ping handle twice")?;
        let address = address.to_owned();
        tokio::spawn(async move {
            tokio::select! {
                result = &mut connection => {
                    if let Err(err) = result {
                        tracing::debug!(address = %address, error = %err, "grpc connection closed");
                    }
                }
                () = keep_alive(ping) => {
                    tracing::debug!(address = %address, "grpc keepalive ping unanswered; closing the connection");
                }
            }
        });
        Ok(sender)
    }
}

/// Pings every [`CLIENT_KEEPALIVE_INTERVAL`]; returns when a ping fails or is not
/// answered within [`CLIENT_KEEPALIVE_TIMEOUT`].
async fn keep_alive(mut ping: h2::PingPong) {
    loop {
        tokio::time::sleep(CLIENT_KEEPALIVE_INTERVAL).await;
        let pong = tokio::time::timeout(CLIENT_KEEPALIVE_TIMEOUT, ping.ping(h2::Ping::opaque()));
        if !matches!(pong.await, Ok(Ok(_))) {
            return;
        }
    }
}

/// A response body read from an h2 stream: data frames (their window released as they
/// are taken), then the trailers. Dropping it early resets the stream.
struct ResponseBody {
    recv: h2::RecvStream,
    data_done: bool,
    done: bool,
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if !this.data_done {
            match ready!(this.recv.poll_data(cx)) {
                Some(Ok(data)) => {
                    // Releasing can only fail once the stream is gone, which the next
                    // poll reports.
                    let _ = this.recv.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(err)) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(err)));
                }
                None => this.data_done = true,
            }
        }
        let trailers = ready!(this.recv.poll_trailers(cx));
        this.done = true;
        Poll::Ready(match trailers {
            Ok(Some(trailers)) => Some(Ok(Frame::trailers(trailers))),
            Ok(None) => None,
            Err(err) => Some(Err(err)),
        })
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}
