//! Test support for the Thanos workspace: an S3-compatible server that runs inside the test
//! process, child processes for system tests ([`process`]), Debian's Prometheus server
//! ([`prometheus`]), remote-write requests ([`remote_write`]) and an object store that fails on
//! demand ([`store`]).
//!
//! It mirrors no upstream Thanos package; upstream Thanos tests use a MinIO container through
//! `efficientgo/e2e`. Here the server is [`s3s`] with the [`s3s_fs`] file-system backend, bound to
//! `127.0.0.1:0`, with SigV4 authentication enforced and `TCP_NODELAY` set on every accepted
//! socket (without it each small request pays a Nagle/delayed-ACK stall of about 40 ms).
//!
//! Buckets are plain directories under [`S3TestServer::data_dir`] and objects are plain files,
//! so tests can inspect or corrupt them directly.
//!
//! ```no_run
//! # async fn demo() {
//! let server = thanos_test_support::S3TestServer::start().await;
//! server.create_bucket("thanos");
//! let yaml = server.objstore_yaml("thanos");
//! // hand `yaml` to `--objstore.config` or to `thanos_objstore::BucketConfig::parse`.
//! # drop(yaml);
//! # }
//! ```

pub mod process;
pub mod prometheus;
pub mod remote_write;
pub mod store;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use s3s_fs::FileSystem;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Access key accepted by [`S3TestServer::start`].
pub const DEFAULT_ACCESS_KEY: &str = "thanos-test-access-key";
/// Secret key accepted by [`S3TestServer::start`].
pub const DEFAULT_SECRET_KEY: &str = "thanos-test-secret-key";

/// Errors from starting an S3 test server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The data directory could not be created or opened.
    #[error("prepare data directory {path}: {source}")]
    DataDir {
        /// Directory that was being prepared.
        path: PathBuf,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// The s3s-fs backend rejected the data directory.
    #[error("open s3s-fs backend at {path}: {message}")]
    Backend {
        /// Data directory given to the backend.
        path: PathBuf,
        /// Backend error message.
        message: String,
    },
    /// The listen address could not be bound.
    #[error("bind {addr}: {source}")]
    Bind {
        /// Address that was being bound.
        addr: String,
        /// Underlying I/O error.
        source: std::io::Error,
    },
}

/// Options for [`S3TestServer::start_with`].
#[derive(Debug, Clone)]
pub struct S3TestServerOptions {
    /// Address to listen on, e.g. `127.0.0.1:0`.
    pub listen: String,
    /// Directory holding the buckets; `None` creates a fresh temporary directory that is removed
    /// when the server is dropped.
    pub data_dir: Option<PathBuf>,
    /// Access key clients must sign with.
    pub access_key: String,
    /// Secret key clients must sign with.
    pub secret_key: String,
}

impl Default for S3TestServerOptions {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:0".to_owned(),
            data_dir: None,
            access_key: DEFAULT_ACCESS_KEY.to_owned(),
            secret_key: DEFAULT_SECRET_KEY.to_owned(),
        }
    }
}

/// A running S3-compatible server. The accept loop (and every connection it spawned) stops when
/// this value is dropped.
#[derive(Debug)]
pub struct S3TestServer {
    addr: SocketAddr,
    data_dir: PathBuf,
    access_key: String,
    secret_key: String,
    accept_task: JoinHandle<()>,
    // Kept last so the directory outlives the accept task abort in `Drop`.
    _tempdir: Option<tempfile::TempDir>,
}

impl S3TestServer {
    /// Starts a server on `127.0.0.1:0` over a fresh temporary directory with the default
    /// credentials ([`DEFAULT_ACCESS_KEY`], [`DEFAULT_SECRET_KEY`]).
    ///
    /// # Panics
    /// Panics if the server cannot start (this is test support; a failure here is a broken test
    /// environment).
    pub async fn start() -> Self {
        match Self::start_with(S3TestServerOptions::default()).await {
            Ok(server) => server,
            Err(err) => panic!("start s3 test server: {err}"),
        }
    }

    /// Starts a server with explicit options. Must be called inside a tokio runtime.
    pub async fn start_with(opts: S3TestServerOptions) -> Result<Self, Error> {
        let (tempdir, data_dir) = match opts.data_dir {
            Some(dir) => {
                std::fs::create_dir_all(&dir).map_err(|source| Error::DataDir {
                    path: dir.clone(),
                    source,
                })?;
                (None, dir)
            }
            None => {
                let tmp = tempfile::Builder::new()
                    .prefix("s3-test-server-")
                    .tempdir()
                    .map_err(|source| Error::DataDir {
                        path: std::env::temp_dir(),
                        source,
                    })?;
                let path = tmp.path().to_path_buf();
                (Some(tmp), path)
            }
        };
        let fs = FileSystem::new(&data_dir).map_err(|err| Error::Backend {
            path: data_dir.clone(),
            message: format!("{err:?}"),
        })?;
        let service = {
            let mut builder = S3ServiceBuilder::new(fs);
            builder.set_auth(SimpleAuth::from_single(
                opts.access_key.clone(),
                opts.secret_key.clone(),
            ));
            builder.build()
        };
        let listener = TcpListener::bind(&opts.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: opts.listen.clone(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: opts.listen.clone(),
            source,
        })?;
        let accept_task = tokio::spawn(async move {
            let http = ConnBuilder::new(TokioExecutor::new());
            // Connections live in this set so that aborting the accept task drops them too.
            let mut conns = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let socket = match accepted {
                            Ok((socket, _)) => socket,
                            Err(err) => {
                                tracing::warn!(err = %err, "s3 test server accept");
                                continue;
                            }
                        };
                        if let Err(err) = socket.set_nodelay(true) {
                            tracing::warn!(err = %err, "s3 test server set_nodelay");
                        }
                        let conn = http
                            .serve_connection(TokioIo::new(socket), service.clone())
                            .into_owned();
                        conns.spawn(async move {
                            if let Err(err) = conn.await {
                                tracing::debug!(err = %err, "s3 test server connection");
                            }
                        });
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        Ok(Self {
            addr,
            data_dir,
            access_key: opts.access_key,
            secret_key: opts.secret_key,
            accept_task,
            _tempdir: tempdir,
        })
    }

    /// Bound address as `127.0.0.1:PORT`, without a scheme (the form of Thanos's S3 `endpoint`
    /// key).
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// Bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Access key clients must sign with.
    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    /// Secret key clients must sign with.
    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }

    /// Directory holding one sub-directory per bucket; objects are plain files under it.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Creates a bucket (a directory under [`Self::data_dir`]); creating an existing bucket is a
    /// no-op. `name` must be a valid S3 bucket name (3 to 63 lower-case letters, digits, `-` or
    /// `.`), or the server will refuse requests to it.
    ///
    /// # Panics
    /// Panics if the directory cannot be created.
    pub fn create_bucket(&self, name: &str) {
        let dir = self.data_dir.join(name);
        if let Err(err) = std::fs::create_dir_all(&dir) {
            panic!("create bucket directory {}: {err}", dir.display());
        }
    }

    /// Thanos objstore YAML (`type: S3`, `insecure: true`, path-style, static credentials)
    /// pointing at this server and `bucket`.
    pub fn objstore_yaml(&self, bucket: &str) -> String {
        objstore_yaml(&self.endpoint(), bucket, &self.access_key, &self.secret_key)
    }
}

/// Thanos objstore YAML for an S3 test server at `endpoint` (`host:port`, no scheme).
pub fn objstore_yaml(endpoint: &str, bucket: &str, access_key: &str, secret_key: &str) -> String {
    format!(
        "type: S3\n\
         config:\n  \
           bucket: \"{bucket}\"\n  \
           endpoint: \"{endpoint}\"\n  \
           region: us-east-1\n  \
           access_key: \"{access_key}\"\n  \
           secret_key: \"{secret_key}\"\n  \
           insecure: true\n  \
           bucket_lookup_type: path\n"
    )
}

impl Drop for S3TestServer {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

/// Milliseconds since the Unix epoch, the unit of Prometheus timestamps.
///
/// # Panics
/// Panics if the system clock is before 1970.
pub fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_else(|err| panic!("system clock before the Unix epoch: {err}"));
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn serves_and_rejects_unsigned_requests() {
        let server = S3TestServer::start().await;
        server.create_bucket("blocks");
        assert!(server.data_dir().join("blocks").is_dir());
        assert!(server.endpoint().starts_with("127.0.0.1:"));
        assert_eq!(server.url(), format!("http://{}", server.endpoint()));
        let yaml = server.objstore_yaml("blocks");
        assert!(yaml.contains(&server.endpoint()));
        assert!(yaml.contains("insecure: true"));

        // An unsigned request must be refused: authentication is enforced.
        let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
        stream
            .write_all(b"GET /blocks/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.unwrap();
        assert!(reply.starts_with("HTTP/1.1 403"), "reply: {reply}");
    }

    #[tokio::test]
    async fn drop_stops_listening() {
        let server = S3TestServer::start().await;
        let addr = server.addr();
        drop(server);
        // Give the aborted task a moment to release the listener.
        let mut refused = false;
        for _ in 0..50 {
            if tokio::net::TcpStream::connect(addr).await.is_err() {
                refused = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(refused, "server still accepting after drop");
    }

    #[test]
    fn now_ms_is_the_wall_clock_in_milliseconds() {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let ms = now_ms();
        assert!((ms / 1000 - secs).abs() <= 1, "{ms} vs {secs}s");
    }
}
