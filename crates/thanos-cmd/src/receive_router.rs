//! The router half of `thanos receive` (components.md §3.1, §3.6): the hashring from
//! `--receive.hashrings-file` / `--receive.hashrings`, the peer clients, the
//! [`Distributor`] every write goes through, and the hot reload of the hashrings file.
//!
//! The hashring is built before anything is served, so a configuration Thanos would
//! deadlock on or fail every write with (fewer endpoints than the replication factor,
//! invalid JSON, bad tenant globs) stops the start with a clear error. Reloading never
//! flushes heads nor turns the node unready: new writes simply follow the new ring.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use prometheus::Registry;
use thanos_receive::forward::Compression;
use thanos_receive::hashring::{Algorithm, Hashring, LoadedConfig};
use thanos_receive::reload::build_hashring;
use thanos_receive::{
    Distributor, GrpcPeers, HashringReloader, LocalWriter, MultiTsdb, RingMetrics, RouterOptions,
    SharedHashring,
};
use thanos_server::RunGroup;

use crate::flags::receive::ReceiveFlags;

/// The hashring and forwarding settings of a receiver in a router mode.
pub struct RouterSetup {
    ring: Arc<SharedHashring>,
    config: LoadedConfig,
    content: Vec<u8>,
    file: Option<PathBuf>,
    refresh: Duration,
    algorithm: Algorithm,
    replication_factor: u64,
    peers: thanos_server::GrpcClient,
    compression: Compression,
    options: RouterOptions,
}

impl std::fmt::Debug for RouterSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouterSetup")
            .field("file", &self.file)
            .field("replication_factor", &self.replication_factor)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl RouterSetup {
    /// Builds the hashring from `content` (the file's or `--receive.hashrings`) and the
    /// peer client settings; fails on any invalid configuration.
    pub fn from_flags(flags: &ReceiveFlags, content: &str) -> anyhow::Result<Self> {
        let algorithm: Algorithm = flags
            .receive_hashrings_algorithm
            .parse()
            .context("invalid --receive.hashrings-algorithm")?;
        let replication_factor = flags.receive_replication_factor;
        let source = match &flags.receive_hashrings_file {
            Some(path) => format!("--receive.hashrings-file {}", path.display()),
            None => "--receive.hashrings".to_owned(),
        };
        let (config, ring) = build_hashring(content.as_bytes(), algorithm, replication_factor)
            .with_context(|| {
                format!("invalid hashring configuration in {source} (replication factor {replication_factor})")
            })?;
        if let Some(local) = &flags.receive_local_endpoint
            && !ring.nodes().iter().any(|e| e.has_address(local))
        {
            tracing::warn!(
                local_endpoint = %local,
                "--receive.local-endpoint is not an endpoint of any hashring; this node \
                 will store nothing and forward every write"
            );
        }
        if flags.receive_replication_protocol != "protobuf" {
            tracing::warn!(
                protocol = %flags.receive_replication_protocol,
                "only the protobuf replication protocol is implemented; forwarding over gRPC"
            );
        }
        let peers = flags
            .client
            .options()?
            .build()
            .context("invalid --remote-write.client-tls-* flags")?;
        let compression = match flags.receive_grpc_compression.as_str() {
            "none" => Compression::None,
            _ => Compression::Snappy,
        };
        Ok(Self {
            ring: Arc::new(SharedHashring::new(ring)),
            config,
            content: content.as_bytes().to_vec(),
            file: flags.receive_hashrings_file.clone(),
            refresh: flags.receive_hashrings_file_refresh_interval,
            algorithm,
            replication_factor,
            peers,
            compression,
            options: RouterOptions {
                local_endpoint: flags.receive_local_endpoint.clone(),
                forward_timeout: flags.receive_forward_timeout,
                max_backoff: flags.receive_forward_max_backoff,
                async_workers: usize::try_from(flags.receive_forward_async_workers)
                    .unwrap_or(usize::MAX)
                    .max(1),
            },
        })
    }

    /// Endpoints in the loaded hashrings.
    pub fn nodes(&self) -> usize {
        self.ring.current().nodes().len()
    }
}

/// The distributor of a receiver: local-only without a router setup, otherwise a router
/// writing in-process to `tsdb` (RouterIngestor) or forwarding everything (RouterOnly,
/// `tsdb` = None). With a router, also registers the hashring metrics and, when the
/// hashring comes from a file, spawns its reloader in `group`.
pub fn distributor(
    router: Option<RouterSetup>,
    tsdb: Option<Arc<MultiTsdb>>,
    registry: &Registry,
    group: &mut RunGroup,
) -> anyhow::Result<Arc<Distributor>> {
    let local = tsdb.map(LocalWriter::new);
    let Some(router) = router else {
        let local = local.context("an ingesting receiver needs its tenant storage")?;
        return Ok(Arc::new(
            Distributor::ingestor(local, registry).context("register forwarding metrics")?,
        ));
    };
    let metrics = RingMetrics::new(registry).context("register hashring metrics")?;
    metrics.applied(&router.config);
    let peers = Arc::new(GrpcPeers::new(router.peers.clone(), router.compression));
    let distributor = Distributor::router(
        Arc::clone(&router.ring),
        local,
        peers,
        router.options.clone(),
        registry,
    )
    .context("register forwarding metrics")?;
    if let Some(path) = &router.file {
        let reloader = HashringReloader::new(
            path,
            Arc::clone(&router.ring),
            router.algorithm,
            router.replication_factor,
            metrics,
            router.content.clone(),
        );
        let token = group.token();
        group.spawn(
            "hashring-reload",
            reloader.run(router.refresh, async move { token.cancelled().await }),
        );
    }
    Ok(Arc::new(distributor))
}
