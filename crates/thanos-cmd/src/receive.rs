//! `thanos receive`: flag validation and the IngestorOnly receiver (components.md §3).
//!
//! Without a hashring the receiver stores everything it is sent: `/metrics`, `/-/healthy`
//! and `/-/ready` on `--http-address`; `POST /api/v1/receive` on
//! `--remote-write.address`; gRPC health, `thanos.Store` and `thanos.info.Info` over the
//! tenant heads on `--grpc-address` (answering "not ready" until the WALs are replayed;
//! each tenant labelled with the `--label`s plus `<--receive.tenant-label-name>=<tenant>`).
//! On start it replays every tenant WAL under `--tsdb.path` (the HTTP server is already
//! up and healthy), then binds the remote-write server and turns ready. Every
//! acknowledged write is in the tenant's fsynced WAL. `thanos.WriteableStore` on
//! `--grpc-address` accepts forwarded writes (snappy-compressed or not).
//!
//! With a hashring (`--receive.hashrings-file` / `--receive.hashrings`) the receiver is a
//! router ([`crate::receive_router`]): RouterIngestor with `--receive.local-endpoint`
//! (stores its own replicas, forwards the others), RouterOnly without it (no TSDB, no
//! WAL; ready as soon as the hashring is loaded).
//!
//! `--receive.relabel-config(-file)` rules are applied to every series of a remote-write
//! request before it is distributed. `--receive.limits-config(-file)` sets per-tenant
//! request limits (413), the write gate (`write.global.max_concurrency`) and, in router
//! modes, active-series limits checked against a meta-monitoring Prometheus (429); the
//! file is re-read every `--receive.limits-config-reload-timer`. Both are validated
//! before anything starts: invalid YAML fails start-up naming the flag and the field.
//!
//! Ingesting modes cut the tenant heads into blocks under `<tsdb.path>/<tenant>/`,
//! checkpoint the WALs, delete blocks beyond `--tsdb.retention` and, with
//! `--objstore.config(-file)`, upload every block ([`crate::receive_blocks`]). On
//! SIGTERM/SIGINT the receiver turns not ready, stops the servers (remote write first
//! drains), flushes every head into blocks, uploads them, then exits.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use prometheus::Registry;
use thanos_model::relabel::RelabelConfig;
use thanos_proto::thanos::info::info_server::InfoServer;
use thanos_proto::thanos::store_server::StoreServer;
use thanos_receive::limits::{LimitsReloader, META_MONITORING_INTERVAL};
use thanos_receive::reload::run_reload_loop;
use thanos_receive::{
    Handler, HandlerOptions, HeadOptions, Limiter, LimitsConfig, MetaMonitoring, MultiTsdb,
    ReceiveStore, Storage, WriteableService,
};
use thanos_server::{
    GrpcServer, GrpcServerOptions, HttpServer, HttpServerOptions, Prober, RunGroup,
    ServerTlsOptions, WebConfig, shutdown_signal,
};
use thanos_wal::wlog::{Compression, WalOptions};

use crate::flags::non_empty;
use crate::flags::objstore::read_pair;
use crate::flags::receive::ReceiveFlags;

/// How the receiver runs, derived from the flags (components.md §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Routes by hashring and stores its own share.
    RouterIngestor,
    /// Pure router: no TSDB, no upload.
    RouterOnly,
    /// Single-node hashring; stores everything it receives.
    IngestorOnly,
}

/// Validates every flag of `thanos receive` (including the hashring) and runs the
/// receiver in the mode the flags select until SIGTERM/SIGINT.
pub fn run(flags: &ReceiveFlags) -> anyhow::Result<()> {
    let labels = thanos_server::parse_labels(&flags.labels).context("invalid --label")?;
    if labels.is_empty() {
        bail!(
            "no external labels configured for receive: at least one --label=name=\"value\" \
             uniquely identifying this receiver is required (ideally with a receive_ prefix)"
        );
    }
    if flags.receive_replication_factor == 0 {
        bail!("--receive.replication-factor must be at least 1");
    }
    if flags.tsdb_min_block_duration > flags.tsdb_max_block_duration {
        bail!("--tsdb.min-block-duration must not exceed --tsdb.max-block-duration");
    }
    let http = flags.http.options("http")?;
    let grpc = flags.grpc.options()?;
    let _peers = flags.client.options()?;
    let remote_write_tls = ServerTlsOptions::from_flags(
        non_empty(&flags.remote_write_server_tls_cert),
        non_empty(&flags.remote_write_server_tls_key),
        non_empty(&flags.remote_write_server_tls_client_ca),
        flags.remote_write_server_tls_min_version,
    )
    .context("invalid --remote-write.server-tls-* flags")?;
    if let Some(tls) = &remote_write_tls {
        tls.build(&[b"h2", b"http/1.1"])
            .context("invalid --remote-write.server-tls-* flags")?;
    }
    let bucket = flags.objstore.bucket_config()?;
    let hashrings = read_pair(
        "receive.hashrings",
        flags.receive_hashrings_file.as_deref(),
        flags.receive_hashrings.as_deref(),
    )?;
    let relabel = relabel_config(flags)?;
    let limits = limits_config(flags)?;
    read_pair(
        "request.logging-config",
        flags.request_logging_config_file.as_deref(),
        flags.request_logging_config.as_deref(),
    )?;
    let mode = match (hashrings.is_some(), flags.receive_local_endpoint.is_some()) {
        (true, true) => Mode::RouterIngestor,
        (true, false) => Mode::RouterOnly,
        (false, _) => Mode::IngestorOnly,
    };
    tracing::info!(
        mode = ?mode,
        labels = labels.len(),
        upload = bucket.is_some(),
        relabel_rules = relabel.len(),
        limits = limits.is_some(),
        "receive flags validated"
    );
    if mode == Mode::IngestorOnly
        && limits
            .as_ref()
            .is_some_and(|(config, _)| config.head_series_limits_enabled())
    {
        tracing::warn!(
            "head_series_limit is only enforced by routers (a hashring is configured); \
             ignored in IngestorOnly mode"
        );
    }
    let router = match &hashrings {
        Some(content) => {
            let router = crate::receive_router::RouterSetup::from_flags(flags, content)?;
            tracing::info!(mode = ?mode, nodes = router.nodes(), "hashring loaded");
            Some(router)
        }
        None => None,
    };
    if !flags.tsdb_out_of_order_time_window.is_zero() {
        tracing::warn!(
            flag = "--tsdb.out-of-order.time-window",
            "accepted but not implemented; out-of-order samples are rejected"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    let store = ReceiveStore::new(
        labels.into_iter().map(|l| (l.name, l.value)),
        flags.receive_tenant_label_name.clone(),
    );
    runtime.block_on(serve(
        flags,
        store,
        http,
        grpc,
        remote_write_tls,
        Setup {
            mode,
            router,
            relabel,
            limits,
        },
    ))
}

/// `--receive.relabel-config(-file)`, parsed and validated (none given: no rules).
pub fn relabel_config(flags: &ReceiveFlags) -> anyhow::Result<Vec<RelabelConfig>> {
    let Some(content) = read_pair(
        "receive.relabel-config",
        flags.receive_relabel_config_file.as_deref(),
        flags.receive_relabel_config.as_deref(),
    )?
    else {
        return Ok(Vec::new());
    };
    thanos_model::relabel::parse_yaml(&content)
        .context("invalid --receive.relabel-config-file / --receive.relabel-config")
}

/// `--receive.limits-config(-file)`, parsed and validated, with the content it was parsed
/// from; `None` when neither flag is given.
pub fn limits_config(flags: &ReceiveFlags) -> anyhow::Result<Option<(LimitsConfig, String)>> {
    let Some(content) = read_pair(
        "receive.limits-config",
        flags.receive_limits_config_file.as_deref(),
        flags.receive_limits_config.as_deref(),
    )?
    else {
        return Ok(None);
    };
    let config = LimitsConfig::parse(&content)
        .context("invalid --receive.limits-config-file / --receive.limits-config")?;
    Ok(Some((config, content)))
}

/// What the validated flags select: the mode, the hashring, the relabel rules and the
/// limits.
struct Setup {
    mode: Mode,
    router: Option<crate::receive_router::RouterSetup>,
    relabel: Vec<RelabelConfig>,
    limits: Option<(LimitsConfig, String)>,
}

/// Builds the [`Limiter`] and starts its reloader (with `--receive.limits-config-file`)
/// and, in router modes, the meta-monitoring poller.
fn start_limiter(
    flags: &ReceiveFlags,
    limits: Option<(LimitsConfig, String)>,
    mode: Mode,
    registry: &Registry,
    group: &mut RunGroup,
) -> anyhow::Result<Option<Arc<Limiter>>> {
    let Some((config, content)) = limits else {
        return Ok(None);
    };
    let limiter =
        Arc::new(Limiter::new(config, registry).context("register receive limits metrics")?);
    if let Some(path) = flags
        .receive_limits_config_file
        .as_deref()
        .filter(|p| !p.as_os_str().is_empty())
    {
        let reloader = LimitsReloader::new(path, Arc::clone(&limiter), content);
        let every = flags.receive_limits_config_reload_timer;
        let token = group.token();
        group.spawn(
            "limits-reload",
            run_reload_loop(reloader, every, every, async move {
                token.cancelled().await;
            }),
        );
    }
    if mode != Mode::IngestorOnly {
        let poller = MetaMonitoring::new(Arc::clone(&limiter), META_MONITORING_INTERVAL)
            .context("meta-monitoring client")?;
        let token = group.token();
        group.spawn(
            "meta-monitoring",
            poller.run(META_MONITORING_INTERVAL, async move {
                token.cancelled().await;
            }),
        );
    }
    Ok(Some(limiter))
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The head and WAL settings taken from the flags.
fn storage_options(flags: &ReceiveFlags) -> (HeadOptions, Storage) {
    let head = HeadOptions {
        chunk_range_ms: millis(flags.tsdb_min_block_duration).max(1),
        too_far_in_future_ms: millis(flags.tsdb_too_far_in_future_time_window),
        ..HeadOptions::default()
    };
    let storage = Storage {
        dir: flags.tsdb_path.clone(),
        wal: WalOptions {
            compression: if flags.tsdb_wal_compression {
                Compression::Snappy
            } else {
                Compression::None
            },
            ..WalOptions::default()
        },
    };
    (head, storage)
}

/// Block cutting, retention and upload settings taken from the flags.
fn block_lifecycle(flags: &ReceiveFlags) -> anyhow::Result<crate::receive_blocks::BlockLifecycle> {
    let external = thanos_server::parse_labels(&flags.labels).context("invalid --label")?;
    Ok(crate::receive_blocks::BlockLifecycle {
        external: thanos_model::Labels::from_pairs(external.into_iter().map(|l| (l.name, l.value))),
        tenant_label: flags.receive_tenant_label_name.clone(),
        block_duration: flags.tsdb_min_block_duration,
        retention: flags.tsdb_retention,
        bucket: flags.objstore.bucket_config()?,
    })
}

async fn serve(
    flags: &ReceiveFlags,
    store: ReceiveStore,
    http: HttpServerOptions,
    grpc: GrpcServerOptions,
    remote_write_tls: Option<ServerTlsOptions>,
    setup: Setup,
) -> anyhow::Result<()> {
    let Setup {
        mode,
        router,
        relabel,
        limits,
    } = setup;
    let registry = Registry::new();
    let prober = Prober::new("receive", &registry).context("register probe metrics")?;
    let grace_period = http.grace_period;
    let http_server = HttpServer::bind(http, prober.clone(), registry.clone(), axum::Router::new())
        .await
        .context("start the HTTP server")?;
    let grpc_server = GrpcServer::bind(grpc, prober.clone())
        .await
        .context("start the gRPC server")?
        .add_service(StoreServer::new(store.clone()))
        .add_service(InfoServer::new(store.clone()));
    let writeable = WriteableService::new(prober.clone(), flags.receive_default_tenant_id.clone());
    let grpc_server = grpc_server.add_service(writeable.server());
    prober.healthy();
    let mut group = RunGroup::new(prober.clone());
    let token = group.token();
    group.spawn("http", http_server.run(token.clone()));
    group.spawn("grpc", grpc_server.run(token.clone()));

    // Replay every tenant WAL before accepting writes or reporting ready. A RouterOnly
    // receiver stores nothing: its Store API serves an empty in-memory registry.
    let tsdb = if mode == Mode::RouterOnly {
        let (head_options, _) = storage_options(flags);
        let tsdb = MultiTsdb::new(head_options, &registry).context("register TSDB metrics")?;
        store.attach(Arc::new(tsdb));
        None
    } else {
        let (head_options, storage) = storage_options(flags);
        tracing::info!(path = %storage.dir.display(), "replaying tenant WALs");
        let replay_registry = registry.clone();
        let (tsdb, stats) = tokio::task::spawn_blocking(move || {
            MultiTsdb::open(head_options, storage, &replay_registry)
        })
        .await
        .context("replay task")?
        .context("open --tsdb.path")?;
        for (tenant, s) in &stats {
            tracing::info!(
                tenant = %tenant,
                series = s.series,
                samples = s.samples,
                repaired = s.repaired_at.is_some(),
                duration_ms = s.duration_ms,
                "tenant WAL replayed"
            );
        }
        let tsdb = Arc::new(tsdb);
        store.attach(Arc::clone(&tsdb));
        crate::receive_blocks::start(
            block_lifecycle(flags)?,
            Arc::clone(&tsdb),
            &registry,
            &mut group,
        )?;
        Some(tsdb)
    };
    let distributor = crate::receive_router::distributor(router, tsdb, &registry, &mut group)?;
    writeable.attach(Arc::clone(&distributor));
    let max_concurrency = limits.as_ref().map_or(0, |(config, _)| {
        usize::try_from(config.write.global.max_concurrency).unwrap_or(usize::MAX)
    });
    let limiter = start_limiter(flags, limits, mode, &registry, &mut group)?;
    let handler = Handler::with_distributor(
        HandlerOptions {
            tenant_header: flags.receive_tenant_header.clone(),
            default_tenant: flags.receive_default_tenant_id.clone(),
            replica_header: flags.receive_replica_header.clone(),
            max_concurrency,
            limiter,
            relabel: Arc::new(relabel),
            ..HandlerOptions::default()
        },
        distributor,
        prober.clone(),
        &registry,
    )
    .context("register receive metrics")?;
    let remote_write = HttpServer::bind(
        HttpServerOptions {
            name: "remote-write",
            address: flags.remote_write_address.clone(),
            grace_period,
            web_config: WebConfig {
                tls: remote_write_tls,
                ..WebConfig::default()
            },
        },
        prober.clone(),
        registry.clone(),
        handler.router(),
    )
    .await
    .context("start the remote-write server")?;
    group.spawn("remote-write", remote_write.run(token));
    prober.ready();
    group
        .run(async {
            if let Err(err) = shutdown_signal().await {
                tracing::error!(err = %err, "cannot listen for signals");
            }
        })
        .await
        .context("receive")
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::{Cli, Command};

    fn flags(args: &[&str]) -> ReceiveFlags {
        let mut all = vec!["thanos", "receive", "--label=replica=\"0\""];
        all.extend(args);
        match Cli::try_parse_from(all).unwrap().command {
            Command::Receive(flags) => *flags,
            other => panic!("{other:?}"),
        }
    }

    /// `run` fails before starting anything, with the flag and the reason in the message.
    fn startup_error(args: &[&str]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let tsdb = format!("--tsdb.path={}", dir.path().join("data").display());
        let mut all = vec![tsdb.as_str()];
        all.extend(args);
        let err = run(&flags(&all)).expect_err("start-up must fail");
        format!("{err:#}")
    }

    #[test]
    fn broken_limits_config_fails_startup() {
        let msg = startup_error(&["--receive.limits-config=write:\n  defualt: {}\n"]);
        assert!(msg.contains("--receive.limits-config"), "{msg}");
        assert!(msg.contains("defualt"), "{msg}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("limits.yaml");
        std::fs::write(
            &path,
            "write:\n  default:\n    request:\n      series_limit: many\n",
        )
        .unwrap();
        let file = format!("--receive.limits-config-file={}", path.display());
        let msg = startup_error(&[&file]);
        assert!(msg.contains("--receive.limits-config-file"), "{msg}");
        assert!(
            msg.contains("series_limit") || msg.contains("many"),
            "{msg}"
        );
        let missing = format!(
            "--receive.limits-config-file={}",
            dir.path().join("nope.yaml").display()
        );
        let msg = startup_error(&[&missing]);
        assert!(msg.contains("nope.yaml"), "{msg}");
        assert!(msg.contains("read --receive.limits-config-file "), "{msg}");
    }

    #[test]
    fn broken_relabel_config_fails_startup() {
        let msg = startup_error(&["--receive.relabel-config=- action: explode\n"]);
        assert!(msg.contains("--receive.relabel-config"), "{msg}");
        assert!(msg.contains("explode") || msg.contains("action"), "{msg}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relabel.yaml");
        std::fs::write(&path, "- source_labels: [a\n").unwrap();
        let file = format!("--receive.relabel-config-file={}", path.display());
        let msg = startup_error(&[&file]);
        assert!(msg.contains("--receive.relabel-config-file"), "{msg}");
    }

    #[test]
    fn valid_configs_are_parsed() {
        let f = flags(&[
            "--receive.relabel-config=- action: drop\n  source_labels: [x]\n  regex: y\n",
            "--receive.limits-config=write:\n  global:\n    max_concurrency: 2\n",
        ]);
        assert_eq!(relabel_config(&f).unwrap().len(), 1);
        let (limits, content) = limits_config(&f).unwrap().expect("configured");
        assert_eq!(limits.write.global.max_concurrency, 2);
        assert!(content.contains("max_concurrency"));
        let none = flags(&[]);
        assert!(relabel_config(&none).unwrap().is_empty());
        assert!(limits_config(&none).unwrap().is_none());
    }
}
