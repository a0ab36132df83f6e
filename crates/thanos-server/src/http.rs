//! The HTTP server every component runs on `--http-address` (mirrors Thanos
//! `pkg/server/http` with exporter-toolkit's web config).
//!
//! It always serves `GET /metrics`, `GET /-/healthy` and `GET /-/ready`; components merge
//! their own routes in as an [`axum::Router`]. TLS, HTTP/2, response headers and basic auth
//! come from the [`WebConfig`]. Handlers can read the connection's [`PeerInfo`] (remote
//! address, client certificates) from the request extensions.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use http::{HeaderValue, StatusCode, header};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use prometheus::{Encoder, Registry, TextEncoder};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use crate::error::{Error, Result};
use crate::prober::Prober;
use crate::tls::{self, PeerInfo, ServerConn};
use crate::web_config::WebConfig;

/// Settings of an HTTP server, usually from `--http-address`, `--http-grace-period` and
/// `--http.config`.
#[derive(Debug, Clone)]
pub struct HttpServerOptions {
    /// Name used in logs (e.g. "http", "remote-write").
    pub name: &'static str,
    /// Listen address, `host:port`.
    pub address: String,
    /// How long in-flight requests may take to finish after shutdown starts.
    pub grace_period: Duration,
    /// TLS, headers and basic auth.
    pub web_config: WebConfig,
}

/// A bound, not yet running HTTP server.
#[derive(Debug)]
pub struct HttpServer {
    options: HttpServerOptions,
    listener: TcpListener,
    local_addr: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: Router,
}

/// Registers the `process_*` metrics (CPU, memory, file descriptors, start time) on
/// `registry`. Safe to call more than once for the same registry.
pub fn register_process_metrics(registry: &Registry) -> Result<()> {
    let collector = prometheus::process_collector::ProcessCollector::for_self();
    match registry.register(Box::new(collector)) {
        Ok(()) | Err(prometheus::Error::AlreadyReg) => Ok(()),
        Err(err) => Err(Error::Metrics(err)),
    }
}

/// The router with `/metrics`, `/-/healthy` and `/-/ready`, without any component routes.
/// [`HttpServer::bind`] merges it with the component's router; it is public for components
/// that serve these routes on another listener.
pub fn base_router(prober: Prober, registry: Registry) -> Router {
    let metrics = Router::new()
        .route("/metrics", get(metrics_handler))
        .with_state(registry);
    let probes = Router::new()
        .route("/-/healthy", get(healthy_handler))
        .route("/-/ready", get(ready_handler))
        .with_state(prober);
    metrics.merge(probes)
}

async fn metrics_handler(State(registry): State<Registry>) -> Response {
    // Gathering reads /proc for the process collector: keep it off the async workers.
    let encoded = tokio::task::spawn_blocking(move || {
        let encoder = TextEncoder::new();
        let mut buffer = Vec::new();
        encoder
            .encode(&registry.gather(), &mut buffer)
            .map(|()| (buffer, encoder.format_type().to_owned()))
    })
    .await;
    match encoded {
        Ok(Ok((body, content_type))) => {
            ([(header::CONTENT_TYPE, content_type)], body).into_response()
        }
        Ok(Err(err)) => {
            tracing::warn!(err = %err, "encode metrics");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("encode metrics: {err}"),
            )
                .into_response()
        }
        Err(err) => {
            tracing::warn!(err = %err, "gather metrics");
            (StatusCode::INTERNAL_SERVER_ERROR, "gather metrics").into_response()
        }
    }
}

fn probe_response(ok: bool) -> Response {
    if ok {
        (StatusCode::OK, "OK").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "NOT OK").into_response()
    }
}

async fn healthy_handler(State(prober): State<Prober>) -> Response {
    probe_response(prober.is_healthy())
}

async fn ready_handler(State(prober): State<Prober>) -> Response {
    probe_response(prober.is_ready())
}

/// Basic-auth users with a cache of successful verifications (bcrypt is deliberately slow,
/// and clients send the same credentials on every request).
#[derive(Debug)]
struct BasicAuth {
    users: std::collections::BTreeMap<String, String>,
    /// SHA-256 digests of `user \0 hash \0 password` that verified successfully.
    verified: Mutex<HashSet<Vec<u8>>>,
}

/// Upper bound of the verification cache; it is cleared when full.
const AUTH_CACHE_LIMIT: usize = 1024;

impl BasicAuth {
    fn digest(user: &str, hash: &str, password: &str) -> Vec<u8> {
        let mut input = Vec::with_capacity(user.len() + hash.len() + password.len() + 2);
        input.extend_from_slice(user.as_bytes());
        input.push(0);
        input.extend_from_slice(hash.as_bytes());
        input.push(0);
        input.extend_from_slice(password.as_bytes());
        match rustls::crypto::aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256.tls13() {
            Some(suite) => suite.common.hash_provider.hash(&input).as_ref().to_vec(),
            // Unreachable with rustls' aws-lc-rs suites; hashing is only a cache key.
            None => input,
        }
    }

    async fn check(self: Arc<Self>, authorization: Option<&HeaderValue>) -> bool {
        let Some((user, password)) = authorization.and_then(parse_basic_auth) else {
            return false;
        };
        let Some(hash) = self.users.get(&user).cloned() else {
            return false;
        };
        let digest = Self::digest(&user, &hash, &password);
        if self.lock().contains(&digest) {
            return true;
        }
        let verified = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
            .await
            .ok()
            .and_then(|result| result.ok())
            .unwrap_or(false);
        if verified {
            let mut cache = self.lock();
            if cache.len() >= AUTH_CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(digest);
        }
        verified
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<Vec<u8>>> {
        // A panic while holding the lock cannot corrupt a set of digests.
        self.verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn parse_basic_auth(value: &HeaderValue) -> Option<(String, String)> {
    let value = value.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

async fn basic_auth_middleware(
    State(auth): State<Arc<BasicAuth>>,
    request: Request,
    next: Next,
) -> Response {
    if auth
        .check(request.headers().get(header::AUTHORIZATION))
        .await
    {
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic")],
        "Unauthorized",
    )
        .into_response()
}

async fn headers_middleware(
    State(headers): State<Arc<Vec<(http::HeaderName, HeaderValue)>>>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    for (name, value) in headers.iter() {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

impl HttpServer {
    /// Binds the listener, loads TLS files and assembles the router: the base routes
    /// ([`base_router`]) merged with the component's `routes`, wrapped in basic auth and the
    /// configured headers. Registers the process metrics on `registry`.
    pub async fn bind(
        options: HttpServerOptions,
        prober: Prober,
        registry: Registry,
        routes: Router,
    ) -> Result<Self> {
        register_process_metrics(&registry)?;
        let alpn: &[&[u8]] = if options.web_config.http2 {
            &[b"h2", b"http/1.1"]
        } else {
            &[b"http/1.1"]
        };
        let tls = options
            .web_config
            .tls
            .as_ref()
            .map(|tls| tls.build(alpn))
            .transpose()?;
        let mut router = base_router(prober, registry).merge(routes);
        if !options.web_config.basic_auth_users.is_empty() {
            let auth = Arc::new(BasicAuth {
                users: options.web_config.basic_auth_users.clone(),
                verified: Mutex::new(HashSet::new()),
            });
            router = router.layer(middleware::from_fn_with_state(auth, basic_auth_middleware));
        }
        if !options.web_config.headers.is_empty() {
            let headers = Arc::new(options.web_config.headers.clone());
            router = router.layer(middleware::from_fn_with_state(headers, headers_middleware));
        }
        let listener = tls::bind(&options.address).await?;
        let local_addr = listener.local_addr().map_err(|source| Error::Bind {
            address: options.address.clone(),
            source,
        })?;
        Ok(HttpServer {
            options,
            listener,
            local_addr,
            tls,
            router,
        })
    }

    /// The address the listener is bound to (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` is cancelled, then stops accepting, lets in-flight requests
    /// finish within the grace period and closes the remaining connections.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let HttpServer {
            options,
            listener,
            local_addr,
            tls,
            router,
        } = self;
        let name = options.name;
        tracing::info!(server = name, address = %local_addr, tls = tls.is_some(), "listening for HTTP requests");
        let mut incoming = tls::spawn_acceptor(listener, tls, shutdown.clone(), name);
        let mut builder = auto::Builder::new(TokioExecutor::new());
        if !options.web_config.http2 {
            builder = builder.http1_only();
        }
        let mut connections = JoinSet::new();
        loop {
            let conn = tokio::select! {
                () = shutdown.cancelled() => break,
                conn = incoming.recv() => match conn {
                    Some(conn) => conn,
                    None => break,
                },
            };
            while connections.try_join_next().is_some() {}
            let peer = conn.peer_info();
            let service =
                router
                    .clone()
                    .map_request(move |mut request: Request<hyper::body::Incoming>| {
                        request.extensions_mut().insert(peer.clone());
                        request
                    });
            connections.spawn(serve_connection(
                builder.clone(),
                conn,
                TowerToHyperService::new(service),
                shutdown.clone(),
            ));
        }
        drop(incoming);
        tracing::info!(server = name, grace_period = ?options.grace_period, in_flight = connections.len(), "HTTP server draining");
        let drained = tokio::time::timeout(options.grace_period, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                server = name,
                remaining = connections.len(),
                "grace period elapsed, closing remaining HTTP connections"
            );
            connections.shutdown().await;
        }
        tracing::info!(server = name, "HTTP server stopped");
        Ok(())
    }
}

async fn serve_connection<S>(
    builder: auto::Builder<TokioExecutor>,
    conn: ServerConn,
    service: TowerToHyperService<S>,
    shutdown: CancellationToken,
) where
    S: tower::Service<
            Request<hyper::body::Incoming>,
            Response = Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(conn), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(err) = result {
        tracing::debug!(err = %err, "HTTP connection ended with an error");
    }
}

/// Extracts the [`PeerInfo`] of the connection a request arrived on (inserted by the
/// server into every request's extensions).
pub fn peer_info(request: &Request) -> Option<&PeerInfo> {
    request.extensions().get::<PeerInfo>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_header_parsing() {
        let value = HeaderValue::from_static("Basic YWxpY2U6czNjcjN0OngK");
        assert_eq!(
            parse_basic_auth(&value),
            Some(("alice".to_owned(), "s3cr3t:x\n".to_owned()))
        );
        assert_eq!(
            parse_basic_auth(&HeaderValue::from_static("Bearer abc")),
            None
        );
        assert_eq!(
            parse_basic_auth(&HeaderValue::from_static("Basic !!!")),
            None
        );
    }

    #[tokio::test]
    async fn successful_verifications_are_cached() {
        let hash = bcrypt::hash("pw", 4).unwrap();
        let auth = Arc::new(BasicAuth {
            users: [("u".to_owned(), hash)].into_iter().collect(),
            verified: Mutex::new(HashSet::new()),
        });
        let good = HeaderValue::from_str(&format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("u:pw")
        ))
        .unwrap();
        let bad = HeaderValue::from_str(&format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("u:nope")
        ))
        .unwrap();
        assert!(!auth.clone().check(Some(&bad)).await);
        assert_eq!(auth.lock().len(), 0);
        assert!(auth.clone().check(Some(&good)).await);
        assert_eq!(auth.lock().len(), 1);
        assert!(auth.clone().check(Some(&good)).await);
        assert_eq!(auth.lock().len(), 1);
        assert!(!auth.clone().check(None).await);
    }
}
