//! The current hashring and its hot reload from `--receive.hashrings-file` (mirrors the
//! configuration watcher of Thanos `pkg/receive/config.go`).
//!
//! [`SharedHashring`] holds the ring every write is routed by; swapping it is a pointer
//! exchange, so writes in flight finish on the ring they started with. A
//! [`HashringReloader`] re-reads the file every `--receive.hashrings-file-refresh-interval`
//! and, in between, checks the file's size and modification time every
//! [`CHANGE_CHECK_INTERVAL`] (cheap change detection without a file-system watcher). New
//! content that parses and builds replaces the ring; invalid content keeps the old ring,
//! sets `thanos_receive_config_last_reload_successful` to 0 and is logged.
//!
//! The polling loop itself, [`run_reload_loop`] over a [`Reload`] implementation, is
//! shared with the limits configuration reloader ([`crate::limits::LimitsReloader`]).
//!
//! Better than Thanos (users.md #8): a change never flushes the heads nor makes the node
//! unready; it only changes where new writes go.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use prometheus::{Gauge, IntGaugeVec, Opts, Registry};

use crate::hashring::{Algorithm, ConfigError, Hashring, LoadedConfig, MultiHashring};

/// How often the file's metadata is checked for changes between full re-reads.
pub const CHANGE_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The hashring currently in use; shared by the writers and the reloader.
#[derive(Debug)]
pub struct SharedHashring {
    current: RwLock<Arc<MultiHashring>>,
    generation: AtomicU64,
}

impl SharedHashring {
    /// Starts with `ring` (generation 0).
    pub fn new(ring: MultiHashring) -> Self {
        Self {
            current: RwLock::new(Arc::new(ring)),
            generation: AtomicU64::new(0),
        }
    }

    /// The ring to route a request by.
    pub fn current(&self) -> Arc<MultiHashring> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces the ring and bumps the generation.
    pub fn replace(&self, ring: MultiHashring) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(ring);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Incremented on every [`SharedHashring::replace`]; peers' backoff state is reset
    /// when it changes.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

/// Parses `content` and builds every hashring for `replication_factor`.
pub fn build_hashring(
    content: &[u8],
    default_algorithm: Algorithm,
    replication_factor: u64,
) -> Result<(LoadedConfig, MultiHashring), ConfigError> {
    let config = LoadedConfig::from_bytes(content)?;
    let ring = MultiHashring::new(&config.hashrings, default_algorithm, replication_factor)?;
    Ok((config, ring))
}

/// The hashring configuration metrics.
#[derive(Debug, Clone)]
pub struct RingMetrics {
    nodes: IntGaugeVec,
    tenants: IntGaugeVec,
    config_hash: Gauge,
    last_reload_successful: Gauge,
    last_reload_success_timestamp: Gauge,
}

impl RingMetrics {
    /// Registers `thanos_receive_hashring_nodes{name}`,
    /// `thanos_receive_hashring_tenants{name}`, `thanos_receive_config_hash`,
    /// `thanos_receive_config_last_reload_successful` and
    /// `thanos_receive_config_last_reload_success_timestamp_seconds` on `registry`.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let nodes = IntGaugeVec::new(
            Opts::new(
                "thanos_receive_hashring_nodes",
                "The number of nodes per hashring.",
            ),
            &["name"],
        )?;
        let tenants = IntGaugeVec::new(
            Opts::new(
                "thanos_receive_hashring_tenants",
                "The number of tenants per hashring.",
            ),
            &["name"],
        )?;
        let config_hash = Gauge::new(
            "thanos_receive_config_hash",
            "Hash of the currently loaded hashring configuration file.",
        )?;
        let last_reload_successful = Gauge::new(
            "thanos_receive_config_last_reload_successful",
            "Whether the last hashring configuration file reload attempt was successful.",
        )?;
        let last_reload_success_timestamp = Gauge::new(
            "thanos_receive_config_last_reload_success_timestamp_seconds",
            "Timestamp of the last successful hashring configuration file reload.",
        )?;
        registry.register(Box::new(nodes.clone()))?;
        registry.register(Box::new(tenants.clone()))?;
        registry.register(Box::new(config_hash.clone()))?;
        registry.register(Box::new(last_reload_successful.clone()))?;
        registry.register(Box::new(last_reload_success_timestamp.clone()))?;
        Ok(Self {
            nodes,
            tenants,
            config_hash,
            last_reload_successful,
            last_reload_success_timestamp,
        })
    }

    /// Records a successfully applied configuration.
    pub fn applied(&self, config: &LoadedConfig) {
        self.nodes.reset();
        self.tenants.reset();
        for hashring in &config.hashrings {
            let name = hashring.name.as_str();
            self.nodes
                .with_label_values(&[name])
                .set(i64::try_from(hashring.endpoints.len()).unwrap_or(i64::MAX));
            self.tenants
                .with_label_values(&[name])
                .set(i64::try_from(hashring.tenants.len()).unwrap_or(i64::MAX));
        }
        self.config_hash.set(config.hash);
        self.last_reload_successful.set(1.0);
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.last_reload_success_timestamp.set(now);
    }

    /// Records a failed reload (the old configuration stays in use).
    pub fn failed(&self) {
        self.last_reload_successful.set(0.0);
    }
}

/// What a reload check did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The content is unchanged (or the file was not looked at).
    Unchanged,
    /// New content was applied.
    Applied,
    /// New content was invalid; the old ring is kept.
    Rejected,
}

/// Re-reads a hashrings file and swaps the [`SharedHashring`] when its content changes.
#[derive(Debug)]
pub struct HashringReloader {
    path: PathBuf,
    shared: Arc<SharedHashring>,
    algorithm: Algorithm,
    replication_factor: u64,
    metrics: RingMetrics,
    content: Vec<u8>,
    stamp: Option<(u64, Option<SystemTime>)>,
}

impl HashringReloader {
    /// A reloader of `path` into `shared`; `initial` is the content `shared` was built
    /// from (already recorded in `metrics`).
    pub fn new(
        path: &Path,
        shared: Arc<SharedHashring>,
        algorithm: Algorithm,
        replication_factor: u64,
        metrics: RingMetrics,
        initial: Vec<u8>,
    ) -> Self {
        let stamp = file_stamp(path);
        Self {
            path: path.to_owned(),
            shared,
            algorithm,
            replication_factor,
            metrics,
            content: initial,
            stamp,
        }
    }

    /// Reads the file now and applies it if its content changed. Blocking (file I/O and
    /// building ketama rings): run it on a blocking thread.
    pub fn reload(&mut self) -> ReloadOutcome {
        self.stamp = file_stamp(&self.path);
        let content = match std::fs::read(&self.path) {
            Ok(content) => content,
            Err(err) => {
                self.metrics.failed();
                tracing::error!(path = %self.path.display(), err = %err, "cannot read hashrings file; keeping the current hashring");
                return ReloadOutcome::Rejected;
            }
        };
        if content == self.content {
            return ReloadOutcome::Unchanged;
        }
        match build_hashring(&content, self.algorithm, self.replication_factor) {
            Ok((config, ring)) => {
                let nodes = ring.nodes().len();
                self.shared.replace(ring);
                self.metrics.applied(&config);
                self.content = content;
                tracing::info!(path = %self.path.display(), hashrings = config.hashrings.len(), nodes, "hashring configuration reloaded");
                ReloadOutcome::Applied
            }
            Err(err) => {
                self.metrics.failed();
                // Remember the bad content so it is reported once, not every second.
                self.content = content;
                tracing::error!(path = %self.path.display(), err = %err, "invalid hashrings file; keeping the current hashring");
                ReloadOutcome::Rejected
            }
        }
    }

    /// True when the file's size or modification time differ from the last read.
    pub fn changed(&self) -> bool {
        file_stamp(&self.path) != self.stamp
    }

    /// Checks for changes every [`CHANGE_CHECK_INTERVAL`] (or `refresh`, if shorter) and
    /// re-reads the file at least every `refresh`, until `shutdown` resolves.
    pub async fn run(
        self,
        refresh: Duration,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), std::convert::Infallible> {
        let refresh = refresh.max(Duration::from_millis(10));
        run_reload_loop(self, refresh, refresh.min(CHANGE_CHECK_INTERVAL), shutdown).await
    }
}

impl Reload for HashringReloader {
    fn changed(&self) -> bool {
        HashringReloader::changed(self)
    }

    fn reload(&mut self) -> ReloadOutcome {
        HashringReloader::reload(self)
    }

    fn name(&self) -> &'static str {
        "hashring"
    }
}

/// A configuration file watched by [`run_reload_loop`] (the hashrings file, the limits
/// file).
pub trait Reload: Send + 'static {
    /// True when the file looks changed since the last read (a cheap metadata check).
    fn changed(&self) -> bool;
    /// Reads the file and applies it if its content changed; invalid content keeps the
    /// configuration in use. Blocking: called on a blocking thread.
    fn reload(&mut self) -> ReloadOutcome;
    /// What is reloaded, for logs.
    fn name(&self) -> &'static str;
}

/// Every `tick`, re-reads the file of `reloader` if `refresh` elapsed since the last read
/// or its metadata changed (on the blocking pool), until `shutdown` resolves.
pub async fn run_reload_loop<R: Reload>(
    reloader: R,
    refresh: Duration,
    tick: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), std::convert::Infallible> {
    let tick = tick.max(Duration::from_millis(10));
    let name = reloader.name();
    let mut reloader = reloader;
    let mut last_read = Instant::now();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            () = tokio::time::sleep(tick) => {}
        }
        let due = last_read.elapsed() >= refresh;
        let joined = tokio::task::spawn_blocking(move || {
            let read = due || reloader.changed();
            if read {
                reloader.reload();
            }
            (reloader, read)
        })
        .await;
        let read;
        (reloader, read) = match joined {
            Ok(back) => back,
            Err(err) => {
                tracing::error!(config = name, err = %err, "reload task failed; reloading stopped");
                return Ok(());
            }
        };
        if read {
            last_read = Instant::now();
        }
    }
}

/// Size and modification time of `path`, to notice changes without reading it.
pub(crate) fn file_stamp(path: &Path) -> Option<(u64, Option<SystemTime>)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RING_A: &str = r#"[{"endpoints": ["a:1", "b:1"]}]"#;
    const RING_B: &str =
        r#"[{"hashring": "x", "tenants": ["t1"], "endpoints": ["a:1", "b:1", "c:1"]}]"#;

    #[test]
    fn reload_applies_valid_and_keeps_old_on_invalid_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hashrings.json");
        std::fs::write(&path, RING_A).unwrap();
        let registry = Registry::new();
        let metrics = RingMetrics::new(&registry).unwrap();
        let (config, ring) = build_hashring(RING_A.as_bytes(), Algorithm::Hashmod, 1).unwrap();
        metrics.applied(&config);
        let shared = Arc::new(SharedHashring::new(ring));
        let mut reloader = HashringReloader::new(
            &path,
            Arc::clone(&shared),
            Algorithm::Hashmod,
            1,
            metrics,
            RING_A.as_bytes().to_vec(),
        );
        assert!(!reloader.changed());
        assert_eq!(reloader.reload(), ReloadOutcome::Unchanged);
        assert_eq!(shared.generation(), 0);

        std::fs::write(&path, RING_B).unwrap();
        assert!(reloader.changed());
        assert_eq!(reloader.reload(), ReloadOutcome::Applied);
        assert_eq!(shared.generation(), 1);
        assert_eq!(shared.current().nodes().len(), 3);
        let text = metrics_text(&registry);
        assert!(
            text.contains("thanos_receive_hashring_nodes{name=\"x\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("thanos_receive_hashring_tenants{name=\"x\"} 1"),
            "{text}"
        );
        assert!(
            !text.contains("thanos_receive_hashring_nodes{name=\"\"}"),
            "old hashring gauges removed: {text}"
        );
        assert!(
            text.contains("thanos_receive_config_last_reload_successful 1"),
            "{text}"
        );

        // Invalid JSON, then a ring that cannot hold the replication factor: both kept out.
        for bad in ["[{", "[]"] {
            std::fs::write(&path, bad).unwrap();
            assert_eq!(reloader.reload(), ReloadOutcome::Rejected, "{bad}");
            assert_eq!(shared.current().nodes().len(), 3);
            let text = metrics_text(&registry);
            assert!(
                text.contains("thanos_receive_config_last_reload_successful 0"),
                "{text}"
            );
        }
        let mut strict = HashringReloader::new(
            &path,
            Arc::clone(&shared),
            Algorithm::Hashmod,
            3,
            RingMetrics::new(&Registry::new()).unwrap(),
            Vec::new(),
        );
        std::fs::write(&path, RING_A).unwrap();
        assert_eq!(strict.reload(), ReloadOutcome::Rejected);
        assert_eq!(shared.current().nodes().len(), 3);
    }

    fn metrics_text(registry: &Registry) -> String {
        use prometheus::Encoder;
        let mut buf = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&registry.gather(), &mut buf)
            .unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn run_picks_up_changes_and_stops_on_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hashrings.json");
        std::fs::write(&path, RING_A).unwrap();
        let (_, ring) = build_hashring(RING_A.as_bytes(), Algorithm::Hashmod, 1).unwrap();
        let shared = Arc::new(SharedHashring::new(ring));
        let reloader = HashringReloader::new(
            &path,
            Arc::clone(&shared),
            Algorithm::Hashmod,
            1,
            RingMetrics::new(&Registry::new()).unwrap(),
            RING_A.as_bytes().to_vec(),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(reloader.run(Duration::from_millis(50), async move {
            let _ = stopped.await;
        }));
        std::fs::write(&path, RING_B).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while shared.generation() == 0 {
            assert!(Instant::now() < deadline, "change not picked up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(shared.current().nodes().len(), 3);
        stop.send(()).unwrap();
        task.await.unwrap().unwrap();
    }
}
