//! The gRPC server every component runs on `--grpc-address` and the gRPC client TLS helper
//! (mirrors Thanos `pkg/server/grpc` and the client half of `pkg/extgrpc`).
//!
//! The server always registers `grpc.health.v1.Health`, whose overall status ("" service)
//! is SERVING only while the [`Prober`] is ready. Components add their services through
//! [`GrpcServer::add_service`] and should configure each generated server with
//! `.max_decoding_message_size(MAX_MESSAGE_SIZE).max_encoding_message_size(MAX_MESSAGE_SIZE)`
//! (tonic sets message limits per service, not per server).
//!
//! Handlers find the caller's [`PeerInfo`](crate::tls::PeerInfo) (remote address, client
//! certificates) in the request extensions: `request.extensions().get::<PeerInfo>()`
//! (tonic's `Request::remote_addr` does not know this connection type).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::transport::server::Router;
use tonic::transport::{Channel, Endpoint};
use tonic_health::ServingStatus;

use crate::channel::{DirectChannel, GrpcChannel};
use crate::error::{Error, Result};
use crate::prober::Prober;
use crate::tls::{self, ClientTlsOptions, ServerTlsOptions};

/// Maximum gRPC message size sent and received, 2^31-1 bytes as in Thanos (storeapi.md §0).
pub const MAX_MESSAGE_SIZE: usize = i32::MAX as usize;

/// Keepalive ping period of gRPC clients (Thanos: every 10s).
pub const CLIENT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// Keepalive ping timeout of gRPC clients (Thanos: 5s).
pub const CLIENT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Settings of a gRPC server, usually from the `--grpc-*` flags.
#[derive(Debug, Clone)]
pub struct GrpcServerOptions {
    /// Listen address, `host:port`.
    pub address: String,
    /// How long in-flight calls may take to finish after shutdown starts.
    pub grace_period: Duration,
    /// TLS settings; `None` serves plaintext (h2c).
    pub tls: Option<ServerTlsOptions>,
    /// Connections are closed gracefully after this age (`--grpc-server-max-connection-age`).
    pub max_connection_age: Duration,
}

impl GrpcServerOptions {
    /// Options from the gRPC server flags: TLS only when cert and key are both given, a
    /// client CA enforces verified client certificates (mTLS).
    pub fn from_flags(
        address: &str,
        grace_period: Duration,
        cert: Option<&Path>,
        key: Option<&Path>,
        client_ca: Option<&Path>,
        min_version: tls::TlsVersion,
        max_connection_age: Duration,
    ) -> Result<Self> {
        Ok(GrpcServerOptions {
            address: address.to_owned(),
            grace_period,
            tls: ServerTlsOptions::from_flags(cert, key, client_ca, min_version)?,
            max_connection_age,
        })
    }
}

/// A bound gRPC server; add services, then [`GrpcServer::run`].
pub struct GrpcServer {
    options: GrpcServerOptions,
    listener: TcpListener,
    local_addr: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: Router,
    prober: Prober,
    health: tonic_health::server::HealthReporter,
}

impl std::fmt::Debug for GrpcServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcServer")
            .field("options", &self.options)
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl GrpcServer {
    /// Binds the listener, loads the TLS files and registers the health service.
    pub async fn bind(options: GrpcServerOptions, prober: Prober) -> Result<Self> {
        let tls = options
            .tls
            .as_ref()
            .map(|tls| tls.build(&[b"h2"]))
            .transpose()?;
        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_service_status("", ServingStatus::NotServing)
            .await;
        let router = tonic::transport::Server::builder()
            .max_connection_age(options.max_connection_age)
            .add_service(
                health_service
                    .max_decoding_message_size(MAX_MESSAGE_SIZE)
                    .max_encoding_message_size(MAX_MESSAGE_SIZE),
            );
        let listener = tls::bind(&options.address).await?;
        let local_addr = listener.local_addr().map_err(|source| Error::Bind {
            address: options.address.clone(),
            source,
        })?;
        Ok(GrpcServer {
            options,
            listener,
            local_addr,
            tls,
            router,
            prober,
            health,
        })
    }

    /// The address the listener is bound to (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Adds a component service (a tonic-generated `XxxServer`).
    pub fn add_service<S>(mut self, service: S) -> Self
    where
        S: tower::Service<http::Request<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: axum::response::IntoResponse,
        S::Future: Send + 'static,
    {
        self.router = self.router.add_service(service);
        self
    }

    /// Serves until `shutdown` is cancelled, then stops accepting, lets in-flight calls
    /// finish within the grace period and returns.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let GrpcServer {
            options,
            listener,
            local_addr,
            tls,
            router,
            prober,
            health,
        } = self;
        tracing::info!(server = "grpc", address = %local_addr, tls = tls.is_some(), "listening for gRPC requests");
        let health_task = tokio::spawn(follow_readiness(prober, health, shutdown.clone()));
        let incoming =
            ReceiverStream::new(tls::spawn_acceptor(listener, tls, shutdown.clone(), "grpc"))
                .map(Ok::<_, std::io::Error>);
        let stop = shutdown.clone();
        let serve =
            router.serve_with_incoming_shutdown(incoming, async move { stop.cancelled().await });
        tokio::pin!(serve);
        let result = tokio::select! {
            result = serve.as_mut() => result,
            () = shutdown.cancelled() => {
                tracing::info!(server = "grpc", grace_period = ?options.grace_period, "gRPC server draining");
                match tokio::time::timeout(options.grace_period, serve.as_mut()).await {
                    Ok(result) => result,
                    Err(_) => {
                        tracing::warn!(server = "grpc", "grace period elapsed, closing remaining gRPC connections");
                        Ok(())
                    }
                }
            }
        };
        health_task.abort();
        tracing::info!(server = "grpc", "gRPC server stopped");
        result.map_err(|source| Error::Grpc {
            address: options.address,
            source,
        })
    }
}

/// Mirrors the prober's readiness into the overall ("") health status.
async fn follow_readiness(
    prober: Prober,
    health: tonic_health::server::HealthReporter,
    shutdown: CancellationToken,
) {
    let mut states = prober.subscribe();
    loop {
        let status = if states.borrow_and_update().ready {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        health.set_service_status("", status).await;
        tokio::select! {
            changed = states.changed() => if changed.is_err() { return },
            () = shutdown.cancelled() => {
                health.set_service_status("", ServingStatus::NotServing).await;
                return;
            }
        }
    }
}

/// gRPC client settings from the client flags (`--grpc-client-tls-*` on query,
/// `--remote-write.client-tls-*` on receive).
#[derive(Debug, Clone)]
pub struct GrpcClientOptions {
    /// `None` = plaintext; `Some` = TLS with these settings (`--…-tls-secure`).
    pub tls: Option<ClientTlsOptions>,
}

/// Built client configuration: creates channels to endpoints with the same TLS settings.
#[derive(Clone)]
pub struct GrpcClient {
    tls: Option<Arc<rustls::ClientConfig>>,
    server_name: Option<String>,
}

impl std::fmt::Debug for GrpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcClient")
            .field("tls", &self.tls.is_some())
            .field("server_name", &self.server_name)
            .finish()
    }
}

impl GrpcClientOptions {
    /// Reads the certificate files and builds the client.
    pub fn build(&self) -> Result<GrpcClient> {
        Ok(GrpcClient {
            tls: self.tls.as_ref().map(ClientTlsOptions::build).transpose()?,
            server_name: self
                .tls
                .as_ref()
                .and_then(|tls| tls.server_name.clone())
                .filter(|name| !name.is_empty()),
        })
    }
}

impl GrpcClient {
    /// Whether channels use TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// An endpoint for `address` (`host:port`, optionally with a scheme) with Thanos' client
    /// keepalive settings. TLS is not configured on the endpoint itself: use
    /// [`GrpcClient::connect_lazy`] / [`GrpcClient::connect`], which add it.
    pub fn endpoint(&self, address: &str) -> Result<Endpoint> {
        let authority = address
            .strip_prefix("http://")
            .or_else(|| address.strip_prefix("https://"))
            .unwrap_or(address);
        // TLS is done by our connector, so the URI scheme stays http.
        Endpoint::from_shared(format!("http://{authority}"))
            .map(|endpoint| {
                endpoint
                    .http2_keep_alive_interval(CLIENT_KEEPALIVE_INTERVAL)
                    .keep_alive_timeout(CLIENT_KEEPALIVE_TIMEOUT)
                    .keep_alive_while_idle(true)
                    .tcp_nodelay(true)
            })
            .map_err(|source| Error::Endpoint {
                endpoint: address.to_owned(),
                source,
            })
    }

    /// A StoreAPI transport to `address` that connects on first use (and reconnects as
    /// needed): a [`DirectChannel`] for plaintext, tonic's
    /// channel with this client's TLS otherwise.
    pub fn store_channel(&self, address: &str, connect_timeout: Duration) -> Result<GrpcChannel> {
        let endpoint = self.endpoint(address)?.connect_timeout(connect_timeout);
        match (&self.tls, endpoint.uri().authority()) {
            (None, Some(authority)) => Ok(GrpcChannel::Direct(DirectChannel::new(
                authority.clone(),
                connect_timeout,
            ))),
            _ => Ok(GrpcChannel::Tonic(self.connect_lazy(endpoint))),
        }
    }

    /// A channel that connects on first use (and reconnects as needed).
    pub fn connect_lazy(&self, endpoint: Endpoint) -> Channel {
        match &self.tls {
            None => endpoint.connect_lazy(),
            Some(config) => endpoint.connect_with_connector_lazy(self.connector(config.clone())),
        }
    }

    /// Connects now, failing if the endpoint cannot be reached or the handshake fails.
    pub async fn connect(&self, endpoint: Endpoint) -> Result<Channel> {
        let uri = endpoint.uri().to_string();
        let result = match &self.tls {
            None => endpoint.connect().await,
            Some(config) => {
                endpoint
                    .connect_with_connector(self.connector(config.clone()))
                    .await
            }
        };
        result.map_err(|source| Error::Endpoint {
            endpoint: uri,
            source,
        })
    }

    fn connector(
        &self,
        config: Arc<rustls::ClientConfig>,
    ) -> impl tower::Service<
        http::Uri,
        Response = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
        Error = std::io::Error,
        Future = impl Send + 'static,
    > + Clone
    + Send
    + 'static {
        let server_name = self.server_name.clone();
        tower::service_fn(move |uri: http::Uri| {
            let config = config.clone();
            let server_name = server_name.clone();
            async move {
                let invalid = |message: &str| {
                    std::io::Error::new(std::io::ErrorKind::InvalidInput, message.to_owned())
                };
                let host = uri.host().ok_or_else(|| invalid("endpoint has no host"))?;
                let port = uri
                    .port_u16()
                    .ok_or_else(|| invalid("endpoint has no port"))?;
                let host = host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned();
                let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
                tcp.set_nodelay(true)?;
                let name = server_name.unwrap_or(host);
                let name = rustls::pki_types::ServerName::try_from(name)
                    .map_err(|_| invalid("invalid TLS server name"))?;
                let stream = tokio_rustls::TlsConnector::from(config)
                    .connect(name, tcp)
                    .await?;
                Ok(hyper_util::rt::TokioIo::new(stream))
            }
        })
    }
}
